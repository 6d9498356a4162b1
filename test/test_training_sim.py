# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""On-the-fly synthetic samples, the feature losses and the one intrinsics rule."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from denseflow_ros.camera import scale_intrinsics
from denseflow_ros.localizer import Frame, prepare_ground
from denseflow_ros.model import analytic_flow
from denseflow_ros.sim import kitti_intrinsics
from training.datasets.common import CropOptions, load_ground
from training.datasets.simulated import SimulatedTowns, load_town, street_pose
from training.losses import feature_nce_loss, search_loss

TOWN = 11
WORLD_M = 400.0


@pytest.fixture(scope="module")
def towns_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("towns")


def options() -> CropOptions:
    return CropOptions(ground_size=(64, 256), satellite_size=128, satellite_mpp=0.4,
                       shift_range_lon_m=8.0, shift_range_lat_m=8.0, rotation_range_deg=4.0)


def dataset(root: Path, split: str = "train") -> SimulatedTowns:
    return SimulatedTowns(root, split, options(), towns={split: [TOWN]},
                          samples={split: 8}, world_size_m=WORLD_M)


def test_samples_repeat_per_epoch_and_index_and_change_across_epochs(towns_root: Path) -> None:
    ds = dataset(towns_root)
    first = ds[3]
    again = dataset(towns_root)[3]
    assert torch.equal(first["ground"], again["ground"])
    assert torch.equal(first["satellite"], again["satellite"])
    ds.set_epoch(1)
    other = ds[3]
    assert not torch.equal(first["ground"], other["ground"])
    assert first["ground"].shape == (3, 64, 256) and first["satellite"].shape == (3, 128, 128)
    for key, bound in (("shift_u_m", 8.0), ("shift_v_m", 8.0), ("yaw_deg", 4.0)):
        assert abs(float(first[key])) <= bound + 1e-4
    # Frames are rendered at the network's size with the shared intrinsics rule.
    np.testing.assert_allclose(first["intrinsics"].numpy(), kitti_intrinsics(256, 64), rtol=1e-6)
    # The town was saved once and is read back, not generated again.
    assert len(list(towns_root.glob(f"town_{TOWN}_*m.npz"))) == 1


def test_vehicle_position_spans_the_carriageway(towns_root: Path) -> None:
    world = load_town(towns_root, TOWN, WORLD_M)
    lay = world.layout
    rng = np.random.default_rng(0)
    offsets = []
    for _ in range(200):
        east, north, yaw = street_pose(world, rng)
        x, y = lay.enu_to_design(np.array([east]), np.array([north]))
        # Distance to the nearest street line, signed, relative to that street's width.
        dx = np.abs(lay.xs - x[0])
        dy = np.abs(lay.ys - y[0])
        if dx.min() < dy.min():
            offsets.append(float((x[0] - lay.xs[dx.argmin()]) / lay.xw[dx.argmin()]))
        else:
            offsets.append(float((y[0] - lay.ys[dy.argmin()]) / lay.yw[dy.argmin()]))
    offsets = np.array(offsets)
    # On the carriageway, and spread over it rather than sitting in one lane.
    assert np.all(np.abs(offsets) < 0.5)
    assert offsets.std() > 0.15
    assert np.mean(offsets > 0.1) > 0.2 and np.mean(offsets < -0.1) > 0.2


def test_unknown_split_towns_are_refused(towns_root: Path) -> None:
    with pytest.raises(ValueError, match="no towns listed for split 'val'"):
        SimulatedTowns(towns_root, "val", options(), towns={"train": [TOWN]})


def test_one_intrinsics_rule_for_training_node_and_simulator(tmp_path: Path) -> None:
    import cv2

    k = kitti_intrinsics(1242, 375)
    image = np.zeros((375, 1242, 3), np.uint8)
    path = tmp_path / "frame.png"
    cv2.imwrite(str(path), image)
    _, k_train = load_ground(path, k, (128, 512))
    _, k_node = prepare_ground(Frame(image, k), (128, 512))
    np.testing.assert_allclose(k_train, k_node, atol=1e-12)
    np.testing.assert_allclose(k_train, kitti_intrinsics(512, 128), atol=1e-9)
    # Pixel edges map to pixel edges: (-0.5) -> (-0.5) and (W - 0.5) -> (W' - 0.5).
    k2 = scale_intrinsics(np.diag([1.0, 1.0, 1.0]), (1242, 375), (128, 512))
    assert k2[0, 2] == pytest.approx(0.5 * 512 / 1242 - 0.5)
    assert k2[1, 2] == pytest.approx(0.5 * 128 / 375 - 0.5)


