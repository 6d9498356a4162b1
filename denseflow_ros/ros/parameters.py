# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The localizer node's parameters: defaults, descriptions, ranges, run-time changeability.

``config/localize.yaml`` mirrors this table; a test keeps the two in step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from denseflow_ros.localizer import PRECISIONS, Thresholds
from denseflow_ros.parts import MAP_PROJECTIONS
from denseflow_ros.prior import HEADING_SOURCES

# The model's presets (denseflow_ros.model.PRESETS, which needs torch); a test keeps the two
# in step.
PRESET_NAMES = ("kitti", "ford", "vigor", "oxford", "lite")
# The acceptance rules' defaults are the localizer's.
_TH = Thresholds()


@dataclass(frozen=True)
class Spec:
    """One parameter: default, description, numeric range, allowed strings, changeability."""

    default: Any
    description: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    runtime: bool = False


SPECS: dict[str, Spec] = {
    # Model and imagery (read-only after start-up).
    "model_path": Spec("", "DenseFlow checkpoint (denseflow_ros format or the authors' "
                           "state_dict); required"),
    "preset": Spec("", "model preset for an authors' checkpoint; empty = the checkpoint's own",
                   choices=("", *PRESET_NAMES)),
    "device": Spec("auto", "torch device: auto (CUDA when present), cpu, cuda or cuda:N"),
    "tile_cache": Spec("", "satellite tile cache: an XYZ folder or an .mbtiles file; required"),
    "tile_cache_mb": Spec(256, "memory for decoded tiles (LRU), MB", 16, 65536),
    # Frames and conventions (read-only).
    "map_frame": Spec("map", "frame_id of the published pose"),
    "base_frame": Spec("base_link", "frame_id of the refined fix (the pose's child frame)"),
    "map_projection": Spec("enu", "map frame: 'enu' (local ENU plane at datum) or 'utm'",
                           choices=MAP_PROJECTIONS),
    "datum": Spec([0.0, 0.0], "[lat, lon] of the local ENU origin (or of the UTM zone); "
                              "[0, 0] = the first valid fix"),
    "utm_zone": Spec(0, "UTM zone for map_projection utm; 0 = from the datum", 0, 60),
    "heading_source": Spec("imu", "heading prior: imu, odom, track, previous or none",
                           choices=HEADING_SOURCES),
    "image_transport": Spec("raw", "'raw' subscribes to image (sensor_msgs/Image), "
                                   "'compressed' to image/compressed", choices=("raw",
                                                                                 "compressed")),
    "image_rectification": Spec("auto", "whether the image is already rectified: 'rectified' "
                                        "uses camera_info's P and no distortion, 'raw' K and "
                                        "D; 'auto' = rectified when the image topic's name "
                                        "has a part starting with image_rect",
                                choices=("auto", "raw", "rectified")),
    # Camera mounting (read-only).
    "camera_height_m": Spec(0.0, "camera height above the ground; 0 = the preset's", 0.0, 10.0),
    "camera_x_m": Spec(0.0, "camera position in base_link, forward", -20.0, 20.0),
    "camera_y_m": Spec(0.0, "camera position in base_link, left", -20.0, 20.0),
    "antenna_x_m": Spec(0.0, "GNSS antenna position in base_link, forward", -20.0, 20.0),
    "antenna_y_m": Spec(0.0, "GNSS antenna position in base_link, left", -20.0, 20.0),
    # Processing (read-only).
    "autostart": Spec(True, "configure and activate at start-up (else wait for lifecycle "
                            "transitions)"),
    "warmup_runs": Spec(2, "network runs on blank input at activation", 0, 20),
    "yaw_hypotheses": Spec(18, "headings searched when the heading is unknown", 1, 72),
    "diagnostics_period_s": Spec(1.0, "period of /diagnostics", 0.1, 60.0),
    # Run-time changeable.
    "precision": Spec("fp32", "inference precision: fp32, fp16 or bf16 (autocast)",
                      choices=PRECISIONS, runtime=True),
    "iterations": Spec(0, "flow decoder iterations; 0 = the preset's", 0, 64, runtime=True),
    "fine_stage": Spec(True, "run the network's fine stage where it has one (lite networks); "
                             "off: the decoder's pose, sooner", runtime=True),
    "min_confidence": Spec(_TH.min_confidence, "reject estimates whose mean confidence is "
                                               "lower", 0.0, 1.0, runtime=True),
    "min_coverage": Spec(_TH.min_coverage, "reject frames whose crop the tile cache covers "
                                           "less", 0.0, 1.0, runtime=True),
    "gate_sigma": Spec(_TH.gate_sigma, "reject estimates farther from the prior than this many "
                                       "standard deviations of fix and estimate together "
                                       "(Mahalanobis); 0 = no gate", 0.0, 100.0, runtime=True),
    "gate_floor_m": Spec(_TH.gate_floor_m, "standard deviation added to the fix's and the "
                                           "estimate's in the gate", 0.0, 1000.0, runtime=True),
    "max_yaw_correction_deg": Spec(_TH.max_yaw_correction_deg, "reject yaw corrections larger "
                                   "than this; 0 = off", 0.0, 180.0, runtime=True),
    "default_fix_std_m": Spec(10.0, "fix standard deviation when its covariance is unknown",
                              0.01, 1000.0, runtime=True),
    "max_fix_age_s": Spec(0.5, "largest time between an image and the fixes paired with it",
                          0.001, 60.0, runtime=True),
    "fix_wait_s": Spec(0.2, "longest wait per image for a fix (and heading sample) stamped "
                            "at or after it; 0 = pair with what has arrived", 0.0, 2.0,
                       runtime=True),
    "max_heading_age_s": Spec(0.5, "largest time between an image and its heading prior",
                              0.001, 60.0, runtime=True),
    "track_min_distance_m": Spec(2.0, "heading_source track: distance travelled for a course",
                                 0.1, 100.0, runtime=True),
    "track_window_s": Spec(5.0, "heading_source track: oldest fix used for a course",
                           0.1, 120.0, runtime=True),
    "log_throttle_s": Spec(5.0, "least time between two log lines about the same problem",
                           0.0, 3600.0, runtime=True),
}


def descriptor(name: str) -> Any:
    """Return the rcl ParameterDescriptor for parameter ``name``."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

    spec = SPECS[name]
    d = ParameterDescriptor(description=spec.description, read_only=not spec.runtime)
    if spec.choices:
        d.additional_constraints = "one of: " + ", ".join(repr(c) for c in spec.choices)
    if spec.low is not None and spec.high is not None:
        if isinstance(spec.default, bool):
            pass
        elif isinstance(spec.default, int):
            d.integer_range = [IntegerRange(from_value=int(spec.low), to_value=int(spec.high),
                                            step=1)]
        else:
            d.floating_point_range = [FloatingPointRange(from_value=float(spec.low),
                                                         to_value=float(spec.high), step=0.0)]
    return d


def check_choice(name: str, value: Any) -> str | None:
    """Return why ``value`` is not allowed for ``name``, or None when it is."""
    spec = SPECS.get(name)
    if spec is None or not spec.choices or value in spec.choices:
        return None
    return f"parameter '{name}' must be one of {list(spec.choices)}, got {value!r}"
