# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The DenseFlow network: trunks, BEV projection, refinement, flow decoding, pose.

Submodules (and hence checkpoint keys) map one to one onto the authors' ``BEV_corr``:
``ground_trunk`` <- ``GrdFeatureNet``, ``satellite_trunk`` <- ``SatFeatureNet``,
``feature_encoder`` <- ``op_flow.fnet1``, ``context_encoder`` <- ``op_flow.cnet1``,
``update`` <- ``op_flow.update_block`` (see :mod:`denseflow_ros.model.checkpoint`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from denseflow_ros.model.calibration import apply_calibration
from denseflow_ros.model.config import ModelConfig
from denseflow_ros.model.decoder import (
    CorrPyramid,
    PinnedMotion,
    UpdateBlock,
    convex_upsample,
    upsample_confidence,
)
from denseflow_ros.model.fine import FineAligner, FineScores
from denseflow_ros.model.pose import solve_pose
from denseflow_ros.model.projection import (
    from_native,
    panorama_uv,
    pinhole_uv,
    sample_bev,
    to_native,
)
from denseflow_ros.model.refine import RefineEncoder
from denseflow_ros.model.search import coarse_shift, search_setup
from denseflow_ros.model.trunk import Trunk
from denseflow_ros.model.window import support_window


@dataclass
class DenseFlowOutput:
    """One inference forward's result, in the package's crop layout.

    flow (B, 2, S, S) BEV pixel -> satellite pixel displacement (du, dv), meaningful where
    mask is true (the decoder pins unseen cells at coordinate 0, as in training); confidence
    (B, 1, S, S) in (0, 1), zero outside the mask; mask (B, 1, S, S) bool, BEV pixels the
    ground camera sees;
    shift_u_m, shift_v_m (B,) true camera position minus crop centre along +u / +v;
    yaw_deg (B,) true minus prior heading, counter-clockwise positive; covariance (B, 3, 3)
    of (shift_u_m [m], shift_v_m [m], yaw [rad]).
    """

    flow: torch.Tensor
    confidence: torch.Tensor
    mask: torch.Tensor
    shift_u_m: torch.Tensor
    shift_v_m: torch.Tensor
    yaw_deg: torch.Tensor
    covariance: torch.Tensor


@dataclass
class DenseFlowTrainingOutput:
    """A training forward's result: every iteration's flow and confidence, for the loss.

    flows / confidences: one (B, 2, S, S) / (B, 1, S, S) tensor per iteration, oldest first;
    mask (B, 1, S, S) bool; the pose fields are the differentiable solve of the last
    iteration, as in :class:`DenseFlowOutput`. ``bev_features`` and ``satellite_features``
    (B, C, A, A) are the maps the correlation is built from and ``feature_mask`` (B, 1, A, A)
    the visible BEV cells, all in the preset's native layout (for feature-level losses).
    """

    flows: list[torch.Tensor]
    confidences: list[torch.Tensor]
    mask: torch.Tensor
    shift_u_m: torch.Tensor
    shift_v_m: torch.Tensor
    yaw_deg: torch.Tensor
    covariance: torch.Tensor
    bev_features: torch.Tensor | None = None
    satellite_features: torch.Tensor | None = None
    feature_mask: torch.Tensor | None = None


@dataclass
class DenseFlowFeatures:
    """The two feature maps the correlation is built from (a ``features_only`` forward).

    bev (B, C, A, A) projected ground features, satellite (B, C, A, A), mask (B, 1, A, A)
    bool visible BEV cells; all in the preset's native layout.
    """

    bev: torch.Tensor
    satellite: torch.Tensor
    mask: torch.Tensor


class DenseFlow(nn.Module):
    """Cross-view localization network: ground image + satellite crop -> flow and pose."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.iterations = config.iterations
        # Centroid rule of the pose solver (see ModelConfig.weighted_centroids); changeable at
        # run time.
        self.weighted_centroids = config.weighted_centroids
        # Scale and floor of the fit's covariance fitted on validation data (see
        # denseflow_ros.model.calibration); None reports the fit's own covariance.
        self.covariance_calibration: dict[str, float] | None = None
        # Training only: whether flow and pose losses reach the trunks and the feature encoder.
        self.flow_trains_encoders = True
        trunk_out = config.trunk_widths[-1]
        self.ground_trunk = Trunk(config.trunk_widths, config.ground_stride)
        self.satellite_trunk = Trunk(config.trunk_widths)
        self.feature_encoder = RefineEncoder(
            trunk_out, config.refine_dim, config.feature_dim, config.refine_stages, "instance"
        )
        self.context_encoder = RefineEncoder(
            trunk_out,
            config.refine_dim,
            config.hidden_dim + config.context_dim,
            config.refine_stages,
            config.context_norm,
        )
        self.update = UpdateBlock(
            corr_ch=config.corr_levels * (2 * config.corr_radius + 1) ** 2,
            hidden=config.hidden_dim,
            context=config.context_dim,
            corr_dims=config.motion_corr_dims,
            flow_dims=config.motion_flow_dims,
            motion=config.motion_dim,
            head=config.head_dim,
            confidence_mid=config.confidence_dim,
            stride=config.stride,
        )
        self.fine = FineAligner(config) if config.fine_channels else None
        # Whether eval forwards run the fine stage (where the network has one); changeable at
        # run time: off returns the decoder's pose, sooner.
        self.run_fine_stage = True

    def forward(
        self,
        ground: torch.Tensor,
        satellite: torch.Tensor,
        intrinsics: torch.Tensor,
        satellite_mpp: float | torch.Tensor | None = None,
        camera_height_m: float | torch.Tensor | None = None,
        camera_to_body: torch.Tensor | None = None,
        features_only: bool = False,
        fine_start: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    ) -> DenseFlowOutput | DenseFlowTrainingOutput | DenseFlowFeatures | FineScores:
        """Estimate flow and pose from ground (B,3,H,W) and satellite (B,3,S,S) RGB in [0, 1].

        ``intrinsics`` (B, 3, 3) are for the ground tensor's size (unused by the panorama
        projection); ``satellite_mpp`` (float or (B,)) and ``camera_height_m`` default to the
        preset's; ``camera_to_body`` (B, 4, 4) optionally places the camera in the FRD body
        frame (Ford), with ``camera_height_m`` then the ground's depth below the body origin.
        In eval mode runs without gradients and returns :class:`DenseFlowOutput`; in training
        mode returns :class:`DenseFlowTrainingOutput`. ``features_only`` stops after the
        feature encoder and returns :class:`DenseFlowFeatures` (feature-matching warm-up).
        ``fine_start`` (shift_u_m, shift_v_m, yaw_deg), each (B,), runs the fine stage alone
        around that pose and returns its :class:`FineScores` (training the fine stage); in
        eval mode the fine stage, where the network has one, refines the decoder's pose.
        """
        cfg = self.config
        mpp = cfg.satellite_mpp if satellite_mpp is None else satellite_mpp
        height = cfg.camera_height_m if camera_height_m is None else camera_height_m
        if ground.dim() != 4 or satellite.dim() != 4 or ground.shape[0] != satellite.shape[0]:
            raise ValueError("ground and satellite must be (B, 3, H, W) with the same batch size")
        size = satellite.shape[-1]
        if satellite.shape[-2] != size or size % cfg.stride:
            raise ValueError(f"satellite must be square with a side divisible by {cfg.stride}")
        if camera_to_body is not None and self.fine is not None:
            raise ValueError("the fine stage needs the camera at the body origin")
        if fine_start is not None:
            if self.fine is None:
                raise ValueError("this network has no fine stage (fine_channels is 0)")
            with torch.set_grad_enabled(self.training):
                return self.fine(ground, satellite, intrinsics, mpp, height, *fine_start)
        args = (ground, satellite, intrinsics, mpp, height, camera_to_body, features_only)
        if self.training:
            return self._forward(*args)
        with torch.no_grad():
            return self._forward(*args)

    def _forward(
        self,
        ground: torch.Tensor,
        satellite: torch.Tensor,
        intrinsics: torch.Tensor,
        mpp: float | torch.Tensor,
        height: float | torch.Tensor,
        camera_to_body: torch.Tensor | None,
        features_only: bool,
    ) -> DenseFlowOutput | DenseFlowTrainingOutput | DenseFlowFeatures:
        cfg = self.config
        turns = cfg.native_turns
        size_px = satellite.shape[-1]
        sat_feat = self.satellite_trunk(to_native(satellite, turns))
        grd_feat = self.ground_trunk(ground)
        grid = sat_feat.shape[-1]
        bev, mask = project_to_bev(
            cfg, grd_feat, tuple(ground.shape[-2:]), intrinsics, grid, mpp, height, camera_to_body
        )
        maskf = mask.to(bev.dtype)
        # The BEV is zero outside the camera's view: the encoders' first convolutions on it
        # only need to run over the view's bounding window.
        window = support_window(mask)
        fe = self.feature_encoder
        fmaps = fe.body(torch.cat([fe.stem(bev, window), fe.stem(sat_feat)], dim=0))
        b = bev.shape[0]
        if features_only:
            return DenseFlowFeatures(fmaps[:b], fmaps[b:], mask)
        corr_maps, ctx_in = fmaps, bev
        if not self.flow_trains_encoders:
            # The trunks and feature encoder then learn from feature-level losses alone.
            corr_maps, ctx_in = fmaps.detach(), bev.detach()
        corr = CorrPyramid(corr_maps[:b], corr_maps[b:], cfg.corr_levels, cfg.corr_radius)
        ctx = self.context_encoder(ctx_in, window)
        net, inp = torch.split(ctx, [cfg.hidden_dim, cfg.context_dim], dim=1)
        net, inp = torch.tanh(net), torch.relu(inp)
        context = self.update.gru.prepare(inp)
        idx = torch.arange(grid, device=bev.device, dtype=bev.dtype)
        gv, gu = torch.meshgrid(idx, idx, indexing="ij")
        coords0 = torch.stack([gu, gv], dim=0).expand(b, 2, grid, grid)
        coords1 = coords0.clone()
        if cfg.coarse_search_m > 0:
            cell_m = float(torch.as_tensor(mpp).min()) * size_px / grid
            reach, voters = search_setup(cfg, mask, cell_m)
            shift = coarse_shift(corr_maps[:b].detach(), corr_maps[b:].detach(), voters, reach,
                                 cfg.match_temperature, corr.pyramid[0].detach())
            coords1 = coords0 + shift[:, :, None, None] * maskf
        flows: list[torch.Tensor] = []
        confs: list[torch.Tensor] = []
        iterations = int(self.iterations)
        # With most of the grid out of view, work that cannot change there is done once.
        pinned = PinnedMotion(corr, self.update.encoder, mask) if maskf.mean() < 0.5 else None
        for it in range(iterations):
            coords1 = coords1.detach()
            flow = coords1 - coords0
            if pinned is None:
                motion = self.update.encoder(flow, corr(coords1))
            else:
                motion = pinned(coords1, flow, it)
            net, delta = self.update(net, context, motion, window)
            # Cells the camera does not see are pinned at coordinate 0, as in training.
            coords1 = (coords1 + delta) * maskf
            if self.training or it == iterations - 1:
                conf = self.update.flow_conf(net) * maskf
                up_mask = self.update.upsample_mask(net)
                flows.append(convex_upsample(coords1 - coords0, up_mask, cfg.stride))
                confs.append(upsample_confidence(conf, cfg.stride))
        # The pose is solved in the native layout, where every visible pixel exists (turning
        # a crop about its centre pixel leaves one row outside), then turned.
        native_mask = _upsampled_mask(maskf, cfg.stride)
        su, sv, yaw, cov = solve_pose(
            flows[-1], confs[-1], native_mask, mpp, weighted_centroids=self.weighted_centroids
        )
        su, sv, cov = _turn_pose(su, sv, cov, turns)
        if self.fine is not None and self.run_fine_stage and not self.training:
            su, sv, yaw = self.fine.refine(ground, satellite, intrinsics, mpp, height, su, sv,
                                           yaw)
        cov = apply_calibration(cov, self.covariance_calibration)
        full_mask = from_native(native_mask.to(maskf.dtype), turns) > 0.5
        flows = [from_native(f, turns, vector=True) for f in flows]
        confs = [from_native(c, turns) for c in confs]
        if self.training:
            return DenseFlowTrainingOutput(flows, confs, full_mask, su, sv, yaw, cov,
                                           fmaps[:b], fmaps[b:], mask)
        return DenseFlowOutput(flows[-1], confs[-1], full_mask, su, sv, yaw, cov)



def project_to_bev(
    config: ModelConfig,
    ground_features: torch.Tensor,
    ground_size: tuple[int, int],
    intrinsics: torch.Tensor | None,
    grid: int,
    mpp: float | torch.Tensor,
    height_m: float | torch.Tensor,
    camera_to_body: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Project (B, C, h, w) ground features onto the native-layout A x A BEV grid.

    ``ground_size`` is the (H, W) of the image the features came from and ``intrinsics``
    (B, 3, 3) are for that size; they are rescaled to the feature map by the size ratios, as
    the authors do. Returns the (B, C, A, A) BEV features and the (B, 1, A, A) bool mask.
    """
    cell_m = torch.as_tensor(mpp, dtype=torch.float32, device=ground_features.device)
    cell_m = cell_m * (config.satellite_size / grid)
    hf, wf = ground_features.shape[-2:]
    # Which cells the camera sees is geometry: it must not change with the features' precision
    # (under bfloat16 autocast the border cells' pixel coordinates round across the image edge).
    exact = torch.autocast(ground_features.device.type, enabled=False)
    if config.projection == "panorama":
        with exact:
            uv = panorama_uv(grid, cell_m, height_m, hf, wf, ground_features.shape[0],
                             ground_features.device)
        return sample_bev(ground_features, uv)
    if intrinsics is None:
        raise ValueError(f"the {config.name!r} preset's pinhole projection needs intrinsics")
    k = intrinsics.to(device=ground_features.device, dtype=torch.float32).clone()
    k[:, 0, :] = k[:, 0, :] * (wf / ground_size[1])
    k[:, 1, :] = k[:, 1, :] * (hf / ground_size[0])
    with exact:
        uv, depth = pinhole_uv(
            k, grid, cell_m, height_m, config.native_turns, camera_to_body,
            config.bev_centre_half_cell,
        )
    return sample_bev(ground_features, uv, depth > 1e-6)


