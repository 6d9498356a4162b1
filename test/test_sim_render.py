# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The ground camera: pinhole geometry of ground marks and vertical structure, occlusion."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from denseflow_ros.sim import World, generate_world, kitti_intrinsics, render_ground
from denseflow_ros.sim.layout import MAT_TREE, MAT_TRUNK, MAT_WALL, SURF_MARKING, SURF_ROAD

W, H = 621, 188  # KITTI's 1242 x 375 halved
HC = 1.65


@pytest.fixture(scope="module")
def town() -> World:
    return generate_world(3, size_m=200.0)


def flat_world(town: World) -> World:
    """Return the town's georeference with an empty, flat, uniformly grey ground."""
    ground = np.full_like(town.ground, 110)
    return dataclasses.replace(
        town, ground=ground, height=np.zeros_like(town.height),
        material=np.zeros_like(town.material), _cache={},
    )


def expected_pixel(K: np.ndarray, cam: tuple[float, float, float], point_enu: np.ndarray
                   ) -> tuple[float, float]:
    """Project an ENU point (east, north, up) with the camera frame (x right, y down, z ahead)."""
    e0, n0, yaw = cam
    d = point_enu[:2] - np.array([e0, n0])
    fwd = d[0] * math.cos(yaw) + d[1] * math.sin(yaw)
    right = d[0] * math.sin(yaw) - d[1] * math.cos(yaw)
    down = HC - point_enu[2]
    return K[0, 0] * right / fwd + K[0, 2], K[1, 1] * down / fwd + K[1, 2]


def paint_marker(world: World, east: float, north: float, radius_px: int = 2) -> np.ndarray:
    """Paint a red disc of raster cells; return the painted cells' centres (east, north)."""
    col, row = world.enu_to_pixel(east, north)
    c, r = int(round(float(col))), int(round(float(row)))
    dv, du = np.mgrid[-radius_px: radius_px + 1, -radius_px: radius_px + 1]
    disc = du * du + dv * dv <= radius_px * radius_px + 0.5
    world.ground[r + dv[disc], c + du[disc]] = (255, 0, 0)
    e, n = world.pixel_to_enu(c + du[disc], r + dv[disc])
    return np.stack([e, n], axis=1)


def expected_centroid(K: np.ndarray, cam: tuple[float, float, float], cells: np.ndarray,
                      mpp: float) -> tuple[float, float]:
    """Return the image-area-weighted centroid of the painted cells under the pinhole model."""
    off = (np.arange(8) + 0.5) / 8 - 0.5
    ox, oy = np.meshgrid(off * mpp, off * mpp)
    pts = (cells[:, None, :] + np.stack([ox.ravel(), oy.ravel()], axis=1)[None]).reshape(-1, 2)
    e0, n0, yaw = cam
    d = pts - np.array([e0, n0])
    fwd = d[:, 0] * math.cos(yaw) + d[:, 1] * math.sin(yaw)
    right = d[:, 0] * math.sin(yaw) - d[:, 1] * math.cos(yaw)
    u = K[0, 0] * right / fwd + K[0, 2]
    v = K[1, 1] * HC / fwd + K[1, 2]
    w = 1.0 / fwd ** 3  # image area per unit of ground area
    return float((u * w).sum() / w.sum()), float((v * w).sum() / w.sum())


def red_centroid(img: np.ndarray) -> tuple[float, float]:
    r, g, b = (img[..., i].astype(float) for i in range(3))
    redness = r - (g + b) / 2
    redness = np.where(redness > 20, redness, 0.0)
    assert redness.sum() > 0, "the marker is not in the image"
    v, u = np.mgrid[0: img.shape[0], 0: img.shape[1]]
    return float((u * redness).sum() / redness.sum()), float((v * redness).sum() / redness.sum())


