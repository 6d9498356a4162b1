# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The classical NCC matcher finds the true pose on rendered frames, in the network's signs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from denseflow_ros.baseline import NccBaseline
from training.datasets.common import CropOptions
from training.datasets.simulated import SimulatedTowns


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    opts = CropOptions(ground_size=(128, 512), satellite_size=192, satellite_mpp=0.25,
                       shift_range_lon_m=6.0, shift_range_lat_m=6.0, rotation_range_deg=3.0)
    ds = SimulatedTowns(tmp_path_factory.mktemp("towns"), "test", opts, towns={"test": [5]},
                        samples={"test": 6}, world_size_m=400.0)
    return [ds[i] for i in range(len(ds))]


def batch(samples: list[dict], key: str) -> torch.Tensor:
    return torch.stack([s[key] for s in samples])


def test_ncc_recovers_the_pose_of_rendered_frames(samples: list[dict]) -> None:
    matcher = NccBaseline(0.25, 1.65, shift_range_m=8.0, yaw_range_deg=4.0)
    out = matcher(batch(samples, "ground"), batch(samples, "satellite"),
                  batch(samples, "intrinsics"))
    err = torch.hypot(out.shift_u_m - batch(samples, "shift_u_m"),
                      out.shift_v_m - batch(samples, "shift_v_m")).numpy()
    prior = torch.hypot(batch(samples, "shift_u_m"), batch(samples, "shift_v_m")).numpy()
    yaw_err = (out.yaw_deg - batch(samples, "yaw_deg")).abs().numpy()
    assert np.median(err) < 1.0 < np.median(prior)
    assert np.median(yaw_err) < 1.0
    assert out.covariance.shape == (len(samples), 3, 3)


def test_ncc_finds_nothing_in_another_places_crop(samples: list[dict]) -> None:
    matcher = NccBaseline(0.25, 1.65, shift_range_m=8.0, yaw_range_deg=4.0)
    ground = batch(samples, "ground")
    matched = matcher(ground, batch(samples, "satellite"), batch(samples, "intrinsics"))
    # Each frame against the next frame's crop: the peak correlation drops.
    swapped = matcher(ground, batch(samples, "satellite").roll(1, 0),
                      batch(samples, "intrinsics"))
    assert float(matched.score.median()) > float(swapped.score.median()) + 0.1
