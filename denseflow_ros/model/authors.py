# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Reading the authors' pose outputs in the package's convention, for side-by-side checks.

The authors' ``BEV_corr.forward(..., end2end=1)`` returns ``pre_u, pre_v, pre_theta`` in a
per-dataset convention: their solver's rotation angle theta (from ``arccos`` with their
sign rule), converted to degrees with 3.14 instead of pi, and the translation re-expressed
as "shift, then rotate about the centre" (KITTI, Ford, Oxford) in metres with per-dataset
signs, or as "rotate about the centre, then shift" in pixels (VIGOR), all in the dataset's
native crop layout. :func:`authors_pose_to_package` undoes all of that, so the result equals
:func:`denseflow_ros.model.solve_pose` with ``weighted_centroids=False`` on the same flow
(KITTI, Ford, Oxford; the authors' VIGOR solver also weights its centroids, by confidence
times mask, and squares the weights in the cross-covariance).
"""

from __future__ import annotations

import math

import torch

from denseflow_ros.model.config import KITTI_MPP, get_preset

# The authors convert radians to degrees with this value of pi.
AUTHORS_PI = 3.14


def authors_pose_to_package(
    preset: str,
    pre_u: torch.Tensor,
    pre_v: torch.Tensor,
    pre_theta: torch.Tensor,
    satellite_mpp: float | torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return (shift_u_m, shift_v_m, yaw_deg) (B,) in the package convention.

    ``pre_*`` are the authors' outputs for ``preset`` (any shape with B elements);
    ``satellite_mpp`` is the metres per pixel of the 512-pixel crop (the preset's default;
    VIGOR's varies by city, and its ``pre_u, pre_v`` are pixels).
    """
    cfg = get_preset(preset)
    mpp = torch.as_tensor(cfg.satellite_mpp if satellite_mpp is None else satellite_mpp)
    pu, pv, pt = (torch.as_tensor(x, dtype=torch.float64).reshape(-1) for x in (pre_u, pre_v,
                                                                               pre_theta))
    mpp = mpp.to(torch.float64).reshape(-1)
    if preset == "vigor":
        theta = pt * AUTHORS_PI / 180.0
        t_u, t_v = pu, pv  # already where the crop centre goes, in pixels
    else:
        theta = -pt * AUTHORS_PI / 180.0
        if preset == "kitti":
            s_u, s_v = pu / KITTI_MPP, -pv / KITTI_MPP
        elif preset == "ford":
            s_u, s_v = -pu / 0.22, -pv / 0.22
        elif preset == "oxford":
            s_u, s_v = pu / mpp, pv / mpp
        else:
            raise ValueError(f"the authors released no {preset!r} network")
        # Their translation is R^-1 t: rotate it back.
        cos, sin = torch.cos(theta), torch.sin(theta)
        t_u, t_v = cos * s_u - sin * s_v, sin * s_u + cos * s_v
    if cfg.native_turns == 1:
        # Native layout (forward up) -> package layout (forward +u).
        t_u, t_v = -t_v, t_u
    yaw_deg = -theta * 180.0 / math.pi
    return (t_u * mpp).float(), (t_v * mpp).float(), yaw_deg.float()
