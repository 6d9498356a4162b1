# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The node's fix history stays bounded, pairs across +-180 deg, and cleanup frees the model.

These drive one node object in this process through its subscription callbacks (thousands of
messages, exact buffer contents); the buffer alone is tested in test_prior.py and the DDS
behaviour in test_hardening_node.py.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_node_support import LAT0, LON0, Oracle, write_tile_cache

rclpy = pytest.importorskip("rclpy")

from denseflow_ros.prior import MAX_FIXES  # noqa: E402
from denseflow_ros.ros.node import LocalizerNode  # noqa: E402


@pytest.fixture
def node(tmp_path: Path, ros_domain: int) -> Iterator[LocalizerNode]:
    from rclpy.parameter import Parameter

    context = rclpy.context.Context()
    rclpy.init(context=context, domain_id=ros_domain)
    overrides = [Parameter("tile_cache", value=str(write_tile_cache(tmp_path / "xyz",
                                                                  radius_m=50.0))),
                 Parameter("datum", value=[LAT0, LON0]), Parameter("autostart", value=False),
                 Parameter("preset", value="lite"), Parameter("warmup_runs", value=0)]
    n = LocalizerNode(model_factory=lambda preset, device: Oracle({}), context=context,
                      parameter_overrides=overrides, start_parameter_services=False)
    yield n
    n.destroy_node()
    rclpy.shutdown(context=context)


def _fix(t_ns: int, lat: float = LAT0, lon: float = LON0) -> object:
    from sensor_msgs.msg import NavSatFix

    msg = NavSatFix(latitude=lat, longitude=lon)
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(t_ns, 1_000_000_000)
    return msg


def test_fix_history_is_bounded_by_count_and_age(node: LocalizerNode) -> None:
    t0 = 1_000 * 10**9
    for _ in range(20_000):  # a receiver whose stamp is stuck
        node._on_fix(_fix(t0))
    assert node._priors.fix_stamps() == [t0]
    for i in range(20_000):  # a flood at 1 kHz, 20 s
        node._on_fix(_fix(t0 + (i + 1) * 10**6))
    stamps = node._priors.fix_stamps()
    assert len(stamps) == MAX_FIXES and stamps == sorted(stamps)
    assert stamps[-1] == t0 + 20_000 * 10**6
    node._on_fix(_fix(t0 + 300 * 10**9))  # five minutes on: older fixes age out
    assert node._priors.fix_stamps() == [t0 + 300 * 10**9]
    assert node.stats.rejected["clock_jump"] == 0


def test_fix_far_ahead_is_dropped_without_trimming_history(node: LocalizerNode) -> None:
    t0 = 1_000 * 10**9
    node._priors.note_image(t0)
    for i in range(5):
        node._on_fix(_fix(t0 + i * 10**8))
    node._on_fix(_fix(t0 + 3600 * 10**9))
    assert node.stats.rejected["fix_future"] == 1 and len(node._priors.fix_stamps()) == 5
    node._on_fix(_fix(t0 + 5 * 10**8))
    assert node.stats.rejected["clock_jump"] == 0 and len(node._priors.fix_stamps()) == 6
    node._on_fix(_fix(t0 - 5 * 10**9))  # the fix stream jumps back: counted, history reset
    assert node.stats.rejected["clock_jump"] == 1
    assert node._priors.fix_stamps() == [t0 - 5 * 10**9]


def test_fixes_interpolate_across_the_antimeridian(node: LocalizerNode) -> None:
    t0 = 1_000 * 10**9
    node._on_fix(_fix(t0, 0.0, 179.9999))
    node._on_fix(_fix(t0 + 2 * 10**8, 0.0, -179.9999))
    fix = node._priors.fix_at(t0 + 10**8, 0.5)
    assert fix.lat == 0.0 and abs(fix.lon) == pytest.approx(180.0, abs=1e-9)
    fix = node._priors.fix_at(t0 + 5 * 10**7, 0.5)
    assert fix.lon == pytest.approx(179.99995, abs=1e-9)
    assert math.isfinite(fix.lat) and fix.source.longitude == 179.9999


def test_cleanup_closes_the_tile_cache_and_drops_the_model(node: LocalizerNode) -> None:
    from rclpy.lifecycle import TransitionCallbackReturn

    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    loc = node.localizer
    closed: list[bool] = []
    close = loc.cache.close
    loc.cache.close = lambda: (closed.append(True), close())[1]
    assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
    assert closed == [True]
    assert node.localizer is None and loc.model is None and loc.cache is None
    # Configured again, it works with a fresh model and cache.
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.localizer is not None and node.localizer.model is not None
