# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Covariance calibration: the pose fit's covariance scaled and floored to match its errors.

The fit's covariance (:func:`denseflow_ros.model.solve_pose`) has the right shape (it grows
with residual spread and shrinks with confident correspondences) but not the right size:
neighbouring flow vectors are far from independent. A calibration maps it, over (u, v, yaw)
with u along the prior heading, to

    S' = D S D + diag(along_floor_m2, cross_floor_m2, yaw_floor_rad2),
    D = diag(sqrt(position_scale), sqrt(position_scale), sqrt(yaw_scale)),

with the five terms fitted on held-out validation samples by maximising the Gaussian
likelihood of the observed errors, position and yaw separately. The floors differ along and
across the road because the errors do: a street that looks the same a few metres on can
take the estimate there, but never sideways. It travels in a checkpoint's metadata under
``covariance_calibration``; an older calibration with one ``position_floor_m2`` uses it for
both directions.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

KEYS = ("position_scale", "along_floor_m2", "cross_floor_m2", "yaw_scale", "yaw_floor_rad2")
MIN_CALIBRATION_SAMPLES = 8
_SCALES = np.geomspace(1e-4, 1e6, 201)
_POSITION_FLOORS = np.concatenate([[0.0], np.geomspace(1e-3, 400.0, 36)])
_YAW_FLOORS = np.concatenate([[0.0], np.geomspace(1e-7, 1e-2, 24)])


def apply_calibration(cov: torch.Tensor, calibration: Mapping[str, float] | None
                      ) -> torch.Tensor:
    """Return (B, 3, 3) ``cov`` over (u [m], v [m], yaw [rad]) with a calibration applied."""
    if not calibration:
        return cov
    d = torch.tensor([calibration["position_scale"], calibration["position_scale"],
                      calibration["yaw_scale"]], dtype=cov.dtype, device=cov.device).sqrt()
    floor = torch.tensor([calibration["along_floor_m2"], calibration["cross_floor_m2"],
                          calibration["yaw_floor_rad2"]], dtype=cov.dtype, device=cov.device)
    return cov * d[:, None] * d[None, :] + torch.diag(floor)


def check_calibration(calibration: Mapping[str, float]) -> dict[str, float]:
    """Return a calibration as plain floats, or raise ValueError if a term is invalid."""
    calibration = dict(calibration)
    if "position_floor_m2" in calibration:
        legacy = calibration.pop("position_floor_m2")
        calibration.setdefault("along_floor_m2", legacy)
        calibration.setdefault("cross_floor_m2", legacy)
    missing = [k for k in KEYS if k not in calibration]
    if missing:
        raise ValueError(f"covariance calibration lacks {', '.join(missing)}")
    out = {k: float(calibration[k]) for k in KEYS}
    if not all(np.isfinite(v) and v >= 0.0 for v in out.values()) or \
            out["position_scale"] <= 0.0 or out["yaw_scale"] <= 0.0:
        raise ValueError(f"covariance calibration terms must be finite, scales positive: {out}")
    return out


def _fit_position(e: np.ndarray, cov: np.ndarray) -> tuple[float, float, float]:
    # Negative log-likelihood over every scale at once for each pair of floors, with the 2x2
    # inverse written out: (scales, N) arrays.
    sc = _SCALES[:, None]
    c00, c01, c11 = cov[None, :, 0, 0], cov[None, :, 0, 1], cov[None, :, 1, 1]
    e0, e1 = e[None, :, 0], e[None, :, 1]
    best = (np.inf, 1.0, 0.0, 0.0)
    for fu in _POSITION_FLOORS:
        for fv in _POSITION_FLOORS:
            a, b, d = sc * c00 + fu + 1e-12, sc * c01, sc * c11 + fv + 1e-12
            det = np.maximum(a * d - b * b, 1e-300)
            nll = np.mean((d * e0**2 - 2.0 * b * e0 * e1 + a * e1**2) / det + np.log(det),
                          axis=1)
            i = int(np.argmin(nll))
            if nll[i] < best[0]:
                best = (float(nll[i]), float(_SCALES[i]), float(fu), float(fv))
    return best[1], best[2], best[3]


def _fit_yaw(dyaw: np.ndarray, var: np.ndarray) -> tuple[float, float]:
    best = (np.inf, 1.0, 0.0)
    for floor in _YAW_FLOORS:
        s = _SCALES[:, None] * var[None] + floor + 1e-15
        nll = np.mean(dyaw[None] ** 2 / s + np.log(s), axis=1)
        i = int(np.argmin(nll))
        if nll[i] < best[0]:
            best = (float(nll[i]), float(_SCALES[i]), float(floor))
    return best[1], best[2]


def fit_calibration(position_error: np.ndarray, position_cov: np.ndarray,
                    yaw_error_rad: np.ndarray, yaw_var_rad2: np.ndarray) -> dict[str, float]:
    """Fit the five terms to (N, 2) (u, v) errors with their (N, 2, 2) covariances, and yaw's."""
    e = np.asarray(position_error, dtype=np.float64).reshape(-1, 2)
    cov = np.asarray(position_cov, dtype=np.float64).reshape(-1, 2, 2)
    dyaw = np.asarray(yaw_error_rad, dtype=np.float64).ravel()
    var = np.asarray(yaw_var_rad2, dtype=np.float64).ravel()
    if len(e) < MIN_CALIBRATION_SAMPLES or not (len(e) == len(cov) == len(dyaw) == len(var)):
        raise ValueError(f"calibration needs at least {MIN_CALIBRATION_SAMPLES} samples, "
                         "each with its covariance")
    position_scale, along, cross = _fit_position(e, cov)
    yaw_scale, yaw_floor = _fit_yaw(dyaw, var)
    return {"position_scale": position_scale, "along_floor_m2": along, "cross_floor_m2": cross,
            "yaw_scale": yaw_scale, "yaw_floor_rad2": yaw_floor}
