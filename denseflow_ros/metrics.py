# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The cross-view localization metrics of the DenseFlow paper, shared by every evaluation.

Errors are split along the true heading: longitudinal (along the vehicle's forward axis) and
lateral (across it), plus the absolute yaw error wrapped to [0, 180] degrees. A summary holds
the mean and median planar distance, the recall of distance, lateral and longitudinal error
below 1/3/5 m and of yaw error below 1/3/5 degrees. The same summary is computed for the prior
(the pose the localizer started from) and for the estimate, so the gain is visible at a glance.

The one results schema, used by ``training.evaluate``, the bag evaluation and the demo::

    {"samples": N, "prior": M, "estimate": M}
    M = {"distance_mean_m", "distance_median_m", "lateral_recall", "longitudinal_recall",
         "distance_recall", "yaw_mean_deg", "yaw_median_deg", "yaw_recall"}

with each recall a map from threshold ("1", "3", "5") to a fraction in [0, 1].
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

#: Recall thresholds, in metres for positions and degrees for yaw.
THRESHOLDS: tuple[int, ...] = (1, 3, 5)

#: The keys of one summary, in the order they are printed.
SUMMARY_KEYS: tuple[str, ...] = (
    "distance_mean_m",
    "distance_median_m",
    "lateral_recall",
    "longitudinal_recall",
    "distance_recall",
    "yaw_mean_deg",
    "yaw_median_deg",
    "yaw_recall",
)

_RECALL_KEYS = ("lateral_recall", "longitudinal_recall", "distance_recall", "yaw_recall")


def wrap_deg(angle_deg: ArrayLike) -> np.ndarray:
    """Wrap angles in degrees to [-180, 180)."""
    a = np.asarray(angle_deg, dtype=np.float64)
    return (a + 180.0) % 360.0 - 180.0


def pose_errors(
    est_e: ArrayLike,
    est_n: ArrayLike,
    est_yaw_rad: ArrayLike,
    true_e: ArrayLike,
    true_n: ArrayLike,
    true_yaw_rad: ArrayLike,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split pose errors along the true heading.

    Positions are ENU metres (any common origin), yaws counter-clockwise from east in radians.
    Returns ``(lateral_m, longitudinal_m, yaw_abs_deg)`` as float64 arrays of the broadcast
    shape: ``longitudinal_m`` is the estimate's offset along the true heading (positive ahead),
    ``lateral_m`` its offset across it (positive to the vehicle's left); both are signed, and
    ``summarize`` takes their magnitudes. ``yaw_abs_deg`` is |estimate - truth| wrapped to
    [0, 180].
    """
    de = np.asarray(est_e, dtype=np.float64) - np.asarray(true_e, dtype=np.float64)
    dn = np.asarray(est_n, dtype=np.float64) - np.asarray(true_n, dtype=np.float64)
    h = np.asarray(true_yaw_rad, dtype=np.float64)
    cos_h, sin_h = np.cos(h), np.sin(h)
    longitudinal = de * cos_h + dn * sin_h
    lateral = -de * sin_h + dn * cos_h
    dyaw = np.degrees(np.asarray(est_yaw_rad, dtype=np.float64) - h)
    yaw_abs = np.abs(wrap_deg(dyaw))
    lateral, longitudinal, yaw_abs = np.broadcast_arrays(lateral, longitudinal, yaw_abs)
    return np.array(lateral), np.array(longitudinal), np.array(yaw_abs)


def crop_pose_errors(
    est_u_m: ArrayLike,
    est_v_m: ArrayLike,
    est_yaw_deg: ArrayLike,
    true_u_m: ArrayLike,
    true_v_m: ArrayLike,
    true_yaw_deg: ArrayLike,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split errors of poses given in a satellite crop's frame, like ``pose_errors``.

    Inputs follow the network's convention: shifts along the crop's +u and +v axes in metres
    and yaw in degrees counter-clockwise, all relative to the prior at the crop centre. The
    prior itself is ``(0, 0, 0)``. The crop frame is treated as ENU with +u east and +v south,
    which leaves lateral, longitudinal and yaw errors unchanged.
    """
    return pose_errors(
        np.asarray(est_u_m, dtype=np.float64),
        -np.asarray(est_v_m, dtype=np.float64),
        np.radians(np.asarray(est_yaw_deg, dtype=np.float64)),
        np.asarray(true_u_m, dtype=np.float64),
        -np.asarray(true_v_m, dtype=np.float64),
        np.radians(np.asarray(true_yaw_deg, dtype=np.float64)),
    )


def _recall(values: np.ndarray) -> dict[str, float]:
    return {str(t): float(np.mean(values < t)) for t in THRESHOLDS}


def summarize(
    lateral_m: ArrayLike, longitudinal_m: ArrayLike, yaw_abs_deg: ArrayLike
) -> dict[str, Any]:
    """Summarize per-sample errors into the paper's figures (one ``M`` of the schema).

    Signs are ignored. Recalls count errors strictly below each threshold. Raises
    ``ValueError`` for empty, mismatched or non-finite input, since a summary silently
    computed over a subset would misreport the method.
    """
    lat = np.abs(np.asarray(lateral_m, dtype=np.float64).ravel())
    lon = np.abs(np.asarray(longitudinal_m, dtype=np.float64).ravel())
    yaw = np.abs(wrap_deg(np.asarray(yaw_abs_deg, dtype=np.float64).ravel()))
    if not (lat.size == lon.size == yaw.size):
        raise ValueError(
            f"error arrays differ in length: lateral {lat.size}, longitudinal {lon.size}, "
            f"yaw {yaw.size}."
        )
    if lat.size == 0:
        raise ValueError("cannot summarize zero samples.")
    if not (np.isfinite(lat).all() and np.isfinite(lon).all() and np.isfinite(yaw).all()):
        raise ValueError("errors contain NaN or infinity; drop or count failed samples first.")
    distance = np.hypot(lat, lon)
    return {
        "distance_mean_m": float(np.mean(distance)),
        "distance_median_m": float(np.median(distance)),
        "lateral_recall": _recall(lat),
        "longitudinal_recall": _recall(lon),
        "distance_recall": _recall(distance),
        "yaw_mean_deg": float(np.mean(yaw)),
        "yaw_median_deg": float(np.median(yaw)),
        "yaw_recall": _recall(yaw),
    }


def results(prior: Mapping[str, Any], estimate: Mapping[str, Any], samples: int) -> dict:
    """Assemble the results document ``{"samples", "prior", "estimate"}``."""
    for name, summary in (("prior", prior), ("estimate", estimate)):
        missing = [k for k in SUMMARY_KEYS if k not in summary]
        if missing:
            raise ValueError(f"{name} summary lacks {', '.join(missing)}.")
    if int(samples) < 0:
        raise ValueError(f"samples must be non-negative, got {samples}.")
    return {
        "samples": int(samples),
        "prior": {k: prior[k] for k in SUMMARY_KEYS},
        "estimate": {k: estimate[k] for k in SUMMARY_KEYS},
    }


def validate_results(doc: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` unless ``doc`` follows the results schema exactly."""
    if set(doc) != {"samples", "prior", "estimate"}:
        raise ValueError(f"results keys must be samples, prior, estimate; got {sorted(doc)}.")
    if not isinstance(doc["samples"], int) or doc["samples"] < 0:
        raise ValueError("samples must be a non-negative integer.")
    for name in ("prior", "estimate"):
        summary = doc[name]
        if set(summary) != set(SUMMARY_KEYS):
            raise ValueError(f"{name} keys must be {', '.join(SUMMARY_KEYS)}.")
        for key in SUMMARY_KEYS:
            value = summary[key]
            if key in _RECALL_KEYS:
                if set(value) != {str(t) for t in THRESHOLDS}:
                    raise ValueError(f"{name}.{key} must map 1, 3, 5 to fractions.")
                if not all(0.0 <= float(v) <= 1.0 for v in value.values()):
                    raise ValueError(f"{name}.{key} holds a fraction outside [0, 1].")
            elif not math.isfinite(float(value)) or float(value) < 0.0:
                raise ValueError(f"{name}.{key} must be a finite non-negative number.")


def evaluate_errors(
    prior_errors: tuple[ArrayLike, ArrayLike, ArrayLike],
    estimate_errors: tuple[ArrayLike, ArrayLike, ArrayLike],
) -> dict:
    """Summarize prior and estimate errors (each from ``pose_errors``) into one document."""
    prior = summarize(*prior_errors)
    estimate = summarize(*estimate_errors)
    return results(prior, estimate, int(np.asarray(estimate_errors[0]).size))


def format_table(doc: Mapping[str, Any]) -> str:
    """Render a results document as a plain-text table, prior beside estimate."""
    rows: list[tuple[str, str, str]] = []

    def fmt(value: float, percent: bool) -> str:
        return f"{100.0 * value:6.2f} %" if percent else f"{value:8.3f}"

    for key in SUMMARY_KEYS:
        p, e = doc["prior"][key], doc["estimate"][key]
        if key in _RECALL_KEYS:
            unit = "deg" if key == "yaw_recall" else "m"
            label = key.replace("_recall", " recall")
            for t in THRESHOLDS:
                rows.append((f"{label} < {t} {unit}", fmt(p[str(t)], True), fmt(e[str(t)], True)))
        else:
            rows.append((key, fmt(p, False), fmt(e, False)))
    width = max(len(r[0]) for r in rows)
    lines = [f"samples: {doc['samples']}", f"{'metric':<{width}}  {'prior':>9}  {'estimate':>9}"]
    lines.append("-" * len(lines[1]))
    lines += [f"{name:<{width}}  {p:>9}  {e:>9}" for name, p, e in rows]
    return "\n".join(lines)


def dumps(doc: Mapping[str, Any]) -> str:
    """Serialize a results document as indented JSON (after validating it)."""
    validate_results(doc)
    return json.dumps(doc, indent=2, sort_keys=False)
