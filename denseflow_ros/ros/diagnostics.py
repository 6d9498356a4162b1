# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Counters, latency statistics and the /diagnostics message of the localizer node.

The status level follows what the node did recently, not what it once did: ERROR after an
internal error or a failed lifecycle transition, or when none of the recent frames was
localized; WARN when most recent frames were rejected, when images stopped arriving or
before the first pose; OK otherwise.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, deque
from typing import Any

import numpy as np

OK, WARN, ERROR = 0, 1, 2
RECENT_S = 10.0  # frames within this many seconds decide the status level
_MAX_PROBLEM_CHARS = 200


class Stats:
    """Thread-safe frame counters, rejection reasons and a window of latencies."""

    def __init__(self, window: int = 200) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self._latency_ms: deque[float] = deque(maxlen=window)
        self._inference_ms: deque[float] = deque(maxlen=window)
        self._published: deque[float] = deque(maxlen=window)
        self._frames: deque[tuple[float, str]] = deque(maxlen=1000)
        self._last_image = -math.inf
        self.coverage = float("nan")
        self.last_problem = ""
        self.failure = ""
        self._last_log: dict[str, float] = {}

    def count(self, key: str, n: int = 1) -> None:
        """Add ``n`` to counter ``key``."""
        with self._lock:
            self.counts[key] += n

    def image_received(self) -> None:
        """Count an arriving image."""
        with self._lock:
            self.counts["received_images"] += 1
            self._last_image = time.monotonic()

    def reject(self, reason: str, message: str, frame: bool = False) -> None:
        """Count a frame (``frame``) or a message that could not be used, with its reason."""
        with self._lock:
            self.rejected[reason] += 1
            self.last_problem = f"{reason}: {message}"[:_MAX_PROBLEM_CHARS]
            if frame:
                self._frames.append((time.monotonic(), reason))

    def health(self) -> tuple[int, str]:
        """Return the status level (OK, WARN, ERROR) and its reason, from recent frames."""
        now = time.monotonic()
        with self._lock:
            if self.failure:
                return ERROR, self.failure
            if self.counts["received_images"] == 0:
                return WARN, "no images received"
            recent = Counter(outcome for t, outcome in self._frames if now - t <= RECENT_S)
            accepted = self.counts["accepted"]
            idle = now - self._last_image > RECENT_S
        n = sum(recent.values())
        good = recent.pop("accepted", 0)
        worst = f" (mostly {recent.most_common(1)[0][0]})" if recent else ""
        if recent["internal_error"]:
            return ERROR, (f"{recent['internal_error']} internal errors in the last "
                           f"{RECENT_S:g} s")
        if n >= 3 and good == 0:
            return ERROR, f"none of the last {n} frames localized{worst}"
        if idle:
            return WARN, f"no images in the last {RECENT_S:g} s"
        if n - good > good:
            return WARN, f"{n - good} of the last {n} frames rejected{worst}"
        if accepted == 0:
            return WARN, "no pose accepted yet"
        return OK, "localizing"

    def should_log(self, reason: str, period_s: float) -> bool:
        """Return whether a problem of this kind may be logged now (per-reason throttle)."""
        now = time.monotonic()
        with self._lock:
            last = self._last_log.get(reason)
            if last is not None and now - last < period_s:
                return False
            self._last_log[reason] = now
            return True

    def published(self, latency_ms: float, inference_ms: float, coverage: float) -> None:
        """Record one published pose."""
        with self._lock:
            self.counts["accepted"] += 1
            self._frames.append((time.monotonic(), "accepted"))
            self._latency_ms.append(latency_ms)
            self._inference_ms.append(inference_ms)
            self._published.append(time.monotonic())
            self.coverage = coverage

    def latencies_ms(self) -> list[float]:
        """Return the recent per-frame latencies (arrival to publication), ms."""
        with self._lock:
            return list(self._latency_ms)

    def snapshot(self) -> dict[str, str]:
        """Return the current numbers as diagnostic key/value strings."""
        with self._lock:
            lat = np.asarray(self._latency_ms)
            inf = np.asarray(self._inference_ms)
            now = time.monotonic()
            recent = [t for t in self._published if now - t <= 5.0]
            rate = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 and \
                recent[-1] > recent[0] else 0.0
            values = {
                "rate_hz": f"{rate:.2f}",
                "latency_ms_mean": f"{lat.mean():.1f}" if lat.size else "nan",
                "latency_ms_median": f"{np.median(lat):.1f}" if lat.size else "nan",
                "latency_ms_max": f"{lat.max():.1f}" if lat.size else "nan",
                "inference_ms_median": f"{np.median(inf):.1f}" if inf.size else "nan",
                "tile_coverage": f"{self.coverage:.3f}",
                "rejected": str(sum(self.rejected.values())),
                "last_problem": self.last_problem,
            }
            for key, n in sorted(self.counts.items()):
                values[key] = str(n)
            for key, n in sorted(self.rejected.items()):
                values[f"rejected_{key}"] = str(n)
            return values


def diagnostic_array(stamp: Any, name: str, hardware_id: str, state: str,
                     values: dict[str, str], health: tuple[int, str]) -> Any:
    """Build the node's DiagnosticArray; ``health`` is :meth:`Stats.health` while active."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

    status = DiagnosticStatus(name=name, hardware_id=hardware_id)
    level, message = health
    if state != "active" and level != ERROR:
        level, message = WARN, f"node is {state}"
    status.level = (DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR)[level]
    status.message = message
    status.values = [KeyValue(key=k, value=v) for k, v in {"state": state, **values}.items()]
    msg = DiagnosticArray()
    msg.header.stamp = stamp
    msg.status = [status]
    return msg
