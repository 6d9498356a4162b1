# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``denseflow evaluate`` against hand-made ground truth, priors and poses."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from denseflow_ros import bagio, metrics
from denseflow_ros.cli import main as cli_main
from denseflow_ros.geo import LocalEnu, Utm

DATUM = (49.01, 8.42)
T0 = 1_317_000_000_000_000_000
STEP = 100_000_000
HEADING = math.pi / 2  # driving north: longitudinal = north, lateral = west
# Estimate errors per frame: along the heading (m), across it to the left (m), yaw (deg).
LONGITUDINAL = [0.5, -0.5, 2.0, 4.0, -6.0]
LATERAL = [0.2, -0.2, 0.2, 0.2, 0.2]
YAW_ERR_DEG = [0.5, -2.0, 0.5, 4.0, 10.0]
PRIOR_EAST_OFFSET = 3.5  # the fix sits 3.5 m east of the truth: lateral error 3.5 m
PRIOR_YAW_ERR_DEG = 1.5


def _truth(i: int) -> tuple[float, float]:
    return 2.0, 10.0 * i


def make_recording(path: Path) -> None:
    enu = LocalEnu(*DATUM)
    meta = {"datum_lat": repr(DATUM[0]), "datum_lon": repr(DATUM[1]),
            "ground_truth_topic": "/gt", "fix_topic": "/fix", "imu_topic": "/imu"}
    with bagio.BagWriter(path, metadata=meta) as bag:
        for i in range(5):
            t = T0 + i * STEP
            east, north = _truth(i)
            bag.write("/gt", "geometry_msgs/msg/PoseStamped", t, bagio.pose_stamped_msg(
                t, "map", (east, north, 0.0), bagio.quaternion_from_euler(0, 0, HEADING)))
            # Stamped with the truth it measures: the prior interpolates between fixes.
            lat, lon = enu.inverse(east + PRIOR_EAST_OFFSET, north)
            bag.write("/fix", "sensor_msgs/msg/NavSatFix", t,
                      bagio.navsatfix_msg(lat, lon, 100.0, t, covariance=[9, 9, 9]))
            bag.write("/imu", "sensor_msgs/msg/Imu", t + 2_000_000, bagio.imu_msg(
                t + 2_000_000, "imu", bagio.quaternion_from_euler(
                    0, 0, HEADING + math.radians(PRIOR_YAW_ERR_DEG))))


def _estimate(i: int) -> tuple[float, float, float]:
    east, north = _truth(i)
    # Heading north: forward is +north, left is -east.
    return (east - LATERAL[i], north + LONGITUDINAL[i],
            HEADING + math.radians(YAW_ERR_DEG[i]))


def make_poses(path: Path, projection: str = "enu") -> None:
    enu = LocalEnu(*DATUM)
    utm = Utm()
    with bagio.BagWriter(path, "sqlite3") as bag:
        for i in range(5):
            t = T0 + i * STEP
            east, north, yaw = _estimate(i)
            if projection == "utm":
                lat, lon = enu.inverse(east, north)
                east, north = utm.forward(lat, lon)
                yaw = utm.yaw_true_to_grid_rad(yaw, float(lat), float(lon))
            bag.write("/localizer/pose", "geometry_msgs/msg/PoseWithCovarianceStamped", t,
                      bagio.pose_with_covariance_stamped_msg(
                          t, "map", (float(east), float(north), 0.0),
                          bagio.quaternion_from_euler(0, 0, yaw), covariance=[1] * 6))
        # A pose long after the recording ends has no ground truth.
        t = T0 + 60 * STEP
        bag.write("/localizer/pose", "geometry_msgs/msg/PoseWithCovarianceStamped", t,
                  bagio.pose_with_covariance_stamped_msg(t, "map", (0.0, 0.0, 0.0)))