def test_contrastive_loss_rewards_features_that_match_at_the_true_cell() -> None:
    torch.manual_seed(0)
    a, c = 16, 8
    sat = torch.randn(2, c, a, a)
    su, sv, yaw = torch.tensor([3.2, -4.8]), torch.tensor([1.6, 2.4]), torch.tensor([0.0, 0.0])
    cell = torch.tensor([1.6, 1.6])
    flow = analytic_flow(su, sv, yaw, a, cell)
    # BEV cell (u, v) sees what the satellite shows at (u, v) + flow: integer shifts here.
    idx = torch.arange(a)
    gv, gu = torch.meshgrid(idx, idx, indexing="ij")
    tu = (gu + flow[:, 0].round().long()).clamp(0, a - 1)
    tv = (gv + flow[:, 1].round().long()).clamp(0, a - 1)
    bev = torch.stack([sat[i][:, tv[i], tu[i]] for i in range(2)])
    mask = torch.zeros(2, 1, a, a, dtype=torch.bool)
    mask[:, :, 4:12, 4:12] = True
    good, m_good = feature_nce_loss(bev, sat, mask, su, sv, yaw, cell, 0, 0.1)
    bad, m_bad = feature_nce_loss(torch.randn(2, c, a, a), sat, mask, su, sv, yaw, cell, 0, 0.1)
    assert m_good["nce_acc"] == 1.0
    assert m_bad["nce_acc"] < 0.3
    assert float(good) < float(bad) - 2.0
    # Wrong-sign targets do not score as matches: the convention is the flow's.
    _, m_flipped = feature_nce_loss(bev, sat, mask, -su, -sv, yaw, cell, 0, 0.1)
    assert m_flipped["nce_acc"] < 0.3
    assert math.isfinite(float(good))


def dashed_road(landmark_u: int, a: int = 24, c: int = 4, period: int = 5) -> torch.Tensor:
    """Return (1, C, A, A) features of a road dashed every ``period`` cells along u.

    One landmark, a feature of its own, stands beside the road at ``landmark_u``.
    """
    sat = torch.zeros(1, c, a, a)
    sat[0, 0, 10:14, :] = 1.0  # the road surface
    for u in range(0, a, period):
        sat[0, 1, 11:13, u: u + 2] = 1.0  # a dash
    sat[0, 2, 8:10, landmark_u] = 4.0  # the landmark beside the road
    sat[0, 3] = 0.1  # every cell has a direction
    return sat


def bev_of(sat: torch.Tensor, du: int, dv: int) -> torch.Tensor:
    # BEV cell (u, v) sees the satellite at (u + du, v + dv).
    return torch.roll(sat, shifts=(-dv, -du), dims=(2, 3))


def test_search_loss_tells_the_true_shift_from_its_aliases() -> None:
    a, period = 24, 5
    sat = dashed_road(landmark_u=12, a=a, period=period)
    mask = torch.zeros(1, 1, a, a, dtype=torch.bool)
    mask[..., 6:16, 6:18] = True  # the view: road, dashes and the landmark
    cell = torch.tensor([1.0])
    zero = torch.zeros(1)
    bev = bev_of(sat, 2, 1)
    # The true shift: the visible cells' mean flow is (2, 1) cells.
    truth, m_truth = search_loss(bev, sat, mask, torch.tensor([2.0]), torch.tensor([1.0]),
                                 zero, cell, 0, 7, 0.1)
    # The same view, labelled one dash period off: only the landmark says it is wrong.
    alias, m_alias = search_loss(bev, sat, mask, torch.tensor([2.0 + period]),
                                 torch.tensor([1.0]), zero, cell, 0, 7, 0.1)
    assert m_truth["search_acc"] == 1.0 and m_alias["search_acc"] == 0.0
    assert float(truth) < 0.1 < 5.0 < float(alias)
    # Without the landmark every period scores alike: the loss cannot be low at the truth.
    plain = dashed_road(landmark_u=12, a=a, period=period)
    plain[0, 2] = 0.0
    ambiguous, _ = search_loss(bev_of(plain, 2, 1), plain, mask, torch.tensor([2.0]),
                               torch.tensor([1.0]), zero, cell, 0, 7, 0.1)
    assert float(ambiguous) > 0.5


def test_search_loss_gradient_raises_the_true_shift_over_an_alias() -> None:
    a, period = 24, 5
    road = dashed_road(landmark_u=12, a=a, period=period)
    road[0, 2] = 0.0  # no landmark: the satellite features must learn to tell the periods apart
    bev = bev_of(road, 2, 1)
    mask = torch.zeros(1, 1, a, a, dtype=torch.bool)
    mask[..., 6:16, 6:18] = True
    args = (torch.tensor([2.0]), torch.tensor([1.0]), torch.zeros(1), torch.tensor([1.0]), 0, 7,
            0.1)
    sat = road.clone().requires_grad_(True)
    losses = []
    for _ in range(30):
        loss, _ = search_loss(bev, sat, mask, *args)
        losses.append(float(loss.detach()))
        (grad,) = torch.autograd.grad(loss, sat)
        with torch.no_grad():
            sat -= 0.5 * grad
    assert losses[0] > 0.5 and losses[-1] < 0.5 * losses[0], losses


def test_search_loss_leaves_out_shifts_beyond_its_reach() -> None:
    sat = dashed_road(landmark_u=12)
    mask = torch.zeros(1, 1, 24, 24, dtype=torch.bool)
    mask[..., 6:16, 6:18] = True
    loss, metrics = search_loss(bev_of(sat, 2, 1), sat, mask, torch.tensor([12.0]),
                                torch.tensor([1.0]), torch.zeros(1), torch.tensor([1.0]), 0, 3,
                                0.1)
    assert math.isnan(metrics["search_acc"]) and float(loss) == 0.0
