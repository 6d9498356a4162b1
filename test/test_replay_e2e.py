# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""A drive bag replayed into the localizer node, its poses recorded live and scored.

Every piece runs as users run it, as its own process over real DDS: ``denseflow replay``,
the node (with the oracle network of ``test_node_support``, which returns each frame's true
shift, so the estimate must equal the ground truth) and ``denseflow evaluate --poses
/pose``. The bag follows the converters' layout: ground truth in ENU at the datum stored in
its metadata, the fix and IMU as prior, camera images with camera_info.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_node_support import (
    LAT0,
    LON0,
    frame_image,
    intrinsics,
    make_case,
    save_table,
    start_node,
    stop,
    wait_for_subscriber,
    write_params,
    write_tile_cache,
)

from denseflow_ros import bagio

pytest.importorskip("rclpy")

W, H = 96, 32
MOUNT = {"camera_x_m": 1.08, "camera_y_m": -0.26, "antenna_x_m": 0.0, "antenna_y_m": 0.0}
T0 = 1_317_000_000_000_000_000
PERIOD = 600_000_000  # frames 0.6 s apart leave the node time for each
N = 4


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "denseflow_ros.cli", *args]


def make_drive(path: Path) -> tuple[dict[int, tuple[float, float, float]], list[float]]:
    """Write the drive bag; return the oracle table and each frame's prior position error."""
    from denseflow_ros.geo import LocalEnu

    rng = np.random.default_rng(7)
    enu = LocalEnu(LAT0, LON0)
    table, prior_err = {}, []
    meta = {"datum_lat": repr(LAT0), "datum_lon": repr(LON0), "ground_truth_topic": "/gt",
            "fix_topic": "/fix", "imu_topic": "/imu"}
    k = intrinsics(W, H)
    with bagio.BagWriter(path, "mcap", metadata=meta) as bag:
        for i in range(N):
            case = make_case(rng, math.radians(40.0 + 20.0 * i), MOUNT, max_pos_err=6.0)
            frame_id = 1000 + i
            table[frame_id] = (case["shift_u"], case["shift_v"], case["yaw_deg"])
            t = T0 + i * PERIOD
            t_prior = t - 20_000_000
            bag.write("/camera_info", "sensor_msgs/msg/CameraInfo", t_prior,
                      bagio.camera_info_msg(k, W, H, t_prior, "camera"))
            bag.write("/fix", "sensor_msgs/msg/NavSatFix", t_prior, bagio.navsatfix_msg(
                case["prior_lat"], case["prior_lon"], 100.0, t_prior,
                covariance=[25.0, 25.0, 100.0]))
            bag.write("/imu", "sensor_msgs/msg/Imu", t_prior, bagio.imu_msg(
                t_prior, "imu", bagio.quaternion_from_euler(0, 0, case["prior_heading"])))
            bag.write("/image", "sensor_msgs/msg/Image", t,
                      bagio.image_msg(frame_image(frame_id, W, H), t, "camera"))
            east, north = enu.forward(case["lat"], case["lon"])
            bag.write("/gt", "geometry_msgs/msg/PoseStamped", t, bagio.pose_stamped_msg(
                t, "map", (float(east), float(north), 0.0),
                bagio.quaternion_from_euler(0, 0, case["yaw"])))
            pe, pn = enu.forward(case["prior_lat"], case["prior_lon"])
            prior_err.append(math.hypot(float(pe) - float(east), float(pn) - float(north)))
    return table, prior_err


@pytest.mark.timeout(600)
def test_replayed_drive_through_node_is_scored(tmp_path: Path, ros_env: dict[str, str],
                                               ros_domain: int) -> None:
    drive = tmp_path / "drive"
    table, prior_err = make_drive(drive)
    params = write_params(tmp_path / "params.yaml", tile_cache=str(write_tile_cache(
        tmp_path / "xyz")), datum=[LAT0, LON0], warmup_runs=1, gate_sigma=0.0,
        log_throttle_s=0.0, preset="lite", **MOUNT)
    node = start_node(params, ros_env, oracle_table=save_table(tmp_path / "oracle.json", table))
    results = tmp_path / "results.json"
    evaluator = subprocess.Popen(
        # It stops at the N-th pose; the idle timeout only ends a run that lost one.
        _cli("evaluate", "--bag", str(drive), "--poses", "/pose", "--max-messages", str(N),
             "--idle-timeout", "120", "--discovery-timeout", "200", "--duration", "400",
             "--json", str(results),
             "--save-poses", str(tmp_path / "poses")),
        env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Poses are volatile: the evaluator must have subscribed before the first one is sent.
        wait_for_subscriber(ros_domain, "/pose")
        player = subprocess.run(
            _cli("replay", str(drive), "--topics", "/camera_info", "/fix", "/imu", "/image",
                 "--delay", "0", "--wait-for-subscribers", "200"),
            env=ros_env, capture_output=True, text=True, timeout=260)
        assert player.returncode == 0, player.stderr
        assert json.loads(player.stdout)["topics_without_subscribers"] == []
        out, err = evaluator.communicate(timeout=300)
    finally:
        if evaluator.poll() is None:
            evaluator.kill()
            evaluator.communicate()
        node_log = stop(node)
    assert evaluator.returncode == 0, f"{err}\nnode:\n{node_log}"
    assert f"matched {N} of {N} poses" in out, out
    doc = json.loads(results.read_text())
    assert doc["samples"] == N
    # The oracle network returns the truth: the node's pose is the ground truth.
    assert doc["estimate"]["distance_mean_m"] < 0.02
    assert doc["estimate"]["yaw_mean_deg"] < 0.05
    assert doc["prior"]["distance_mean_m"] == pytest.approx(float(np.mean(prior_err)),
                                                            abs=0.01)
    recorded = list(bagio.iter_messages(tmp_path / "poses"))
    assert sorted(bagio.stamp_to_ns(m.msg.header.stamp) for m in recorded) == [
        T0 + i * PERIOD for i in range(N)]
