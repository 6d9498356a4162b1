# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Counters, latency statistics and the /diagnostics message of the localizer node."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from typing import Any

import numpy as np


class Stats:
    """Thread-safe frame counters, rejection reasons and a window of latencies."""

    def __init__(self, window: int = 200) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self._latency_ms: deque[float] = deque(maxlen=window)
        self._inference_ms: deque[float] = deque(maxlen=window)
        self._published: deque[float] = deque(maxlen=window)
        self.coverage = float("nan")
        self.last_problem = ""
        self._last_log: dict[str, float] = {}

    def count(self, key: str, n: int = 1) -> None:
        """Add ``n`` to counter ``key``."""
        with self._lock:
            self.counts[key] += n

    def reject(self, reason: str, message: str) -> None:
        """Count a frame or message that could not be used, with its reason."""
        with self._lock:
            self.rejected[reason] += 1
            self.last_problem = f"{reason}: {message}"

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
                     values: dict[str, str]) -> Any:
    """Build the node's DiagnosticArray: OK when active and publishing, WARN otherwise."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

    status = DiagnosticStatus(name=name, hardware_id=hardware_id)
    accepted = int(values.get("accepted", "0"))
    if state != "active":
        status.level, status.message = DiagnosticStatus.WARN, f"node is {state}"
    elif int(values.get("received_images", "0")) == 0:
        status.level, status.message = DiagnosticStatus.WARN, "no images received"
    elif accepted == 0:
        status.level, status.message = DiagnosticStatus.WARN, "no pose accepted yet"
    else:
        status.level, status.message = DiagnosticStatus.OK, "localizing"
    status.values = [KeyValue(key=k, value=v) for k, v in {"state": state, **values}.items()]
    msg = DiagnosticArray()
    msg.header.stamp = stamp
    msg.status = [status]
    return msg