@pytest.mark.parametrize("yaw", [0.0, 0.7, 2.5, -1.9])
@pytest.mark.parametrize(("fwd", "right"), [(8.0, 1.2), (12.0, -2.5), (16.0, 0.0)])
def test_ground_marker_lands_on_its_pinhole_pixel(town: World, yaw: float, fwd: float,
                                                  right: float) -> None:
    world = flat_world(town)
    cam = (3.0, -4.0, yaw)
    east = cam[0] + fwd * math.cos(yaw) + right * math.sin(yaw)
    north = cam[1] + fwd * math.sin(yaw) - right * math.cos(yaw)
    # Far marks get bigger, so that several image rows sample them.
    cells = paint_marker(world, east, north, radius_px=2 if fwd < 14.0 else 4)
    K = kitti_intrinsics(W, H)
    img = render_ground(world, K, W, H, *cam, camera_height_m=HC)
    u, v = red_centroid(img)
    eu, ev = expected_centroid(K, cam, cells, world.mpp)
    # Bilinear texture sampling blurs a mark by half a raster cell; seen at an angle to the
    # raster its staircase edges blur unevenly, which moves the centroid of a far (large) mark
    # by up to a pixel, depending on where the raster falls on the image grid.
    tol = 0.3 if yaw == 0.0 else 1.0
    assert abs(u - eu) < tol and abs(v - ev) < tol, (u, v, eu, ev)
    # ... and that centroid is within a pixel of the projected centre itself.
    ce, cn = cells.mean(axis=0)
    cu, cv = expected_pixel(K, cam, np.array([ce, cn, 0.0]))
    assert abs(u - cu) < 1.0 and abs(v - cv) < 1.0


def test_any_intrinsics_and_image_size(town: World) -> None:
    world = flat_world(town)
    cam = (0.0, 0.0, 1.0)
    cells = paint_marker(world, 10.0 * math.cos(1.0) - 1.0 * math.sin(1.0),
                         10.0 * math.sin(1.0) + 1.0 * math.cos(1.0))
    K = np.array([[300.0, 0.0, 200.0], [0.0, 280.0, 90.0], [0.0, 0.0, 1.0]])
    img = render_ground(world, K, 420, 200, *cam, camera_height_m=HC)
    assert img.shape == (200, 420, 3) and img.dtype == np.uint8
    u, v = red_centroid(img)
    eu, ev = expected_centroid(K, cam, cells, world.mpp)
    assert abs(u - eu) < 0.3 and abs(v - ev) < 0.3


def test_pole_top_and_foot_project_with_the_pinhole_model(town: World) -> None:
    world = flat_world(town)
    cam = (-5.0, 2.0, 0.4)
    fwd, right, top_m, half_m = 15.0, -2.0, 3.2, 0.5
    e = cam[0] + fwd * math.cos(cam[2]) + right * math.sin(cam[2])
    n = cam[1] + fwd * math.sin(cam[2]) - right * math.cos(cam[2])
    # A square pole, 1 m wide, on the raster.
    col, row = world.enu_to_pixel(e, n)
    c0, r0 = int(round(float(col))), int(round(float(row)))
    k = int(round(half_m / world.mpp))
    world.height[r0 - k: r0 + k + 1, c0 - k: c0 + k + 1] = top_m
    world.material[r0 - k: r0 + k + 1, c0 - k: c0 + k + 1] = MAT_WALL
    e, n = world.pixel_to_enu(c0, r0)
    K = kitti_intrinsics(W, H)
    img, depth = render_ground(world, K, W, H, *cam, camera_height_m=HC, return_depth=True)
    eu, _ = expected_pixel(K, cam, np.array([e, n, 0.0]))
    u = int(round(eu))
    v = np.arange(H)
    ground_depth = np.where(v > K[1, 2], K[1, 1] * HC / np.maximum(v - K[1, 2], 1e-9), np.inf)
    pole_rows = np.nonzero(depth[:, u] < ground_depth - 0.5)[0]
    # The pole's faces lie between its centre and half its diagonal nearer.
    fwd_c = (e - cam[0]) * math.cos(cam[2]) + (n - cam[1]) * math.sin(cam[2])
    fwd_near = fwd_c - (half_m + world.mpp / 2) * math.sqrt(2.0)
    assert np.all((depth[pole_rows, u] > fwd_near - 0.2) & (depth[pole_rows, u] < fwd_c))
    top_far = K[1, 2] + K[1, 1] * (HC - top_m) / fwd_c
    top_near = K[1, 2] + K[1, 1] * (HC - top_m) / fwd_near
    foot_far = K[1, 2] + K[1, 1] * HC / fwd_c
    foot_near = K[1, 2] + K[1, 1] * HC / fwd_near
    assert top_near - 1.0 <= pole_rows.min() <= top_far + 1.0
    assert foot_far - 1.0 <= pole_rows.max() <= foot_near + 1.0
    assert np.all(np.diff(pole_rows) == 1)  # one solid run of rows
    # Its colour is the wall's, not the grey ground's or the sky's.
    assert np.abs(img[pole_rows, u].astype(int) - img[-1, u].astype(int)).sum(axis=1).min() > 30