@pytest.mark.parametrize("projection", ["enu", "utm"])
def test_evaluate_scores_prior_and_estimate(tmp_path: Path, projection: str,
                                            capsys: pytest.CaptureFixture) -> None:
    make_recording(tmp_path / "rec")
    make_poses(tmp_path / "poses", projection)
    out_json, out_png = tmp_path / "results.json", tmp_path / "plot.png"
    rc = cli_main(["evaluate", "--bag", str(tmp_path / "rec"), "--poses",
                   str(tmp_path / "poses"), "--map-projection", projection,
                   "--json", str(out_json), "--plot", str(out_png),
                   "--csv", str(tmp_path / "frames.csv")])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "matched 5 of 6 poses (1 without ground truth, 0 without a prior)" in printed
    doc = json.loads(out_json.read_text())
    metrics.validate_results(doc)
    assert doc["samples"] == 5
    est, prior = doc["estimate"], doc["prior"]
    assert est["longitudinal_recall"] == {"1": 0.4, "3": 0.6, "5": 0.8}
    assert est["lateral_recall"] == {"1": 1.0, "3": 1.0, "5": 1.0}
    assert est["yaw_recall"] == {"1": 0.4, "3": 0.6, "5": 0.8}
    assert est["distance_median_m"] == pytest.approx(math.hypot(2.0, 0.2), abs=1e-3)
    assert est["yaw_median_deg"] == pytest.approx(2.0, abs=1e-3)
    assert prior["lateral_recall"] == {"1": 0.0, "3": 0.0, "5": 1.0}
    assert prior["longitudinal_recall"] == {"1": 1.0, "3": 1.0, "5": 1.0}
    assert prior["distance_mean_m"] == pytest.approx(PRIOR_EAST_OFFSET, abs=1e-3)
    # The IMU's ENU yaw meets the bag's plane turned by its meridian convergence (6e-5 deg).
    assert prior["yaw_mean_deg"] == pytest.approx(PRIOR_YAW_ERR_DEG, abs=1e-3)
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with (tmp_path / "frames.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    assert [int(r["stamp_ns"]) for r in rows] == [T0 + i * STEP for i in range(5)]
    for i, row in enumerate(rows):
        assert float(row["est_longitudinal_m"]) == pytest.approx(LONGITUDINAL[i], abs=1e-3)
        assert float(row["est_lateral_m"]) == pytest.approx(LATERAL[i], abs=1e-3)
        assert float(row["est_yaw_err_deg"]) == pytest.approx(abs(YAW_ERR_DEG[i]), abs=1e-3)
        assert float(row["prior_lateral_m"]) == pytest.approx(-PRIOR_EAST_OFFSET, abs=1e-3)


def test_antenna_offset_moves_the_prior(tmp_path: Path) -> None:
    make_recording(tmp_path / "rec")
    make_poses(tmp_path / "poses")
    out_json = tmp_path / "results.json"
    # An antenna 3.5 m to the right of base_link (heading north: east) explains the offset,
    # up to the 1.5 deg heading error's rotation of that lever arm.
    rc = cli_main(["evaluate", "--bag", str(tmp_path / "rec"), "--poses",
                   str(tmp_path / "poses"), "--antenna-y-m", "-3.5", "--json", str(out_json)])
    assert rc == 0
    prior = json.loads(out_json.read_text())["prior"]
    assert prior["distance_mean_m"] == pytest.approx(
        2 * 3.5 * math.sin(math.radians(PRIOR_YAW_ERR_DEG) / 2), abs=1e-3)


def test_topic_or_bag() -> None:
    from denseflow_ros.tools.evaluate import is_topic

    assert is_topic("/localizer/pose") and is_topic("/pose")
    assert not is_topic("/tmp/poses") and not is_topic("poses_bag")
    assert not is_topic("/tmp/pytest-of-x/poses")


def test_evaluate_errors_are_one_sentence(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    make_recording(tmp_path / "rec")
    rc = cli_main(["evaluate", "--bag", str(tmp_path / "rec"), "--poses",
                   str(tmp_path / "missing")])
    assert rc == 1
    assert "does not exist" in capsys.readouterr().err
    make_poses(tmp_path / "poses")
    rc = cli_main(["evaluate", "--bag", str(tmp_path / "rec"), "--poses",
                   str(tmp_path / "poses"), "--max-dt-s", "0", "--datum", "49.0,8.0"])
    # Exact stamps still match with a zero tolerance; a wrong datum only moves the poses.
    assert rc == 0
    rc = cli_main(["evaluate", "--bag", str(tmp_path / "poses"), "--poses",
                   str(tmp_path / "poses")])
    assert rc == 1
    assert "no datum_lat/datum_lon metadata" in capsys.readouterr().err


def test_evaluate_is_a_typed_function(tmp_path: Path) -> None:
    from denseflow_ros.tools.evaluate import EvaluateOptions, evaluate

    make_recording(tmp_path / "rec")
    make_poses(tmp_path / "poses")
    result = evaluate(tmp_path / "rec", tmp_path / "poses", EvaluateOptions())
    counts = result.counts
    assert (counts.poses, counts.matched, counts.without_ground_truth,
            counts.without_prior, counts.ground_truth_frames) == (6, 5, 1, 0, 5)
    assert result.stamps == [T0 + i * STEP for i in range(5)]
    assert result.truth.shape == result.estimate.shape == result.prior.shape == (5, 3)
    assert result.ground_truth_track.shape == (5, 2)
    # Every matched pose carries a covariance: (x, y, yaw) of the message's 6 x 6.
    assert result.covariance is not None and result.covariance.shape == (5, 3, 3)
    assert result.doc["samples"] == 5
    assert result.prior[:, 0] - result.truth[:, 0] == pytest.approx([PRIOR_EAST_OFFSET] * 5,
                                                                   abs=1e-6)
    moved = evaluate(tmp_path / "rec", str(tmp_path / "poses"),
                     EvaluateOptions(antenna_x_m=1.0))
    # The antenna 1 m ahead (heading north + 1.5 deg): the prior moves about 1 m south.
    assert moved.prior[:, 1] == pytest.approx(result.prior[:, 1] - 1.0, abs=1e-3)


def test_bad_datum_is_one_sentence(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    make_recording(tmp_path / "rec")
    make_poses(tmp_path / "poses")
    rc = cli_main(["evaluate", "--bag", str(tmp_path / "rec"), "--poses",
                   str(tmp_path / "poses"), "--datum", "north"])
    assert rc == 1
    assert capsys.readouterr().err.strip() == (
        "denseflow evaluate: expected LAT,LON, got 'north'")
