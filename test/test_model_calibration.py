# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Covariance calibration: the fit recovers known terms, application and checks follow."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from denseflow_ros.model.calibration import (
    apply_calibration,
    check_calibration,
    fit_calibration,
)


def synthetic(n: int = 1500, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Errors drawn from 50 x a varying fit covariance plus floors of 9 m^2 along, 0.04 across."""
    rng = np.random.default_rng(seed)
    sd = rng.uniform(0.01, 0.1, (n, 2))
    cov = np.zeros((n, 2, 2))
    cov[:, 0, 0], cov[:, 1, 1] = sd[:, 0] ** 2, sd[:, 1] ** 2
    true = 50.0 * cov + np.diag([9.0, 0.04])
    err = np.stack([rng.normal(0.0, np.sqrt(true[:, i, i])) for i in range(2)], axis=1)
    var = rng.uniform(1e-6, 1e-5, n)
    dyaw = rng.normal(0.0, np.sqrt(4.0 * var + 1e-6))
    return err, cov, dyaw, var


def test_fit_recovers_scale_and_direction_dependent_floors() -> None:
    cal = fit_calibration(*synthetic())
    assert cal["position_scale"] == pytest.approx(50.0, rel=0.3)
    assert cal["along_floor_m2"] == pytest.approx(9.0, rel=0.15)
    assert cal["cross_floor_m2"] == pytest.approx(0.04, rel=0.5)
    assert cal["yaw_scale"] == pytest.approx(4.0, rel=0.4)


def test_applied_calibration_makes_the_errors_consistent() -> None:
    from denseflow_ros import metrics

    err, cov, dyaw, var = synthetic(seed=1)
    cal = fit_calibration(*synthetic(seed=2))
    full = np.zeros((len(err), 3, 3))
    full[:, :2, :2], full[:, 2, 2] = cov, var
    out = apply_calibration(torch.from_numpy(full), cal).numpy()
    c = metrics.consistency(err, out[:, :2, :2], dyaw, out[:, 2, 2])
    assert 1.8 < c["position_nees_mean"] < 2.2 and 0.93 < c["inside_95"] < 0.97, c
    assert 0.9 < c["yaw_nees_mean"] < 1.1, c


def test_an_older_single_floor_serves_both_directions_and_bad_terms_are_refused() -> None:
    old = {"position_scale": 2.0, "position_floor_m2": 0.5, "yaw_scale": 1.0,
           "yaw_floor_rad2": 0.0}
    cal = check_calibration(old)
    assert cal["along_floor_m2"] == cal["cross_floor_m2"] == 0.5
    out = apply_calibration(torch.eye(3)[None], cal)[0]
    assert torch.allclose(out, torch.diag(torch.tensor([2.5, 2.5, 1.0])))
    with pytest.raises(ValueError, match="positive"):
        check_calibration({**cal, "position_scale": 0.0})
    with pytest.raises(ValueError, match="lacks"):
        check_calibration({"position_scale": 1.0})
    with pytest.raises(ValueError, match="at least 8"):
        fit_calibration(np.zeros((3, 2)), np.zeros((3, 2, 2)), np.zeros(3), np.zeros(3))
