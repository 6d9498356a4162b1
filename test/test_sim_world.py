# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The synthetic town: reproducible per seed, georeferenced, and holding a real town's parts."""

from __future__ import annotations

import numpy as np
import pytest

from denseflow_ros.sim import World, generate_world
from denseflow_ros.sim.layout import (
    MAT_BUILDING,
    MAT_CAR,
    MAT_POLE,
    MAT_TREE,
    MAT_WALL,
    SURF_KERB,
    SURF_MARKING,
    SURF_ROAD,
    SURF_SIDEWALK,
)

SIZE_M = 240.0


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(5, size_m=SIZE_M, lat=48.5, lon=9.1)


def test_same_seed_gives_byte_identical_world(world: World) -> None:
    again = generate_world(5, size_m=SIZE_M, lat=48.5, lon=9.1)
    for name in ("ortho", "ground", "height", "material"):
        a, b = getattr(world, name), getattr(again, name)
        assert a.dtype == b.dtype and a.shape == b.shape
        assert a.tobytes() == b.tobytes(), name


def test_other_seed_gives_another_town(world: World) -> None:
    other = generate_world(6, size_m=SIZE_M, lat=48.5, lon=9.1)
    assert np.mean(other.material != world.material) > 0.3
    assert np.abs(other.ortho.astype(int) - world.ortho.astype(int)).mean() > 10


def test_raster_size_and_resolution(world: World) -> None:
    assert world.ortho.shape == (1200, 1200, 3) and world.ortho.dtype == np.uint8
    assert world.ground.shape == world.ortho.shape
    assert world.height.shape == world.material.shape == (1200, 1200)
    fine = generate_world(5, size_m=40.0, mpp=0.1)
    assert fine.ortho.shape == (400, 400, 3) and fine.mpp == 0.1


def test_town_has_streets_buildings_vegetation_and_parking(world: World) -> None:
    m = world.material
    frac = {
        "road": np.isin(m, (SURF_ROAD, SURF_MARKING)).mean(),
        "marking": (m == SURF_MARKING).mean(),
        "sidewalk": (m == SURF_SIDEWALK).mean(),
        "kerb": (m == SURF_KERB).mean(),
        "building": (m >= MAT_BUILDING).mean(),
        "tree": (m == MAT_TREE).mean(),
    }
    assert frac["road"] > 0.08 and frac["marking"] > 0.002, frac
    assert frac["sidewalk"] > 0.03 and frac["kerb"] > 0.003, frac
    assert frac["building"] > 0.08 and frac["tree"] > 0.01, frac
    # Street lamps stand on the sidewalks.
    assert (m == MAT_POLE).sum() > 20
    assert np.all(world.height[m == MAT_POLE] == 6.5)
    # Buildings stand several metres tall; roads are flat.
    assert np.median(world.height[m >= MAT_BUILDING]) > 4.0
    assert np.all(world.height[np.isin(m, (SURF_ROAD, SURF_MARKING))] == 0.0)
    # Markings are bright on dark asphalt, in both views.
    for img in (world.ortho, world.ground):
        lum = img.astype(float).mean(axis=2)
        assert lum[m == SURF_MARKING].mean() > lum[m == SURF_ROAD].mean() + 40


def test_larger_town_has_every_kind_of_block() -> None:
    big = generate_world(2, size_m=700.0, mpp=0.5)
    m = big.material
    assert (m == MAT_WALL).any()
    assert ((m >= MAT_CAR) & (m < MAT_CAR + 8)).mean() > 0.002  # parked cars on parking lots
    assert len(np.unique(m[m >= MAT_BUILDING])) > 8  # varied facades


def test_aerial_and_ground_colouring_differ_on_the_same_geometry(world: World) -> None:
    ortho = world.ortho.astype(float)
    ground = world.ground.astype(float)
    flat = world.height == 0
    # Same layout: the two luminances correlate on the flat ground ...
    lo, lg = ortho.mean(axis=2)[flat], ground.mean(axis=2)[flat]
    assert np.corrcoef(lo, lg)[0, 1] > 0.5
    # ... but lighting and colour differ (other sun, other shadows, other grade).
    assert np.abs(ortho[flat] - ground[flat]).mean() > 8.0


def test_georeference(world: World) -> None:
    lat, lon = world.enu.inverse(0.0, 0.0)
    assert lat == pytest.approx(48.5, abs=1e-9) and lon == pytest.approx(9.1, abs=1e-9)
    col, row = world.enu_to_pixel(0.0, 0.0)
    assert (col, row) == (600, 600)
    e, n = world.pixel_to_enu(np.array([0.0, 1199.0]), np.array([0.0, 1199.0]))
    assert e[0] == pytest.approx(-120.0) and n[0] == pytest.approx(120.0)
    assert e[1] == pytest.approx(119.8) and n[1] == pytest.approx(-119.8)


def test_design_plane_warp_round_trip(world: World) -> None:
    lay = world.layout
    x = np.linspace(-300.0, 300.0, 41)
    y = np.linspace(250.0, -250.0, 41)
    e, n = lay.design_to_enu(x, y)
    x2, y2 = lay.enu_to_design(e, n, iterations=30)
    assert np.abs(x2 - x).max() < 1e-6 and np.abs(y2 - y).max() < 1e-6
    # Streets bend: a straight design line is not straight in ENU.
    along = np.linspace(-200.0, 200.0, 9)
    e, n = lay.design_to_enu(np.full_like(along, lay.xs[2]), along)
    heading = np.degrees(np.arctan2(np.diff(n), np.diff(e)))
    assert np.ptp(heading) > 1.0


def test_save_and_load_round_trip(world: World, tmp_path) -> None:
    path = tmp_path / "w.npz"
    world.save(path)
    back = World.load(path)
    assert back.ortho.tobytes() == world.ortho.tobytes()
    assert back.height.tobytes() == world.height.tobytes()
    assert (back.seed, back.size_m, back.mpp) == (world.seed, world.size_m, world.mpp)
    assert back.layout.theta_rad == world.layout.theta_rad
    np.testing.assert_array_equal(back.layout.lot, world.layout.lot)
    assert back.ground_sun == world.ground_sun
    (tmp_path / "bad.npz").write_bytes(b"not a world")
    with pytest.raises(ValueError, match="not a saved synthetic world"):
        World.load(tmp_path / "bad.npz")


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="16 pixels"):
        generate_world(1, size_m=2.0)
    with pytest.raises(ValueError, match="lat/lon"):
        generate_world(1, size_m=50.0, lat=95.0)
