# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The classical yardstick: masked, locally normalised cross-correlation over shift x yaw.

The ground image is projected onto the ground plane at the satellite crop's own resolution
with the network's geometry (:func:`denseflow_ros.model.projection.pinhole_uv`), kept within
``max_range_m`` of the camera, and both views are locally normalised (grey level minus its
local mean, over its local standard deviation). For every yaw on a grid the projection is
rotated about the camera and slid over the crop; the masked normalised cross-correlation of
every shift is computed at once with FFTs, and the best (shift, yaw) is refined to sub-pixel
and sub-step by parabolas through its neighbours. Outputs follow the network's convention
(see :class:`denseflow_ros.model.DenseFlowOutput`), so the same evaluation code scores both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from denseflow_ros.model.fine import local_normalise, subcell_peak
from denseflow_ros.model.projection import pinhole_uv, sample_bev

_GREY = (0.299, 0.587, 0.114)


@dataclass
class BaselineOutput:
    """The matcher's pose, in the network's convention; ``score`` is the peak NCC (B,)."""

    shift_u_m: torch.Tensor
    shift_v_m: torch.Tensor
    yaw_deg: torch.Tensor
    covariance: torch.Tensor
    score: torch.Tensor


class NccBaseline(nn.Module):
    """Masked NCC matcher with the network's call signature (no parameters to train)."""

    def __init__(self, satellite_mpp: float, camera_height_m: float,
                 shift_range_m: float = 12.0, yaw_range_deg: float = 5.0,
                 yaw_step_deg: float = 0.5, max_range_m: float = 30.0,
                 sigma_m: float = 1.0) -> None:
        super().__init__()
        self.satellite_mpp = float(satellite_mpp)
        self.camera_height_m = float(camera_height_m)
        self.shift_range_m = float(shift_range_m)
        self.yaw_range_deg = float(yaw_range_deg)
        self.yaw_step_deg = float(yaw_step_deg)
        self.max_range_m = float(max_range_m)
        self.sigma_m = float(sigma_m)

    @torch.no_grad()
    def forward(self, ground: torch.Tensor, satellite: torch.Tensor, intrinsics: torch.Tensor,
                satellite_mpp: float | torch.Tensor | None = None,
                camera_height_m: float | torch.Tensor | None = None,
                **_: object) -> BaselineOutput:
        """Match ground (B, 3, H, W) to satellite (B, 3, S, S) crops, RGB in [0, 1]."""
        b, s = satellite.shape[0], satellite.shape[-1]
        dev = satellite.device
        mpp = torch.as_tensor(self.satellite_mpp if satellite_mpp is None else satellite_mpp,
                              dtype=torch.float32, device=dev).reshape(-1).expand(b)
        height = self.camera_height_m if camera_height_m is None else camera_height_m
        grey_w = torch.tensor(_GREY, device=dev).view(1, 3, 1, 1)
        uv, depth = pinhole_uv(intrinsics.float(), s, mpp, height)
        bev, mask = sample_bev((ground.float() * grey_w).sum(1, keepdim=True), uv, depth > 1e-6)
        c = s // 2
        idx = torch.arange(s, device=dev, dtype=torch.float32) - c
        rng_m = torch.hypot(idx[None, :], idx[:, None])[None, None] * mpp.view(b, 1, 1, 1)
        mask = mask & (rng_m <= self.max_range_m)
        sigma = float(self.sigma_m / mpp.mean())
        bev = local_normalise(bev, mask, sigma)
        sat = (satellite.float() * grey_w).sum(1, keepdim=True)
        sat = local_normalise(sat, torch.ones_like(sat, dtype=torch.bool), sigma)
        radius = int(math.ceil(self.shift_range_m / float(mpp.min())))
        n_yaw = int(round(self.yaw_range_deg / self.yaw_step_deg))
        yaws = torch.arange(-n_yaw, n_yaw + 1, device=dev) * self.yaw_step_deg
        scores = torch.stack([self._scores(bev, mask, sat, float(y), radius) for y in yaws], 1)
        return self._peak(scores, yaws, radius, mpp)

    def _scores(self, bev: torch.Tensor, mask: torch.Tensor, sat: torch.Tensor, yaw_deg: float,
                radius: int) -> torch.Tensor:
        """Return (B, 2r+1, 2r+1) NCC of the BEV turned by ``yaw_deg``, per shift (v, u)."""
        b, _, s, _ = bev.shape
        a = math.radians(yaw_deg)
        cos, sin = math.cos(a), math.sin(a)
        # BEV pixel A lands at x = c + R (A - c), R = [[cos, sin], [-sin, cos]] in (u, v) (the
        # flow's rotation), so output pixel x samples the BEV at c + R^T (x - c).
        c = float(s // 2)
        idx = torch.arange(s, device=bev.device, dtype=torch.float32) - c
        xv, xu = torch.meshgrid(idx, idx, indexing="ij")
        au = c + cos * xu - sin * xv
        av = c + sin * xu + cos * xv
        grid = (torch.stack([au, av], -1) * (2.0 / (s - 1)) - 1.0).expand(b, s, s, 2)
        template = F.grid_sample(bev, grid, align_corners=True)
        weight = F.grid_sample(mask.float(), grid, align_corners=True) > 0.999
        template = template * weight
        n = weight.flatten(1).sum(1).clamp_min(1.0)
        size = 2 * s
        ft = torch.fft.rfft2(template[:, 0], s=(size, size))
        fw = torch.fft.rfft2(weight[:, 0].float(), s=(size, size))
        fs = torch.fft.rfft2(sat[:, 0], s=(size, size))
        fs2 = torch.fft.rfft2(sat[:, 0] ** 2, s=(size, size))
        # Cross-correlation: sum_x T(x) S(x + t) = irfft(conj(FT) FS)(t), t modulo size.
        cross = torch.fft.irfft2(torch.conj(ft) * fs, s=(size, size))
        s_sum = torch.fft.irfft2(torch.conj(fw) * fs, s=(size, size))
        s_sq = torch.fft.irfft2(torch.conj(fw) * fs2, s=(size, size))
        t_sum = template.flatten(1).sum(1)
        t_sq = (template**2).flatten(1).sum(1)
        r = torch.arange(-radius, radius + 1, device=bev.device) % size
        pick = (slice(None), r[:, None], r[None, :])
        cross, s_sum, s_sq = cross[pick], s_sum[pick], s_sq[pick]
        nn_ = n.view(b, 1, 1)
        cov = cross - t_sum.view(b, 1, 1) * s_sum / nn_
        var_t = (t_sq - t_sum**2 / n).view(b, 1, 1).clamp_min(1e-6)
        var_s = (s_sq - s_sum**2 / nn_).clamp_min(1e-6)
        return cov / torch.sqrt(var_t * var_s)

    def _peak(self, scores: torch.Tensor, yaws: torch.Tensor, radius: int,
              mpp: torch.Tensor) -> BaselineOutput:
        k, v, u, best = subcell_peak(scores)
        shift_u = (u - radius) * mpp
        shift_v = (v - radius) * mpp
        yaw = yaws[0].float() + k * self.yaw_step_deg
        cov = torch.diag_embed(torch.tensor(
            [1.0, 1.0, math.radians(1.0) ** 2], device=scores.device).expand(scores.shape[0], 3))
        return BaselineOutput(shift_u, shift_v, yaw, cov, best)
