# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The cross-view localization metrics of the DenseFlow paper, shared by every evaluation.

Errors are split along the true heading: longitudinal (along the vehicle's forward axis) and
lateral (across it), plus the absolute yaw error wrapped to [0, 180] degrees. A summary holds
the mean and median planar distance, the recall of distance, lateral and longitudinal error
below 1/3/5 m and of yaw error below 1/3/5 degrees. The same summary is computed for the prior
(the pose the localizer started from) and for the estimate, so the gain is visible at a glance.

The one results schema, used by ``training.evaluate``, the bag evaluation and the demo::

    {"samples": N, "prior": M, "estimate": M[, "baseline": M][, "consistency": C]}
    M = {"distance_mean_m", "distance_median_m", "lateral_median_m", "longitudinal_median_m",
         "lateral_recall", "longitudinal_recall", "distance_recall", "yaw_mean_deg",
         "yaw_median_deg", "yaw_recall"}

``baseline`` is the classical matcher (:mod:`denseflow_ros.baseline`) where it was run;
``consistency`` checks the estimate's covariance against its errors (:func:`consistency`)::

    C = {"position_nees_mean", "position_nees_median", "yaw_nees_mean", "yaw_nees_median",
         "inside_1sigma", "inside_2sigma", "inside_95"}

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
    "lateral_median_m",
    "longitudinal_median_m",
    "lateral_recall",
    "longitudinal_recall",
    "distance_recall",
    "yaw_mean_deg",
    "yaw_median_deg",
    "yaw_recall",
)

#: The keys of a consistency summary.
CONSISTENCY_KEYS: tuple[str, ...] = (
    "position_nees_mean",
    "position_nees_median",
    "yaw_nees_mean",
    "yaw_nees_median",
    "inside_1sigma",
    "inside_2sigma",
    "inside_95",
)
# The 95 % quantile of the chi-square distribution with two degrees of freedom.
CHI2_2DOF_95 = 5.991464547107979

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
        "lateral_median_m": float(np.median(lat)),
        "longitudinal_median_m": float(np.median(lon)),
        "lateral_recall": _recall(lat),
        "longitudinal_recall": _recall(lon),
        "distance_recall": _recall(distance),
        "yaw_mean_deg": float(np.mean(yaw)),
        "yaw_median_deg": float(np.median(yaw)),
        "yaw_recall": _recall(yaw),
    }


def results(prior: Mapping[str, Any], estimate: Mapping[str, Any], samples: int,
            baseline: Mapping[str, Any] | None = None) -> dict:
    """Assemble the results document ``{"samples", "prior", "estimate"[, "baseline"]}``."""
    parts = {"prior": prior, "estimate": estimate}
    if baseline is not None:
        parts["baseline"] = baseline
    for name, summary in parts.items():
        missing = [k for k in SUMMARY_KEYS if k not in summary]
        if missing:
            raise ValueError(f"{name} summary lacks {', '.join(missing)}.")
    if int(samples) < 0:
        raise ValueError(f"samples must be non-negative, got {samples}.")
    doc: dict[str, Any] = {"samples": int(samples)}
    for name, summary in parts.items():
        doc[name] = {k: summary[k] for k in SUMMARY_KEYS}
    return doc


