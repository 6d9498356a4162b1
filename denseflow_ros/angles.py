# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Planar angles: wrapping, and yaw to and from a quaternion (x, y, z, w).

The one place the package turns quaternions into yaw: message conversion, bag reading and the
Ford dataset all call :func:`yaw_from_quaternion`.
"""

from __future__ import annotations

import math


def wrap_angle(a: float) -> float:
    """Wrap an angle to [-pi, pi)."""
    return (a + math.pi) % (2.0 * math.pi) - math.pi


def yaw_from_quaternion(x: float, y: float, z: float, w: float) -> float:
    """Return the yaw (rad, counter-clockwise about +z) of a quaternion; NaN if degenerate.

    The quaternion need not be normalised: the formula is invariant to its scale. In a
    north-east-down frame the same angle is the yaw clockwise from north.
    """
    n = x * x + y * y + z * z + w * w
    if not math.isfinite(n) or n < 1e-12:
        return math.nan
    return math.atan2(2.0 * (w * z + x * y), w * w + x * x - y * y - z * z)


def quaternion_from_yaw(yaw: float) -> tuple[float, float, float, float]:
    """Return (x, y, z, w) of a rotation by ``yaw`` (rad) about +z."""
    return 0.0, 0.0, math.sin(yaw / 2.0), math.cos(yaw / 2.0)
