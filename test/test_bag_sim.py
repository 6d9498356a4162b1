# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The synthetic drive written in KITTI's layout by the sim, converted by ``denseflow bag``.

Two independent implementations meet here: the sim writes OXTS records, timestamps,
calibration and per-frame satellite images from its known world; the converter reads them
back. The bag must carry the sim's values, and the tile cache it builds must line up with
the sim's own orthophoto to a fraction of a pixel.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from denseflow_ros import bagio
from denseflow_ros.cli import main as cli_main
from denseflow_ros.tools import bag_kitti

N = 3
DRIVE = "2026_01_01_drive_0001_sync"


@pytest.fixture(scope="module")
def sim_kitti(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from denseflow_ros.sim import generate_world, simulate_drive
    from denseflow_ros.sim.export import KittiDrive, export_kitti

    root = tmp_path_factory.mktemp("sim_kitti")
    world = generate_world(5, size_m=300.0)
    drive = simulate_drive(world, 5, N, rate_hz=2.0)
    export_kitti(root / "KITTI", [KittiDrive(world, drive, "train")], image_size=(96, 32),
                 satmap_px=256, progress=False)
    out = root / "bag"
    assert cli_main(["bag", "kitti", "--root", str(root / "KITTI"), "--drive", DRIVE,
                     "--out", str(out)]) == 0
    return {"world": world, "drive": drive, "bag": out, "tiles": root / "bag.mbtiles"}


def test_bag_carries_the_sims_values(sim_kitti: dict) -> None:
    from denseflow_ros.sim.export import frame_stamp_ns, oxts_line

    world, drive = sim_kitti["world"], sim_kitti["drive"]
    topics: dict[str, list] = {}
    for item in bagio.iter_messages(sim_kitti["bag"]):
        topics.setdefault(item.topic, []).append(item)
    t = bag_kitti.DEFAULT_TOPICS
    assert {k: len(v) for k, v in topics.items()} == {v: N for v in t.values()}
    oxts = [[float(v) for v in oxts_line(world, drive, i).split()] for i in range(N)]
    for i in range(N):
        assert topics[t["image"]][i].stamp_ns == frame_stamp_ns(drive, i)
        fix = topics[t["fix"]][i].msg
        assert (fix.latitude, fix.longitude) == (oxts[i][0], oxts[i][1])
        q = topics[t["ground_truth"]][i].msg.pose.orientation
        assert bagio.yaw_from_quaternion(q.x, q.y, q.z, q.w) == pytest.approx(
            float(drive.yaw_rad[i]), abs=1e-9)
    # Ground-truth displacements equal the sim's, measured in its own ENU plane.
    gt = [topics[t["ground_truth"]][i].msg.pose.position for i in range(N)]
    sim_en = [world.enu.forward(o[0], o[1]) for o in oxts]
    for i in range(1, N):
        assert gt[i].x - gt[0].x == pytest.approx(sim_en[i][0] - sim_en[0][0], abs=2e-3)
        assert gt[i].y - gt[0].y == pytest.approx(sim_en[i][1] - sim_en[0][1], abs=2e-3)


def test_tile_cache_lines_up_with_the_sims_orthophoto(sim_kitti: dict) -> None:
    from denseflow_ros.geo import SatelliteCache
    from denseflow_ros.sim.export import KITTI_SATMAP_MPP, oxts_line, satmap_image

    world, drive = sim_kitti["world"], sim_kitti["drive"]
    cache = SatelliteCache(sim_kitti["tiles"])
    size = 129
    window = cv2.createHanningWindow((size, size), cv2.CV_64F)
    for i in range(N):
        lat, lon = (float(v) for v in oxts_line(world, drive, i).split()[:2])
        crop = cache.crop(lat, lon, 0.0, size, KITTI_SATMAP_MPP)
        east, north = world.enu.forward(lat, lon)
        ref = satmap_image(world, float(east), float(north), size, KITTI_SATMAP_MPP)
        ours = cv2.cvtColor(crop.image, cv2.COLOR_RGB2GRAY).astype(np.float64)
        theirs = cv2.cvtColor(ref, cv2.COLOR_RGB2GRAY).astype(np.float64)
        (dx, dy), _ = cv2.phaseCorrelate(theirs, ours, window)
        assert crop.coverage == 1.0
        assert math.hypot(dx, dy) < 0.3, f"frame {i}: tile cache off by ({dx:.2f}, {dy:.2f}) px"
        assert np.abs(ours - theirs).mean() < 6.0
