# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Fine alignment: a learned correlation at the satellite crop's own pixels, near an estimate.

The decoder's flow lives on the feature grid (1.6 m cells in the lite preset): once the
search has found the right place its pose is good to a few tenths of a metre. This stage
re-matches at full resolution. Two small convolutional nets describe the ground image and the
satellite crop; the ground descriptors are projected onto the ground plane with the network's
geometry, kept within ``fine_range_m`` of the camera and normalised per channel by their local
mean and spread. For every yaw on a grid around the estimate the projection is turned about
the camera, placed at the estimated shift and slid over the satellite descriptors by whole
pixels within ``fine_radius_m``; the best (yaw, shift) is refined to sub-pixel and sub-step by
parabolas through its neighbours.

The crop layout is the package's (heading along +u, camera at pixel S // 2) and a pose maps a
ground-plane pixel A to satellite pixel ``c + R(yaw) (A - c) + t``, as in
:class:`denseflow_ros.model.DenseFlowOutput`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from denseflow_ros.model.config import ModelConfig
from denseflow_ros.model.projection import pinhole_uv, sample_bev
from denseflow_ros.model.search import parabola_offset


def blur(x: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """Gaussian-blur every channel of (B, C, H, W) ``x`` (edges replicated)."""
    c = x.shape[1]
    radius = max(1, int(math.ceil(3 * sigma_px)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma_px) ** 2)
    k = k / k.sum()
    # Depthwise (one group per channel): an order of magnitude faster on CPUs than folding
    # the channels into the batch.
    taps = 2 * radius + 1
    y = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"),
                 k.view(1, 1, 1, taps).expand(c, 1, 1, taps), groups=c)
    return F.conv2d(F.pad(y, (0, 0, radius, radius), mode="replicate"),
                    k.view(1, 1, taps, 1).expand(c, 1, taps, 1), groups=c)


