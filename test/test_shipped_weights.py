# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The bundled demo network localizes on a town it never saw in training or selection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from denseflow_ros.model import load_model
from training.datasets.common import CropOptions
from training.datasets.simulated import SimulatedTowns

BUNDLED = Path(__file__).resolve().parents[1] / "denseflow_ros" / "resources" / "demo_lite.pt"
# Neither a training town (1000-1015) nor a validation town (2000, 2001) of the bundled run.
HELD_OUT_TOWN = 4321
FRAMES = 24


@pytest.fixture(scope="module")
def predictions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    net = load_model(BUNDLED)
    cfg = net.config
    opts = CropOptions(ground_size=tuple(cfg.ground_size), satellite_size=cfg.satellite_size,
                       satellite_mpp=cfg.satellite_mpp, shift_range_lon_m=10.0,
                       shift_range_lat_m=10.0, rotation_range_deg=5.0)
    ds = SimulatedTowns(tmp_path_factory.mktemp("towns"), "test", opts,
                        towns={"test": [HELD_OUT_TOWN]}, samples={"test": FRAMES},
                        world_size_m=400.0)
    batch = [ds[i] for i in range(FRAMES)]

    def stack(key: str) -> torch.Tensor:
        return torch.stack([s[key] for s in batch])

    out = net(stack("ground"), stack("satellite"), stack("intrinsics"))
    return {"true": torch.stack([stack("shift_u_m"), stack("shift_v_m")], 1).numpy(),
            "est": torch.stack([out.shift_u_m, out.shift_v_m], 1).numpy(),
            "true_yaw": stack("yaw_deg").numpy(), "est_yaw": out.yaw_deg.numpy(),
            "covariance": out.covariance.numpy()}


def test_bundled_network_cuts_the_prior_error_on_a_held_out_town(predictions: dict) -> None:
    err = predictions["est"] - predictions["true"]
    dist = np.linalg.norm(err, axis=1)
    prior = np.linalg.norm(predictions["true"], axis=1)
    # The median at most a third of the prior's; across (v) and along (u) the road each at
    # most half of the prior's; the yaw median under 1.5 deg (the prior's is about 2.5).
    assert np.median(dist) < np.median(prior) / 3.0, (dist, prior)
    assert dist.mean() < prior.mean(), (dist, prior)
    for axis in (0, 1):
        assert np.median(np.abs(err[:, axis])) < 0.5 * np.median(
            np.abs(predictions["true"][:, axis])), (axis, err)
    assert np.median(np.abs(predictions["est_yaw"] - predictions["true_yaw"])) < 1.5


def test_bundled_covariance_is_calibrated_loosely(predictions: dict) -> None:
    from denseflow_ros import metrics

    err = predictions["est"] - predictions["true"]
    dyaw = np.radians(predictions["est_yaw"] - predictions["true_yaw"])
    cov = predictions["covariance"]
    c = metrics.consistency(err, cov[:, :2, :2], dyaw, cov[:, 2, 2])
    assert 0.5 <= c["inside_95"] <= 1.0, c
    assert 0.2 < c["position_nees_mean"] < 20.0, c
