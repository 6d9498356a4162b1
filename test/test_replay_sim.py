# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The synthetic drive, exported as a bag, replayed into the node with a real network.

``denseflow_ros.sim`` renders the drive and its tile cache; the node runs the (untrained)
lite network as users run it; ``denseflow replay`` and ``denseflow evaluate --poses /pose``
run as their own processes over real DDS. An untrained network says nothing about accuracy,
so this checks the plumbing between the sim's bag layout, the node and the evaluation: the
node localizes the frames, each pose is matched to its ground truth, and the prior's errors
are the sim's own GNSS and IMU errors.

The sim writes each frame's fix and IMU before its image, at one stamp, so every frame pairs;
the bag is replayed at half speed so that a loaded machine does not make the node's queue of
one drop frames.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_node_support import start_node, stop, write_params

from denseflow_ros import bagio

pytest.importorskip("rclpy")

N = 4


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "denseflow_ros.cli", *args]


@pytest.mark.timeout(400)
def test_sim_drive_replayed_into_node_and_scored(tmp_path: Path,
                                                 ros_env: dict[str, str]) -> None:
    from denseflow_ros.model import DenseFlow, get_preset, save_checkpoint
    from denseflow_ros.sim import generate_world, simulate_drive
    from denseflow_ros.sim.export import (
        DEFAULT_BAG_TOPICS,
        export_bag,
        export_tiles,
        frame_stamp_ns,
    )

    world = generate_world(11, size_m=300.0)
    drive = simulate_drive(world, 11, N, rate_hz=1.5)
    tiles = export_tiles(world, tmp_path / "tiles.mbtiles", progress=False)
    bag = tmp_path / "drive"
    export_bag(world, drive, bag, width=160, height=48, progress=False)
    model = tmp_path / "lite.pt"
    save_checkpoint(DenseFlow(get_preset("lite")).eval(), model)

    topics = DEFAULT_BAG_TOPICS
    params = write_params(
        tmp_path / "params.yaml", model_path=str(model), tile_cache=str(tiles),
        datum=[world.center_lat, world.center_lon], warmup_runs=1, gate_sigma=0.0,
        min_coverage=0.0, max_fix_age_s=1.0, max_heading_age_s=1.0, log_throttle_s=0.0)
    remaps = [arg for key in ("image", "camera_info", "fix", "imu")
              for arg in ("-r", f"{key}:={topics[key]}")]
    node = start_node(params, ros_env, extra=remaps)
    results = tmp_path / "results.json"
    evaluator = subprocess.Popen(
        _cli("evaluate", "--bag", str(bag), "--poses", "/pose", "--idle-timeout", "15",
             "--discovery-timeout", "300", "--duration", "350", "--json", str(results),
             "--save-poses", str(tmp_path / "poses")),
        env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        player = subprocess.run(
            _cli("replay", str(bag), "--delay", "0", "--rate", "0.5",
                 "--wait-for-subscribers", "300",
                 "--topics", *(topics[k] for k in ("camera_info", "fix", "imu", "image"))),
            env=ros_env, capture_output=True, text=True, timeout=330)
        assert player.returncode == 0, player.stderr
        out, err = evaluator.communicate(timeout=120)
    finally:
        if evaluator.poll() is None:
            evaluator.kill()
            evaluator.communicate()
        node_log = stop(node)
    assert evaluator.returncode == 0, f"{err}\nnode:\n{node_log}"
    stamps = sorted(bagio.stamp_to_ns(m.msg.header.stamp)
                    for m in bagio.iter_messages(tmp_path / "poses"))
    frames = [frame_stamp_ns(drive, i) for i in range(N)]
    assert stamps == frames, f"{stamps}\n{node_log}"
    k = len(stamps)
    assert f"matched {k} of {k} poses" in out, f"{out}\nnode:\n{node_log}"
    doc = json.loads(results.read_text())
    assert doc["samples"] == k
    assert math.isfinite(doc["estimate"]["distance_mean_m"])
    # The prior is the sim's GNSS fix and IMU heading, whatever the network does.
    idx = [frames.index(s) for s in stamps]
    gnss_err = np.hypot(drive.gnss_east - drive.east, drive.gnss_north - drive.north)[idx]
    yaw_err = np.degrees(np.abs((drive.imu_yaw_rad - drive.yaw_rad + np.pi) % (2 * np.pi)
                                - np.pi))[idx]
    assert doc["prior"]["distance_mean_m"] == pytest.approx(float(np.mean(gnss_err)), abs=0.02)
    assert doc["prior"]["yaw_mean_deg"] == pytest.approx(float(np.mean(yaw_err)), abs=0.01)