def local_normalise(x: torch.Tensor, mask: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """Return (x - local mean) / local std of (B, C, H, W) ``x`` inside (B, 1, H, W) ``mask``.

    Means and spreads are Gaussian-weighted over the masked pixels only; zero outside.
    """
    m = mask.to(x.dtype)
    weight = blur(m, sigma_px).clamp_min(1e-6)
    mean = blur(x * m, sigma_px) / weight
    var = blur((x - mean) ** 2 * m, sigma_px) / weight
    return (x - mean) / torch.sqrt(var + 1e-4) * m


def subcell_peak(scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                   torch.Tensor]:
    """Locate the maximum of (B, K, V, U) scores to sub-step along each axis.

    Returns (k, v, u) as float indices, each refined by a parabola through the peak's two
    neighbours along its axis (clamped at the border), and the peak value (B,).
    """
    b, n_k, n_v, n_u = scores.shape
    best, arg = scores.reshape(b, -1).max(1)
    k = arg // (n_v * n_u)
    v = (arg // n_u) % n_v
    u = arg % n_u
    bi = torch.arange(b, device=scores.device)

    def at(dk: int, dv: int, du: int) -> torch.Tensor:
        return scores[bi, (k + dk).clamp(0, n_k - 1), (v + dv).clamp(0, n_v - 1),
                      (u + du).clamp(0, n_u - 1)]

    dk = parabola_offset(at(-1, 0, 0), best, at(1, 0, 0))
    dv = parabola_offset(at(0, -1, 0), best, at(0, 1, 0))
    du = parabola_offset(at(0, 0, -1), best, at(0, 0, 1))
    return k.to(scores.dtype) + dk, v.to(scores.dtype) + dv, u.to(scores.dtype) + du, best


def place_template(bev: torch.Tensor, mask: torch.Tensor, yaw_deg: torch.Tensor,
                   shift_px: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    """Turn and shift (B, C, S, S) ground-plane maps into the satellite crop.

    ``yaw_deg`` (B, K) and ``shift_px`` (B, 2) as (u, v): output pixel x samples the map at
    ``c + R^T (x - c - t)``. Only the box of the crop the turned and shifted view can reach
    is computed. Returns its (B, K, C, h, w) maps, their (B, K, 1, h, w) weights (true only
    where the whole bilinear footprint is visible) and the box's top row and left column.
    """
    b, ch, s, _ = bev.shape
    n_k = yaw_deg.shape[1]
    c = float(s // 2)
    a = torch.deg2rad(yaw_deg.float()).reshape(b, n_k, 1, 1)
    cos, sin = torch.cos(a), torch.sin(a)
    top, bottom, left, right = _reach(mask, cos, sin, shift_px, c)
    rows = torch.arange(top, bottom, device=bev.device, dtype=torch.float32) - c
    cols = torch.arange(left, right, device=bev.device, dtype=torch.float32) - c
    xv, xu = torch.meshgrid(rows, cols, indexing="ij")
    xu = xu - shift_px[:, 0].float().reshape(b, 1, 1, 1)
    xv = xv - shift_px[:, 1].float().reshape(b, 1, 1, 1)
    au = c + cos * xu - sin * xv
    av = c + sin * xu + cos * xv
    h, w = bottom - top, right - left
    grid = (torch.stack([au, av], -1).reshape(b * n_k, h, w, 2) * (2.0 / (s - 1)) - 1.0
            ).to(bev.dtype)
    maps = bev.unsqueeze(1).expand(b, n_k, ch, s, s).reshape(b * n_k, ch, s, s)
    placed = F.grid_sample(maps, grid, align_corners=True)
    seen = mask.to(bev.dtype).unsqueeze(1).expand(b, n_k, 1, s, s).reshape(b * n_k, 1, s, s)
    weight = (F.grid_sample(seen, grid, align_corners=True) > 0.999).reshape(b, n_k, 1, h, w)
    return placed.reshape(b, n_k, ch, h, w) * weight.to(placed.dtype), weight, top, left


def _reach(mask: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, shift_px: torch.Tensor,
           c: float) -> tuple[int, int, int, int]:
    # The visible pixels' bounding box, turned and shifted by every (b, k): where the placed
    # view can land (one pixel of margin for the bilinear footprint), inside the crop.
    s = mask.shape[-1]
    seen = mask.flatten(0, 1).any(0)
    rows, cols = seen.any(1).nonzero(), seen.any(0).nonzero()
    if rows.numel() == 0:
        return 0, 1, 0, 1
    du = torch.tensor([float(cols.min()), float(cols.max())], device=mask.device) - c
    dv = torch.tensor([float(rows.min()), float(rows.max())], device=mask.device) - c
    cu, cv = (t.reshape(1, 1, -1) for t in torch.meshgrid(du, dv, indexing="ij"))
    u = c + shift_px[:, 0].float().reshape(-1, 1, 1) + cos[..., 0] * cu + sin[..., 0] * cv
    v = c + shift_px[:, 1].float().reshape(-1, 1, 1) - sin[..., 0] * cu + cos[..., 0] * cv
    top = max(0, math.floor(float(v.min())) - 1)
    bottom = min(s, math.ceil(float(v.max())) + 2)
    left = max(0, math.floor(float(u.min())) - 1)
    right = min(s, math.ceil(float(u.max())) + 2)
    return top, max(bottom, top + 1), left, max(right, left + 1)


def correlate(template: torch.Tensor, weight: torch.Tensor, top: int, left: int,
              target: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean product of placed templates and target maps at every whole-pixel offset.

    ``template`` (B, K, C, h, w) with ``weight`` (B, K, 1, h, w) cover the box at (``top``,
    ``left``) of ``target`` (B, C, S, S) (as :func:`place_template` returns them). Returns
    (B, K, 2r+1, 2r+1) over (dv, du) in [-r, r]: the sum of template(x) target(x + d) over
    channels and weighted pixels, divided by channels x weighted pixels.
    """
    b, n_k, ch = template.shape[:3]
    side = 2 * radius + 1
    used = weight.flatten(0, 2).any(0)
    rows, cols = used.any(1).nonzero(), used.any(0).nonzero()
    if rows.numel() == 0:
        return template.new_zeros(b, n_k, side, side)
    y0, y1, x0, x1 = int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1
    h, w = y1 - y0 + 2 * radius, x1 - x0 + 2 * radius
    region = F.pad(target, (radius, radius, radius, radius))
    region = region[:, :, top + y0:top + y0 + h, left + x0:left + x0 + w]
    # Cross-correlation by FFT over the window's extent: sum_x T(x) R(x + t) for t in
    # [0, 2r] never wraps, since x + t stays below the transform's size.
    ft = torch.fft.rfft2(template[..., y0:y1, x0:x1].float(), s=(h, w))
    fr = torch.fft.rfft2(region.float(), s=(h, w)).unsqueeze(1)
    out = torch.fft.irfft2((torch.conj(ft) * fr).sum(2), s=(h, w))[..., :side, :side]
    count = weight.flatten(2).sum(2).to(out.dtype).clamp_min(1.0) * ch
    return out / count[..., None, None]


def _describer(channels: int) -> nn.Sequential:
    # Three 3x3 layers: a 7-pixel footprint, a lane marking's width and its edges at 0.2 m/px.
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1, padding_mode="replicate"), nn.ReLU(inplace=True),
        nn.Conv2d(16, 16, 3, padding=1, padding_mode="replicate"), nn.ReLU(inplace=True),
        nn.Conv2d(16, channels, 3, padding=1, padding_mode="replicate"),
    )


@dataclass
class FineMaps:
    """Both views' normalised descriptors at the crop's pixels.

    ``bev`` (B, C, S, S) the ground's, projected; ``mask`` (B, 1, S, S) where it is seen
    within range; ``satellite`` (B, C, S, S); ``mpp`` (B,).
    """

    bev: torch.Tensor
    mask: torch.Tensor
    satellite: torch.Tensor
    mpp: torch.Tensor


@dataclass
class FineScores:
    """Scores of every (yaw, shift) in the window, and the window's placement.

    ``logits`` (B, K, 2r+1, 2r+1) over (yaw, dv, du); ``yaw_deg`` (B, K) each slice's yaw;
    ``origin_px`` (B, 2) the shift (u, v) of the window's centre in pixels; ``mpp`` (B,).
    """

    logits: torch.Tensor
    yaw_deg: torch.Tensor
    origin_px: torch.Tensor
    mpp: torch.Tensor
    radius: int

    def yaw_step_deg(self) -> torch.Tensor:
        """Return the (B,) yaw between neighbouring slices (1 for a single slice)."""
        if self.yaw_deg.shape[1] > 1:
            return self.yaw_deg[:, 1] - self.yaw_deg[:, 0]
        return torch.ones_like(self.yaw_deg[:, 0])

    def index_of(self, shift_u_m: torch.Tensor, shift_v_m: torch.Tensor, yaw_deg: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return a pose's (k, v, u) as float indices into ``logits`` (the inverse of pose)."""
        k = (yaw_deg.float() - self.yaw_deg[:, 0]) / self.yaw_step_deg()
        v = shift_v_m.float() / self.mpp - self.origin_px[:, 1] + self.radius
        u = shift_u_m.float() / self.mpp - self.origin_px[:, 0] + self.radius
        return k, v, u

    def pose(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return the peak (shift_u_m, shift_v_m, yaw_deg), refined to sub-step."""
        k, v, u, _ = subcell_peak(self.logits.detach())
        yaw = self.yaw_deg[:, 0] + k * self.yaw_step_deg()
        su = (self.origin_px[:, 0] + u - self.radius) * self.mpp
        sv = (self.origin_px[:, 1] + v - self.radius) * self.mpp
        return su, sv, yaw


class FineAligner(nn.Module):
    """The fine stage: learned full-resolution descriptors matched over a small pose window."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.ground_net = _describer(config.fine_channels)
        self.satellite_net = _describer(config.fine_channels)
        # Scores are mean products of normalised descriptors (about -1..1); the scale makes
        # their softmax over the window as sharp as the training target.
        self.log_scale = nn.Parameter(torch.tensor(math.log(20.0)))

    def yaw_offsets(self, device: torch.device) -> torch.Tensor:
        """Return the window's yaw offsets (K,) in degrees."""
        cfg = self.config
        n = int(round(cfg.fine_yaw_deg / cfg.fine_yaw_step_deg))
        return torch.arange(-n, n + 1, device=device, dtype=torch.float32) * cfg.fine_yaw_step_deg

    def describe(self, ground: torch.Tensor, satellite: torch.Tensor,
                 intrinsics: torch.Tensor, mpp: float | torch.Tensor,
                 height_m: float | torch.Tensor) -> FineMaps:
        """Describe both views at the crop's pixels (what every window of a frame shares).

        ``ground`` (B, 3, H, W) and ``satellite`` (B, 3, S, S) RGB in [0, 1], ``intrinsics``
        (B, 3, 3) for the ground image's size, ``mpp`` the crop's metres per pixel.
        """
        cfg = self.config
        b, s = satellite.shape[0], satellite.shape[-1]
        dev = satellite.device
        mpp_t = torch.as_tensor(mpp, dtype=torch.float32, device=dev).reshape(-1).expand(b)
        uv, depth = pinhole_uv(intrinsics.float(), s, mpp_t, height_m)
        desc = self.ground_net(ground - 0.5)
        bev, mask = sample_bev(desc, uv.to(desc.dtype), depth > 1e-6)
        idx = torch.arange(s, device=dev, dtype=torch.float32) - s // 2
        rng_m = torch.hypot(idx[None, :], idx[:, None])[None, None] * mpp_t.view(b, 1, 1, 1)
        mask = mask & (rng_m <= cfg.fine_range_m)
        sigma = float(cfg.fine_sigma_m / mpp_t.mean())
        bev = local_normalise(bev, mask, sigma)
        sat = self.satellite_net(satellite - 0.5)
        sat = local_normalise(sat, torch.ones_like(sat[:, :1], dtype=torch.bool), sigma)
        return FineMaps(bev, mask, sat, mpp_t)

    def window(self, maps: FineMaps, shift_u_m: torch.Tensor, shift_v_m: torch.Tensor,
               yaw_deg: torch.Tensor) -> FineScores:
        """Score the window around the pose (shift_u_m, shift_v_m, yaw_deg), each (B,)."""
        radius = int(math.ceil(self.config.fine_radius_m / float(maps.mpp.min())))
        origin = torch.stack([shift_u_m, shift_v_m], 1).float() / maps.mpp[:, None]
        yaws = yaw_deg.float()[:, None] + self.yaw_offsets(maps.satellite.device)[None, :]
        template, weight, top, left = place_template(maps.bev, maps.mask, yaws, origin)
        scores = correlate(template, weight, top, left, maps.satellite, radius)
        return FineScores(scores * self.log_scale.exp(), yaws, origin, maps.mpp, radius)

    def forward(self, ground: torch.Tensor, satellite: torch.Tensor, intrinsics: torch.Tensor,
                mpp: float | torch.Tensor, height_m: float | torch.Tensor,
                shift_u_m: torch.Tensor, shift_v_m: torch.Tensor,
                yaw_deg: torch.Tensor) -> FineScores:
        """Score one window around the pose (shift_u_m, shift_v_m, yaw_deg) (training)."""
        return self.window(self.describe(ground, satellite, intrinsics, mpp, height_m),
                           shift_u_m, shift_v_m, yaw_deg)

    def refine(self, ground: torch.Tensor, satellite: torch.Tensor, intrinsics: torch.Tensor,
               mpp: float | torch.Tensor, height_m: float | torch.Tensor,
               shift_u_m: torch.Tensor, shift_v_m: torch.Tensor, yaw_deg: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return the pose after ``fine_passes`` windows, each centred on the last's peak."""
        maps = self.describe(ground, satellite, intrinsics, mpp, height_m)
        pose = (shift_u_m, shift_v_m, yaw_deg)
        for _ in range(self.config.fine_passes):
            pose = self.window(maps, *pose).pose()
        return pose
