# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Covariance calibration: the pose fit's covariance scaled and floored to match its errors.

The fit's covariance (:func:`denseflow_ros.model.solve_pose`) has the right shape (it grows
with residual spread and shrinks with confident correspondences) but not the right size:
neighbouring flow vectors are far from independent. A calibration maps it to

    S' = D S D + diag(position_floor_m2, position_floor_m2, yaw_floor_rad2),
    D = diag(sqrt(position_scale), sqrt(position_scale), sqrt(yaw_scale)),

with the four terms fitted on held-out validation samples by maximising the Gaussian
likelihood of the observed errors, position and yaw separately. It travels in a checkpoint's
metadata under ``covariance_calibration``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

KEYS = ("position_scale", "position_floor_m2", "yaw_scale", "yaw_floor_rad2")
_SCALES = np.exp(np.linspace(np.log(1e-4), np.log(1e6), 201))


def apply_calibration(cov: torch.Tensor, calibration: Mapping[str, float] | None
                      ) -> torch.Tensor:
    """Return (B, 3, 3) ``cov`` over (u [m], v [m], yaw [rad]) with a calibration applied."""
    if not calibration:
        return cov
    d = torch.tensor([calibration["position_scale"], calibration["position_scale"],
                      calibration["yaw_scale"]], dtype=cov.dtype, device=cov.device).sqrt()
    floor = torch.tensor([calibration["position_floor_m2"], calibration["position_floor_m2"],
                          calibration["yaw_floor_rad2"]], dtype=cov.dtype, device=cov.device)
    return cov * d[:, None] * d[None, :] + torch.diag(floor)


def check_calibration(calibration: Mapping[str, float]) -> dict[str, float]:
    """Return a calibration as plain floats, or raise ValueError if a term is invalid."""
    missing = [k for k in KEYS if k not in calibration]
    if missing:
        raise ValueError(f"covariance calibration lacks {', '.join(missing)}")
    out = {k: float(calibration[k]) for k in KEYS}
    if not all(np.isfinite(v) and v >= 0.0 for v in out.values()) or \
            out["position_scale"] <= 0.0 or out["yaw_scale"] <= 0.0:
        raise ValueError(f"covariance calibration terms must be finite, scales positive: {out}")
    return out


def _fit(nll: callable, floors: np.ndarray) -> tuple[float, float]:
    best = (np.inf, 1.0, 0.0)
    for floor in floors:
        values = [nll(scale, floor) for scale in _SCALES]
        i = int(np.argmin(values))
        if values[i] < best[0]:
            best = (values[i], float(_SCALES[i]), float(floor))
    return best[1], best[2]


MIN_CALIBRATION_SAMPLES = 8


def fit_calibration(position_error: np.ndarray, position_cov: np.ndarray,
                    yaw_error_rad: np.ndarray, yaw_var_rad2: np.ndarray) -> dict[str, float]:
    """Fit the four terms to (N, 2) errors with their (N, 2, 2) covariances, and yaw's."""
    e = np.asarray(position_error, dtype=np.float64).reshape(-1, 2)
    cov = np.asarray(position_cov, dtype=np.float64).reshape(-1, 2, 2)
    dyaw = np.asarray(yaw_error_rad, dtype=np.float64).ravel()
    var = np.asarray(yaw_var_rad2, dtype=np.float64).ravel()
    if len(e) < MIN_CALIBRATION_SAMPLES or not (len(e) == len(cov) == len(dyaw) == len(var)):
        raise ValueError(f"calibration needs at least {MIN_CALIBRATION_SAMPLES} samples, "
                         "each with its covariance")
    eye = np.eye(2)

    def position_nll(scale: float, floor: float) -> float:
        s = scale * cov + floor * eye + 1e-12 * eye
        _, logdet = np.linalg.slogdet(s)
        return float(np.mean(np.einsum("ni,nij,nj->n", e, np.linalg.inv(s), e) + logdet))

    def yaw_nll(scale: float, floor: float) -> float:
        s = scale * var + floor + 1e-15
        return float(np.mean(dyaw**2 / s + np.log(s)))

    pos_floors = np.concatenate([[0.0], np.geomspace(1e-3, 4.0, 24)])
    yaw_floors = np.concatenate([[0.0], np.geomspace(1e-7, 1e-2, 24)])
    position_scale, position_floor = _fit(position_nll, pos_floors)
    yaw_scale, yaw_floor = _fit(yaw_nll, yaw_floors)
    return {"position_scale": position_scale, "position_floor_m2": position_floor,
            "yaw_scale": yaw_scale, "yaw_floor_rad2": yaw_floor}
