# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The coarse shift search finds a known translation between two feature maps."""

from __future__ import annotations

import pytest
import torch

from denseflow_ros.model.search import coarse_shift, view_cells


def shifted_pair(du: float, dv: float, a: int = 32, c: int = 16, seed: int = 0
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random smooth satellite features and a BEV that sees them shifted by (du, dv) cells."""
    g = torch.Generator().manual_seed(seed)
    sat = torch.nn.functional.avg_pool2d(torch.randn(1, c, a + 8, a + 8, generator=g), 3, 1)
    sat = sat[..., 3: 3 + a, 3: 3 + a].contiguous()
    # bev(p) = sat(p + shift), sampled bilinearly.
    idx = torch.arange(a, dtype=torch.float32)
    gv, gu = torch.meshgrid(idx, idx, indexing="ij")
    grid = torch.stack([(gu + du) / (a - 1) * 2 - 1, (gv + dv) / (a - 1) * 2 - 1], -1)[None]
    bev = torch.nn.functional.grid_sample(sat, grid, align_corners=True)
    mask = torch.zeros(1, 1, a, a, dtype=torch.bool)
    mask[..., 8:24, 16:30] = True  # a patch of the view, away from the border
    return bev, sat, mask


@pytest.mark.parametrize(("du", "dv"), [(0.0, 0.0), (3.0, -2.0), (-5.0, 4.0), (2.4, -1.6)])
def test_recovers_the_shift(du: float, dv: float) -> None:
    bev, sat, mask = shifted_pair(du, dv)
    got = coarse_shift(bev, sat, mask, reach_cells=7, temperature=0.1)[0]
    assert abs(float(got[0]) - du) < 0.35 and abs(float(got[1]) - dv) < 0.35, got


def test_each_sample_of_a_batch_gets_its_own_shift() -> None:
    pairs = [shifted_pair(4.0, 1.0, seed=1), shifted_pair(-2.0, -6.0, seed=2)]
    bev, sat, mask = (torch.cat(t) for t in zip(*pairs))
    got = coarse_shift(bev, sat, mask, reach_cells=7, temperature=0.1)
    assert torch.allclose(got, torch.tensor([[4.0, 1.0], [-2.0, -6.0]]), atol=0.35), got


def test_shifts_beyond_the_reach_are_not_searched() -> None:
    bev, sat, mask = shifted_pair(6.0, 0.0)
    got = coarse_shift(bev, sat, mask, reach_cells=3, temperature=0.1)[0]
    assert float(got[0]) <= 3.0 + 1e-6 and abs(float(got[1])) <= 3.0 + 1e-6


def test_a_given_correlation_volume_gives_the_same_shift() -> None:
    pairs = [shifted_pair(4.0, 1.0, seed=3), shifted_pair(-2.6, -5.2, seed=4)]
    bev, sat, mask = (torch.cat(t) for t in zip(*pairs))
    b, c, a, _ = bev.shape
    corr = torch.bmm(bev.reshape(b, c, a * a).transpose(1, 2), sat.reshape(b, c, a * a))
    pyramid_level = (corr / c ** 0.5).reshape(b * a * a, 1, a, a)
    own = coarse_shift(bev, sat, mask, reach_cells=7, temperature=0.1)
    given = coarse_shift(bev, sat, mask, reach_cells=7, temperature=0.1,
                         correlation=pyramid_level)
    assert torch.allclose(own, given, atol=1e-4), (own, given)


@pytest.mark.parametrize(("turns", "half_cell"), [(0, False), (1, False), (1, True)])
def test_view_cells_keep_the_cells_near_the_camera(turns: int, half_cell: bool) -> None:
    a, cell_m = 40, 1.6
    near = view_cells(a, cell_m, 25.0, turns, half_cell, torch.device("cpu"))
    centre = a / 2 - 0.5 if half_cell else a // 2
    idx = torch.arange(a, dtype=torch.float32)
    gv, gu = torch.meshgrid(idx, idx, indexing="ij")
    expected = torch.hypot(gu - centre, gv - centre) * cell_m <= 25.0
    assert torch.equal(near, expected)
    # About a disc of radius 25 m: pi * 25^2 / 1.6^2 = 767 cells.
    assert abs(int(near.sum()) - 767) < 40


def test_a_search_heard_only_near_the_camera_ignores_what_far_cells_say() -> None:
    bev, sat, mask = shifted_pair(3.0, -2.0)
    # The far cells (most of the view) agree on another shift, as a smeared road does.
    far = torch.zeros_like(mask)
    far[..., 21:] = True
    elsewhere, _, _ = shifted_pair(-4.0, 1.0)
    bev = torch.where(far, elsewhere, bev)
    every = coarse_shift(bev, sat, mask, reach_cells=7, temperature=0.1)[0]
    assert abs(float(every[0]) + 4.0) < 0.35 and abs(float(every[1]) - 1.0) < 0.35, every
    near = view_cells(32, 1.0, 6.0, 0, False, torch.device("cpu"))
    got = coarse_shift(bev, sat, mask & near, reach_cells=7, temperature=0.1)[0]
    assert abs(float(got[0]) - 3.0) < 0.35 and abs(float(got[1]) + 2.0) < 0.35, got
