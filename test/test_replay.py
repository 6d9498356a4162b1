# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``denseflow replay`` and ``denseflow record`` as processes over real DDS (loopback)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from denseflow_ros import bagio
from denseflow_ros.tools import replay_dds

T0 = 1_700_000_000_000_000_000
STEP = 50_000_000  # 20 Hz
N = 6


def _write_source(path: Path) -> None:
    with bagio.BagWriter(path, "mcap") as bag:
        for i in range(N):
            t = T0 + i * STEP
            rgb = np.full((48, 64, 3), i * 20, np.uint8)
            rgb[0, 0] = (1, 2, 3)
            bag.write("/cam/image_raw", "sensor_msgs/msg/Image", t,
                      bagio.image_msg(rgb, t, "cam"))
            bag.write("/gps/fix", "sensor_msgs/msg/NavSatFix", t + 1000,
                      bagio.navsatfix_msg(49.0 + i * 1e-5, 8.4, 100.0, t + 1000,
                                          covariance=[4.0, 4.0, 9.0]))
            bag.write("/ground_truth", "geometry_msgs/msg/PoseStamped", t,
                      bagio.pose_stamped_msg(t, "map", (float(i), 2.0 * i, 0.0)))


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "denseflow_ros.cli", *args]


@pytest.mark.timeout(120)
def test_replay_is_received_with_source_stamps(tmp_path: Path,
                                               ros_env: dict[str, str]) -> None:
    source, recorded = tmp_path / "source", tmp_path / "recorded"
    _write_source(source)
    topics = ["/cam/image_raw", "/gps/fix", "/ground_truth"]
    recorder = subprocess.Popen(
        _cli("record", "--topics", *topics, "/clock", "--out", str(recorded),
             "--storage", "sqlite3", "--idle-timeout", "3", "--discovery-timeout", "60",
             "--duration", "90"),
        env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        player = subprocess.run(
            _cli("replay", str(source), "--rate", "2", "--clock", "--delay", "0",
                 "--wait-for-subscribers", "60", "--topics", *topics),
            env=ros_env, capture_output=True, text=True, timeout=100)
        assert player.returncode == 0, player.stderr
        summary = json.loads(player.stdout)
        assert summary["published"] == {t: N for t in topics}
        assert summary["topics_without_subscribers"] == []
        out, err = recorder.communicate(timeout=60)
    finally:
        if recorder.poll() is None:
            recorder.kill()
            recorder.communicate()
    assert recorder.returncode == 0, err
    received = json.loads(out)["received"]
    assert {t: received[t] for t in topics} == {t: N for t in topics}

    got: dict[str, list] = {}
    for item in bagio.iter_messages(recorded):
        got.setdefault(item.topic, []).append(item.msg)
    stamps = {t: [bagio.stamp_to_ns(m.header.stamp) for m in got[t]] for t in topics}
    assert stamps["/cam/image_raw"] == [T0 + i * STEP for i in range(N)]
    assert stamps["/gps/fix"] == [T0 + i * STEP + 1000 for i in range(N)]
    assert stamps["/ground_truth"] == stamps["/cam/image_raw"]
    for i, msg in enumerate(got["/cam/image_raw"]):
        image = bagio.image_array(msg)
        assert image[0, 0].tolist() == [1, 2, 3] and image[10, 10, 0] == i * 20
    assert [m.latitude for m in got["/gps/fix"]] == [49.0 + i * 1e-5 for i in range(N)]
    assert [m.pose.position.y for m in got["/ground_truth"]] == [2.0 * i for i in range(N)]
    # /clock runs with the bag's time: never backwards, within the bag, up to its last stamp.
    clock = [bagio.stamp_to_ns(m.clock) for m in got["/clock"]]
    assert len(clock) >= N and clock == sorted(clock)
    assert clock[0] >= T0 and clock[-1] == T0 + (N - 1) * STEP + 1000


def test_replay_rejects_unknown_topic(tmp_path: Path, ros_env: dict[str, str]) -> None:
    _write_source(tmp_path / "source")
    result = subprocess.run(_cli("replay", str(tmp_path / "source"), "--topics", "/nope"),
                            env=ros_env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().endswith("has no topic /nope")


def test_dds_policy_keeps_configured_environment() -> None:
    bare = {"PATH": "/usr/bin"}
    env, how = replay_dds.choose_env("auto", None, bare)
    assert env["ROS_LOCALHOST_ONLY"] == "1" and env["ROS_DOMAIN_ID"] == "0"
    assert env["FASTDDS_DEFAULT_PROFILES_FILE"].endswith("fastdds_loopback.xml")
    assert how == "loopback only, domain 0"
    # A domain id (or a middleware) alone says nothing about reach: still loopback only.
    domain_only = {"PATH": "/usr/bin", "ROS_DOMAIN_ID": "42",
                   "RMW_IMPLEMENTATION": "rmw_fastrtps_cpp"}
    env, how = replay_dds.choose_env("auto", None, domain_only)
    assert env["ROS_DOMAIN_ID"] == "42" and env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert env["ROS_LOCALHOST_ONLY"] == "1" and how == "loopback only, domain 42"
    assert env["FASTDDS_DEFAULT_PROFILES_FILE"].endswith("fastdds_loopback.xml")
    user = {"PATH": "/usr/bin", "ROS_DOMAIN_ID": "42", "ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET"}
    env, how = replay_dds.choose_env("auto", None, user)
    assert env == user and "ROS_AUTOMATIC_DISCOVERY_RANGE" in how
    env, _ = replay_dds.choose_env("loopback", 7, user)
    assert env["ROS_DOMAIN_ID"] == "7" and env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    env, _ = replay_dds.choose_env("inherit", 9, bare)
    assert env == {"PATH": "/usr/bin", "ROS_DOMAIN_ID": "9"}


def test_message_class_resolves_installed_types() -> None:
    from sensor_msgs.msg import NavSatFix

    assert replay_dds.message_class("sensor_msgs/msg/NavSatFix") is NavSatFix
    assert replay_dds.message_class("sensor_msgs/NavSatFix") is NavSatFix
    with pytest.raises(ValueError, match="not installed"):
        replay_dds.message_class("no_such_pkg/msg/Thing")
