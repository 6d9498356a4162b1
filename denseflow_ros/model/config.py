# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Network presets: the paper's four datasets and a small CPU preset.

Every size, width and piece of geometry the network needs lives in :class:`ModelConfig`, so a
checkpoint carries its own architecture (``dataclasses.asdict`` round-trips through
``ModelConfig.from_dict``).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from denseflow_ros.camera import scale_intrinsics

# KITTI's satellite maps: Google zoom 18 fetched at scale 2, at the dataset's reference latitude.
KITTI_MPP = 156543.03392 * math.cos(math.radians(49.015)) / 2**18 / 2


@dataclass
class ModelConfig:
    """Architecture, input sizes and geometry of one DenseFlow network.

    ``native_turns`` is how many quarter turns (counter-clockwise as displayed) take the
    package's crop convention (prior heading along +u) to the layout the preset's weights were
    trained on (KITTI: heading along +u, 0 turns; Ford, VIGOR, Oxford: heading up, 1 turn).
    The network runs in that native layout and its outputs are turned back, so callers only
    ever see the package's convention.

    ``camera_height_m`` is the ground plane's depth below the vehicle body origin, which is
    the camera unless a ``camera_to_body`` extrinsic is passed to the forward (Ford: 1 m).
    ``satellite_mpp`` is for a crop of ``satellite_size`` pixels.
    """

    name: str
    ground_size: tuple[int, int]
    satellite_size: int
    satellite_mpp: float
    camera_height_m: float
    iterations: int
    projection: str = "pinhole"
    native_turns: int = 0
    # BEV grid cell that holds the camera: A // 2 (KITTI, Ford, Oxford) or A / 2 - 0.5 (VIGOR).
    bev_centre_half_cell: bool = False
    trunk_widths: tuple[int, int, int, int] = (64, 64, 128, 256)
    refine_dim: int = 256
    refine_stages: int = 3
    feature_dim: int = 256
    hidden_dim: int = 128
    context_dim: int = 128
    context_norm: str = "instance"
    # Pose-solver centroids: confidence-weighted (a proper weighted least-squares fit), or plain
    # means over the mask as the authors' KITTI/Ford/Oxford networks were trained with; their
    # released weights reproduce their poses only with the rule they were trained through.
    weighted_centroids: bool = True
    corr_levels: int = 4
    corr_radius: int = 4
    motion_corr_dims: tuple[int, int] = (256, 192)
    motion_flow_dims: tuple[int, int] = (128, 64)
    motion_dim: int = 128
    head_dim: int = 256
    confidence_dim: int = 64
    # Half-width (metres, per axis) of the coarse shift search that starts the decoder
    # (denseflow_ros.model.search); 0 starts it at zero flow, as the paper's networks do.
    # match_temperature scales the search's cosine similarities.
    coarse_search_m: float = 0.0
    match_temperature: float = 0.1
    # Only BEV cells within this distance (metres) of the camera vote in the search; 0: all
    # visible cells. Far cells smear the road ahead (see denseflow_ros.model.search.view_cells).
    search_view_m: float = 0.0
    # Output stride of the ground trunk (8 as the paper's, or 4): a ground-plane cell at
    # distance d spans about d^2 / (f h) metres of road per feature row (f the feature map's
    # focal length in px, h the camera height), so halving the stride halves how much of the
    # road ahead one BEV cell smears together.
    ground_stride: int = 8
    # The fine stage (denseflow_ros.model.fine): descriptor channels (0: no fine stage), the
    # shift window's half-width and the yaw window's half-width and step around the decoder's
    # pose, the ground-plane range it matches, the local normalisation's Gaussian sigma, and
    # how many windows it runs, each centred on the last one's peak.
    fine_channels: int = 0
    fine_passes: int = 2
    fine_radius_m: float = 1.6
    fine_yaw_deg: float = 1.0
    fine_yaw_step_deg: float = 0.25
    fine_range_m: float = 25.0
    fine_sigma_m: float = 1.0

    @property
    def stride(self) -> int:
        """Return the trunks' output stride (the convex upsampling factor)."""
        return 8

    @property
    def feature_size(self) -> int:
        """Return the side of the satellite (and BEV) feature grid."""
        return self.satellite_size // self.stride

    def to_dict(self) -> dict[str, Any]:
        """Return a plain, checkpoint-safe dict of this config."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Build a config from :meth:`to_dict` output, rejecting unknown fields."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown model config fields: {', '.join(unknown)}")
        values = dict(data)
        for key in ("ground_size", "trunk_widths", "motion_corr_dims", "motion_flow_dims"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)

    def validate(self) -> None:
        """Raise ValueError if the sizes or options cannot build a network."""
        if self.projection not in ("pinhole", "panorama"):
            raise ValueError(f"projection must be pinhole or panorama, not {self.projection!r}")
        if self.context_norm not in ("instance", "batch"):
            raise ValueError(f"context_norm must be instance or batch, not {self.context_norm!r}")
        if self.satellite_size % self.stride or self.satellite_size <= 0:
            raise ValueError(f"satellite_size must be a positive multiple of {self.stride}")
        if any(s % self.stride for s in self.ground_size):
            raise ValueError(f"ground_size must be multiples of {self.stride}")
        if self.feature_size % 2 ** (self.corr_levels - 1):
            raise ValueError("the feature grid must halve evenly for every correlation level")
        if self.ground_stride not in (4, 8):
            raise ValueError(f"ground_stride must be 4 or 8, not {self.ground_stride}")
        if self.native_turns not in (0, 1):
            raise ValueError("native_turns must be 0 or 1")
        if self.iterations < 1:
            raise ValueError("iterations must be at least 1")
        if not self.coarse_search_m >= 0.0 or not self.match_temperature > 0.0:
            raise ValueError("coarse_search_m must be >= 0 and match_temperature > 0")
        if not self.search_view_m >= 0.0:
            raise ValueError("search_view_m must be >= 0")
        if self.fine_channels < 0 or self.fine_passes < 1:
            raise ValueError("fine_channels must be >= 0 and fine_passes >= 1")
        if self.fine_channels and (self.projection != "pinhole" or self.native_turns
                                   or self.bev_centre_half_cell):
            raise ValueError("the fine stage needs a pinhole preset in the package layout")
        if self.fine_channels and not (self.fine_radius_m > 0 and self.fine_yaw_deg >= 0
                                       and self.fine_yaw_step_deg > 0 and self.fine_range_m > 0
                                       and self.fine_sigma_m > 0):
            raise ValueError("the fine stage's radius, yaw step, range and sigma must be "
                             "positive and its yaw half-width >= 0")


PRESETS: dict[str, ModelConfig] = {
    # The paper's KITTI network: ground 256x1024, satellite 512 at ~0.196 m/px.
    "kitti": ModelConfig(
        name="kitti",
        ground_size=(256, 1024),
        satellite_size=512,
        satellite_mpp=KITTI_MPP,
        camera_height_m=1.65,
        iterations=12,
        weighted_centroids=False,
    ),
    # Ford multi-AV: 0.22 m/px; the ground plane is 1 m below the body origin and the camera
    # sits where the camera->body extrinsic puts it (see DenseFlow.forward).
    "ford": ModelConfig(
        name="ford",
        ground_size=(256, 1024),
        satellite_size=512,
        satellite_mpp=0.22,
        camera_height_m=1.0,
        iterations=12,
        weighted_centroids=False,
        native_turns=1,
    ),
    # VIGOR: 320x640 equirectangular panoramas, camera 2 m above ground, mpp per city
    # (this default is Chicago's; pass satellite_mpp per sample).
    "vigor": ModelConfig(
        name="vigor",
        ground_size=(320, 640),
        satellite_size=512,
        satellite_mpp=0.111262 * 640 / 512,
        camera_height_m=2.0,
        iterations=12,
        projection="panorama",
        native_turns=1,
        bev_centre_half_cell=True,
    ),
    # Oxford RobotCar: 800x1200 ground frames, 0.1444 m/px at 512 px; the context encoder uses
    # batch normalisation in the authors' Oxford network.
    "oxford": ModelConfig(
        name="oxford",
        ground_size=(800, 1200),
        satellite_size=512,
        satellite_mpp=0.0924 * 800 / 512,
        camera_height_m=1.65,
        iterations=12,
        weighted_centroids=False,
        native_turns=1,
        context_norm="batch",
    ),
    # A narrow network for CPU-only robots and quick training: a 64 m crop at 0.2 m/px, so
    # its 1.6 m cells (KITTI's) resolve the road around the camera, and a view up to 10 m
    # ahead of the prior still falls mostly inside the crop; a third of the widths, one
    # refinement stage and a 3-level radius-3 correlation pyramid (lookups reach +-19 m,
    # beyond GNSS errors and multipath jumps).
    "lite": ModelConfig(
        name="lite",
        ground_size=(128, 512),
        satellite_size=320,
        satellite_mpp=0.2,
        camera_height_m=1.65,
        iterations=6,
        trunk_widths=(32, 32, 64, 96),
        refine_dim=96,
        refine_stages=1,
        feature_dim=96,
        hidden_dim=64,
        context_dim=64,
        corr_levels=3,
        corr_radius=3,
        motion_corr_dims=(96, 64),
        motion_flow_dims=(32, 32),
        motion_dim=64,
        head_dim=96,
        confidence_dim=32,
        coarse_search_m=12.0,
        search_view_m=25.0,
    ),
}


def get_preset(name: str) -> ModelConfig:
    """Return a fresh copy of the named preset's config."""
    try:
        return copy.deepcopy(PRESETS[name])
    except KeyError:
        raise ValueError(
            f"unknown model preset {name!r}; choose one of {', '.join(sorted(PRESETS))}"
        ) from None