def consistency(
    position_error: ArrayLike, position_cov: ArrayLike, yaw_error_rad: ArrayLike,
    yaw_var_rad2: ArrayLike,
) -> dict[str, float]:
    """Return how well covariances describe errors (the ``C`` of the schema).

    ``position_error`` (N, 2) and ``position_cov`` (N, 2, 2) in any one planar frame per
    sample, ``yaw_error_rad`` and ``yaw_var_rad2`` (N,). The position NEES ``e^T S^-1 e`` of
    a consistent estimator averages 2 (yaw: 1); ``inside_1sigma``/``inside_2sigma`` count
    NEES <= 1 and <= 4 (39 % and 86 % for a consistent one), ``inside_95`` NEES <= 5.99.
    """
    e = np.asarray(position_error, dtype=np.float64).reshape(-1, 2)
    cov = np.asarray(position_cov, dtype=np.float64).reshape(-1, 2, 2)
    dyaw = np.asarray(yaw_error_rad, dtype=np.float64).ravel()
    var = np.asarray(yaw_var_rad2, dtype=np.float64).ravel()
    if not (len(e) == len(cov) == len(dyaw) == len(var)) or len(e) == 0:
        raise ValueError("consistency needs the same non-zero number of errors and covariances.")
    nees = np.einsum("ni,nij,nj->n", e, np.linalg.inv(cov), e)
    yaw_nees = dyaw**2 / var
    if not (np.isfinite(nees).all() and np.isfinite(yaw_nees).all()):
        raise ValueError("consistency: a covariance is singular or not finite.")
    return {
        "position_nees_mean": float(nees.mean()),
        "position_nees_median": float(np.median(nees)),
        "yaw_nees_mean": float(yaw_nees.mean()),
        "yaw_nees_median": float(np.median(yaw_nees)),
        "inside_1sigma": float(np.mean(nees <= 1.0)),
        "inside_2sigma": float(np.mean(nees <= 4.0)),
        "inside_95": float(np.mean(nees <= CHI2_2DOF_95)),
    }


def validate_results(doc: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` unless ``doc`` follows the results schema exactly."""
    required = {"samples", "prior", "estimate"}
    if not required <= set(doc) or set(doc) - required - {"baseline", "consistency"}:
        raise ValueError("results keys must be samples, prior, estimate and optionally "
                         f"baseline and consistency; got {sorted(doc)}.")
    if "consistency" in doc:
        c = doc["consistency"]
        if set(c) != set(CONSISTENCY_KEYS) or not all(
                math.isfinite(float(v)) and float(v) >= 0.0 for v in c.values()):
            raise ValueError(f"consistency keys must be {', '.join(CONSISTENCY_KEYS)}, each a "
                             "finite non-negative number.")
    if not isinstance(doc["samples"], int) or doc["samples"] < 0:
        raise ValueError("samples must be a non-negative integer.")
    for name in [k for k in ("prior", "estimate", "baseline") if k in doc]:
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
    baseline_errors: tuple[ArrayLike, ArrayLike, ArrayLike] | None = None,
) -> dict:
    """Summarize prior, estimate (and baseline) errors, each from ``pose_errors``."""
    prior = summarize(*prior_errors)
    estimate = summarize(*estimate_errors)
    baseline = None if baseline_errors is None else summarize(*baseline_errors)
    return results(prior, estimate, int(np.asarray(estimate_errors[0]).size), baseline)


def format_table(doc: Mapping[str, Any]) -> str:
    """Render a results document as a plain-text table: prior, estimate (and baseline)."""
    columns = [c for c in ("prior", "estimate", "baseline") if c in doc]
    rows: list[tuple[str, list[str]]] = []

    def fmt(value: float, percent: bool) -> str:
        return f"{100.0 * value:6.2f} %" if percent else f"{value:8.3f}"

    for key in SUMMARY_KEYS:
        if key in _RECALL_KEYS:
            unit = "deg" if key == "yaw_recall" else "m"
            label = key.replace("_recall", " recall")
            for t in THRESHOLDS:
                rows.append((f"{label} < {t} {unit}",
                             [fmt(doc[c][key][str(t)], True) for c in columns]))
        else:
            rows.append((key, [fmt(doc[c][key], False) for c in columns]))
    width = max(len(r[0]) for r in rows)
    header = f"{'metric':<{width}}" + "".join(f"  {c:>9}" for c in columns)
    lines = [f"samples: {doc['samples']}", header, "-" * len(header)]
    lines += [f"{name:<{width}}" + "".join(f"  {v:>9}" for v in values)
              for name, values in rows]
    if "consistency" in doc:
        lines += ["", "covariance consistency of the estimate (ideal: NEES mean 2 / yaw 1, "
                  "39 / 86 / 95 % inside):"]
        lines += [f"  {k:<{width}}  {doc['consistency'][k]:9.3f}" for k in CONSISTENCY_KEYS]
    return "\n".join(lines)


def dumps(doc: Mapping[str, Any]) -> str:
    """Serialize a results document as indented JSON (after validating it)."""
    validate_results(doc)
    return json.dumps(doc, indent=2, sort_keys=False)