def test_wall_occludes_the_ground_behind_it(town: World) -> None:
    world = flat_world(town)
    cam = (0.0, 0.0, 0.0)  # looking east
    paint_marker(world, 30.0, 0.0, radius_px=5)
    K = kitti_intrinsics(W, H)
    seen = render_ground(world, K, W, H, *cam, camera_height_m=HC)
    red_centroid(seen)  # visible without the wall
    col, _ = world.enu_to_pixel(20.0, 0.0)
    c = int(round(float(col)))
    world.height[:, c: c + 3] = 2.5  # a 0.6 m thick wall across the view, 20 m ahead
    world.material[:, c: c + 3] = MAT_WALL
    hidden, depth = render_ground(world, K, W, H, *cam, camera_height_m=HC, return_depth=True)
    r, g, b = (hidden[..., i].astype(float) for i in range(3))
    assert not (r - (g + b) / 2 > 100).any()
    # The wall, 2.5 m high at 20 m, hides everything behind it from its foot up to its top.
    row_top = K[1, 2] + K[1, 1] * (HC - 2.5) / 20.0
    rows = slice(int(row_top) + 2, H)
    assert np.all(depth[rows] <= 20.8)
    assert np.isinf(depth[: int(row_top) - 2]).all()  # sky above it


def test_rays_pass_under_tree_canopies_but_not_through_trunks(town: World) -> None:
    world = flat_world(town)
    cam = (0.0, 0.0, 0.0)  # looking east
    col, row = (int(round(float(x))) for x in world.enu_to_pixel(12.0, 0.0))
    dv, du = np.mgrid[-10:11, -10:11]  # a 2 m canopy, 8 m high, on a trunk
    disc = du * du + dv * dv <= 100
    world.height[row + dv[disc], col + du[disc]] = 8.0
    world.material[row + dv[disc], col + du[disc]] = MAT_TREE
    world.material[row - 1: row + 2, col - 1: col + 2] = MAT_TRUNK
    paint_marker(world, 25.0, -1.0, radius_px=3)  # on the ground behind the canopy
    K = kitti_intrinsics(W, H)
    img, depth = render_ground(world, K, W, H, *cam, camera_height_m=HC, return_depth=True)
    red_centroid(img)  # seen under the canopy
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    u_side = int(round(cx + fx * 1.0 / 12.0))  # 1 m right of the trunk: under the canopy
    v_canopy = int(round(cy - fy * (4.0 - HC) / 10.3))  # 4 m up on the canopy's near side
    v_under = int(round(cy - fy * (2.0 - HC) / 10.5))  # 2 m up: below the canopy's underside
    assert 9.5 < depth[v_canopy, u_side] < 12.5
    assert depth[v_under, u_side] > 20.0
    u_trunk = int(round(cx))
    assert 11.0 < depth[v_under, u_trunk] < 12.5


def test_town_view_has_sky_facades_and_road(town: World) -> None:
    lay = town.layout
    i = int(np.argmin(np.abs(lay.xs)))
    x, y = float(lay.xs[i] + lay.xw[i] / 4), 0.0
    e0, n0 = lay.design_to_enu(x, y)
    e1, n1 = lay.design_to_enu(x, y + 1.0)
    yaw = math.atan2(float(n1 - n0), float(e1 - e0))
    K = kitti_intrinsics(W, H)
    img = render_ground(town, K, W, H, float(e0), float(n0), yaw, seed=1)
    again = render_ground(town, K, W, H, float(e0), float(n0), yaw, seed=1)
    other = render_ground(town, K, W, H, float(e0), float(n0), yaw, seed=2)
    assert img.tobytes() == again.tobytes()
    assert img.tobytes() != other.tobytes()
    top = img[:10].astype(int)
    assert (top[..., 2] >= top[..., 0]).mean() > 0.3  # sky somewhere at the top
    bottom = img[-10:, W // 3: 2 * W // 3].astype(int)
    assert np.abs(bottom[..., 0] - bottom[..., 2]).mean() < 25  # grey asphalt ahead
    # Not a warped orthophoto: the ground camera does not see the roofs' colours where
    # facades stand, and the picture above the horizon is not the ground plane.
    assert img[: int(K[1, 2])].std() > 10
    col, row = town.enu_to_pixel(float(e0), float(n0))
    assert town.material[int(round(float(row))), int(round(float(col)))] in (
        SURF_ROAD, SURF_MARKING)


def test_bad_arguments_are_refused(town: World) -> None:
    K = kitti_intrinsics(W, H)
    with pytest.raises(ValueError, match="3x3"):
        render_ground(town, K[:2], W, H, 0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="camera_height_m"):
        render_ground(town, K, W, H, 0.0, 0.0, 0.0, camera_height_m=0.0)
