# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The paper's metrics against values worked out by hand."""

import json
import math

import numpy as np
import pytest

from denseflow_ros import metrics


def test_errors_split_along_the_true_heading() -> None:
    # Truth faces north (90 deg); the estimate is 2 m east and 3 m north of it.
    lat, lon, yaw = metrics.pose_errors(2.0, 3.0, math.radians(95.0), 0.0, 0.0, math.pi / 2)
    assert lon == pytest.approx(3.0)  # ahead along north
    assert lat == pytest.approx(-2.0)  # east is the vehicle's right
    assert yaw == pytest.approx(5.0)


def test_errors_with_heading_east_and_diagonal() -> None:
    h = math.radians(30.0)
    # 4 m ahead and 1 m left of the truth at heading 30 deg, expressed in ENU.
    e = 10.0 + 4.0 * math.cos(h) - 1.0 * math.sin(h)
    n = -5.0 + 4.0 * math.sin(h) + 1.0 * math.cos(h)
    lat, lon, _ = metrics.pose_errors([e], [n], [h], [10.0], [-5.0], [h])
    assert lon[0] == pytest.approx(4.0)
    assert lat[0] == pytest.approx(1.0)


def test_yaw_error_wraps_to_0_180() -> None:
    _, _, yaw = metrics.pose_errors(
        [0, 0, 0], [0, 0, 0], np.radians([179.0, -170.0, 350.0]), [0, 0, 0], [0, 0, 0],
        np.radians([-179.0, 170.0, 0.0]),
    )
    np.testing.assert_allclose(yaw, [2.0, 20.0, 10.0], atol=1e-9)


def test_crop_errors_match_enu_errors() -> None:
    # Prior at the crop centre: truth 3 m along +u, 4 m along +v, yaw +10 deg.
    lat, lon, yaw = metrics.crop_pose_errors(0.0, 0.0, 0.0, 3.0, 4.0, 10.0)
    h = math.radians(10.0)
    # The prior is at (0, 0) and truth at east 3, north -4 with heading 10 deg.
    de, dn = -3.0, 4.0
    assert float(lon) == pytest.approx(de * math.cos(h) + dn * math.sin(h))
    assert float(lat) == pytest.approx(-de * math.sin(h) + dn * math.cos(h))
    assert float(yaw) == pytest.approx(10.0)
    assert math.hypot(float(lat), float(lon)) == pytest.approx(5.0)


def test_summary_by_hand() -> None:
    lat = [0.5, -2.0, 0.0, 6.0]
    lon = [0.0, 0.0, -4.0, 8.0]
    yaw = [0.5, 2.5, 4.0, 179.0]
    m = metrics.summarize(lat, lon, yaw)
    # distances 0.5, 2, 4, 10
    assert m["distance_mean_m"] == pytest.approx(16.5 / 4)
    assert m["distance_median_m"] == pytest.approx(3.0)
    assert m["distance_recall"] == {"1": 0.25, "3": 0.5, "5": 0.75}
    assert m["lateral_recall"] == {"1": 0.5, "3": 0.75, "5": 0.75}
    assert m["longitudinal_recall"] == {"1": 0.5, "3": 0.5, "5": 0.75}
    assert m["yaw_recall"] == {"1": 0.25, "3": 0.5, "5": 0.75}
    assert m["yaw_mean_deg"] == pytest.approx(186.0 / 4)
    assert m["yaw_median_deg"] == pytest.approx(3.25)


def test_recall_is_strictly_below_the_threshold() -> None:
    m = metrics.summarize([1.0, 3.0], [0.0, 0.0], [1.0, 5.0])
    assert m["lateral_recall"] == {"1": 0.0, "3": 0.5, "5": 1.0}
    assert m["yaw_recall"] == {"1": 0.0, "3": 0.5, "5": 0.5}


def test_summary_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="zero samples"):
        metrics.summarize([], [], [])
    with pytest.raises(ValueError, match="differ in length"):
        metrics.summarize([1.0], [1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="NaN"):
        metrics.summarize([float("nan")], [0.0], [0.0])


def test_results_document_round_trips_and_renders() -> None:
    prior = metrics.summarize([10.0, 12.0], [5.0, 1.0], [8.0, 9.0])
    est = metrics.summarize([0.2, 0.4], [0.1, 3.5], [0.3, 2.0])
    doc = metrics.results(prior, est, samples=2)
    assert set(doc) == {"samples", "prior", "estimate"}
    assert list(doc["estimate"]) == list(metrics.SUMMARY_KEYS)
    back = json.loads(metrics.dumps(doc))
    assert back == doc
    metrics.validate_results(back)
    table = metrics.format_table(doc)
    assert "samples: 2" in table
    assert "lateral recall < 1 m" in table and "yaw recall < 5 deg" in table
    # estimate lateral recall at 1 m is 100 %, the prior's 0 %
    line = next(x for x in table.splitlines() if x.startswith("lateral recall < 1 m"))
    assert line.split()[-4:] == ["0.00", "%", "100.00", "%"]


def test_validate_rejects_extra_and_out_of_range() -> None:
    m = metrics.summarize([0.0], [0.0], [0.0])
    doc = metrics.results(m, m, 1)
    bad = json.loads(json.dumps(doc))
    bad["extra"] = 1
    with pytest.raises(ValueError, match="results keys"):
        metrics.validate_results(bad)
    bad = json.loads(json.dumps(doc))
    bad["estimate"]["yaw_recall"]["1"] = 1.5
    with pytest.raises(ValueError, match="outside"):
        metrics.validate_results(bad)
    with pytest.raises(ValueError, match="lacks"):
        metrics.results({}, m, 1)


def test_evaluate_errors_counts_samples() -> None:
    truth = ([5, 6, 7], [0, 0, 0], [1, 2, 3])
    prior = metrics.crop_pose_errors([0.0] * 3, [0.0] * 3, [0.0] * 3, *truth)
    est = metrics.crop_pose_errors(*truth, *truth)
    doc = metrics.evaluate_errors(prior, est)
    assert doc["samples"] == 3
    assert doc["estimate"]["distance_mean_m"] == pytest.approx(0.0)
    assert doc["prior"]["distance_median_m"] == pytest.approx(6.0, abs=1e-9)