def _upsampled_mask(mask: torch.Tensor, stride: int) -> torch.Tensor:
    # Bilinear (aligned corners) upsampling, then any overlap counts as visible: the mask the
    # authors' solver uses.
    a = mask.shape[-1]
    up = F.interpolate(mask, size=(a * stride, a * stride), mode="bilinear", align_corners=True)
    return up > 0


def _full_resolution_mask(mask: torch.Tensor, stride: int, turns: int) -> torch.Tensor:
    up = _upsampled_mask(mask, stride)
    return from_native(up.to(mask.dtype), turns) > 0.5


def _turn_pose(
    shift_u: torch.Tensor, shift_v: torch.Tensor, cov: torch.Tensor, turns: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # Native (a, b) is package (-b, a); the yaw is the same in both layouts.
    if turns == 0:
        return shift_u, shift_v, cov
    p = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=cov.dtype,
                     device=cov.device)
    return -shift_v, shift_u, p @ cov @ p.T


def visibility_mask(
    config: ModelConfig,
    intrinsics: torch.Tensor | None,
    satellite_mpp: float | torch.Tensor | None = None,
    camera_height_m: float | torch.Tensor | None = None,
    camera_to_body: torch.Tensor | None = None,
    batch: int | None = None,
) -> torch.Tensor:
    """Return the (B, 1, S, S) bool mask of satellite pixels the ground camera sees.

    The same mask a forward returns (and the one ground-truth flow is zeroed outside of),
    computed from the geometry alone; ``intrinsics`` are for the preset's ground size.
    """
    if batch is None:
        batch = 1 if intrinsics is None else intrinsics.shape[0]
    device = intrinsics.device if intrinsics is not None else torch.device("cpu")
    h, w = config.ground_size
    gs = config.ground_stride
    feats = torch.ones(batch, 1, h // gs, w // gs, device=device)
    mpp = config.satellite_mpp if satellite_mpp is None else satellite_mpp
    height = config.camera_height_m if camera_height_m is None else camera_height_m
    _, mask = project_to_bev(
        config, feats, (h, w), intrinsics, config.feature_size, mpp, height, camera_to_body
    )
    return _full_resolution_mask(mask.float(), config.stride, config.native_turns)
