# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The demo's report: scores, the metrics table with the demo's targets, plots and files.

The recorded poses are scored with :func:`denseflow_ros.tools.evaluate.evaluate`, prior
beside estimate (and the NCC baseline's column when it ran); the figures come from
:mod:`denseflow_ros.plots`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from denseflow_ros.plots import MapBackground
from denseflow_ros.tools.demo_scenario import DemoError, ScenarioFiles
from denseflow_ros.tools.evaluate import Evaluation

TRAJECTORY_MARGIN_M = 25.0


def score(files: ScenarioFiles, poses_bag: Path) -> Evaluation:
    """Score the recorded poses against the drive's ground truth and GNSS/IMU prior."""
    from denseflow_ros.tools.evaluate import EvaluateOptions, evaluate

    return evaluate(files.bag, poses_bag, EvaluateOptions())


def frame_times(files: ScenarioFiles, result: Evaluation) -> tuple[np.ndarray, np.ndarray]:
    """Return (drive seconds of each scored pose, drive seconds of the frames with none)."""
    from denseflow_ros import bagio

    stamps = sorted(bagio.stamp_to_ns(m.msg.header.stamp) for m in bagio.iter_messages(
        files.bag, [files.topics["ground_truth"]]))
    t0 = stamps[0]
    missing = sorted(set(stamps) - set(result.stamps))
    return (np.array([(s - t0) * 1e-9 for s in result.stamps]),
            np.array([(s - t0) * 1e-9 for s in missing]))


def ortho_background(files: ScenarioFiles, points: np.ndarray) -> MapBackground:
    """Return the square of the town's orthophoto around ``points`` (N, 2) ENU, with margin."""
    import cv2

    lo = points.min(axis=0) - TRAJECTORY_MARGIN_M
    hi = points.max(axis=0) + TRAJECTORY_MARGIN_M
    side = float(max(hi - lo))  # a square view keeps the map undistorted
    mid = (lo + hi) / 2
    lo, hi = mid - side / 2, mid + side / 2
    ortho = cv2.imread(str(files.ortho), cv2.IMREAD_COLOR)
    if ortho is None:
        raise DemoError(f"cannot read the orthophoto {files.ortho}")
    rows, cols = ortho.shape[:2]
    mpp = files.mpp
    # Raster (col, row) of an ENU point: east / mpp + cols // 2, rows // 2 - north / mpp.
    c0 = int(np.clip(np.floor(lo[0] / mpp + cols // 2), 0, cols - 1))
    c1 = int(np.clip(np.ceil(hi[0] / mpp + cols // 2), c0 + 1, cols))
    r0 = int(np.clip(np.floor(rows // 2 - hi[1] / mpp), 0, rows - 1))
    r1 = int(np.clip(np.ceil(rows // 2 - lo[1] / mpp), r0 + 1, rows))
    extent = ((c0 - cols // 2 - 0.5) * mpp, (c1 - cols // 2 - 0.5) * mpp,
              (rows // 2 - r1 + 0.5) * mpp, (rows // 2 - r0 + 0.5) * mpp)
    return MapBackground(ortho[r0:r1, c0:c1, ::-1], extent,
                         (float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])))


def write_plots(files: ScenarioFiles, result: Evaluation, out: Path) -> None:
    """Write trajectory.png, errors.png and (with covariances) consistency.png."""
    from denseflow_ros.plots import plot_consistency, plot_errors, plot_trajectory

    doc = result.doc
    points = np.concatenate([result.ground_truth_track, result.prior[:, :2],
                             result.estimate[:, :2]])
    background = ortho_background(files, points)
    plot_trajectory(
        result.ground_truth_track, result.prior, result.estimate, out / "trajectory.png",
        f"demo drive: {doc['samples']} poses; yellow: prior -> estimate",
        prior_label=f"GNSS prior (median {doc['prior']['distance_median_m']:.2f} m)",
        estimate_label=f"DenseFlow estimate (median "
                       f"{doc['estimate']['distance_median_m']:.2f} m)",
        background=background)
    times, missing = frame_times(files, result)
    plot_errors(times, missing, result.prior_errors, result.estimate_errors,
                out / "errors.png", "error along the demo drive")
    if result.covariance is not None:
        plot_consistency(result.estimate[:, :2] - result.truth[:, :2],
                         result.covariance[:, :2, :2], out / "consistency.png",
                         "demo drive: published covariance against the errors")


def outcomes(counters: dict[str, str]) -> str:
    """Return one line on what the node did with the images: accepted, dropped, rejected."""
    reasons = ", ".join(f"{k[len('rejected_'):]} {v}" for k, v in sorted(counters.items())
                        if k.startswith("rejected_"))
    return (f"node: {counters.get('received_images', '0')} of "
            f"{counters.get('images_published', '?')} images received, "
            f"{counters.get('accepted', '0')} accepted, "
            f"{counters.get('dropped_stale', '0')} dropped while busy, "
            f"{counters.get('rejected', '0')} rejected" + (f" ({reasons})" if reasons else ""))


def targets(doc: dict, accepted: float) -> list[tuple[bool, str]]:
    """Return the demo's targets as (met, sentence)."""
    p, e = doc["prior"], doc["estimate"]
    checks = [
        (e["distance_median_m"] <= p["distance_median_m"] / 3.0,
         f"median position error {e['distance_median_m']:.2f} m <= a third of the prior's "
         f"{p['distance_median_m']:.2f} m"),
        (e["longitudinal_median_m"] <= p["longitudinal_median_m"] / 2.0,
         f"median along-road error {e['longitudinal_median_m']:.2f} m <= half the prior's "
         f"{p['longitudinal_median_m']:.2f} m"),
        (e["lateral_median_m"] < p["lateral_median_m"],
         f"median cross-road error {e['lateral_median_m']:.2f} m < the prior's "
         f"{p['lateral_median_m']:.2f} m"),
        (e["yaw_median_deg"] < 1.0, f"median yaw error {e['yaw_median_deg']:.2f} deg < 1 deg"),
        (accepted >= 0.9, f"accepted {100 * accepted:.1f} % of frames >= 90 %"),
    ]
    if "baseline" in doc:
        b = doc["baseline"]
        checks.insert(1, (e["distance_median_m"] <= b["distance_median_m"],
                          f"median position error {e['distance_median_m']:.2f} m <= the NCC "
                          f"baseline's {b['distance_median_m']:.2f} m"))
    return checks


def report(doc: dict, accepted: float, latency_ms: float) -> str:
    """Return the metrics table with accepted fraction, latency and the demo's targets."""
    from denseflow_ros import metrics

    table = metrics.format_table(doc).splitlines()
    columns = [c for c in ("prior", "estimate", "baseline") if c in doc]
    width = len(table[1]) - 11 * len(columns)
    lat = f"{latency_ms:8.1f}" if latency_ms == latency_ms else "     nan"
    table += [f"{'accepted fraction':<{width}}  {'100.00 %':>9}  {100 * accepted:6.2f} %",
              f"{'latency median (ms)':<{width}}  {'-':>9}  {lat:>9}"]
    table += ["", "targets:"] + [f"  [{'met' if ok else 'MISSED'}] {text}"
                                 for ok, text in targets(doc, accepted)]
    return "\n".join(table)


def write_json(path: Path, doc: dict) -> None:
    """Write ``doc`` as indented JSON with a final newline."""
    path.write_text(json.dumps(doc, indent=2) + "\n")