# Each dataset's camera matrix at its native resolution: (fx, fy, cx, cy, width, height).
_EXAMPLE_CAMERAS: dict[str, tuple[float, float, float, float, int, int]] = {
    "kitti": (721.5377, 721.5377, 609.5593, 172.854, 1242, 375),
    "ford": (945.391406, 945.668274, 855.502825, 566.372868, 1656, 860),
    "oxford": (964.828979, 964.828979, 643.788025, 484.407990, 1200, 800),
    "lite": (721.5377, 721.5377, 609.5593, 172.854, 1242, 375),
}


def example_intrinsics(config: ModelConfig, batch: int = 1) -> torch.Tensor:
    """Return (B, 3, 3) intrinsics of the preset's dataset camera at its ground size.

    KITTI's left colour camera for ``kitti`` and ``lite``, Ford's front-left camera,
    Oxford's front stereo camera; a 90-degree pinhole for any other preset (the panorama
    projection ignores intrinsics).
    """
    h, w = config.ground_size
    fx, fy, cx, cy, w0, h0 = _EXAMPLE_CAMERAS.get(
        config.name, (w / 2.0, w / 2.0, w / 2.0, h / 2.0, w, h)
    )
    k0 = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    k = torch.as_tensor(scale_intrinsics(k0, (w0, h0), (h, w)), dtype=torch.float32)
    return k.expand(batch, 3, 3).clone()
