# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The GNSS prior of a camera frame, from the fixes and headings around its stamp (no ROS).

A :class:`PriorBuffer` keeps GNSS fixes and heading samples in stamp order, bounded by age and
by count. :meth:`PriorBuffer.prior_at` pairs an image stamp with them:

- the position is interpolated between the fixes on either side of the stamp (longitude the
  short way round, across +-180 deg too), or taken from the nearest fix when only one side is
  within ``max_fix_age_s``; the covariance is the larger of the two, element by element;
- the heading comes from one of :data:`HEADING_SOURCES`: ``imu`` / ``odom`` samples
  (interpolated the same way, within ``max_heading_age_s``), ``track`` (course over ground
  from an older fix at least ``track_min_distance_m`` away within ``track_window_s``),
  ``previous`` (the last published estimate's) or ``none``; ``previous`` without a recent
  estimate and ``none`` give no heading, so the localizer searches for it.

The prior's position is the GNSS antenna's; :func:`base_link_latlon` moves it to
``base_link``.

Each input stream is watched for its stamps jumping backwards (a bag restarted, a simulator
reset): a stamp more than :data:`CLOCK_JUMP_NS` behind the stream's newest forgets everything
newer than the jump. All methods are thread-safe.
"""

from __future__ import annotations

import bisect
import math
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from denseflow_ros.angles import wrap_angle
from denseflow_ros.geo.projection import offset_latlon
from denseflow_ros.localizer import MAX_LATITUDE_DEG, CameraMount, FrameError, Prior

HEADING_SOURCES = ("imu", "odom", "track", "previous", "none")

CLOCK_JUMP_NS = 1_000_000_000  # a stamp this far behind its stream's newest is a clock jump
# Fix history: by age behind the newest fix, and by count (a stuck stamp, a flood).
FIX_BUFFER_NS = 120_000_000_000
MAX_FIXES = 4096
# A fix stamped further ahead of the newest image (or of the clock) is dropped: kept, it
# would trim the history and make the next real fix look like a clock jump.
MAX_FIX_LEAD_NS = 30_000_000_000
# Heading history: by age (frames may take seconds) and by count (10 s at 1.6 kHz).
HEADING_BUFFER_NS = 10_000_000_000
MAX_HEADINGS = 16384


@dataclass(frozen=True)
class Fix:
    """A GNSS antenna position at ``t_ns``; ``source`` is the message it came from."""

    t_ns: int
    lat: float
    lon: float
    cov_en: np.ndarray
    source: Any = None


@dataclass(frozen=True)
class Problem:
    """An input the buffer refused or a reset it made: a counter key and one sentence."""

    reason: str
    message: str


@dataclass(frozen=True)
class PriorRules:
    """How a prior is assembled (the node's parameters of the same names)."""

    heading_source: str
    max_fix_age_s: float
    max_heading_age_s: float
    track_window_s: float
    track_min_distance_m: float

    def __post_init__(self) -> None:
        """Refuse an unknown heading source."""
        if self.heading_source not in HEADING_SOURCES:
            raise ValueError(f"heading_source must be one of {HEADING_SOURCES}, "
                             f"got {self.heading_source!r}")

    @property
    def needs_samples(self) -> bool:
        """Return whether the heading comes from imu or odom samples."""
        return self.heading_source in ("imu", "odom")


def _trim(keys: list[int], values: list[Any], max_age_ns: int, max_count: int) -> None:
    """Drop the oldest entries: those ``max_age_ns`` behind the newest, and beyond the count."""
    cut = max(bisect.bisect_left(keys, keys[-1] - max_age_ns), len(keys) - max_count)
    if cut > 0:
        del keys[:cut], values[:cut]


class PriorBuffer:
    """Fixes and heading samples by stamp, and the prior they give an image stamp."""

    def __init__(self) -> None:
        """Start empty."""
        self._lock = threading.Lock()
        self._fix_keys: list[int] = []
        self._fixes: list[Fix] = []
        self._heading_keys: list[int] = []
        self._heading_yaws: list[float] = []
        self._previous: tuple[int, float] | None = None
        self._newest_ns: dict[str, int] = {}

    # -- input ---------------------------------------------------------------------------
    def note_image(self, t_ns: int) -> Problem | None:
        """Record an image stamp (the fixes' lead is measured from it); report a clock jump."""
        with self._lock:
            return self._check_clock(t_ns, "image")

    def add_fix(self, fix: Fix, now_ns: int = 0) -> Problem | None:
        """Keep a fix; a repeated stamp replaces its fix.

        A fix more than :data:`MAX_FIX_LEAD_NS` ahead of the newest image (before any image:
        of ``now_ns``, when that is set) is refused as ``fix_future``.
        """
        with self._lock:
            image = self._newest_ns.get("image")
            lead = fix.t_ns - image if image is not None else \
                fix.t_ns - now_ns if now_ns > 0 else 0
            if lead > MAX_FIX_LEAD_NS:
                return Problem("fix_future", f"fix stamped {lead / 1e9:.1f} s ahead of the "
                                             "newest image or the clock ignored")
            problem = self._check_clock(fix.t_ns, "fix")
            i = bisect.bisect_left(self._fix_keys, fix.t_ns)
            if i < len(self._fix_keys) and self._fix_keys[i] == fix.t_ns:
                self._fixes[i] = fix
            else:
                self._fix_keys.insert(i, fix.t_ns)
                self._fixes.insert(i, fix)
            _trim(self._fix_keys, self._fixes, FIX_BUFFER_NS, MAX_FIXES)
        return problem

    def add_heading(self, t_ns: int, yaw: float, stream: str) -> Problem | None:
        """Keep a heading sample (ENU rad) of ``stream`` (imu or odom); report a clock jump."""
        with self._lock:
            problem = self._check_clock(t_ns, stream)
            i = bisect.bisect_right(self._heading_keys, t_ns)
            self._heading_keys.insert(i, t_ns)
            self._heading_yaws.insert(i, yaw)
            _trim(self._heading_keys, self._heading_yaws, HEADING_BUFFER_NS, MAX_HEADINGS)
        return problem

    def remember_estimate(self, t_ns: int, heading: float) -> None:
        """Keep a published estimate's heading for ``heading_source`` previous."""
        with self._lock:
            self._previous = (t_ns, heading)

    def _check_clock(self, t_ns: int, stream: str) -> Problem | None:
        """Forget inputs from after a backward clock jump (call with the lock held).

        Each input stream is compared with itself: fixes may lead camera frames by seconds.
        """
        newest = self._newest_ns.get(stream)
        if newest is None or t_ns > newest:
            self._newest_ns[stream] = t_ns
            return None
        if t_ns >= newest - CLOCK_JUMP_NS:
            return None
        limit = t_ns + CLOCK_JUMP_NS
        n = bisect.bisect_right(self._fix_keys, limit)
        del self._fix_keys[n:], self._fixes[n:]
        n = bisect.bisect_right(self._heading_keys, limit)
        del self._heading_keys[n:], self._heading_yaws[n:]
        self._previous = None
        self._newest_ns = {k: min(v, limit) for k, v in self._newest_ns.items()}
        self._newest_ns[stream] = t_ns
        return Problem("clock_jump", f"{stream} stamp jumped back {(newest - t_ns) / 1e9:.1f} s;"
                                     " history reset")

    # -- queries -------------------------------------------------------------------------
    def fix_stamps(self) -> list[int]:
        """Return the stamps of the fixes kept, oldest first."""
        with self._lock:
            return list(self._fix_keys)

    def heading_stamps(self) -> list[int]:
        """Return the stamps of the heading samples kept, oldest first."""
        with self._lock:
            return list(self._heading_keys)

    def covers(self, t_ns: int, rules: PriorRules) -> bool:
        """Return whether a fix, and a heading sample where one is needed, reach ``t_ns``."""
        with self._lock:
            if not self._fix_keys or self._fix_keys[-1] < t_ns:
                return False
            if rules.needs_samples:
                return bool(self._heading_keys) and self._heading_keys[-1] >= t_ns
        return True

    def prior_at(self, t_ns: int, rules: PriorRules) -> tuple[Prior, Fix]:
        """Return the prior of an image at ``t_ns`` and the fix it was paired with.

        Raise :class:`FrameError` ``no_fix`` without a fix within ``max_fix_age_s``, and
        ``no_heading`` when the heading source has nothing usable for the stamp.
        """
        fix = self.fix_at(t_ns, rules.max_fix_age_s)
        if fix is None:
            raise FrameError("no_fix", "no valid fix within max_fix_age_s of the image")
        heading = self.heading_at(t_ns, fix.lat, fix.lon, rules)
        return Prior(fix.lat, fix.lon, heading, fix.cov_en), fix

    def fix_at(self, t_ns: int, max_age_s: float) -> Fix | None:
        """Return the fix at ``t_ns``: interpolated, or the nearest within ``max_age_s``."""
        max_age = int(float(max_age_s) * 1e9)
        with self._lock:
            i = bisect.bisect_left(self._fix_keys, t_ns)
            before = self._fixes[i - 1] if i > 0 else None
            after = self._fixes[i] if i < len(self._fixes) else None
        if after is not None and after.t_ns == t_ns:
            return after
        if before is not None and after is not None and t_ns - before.t_ns <= max_age \
                and after.t_ns - t_ns <= max_age:
            return _interpolate(before, after, t_ns)
        near = [f for f in (before, after) if f is not None and abs(f.t_ns - t_ns) <= max_age]
        return min(near, key=lambda f: abs(f.t_ns - t_ns)) if near else None

    def heading_at(self, t_ns: int, lat: float, lon: float, rules: PriorRules) -> float | None:
        """Return the heading (ENU rad) at ``t_ns``, or None for a search.

        (lat, lon) is the prior's position, for ``track``. Raise :class:`FrameError`
        ``no_heading`` when an imu, odom or track heading is wanted and there is none.
        """
        source = rules.heading_source
        max_age = int(float(rules.max_heading_age_s) * 1e9)
        if source == "none":
            return None
        if source == "previous":
            with self._lock:
                prev = self._previous
            # No recent estimate: search, as with 'none'.
            return prev[1] if prev is not None and abs(t_ns - prev[0]) <= max_age else None
        if source == "track":
            yaw = self._track(t_ns, lat, lon, rules)
        else:
            yaw = self._sampled_heading(t_ns, max_age)
        if yaw is None:
            raise FrameError("no_heading", f"no {source} heading within max_heading_age_s of "
                                           "the image")
        return yaw

    def _sampled_heading(self, t_ns: int, max_age: int) -> float | None:
        """Return the heading at ``t_ns`` between the samples around it, or the nearest one."""
        with self._lock:
            keys, yaws = self._heading_keys, self._heading_yaws
            i = bisect.bisect_left(keys, t_ns)
            before = (keys[i - 1], yaws[i - 1]) if i > 0 else None
            after = (keys[i], yaws[i]) if i < len(keys) else None
        if after is not None and after[0] == t_ns:
            return after[1]
        if before is not None and after is not None and t_ns - before[0] <= max_age \
                and after[0] - t_ns <= max_age:
            a = (t_ns - before[0]) / (after[0] - before[0])
            return wrap_angle(before[1] + a * wrap_angle(after[1] - before[1]))
        near = [h for h in (before, after) if h is not None and abs(h[0] - t_ns) <= max_age]
        return min(near, key=lambda h: abs(h[0] - t_ns))[1] if near else None

    def _track(self, t_ns: int, lat: float, lon: float, rules: PriorRules) -> float | None:
        """Return the course over ground from the newest older fix far enough away."""
        window = int(float(rules.track_window_s) * 1e9)
        with self._lock:
            fixes = [f for f in self._fixes if t_ns - window <= f.t_ns <= t_ns]
        for f in reversed(fixes):
            # Degrees per metre at the older fix, east and north.
            d_lat, d_lon = offset_latlon(f.lat, f.lon, 1.0, 1.0)
            east = (lon - f.lon) / (d_lon - f.lon)
            north = (lat - f.lat) / (d_lat - f.lat)
            if math.hypot(east, north) >= rules.track_min_distance_m:
                return math.atan2(north, east)
        return None


def _interpolate(before: Fix, after: Fix, t_ns: int) -> Fix:
    """Return the fix at ``t_ns`` between two; its source is the nearer one's message."""
    a = (t_ns - before.t_ns) / (after.t_ns - before.t_ns)
    # Longitudes interpolate the short way round, across +-180 deg as well.
    d_lon = (after.lon - before.lon + 180.0) % 360.0 - 180.0
    lon = (before.lon + a * d_lon + 180.0) % 360.0 - 180.0
    return Fix(t_ns, before.lat + a * (after.lat - before.lat), lon,
               np.maximum(before.cov_en, after.cov_en),
               before.source if a < 0.5 else after.source)


# sensor_msgs/NavSatStatus: NO_FIX is the only status refused (STATUS_UNKNOWN, -2 and newer
# distributions' default, is accepted).
STATUS_NO_FIX = -1


def fix_problem(status: int, lat: float, lon: float) -> str | None:
    """Return why a NavSatFix with this status and position is unusable, or None."""
    if status == STATUS_NO_FIX:
        return "fix_no_fix"
    if not (math.isfinite(lat) and math.isfinite(lon)):
        return "fix_nan"
    # Beyond Web Mercator's latitude limit there are no tiles to localize against.
    if not (-MAX_LATITUDE_DEG <= lat <= MAX_LATITUDE_DEG and -180.0 <= lon <= 180.0):
        return "fix_out_of_range"
    return None


def base_link_latlon(prior: Prior, mount: CameraMount) -> tuple[float, float]:
    """Return the lat/lon of ``base_link`` under ``prior``, whose position is the antenna's.

    The antenna sits at ``mount``'s (antenna_x_m, antenna_y_m) in ``base_link``, turned by
    the prior's heading: the place the localizer gives the prior of ``base_link`` (crop at the
    camera, then back by the camera's offset). Raise ValueError for a prior without a heading.
    """
    if prior.heading_rad is None:
        raise ValueError("a prior without a heading cannot be moved off the antenna")
    c, s = math.cos(prior.heading_rad), math.sin(prior.heading_rad)
    ax, ay = mount.antenna_x_m, mount.antenna_y_m
    return offset_latlon(prior.lat, prior.lon, -(c * ax - s * ay), -(s * ax + c * ay))
