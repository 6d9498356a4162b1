# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The prior buffer without ROS: gaps, stamp order, interpolation, heading sources, clock jumps."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_node_support import LAT0, LON0, move

from denseflow_ros.localizer import FrameError
from denseflow_ros.prior import (
    CLOCK_JUMP_NS,
    MAX_FIX_LEAD_NS,
    MAX_FIXES,
    MAX_HEADINGS,
    Fix,
    PriorBuffer,
    PriorRules,
)

T0 = 1_000 * 10**9
MS = 10**6
S = 10**9


def rules(source: str = "none", **kw: float) -> PriorRules:
    values = dict(max_fix_age_s=0.5, max_heading_age_s=0.5, track_window_s=5.0,
                  track_min_distance_m=2.0)
    values.update(kw)
    return PriorRules(heading_source=source, **values)


def fix(t_ns: int, lat: float = LAT0, lon: float = LON0, std: float = 1.0,
        source: object = None) -> Fix:
    return Fix(t_ns, lat, lon, np.eye(2) * std ** 2, source)


# -- fixes ----------------------------------------------------------------------------------
def test_history_is_bounded_by_count_and_age() -> None:
    buf = PriorBuffer()
    for _ in range(20_000):  # a receiver whose stamp is stuck
        buf.add_fix(fix(T0))
    assert buf.fix_stamps() == [T0]
    for i in range(20_000):  # a flood at 1 kHz, 20 s
        buf.add_fix(fix(T0 + (i + 1) * MS))
    stamps = buf.fix_stamps()
    assert len(stamps) == MAX_FIXES and stamps == sorted(stamps)
    assert stamps[-1] == T0 + 20_000 * MS
    buf.add_fix(fix(T0 + 300 * S))  # five minutes on: older fixes age out
    assert buf.fix_stamps() == [T0 + 300 * S]


def test_heading_history_is_bounded_by_count_and_age() -> None:
    buf = PriorBuffer()
    for i in range(MAX_HEADINGS + 100):  # 2 kHz
        buf.add_heading(T0 + i * MS // 2, 0.1, "imu")
    stamps = buf.heading_stamps()
    assert len(stamps) == MAX_HEADINGS and stamps[-1] == T0 + (MAX_HEADINGS + 99) * MS // 2
    buf.add_heading(T0 + 60 * S, 0.2, "imu")
    assert buf.heading_stamps() == [T0 + 60 * S]


def test_out_of_order_fixes_are_kept_in_stamp_order_and_a_repeat_replaces() -> None:
    buf = PriorBuffer()
    for k in (3, 0, 4, 1, 2):  # up to 400 ms late: not a clock jump
        assert buf.add_fix(fix(T0 + k * 100 * MS, source=k)) is None
    assert buf.fix_stamps() == [T0 + k * 100 * MS for k in range(5)]
    buf.add_fix(fix(T0 + 200 * MS, lat=LAT0 + 1e-4, source="again"))
    assert len(buf.fix_stamps()) == 5
    assert buf.fix_at(T0 + 200 * MS, 0.5).source == "again"


def test_fix_far_ahead_is_dropped_without_trimming_history() -> None:
    buf = PriorBuffer()
    assert buf.note_image(T0) is None
    for i in range(5):
        buf.add_fix(fix(T0 + i * 100 * MS))
    problem = buf.add_fix(fix(T0 + 3600 * S))
    assert problem.reason == "fix_future" and "3600.0 s ahead" in problem.message
    assert len(buf.fix_stamps()) == 5
    assert buf.add_fix(fix(T0 + 500 * MS)) is None and len(buf.fix_stamps()) == 6


def test_fix_lead_before_any_image_is_measured_from_the_clock() -> None:
    buf = PriorBuffer()
    assert buf.add_fix(fix(T0 + MAX_FIX_LEAD_NS + S), now_ns=T0).reason == "fix_future"
    assert buf.add_fix(fix(T0 + MAX_FIX_LEAD_NS + S)) is None  # no clock: nothing to judge by


def test_gaps_pair_with_the_nearest_fix_within_max_age_or_none() -> None:
    buf = PriorBuffer()
    buf.add_fix(fix(T0, source="a"))
    buf.add_fix(fix(T0 + 2 * S, lat=LAT0 + 1e-3, source="b"))
    # 0.3 s after one fix and 1.7 s before the next: that one fix, not an interpolation.
    near = buf.fix_at(T0 + 300 * MS, 0.5)
    assert near.source == "a" and near.lat == LAT0
    assert buf.fix_at(T0 + 1700 * MS, 0.5).source == "b"
    assert buf.fix_at(T0 + S, 0.5) is None  # in the middle of the gap
    assert buf.fix_at(T0 + S, 1.0) is not None  # a wider max age bridges it
    assert buf.fix_at(T0 - 600 * MS, 0.5) is None and buf.fix_at(T0 + 3 * S, 0.5) is None
    with pytest.raises(FrameError) as err:
        buf.prior_at(T0 + S, rules())
    assert err.value.reason == "no_fix"


def test_fixes_interpolate_position_covariance_and_source() -> None:
    buf = PriorBuffer()
    a = move(LAT0, LON0, 0.0, 0.0)
    b = move(LAT0, LON0, 8.0, -4.0)
    buf.add_fix(Fix(T0, *a, np.diag([1.0, 9.0]), "a"))
    buf.add_fix(Fix(T0 + 400 * MS, *b, np.diag([4.0, 2.0]), "b"))
    f = buf.fix_at(T0 + 100 * MS, 0.5)
    assert f.lat == pytest.approx(a[0] + 0.25 * (b[0] - a[0]), abs=1e-12)
    assert f.lon == pytest.approx(a[1] + 0.25 * (b[1] - a[1]), abs=1e-12)
    assert np.array_equal(f.cov_en, np.diag([4.0, 9.0])) and f.source == "a"
    assert buf.fix_at(T0 + 300 * MS, 0.5).source == "b"
    exact = buf.fix_at(T0 + 400 * MS, 0.5)
    assert (exact.lat, exact.lon, exact.source) == (b[0], b[1], "b")


def test_fixes_interpolate_across_the_antimeridian() -> None:
    buf = PriorBuffer()
    buf.add_fix(fix(T0, 0.0, 179.9999))
    buf.add_fix(fix(T0 + 200 * MS, 0.0, -179.9999))
    f = buf.fix_at(T0 + 100 * MS, 0.5)
    assert f.lat == 0.0 and abs(f.lon) == pytest.approx(180.0, abs=1e-9)
    f = buf.fix_at(T0 + 50 * MS, 0.5)
    assert f.lon == pytest.approx(179.99995, abs=1e-9)


def test_covers_waits_for_the_fix_and_the_heading_sample_after_the_image() -> None:
    buf = PriorBuffer()
    assert not buf.covers(T0, rules("imu"))
    buf.add_fix(fix(T0 + 10 * MS))
    assert buf.covers(T0, rules("track")) and buf.covers(T0, rules("none"))
    assert not buf.covers(T0, rules("imu"))
    buf.add_heading(T0 - MS, 0.0, "imu")
    assert not buf.covers(T0, rules("imu"))
    buf.add_heading(T0 + MS, 0.0, "imu")
    assert buf.covers(T0, rules("imu")) and not buf.covers(T0 + 20 * MS, rules("none"))


# -- headings -------------------------------------------------------------------------------
@pytest.mark.parametrize("stream", ["imu", "odom"])
def test_sampled_heading_interpolates_the_short_way_round(stream: str) -> None:
    buf = PriorBuffer()
    buf.add_fix(fix(T0))
    buf.add_heading(T0 - 100 * MS, math.radians(170.0), stream)
    buf.add_heading(T0 + 100 * MS, math.radians(-170.0), stream)
    prior, _ = buf.prior_at(T0, rules(stream))
    assert abs(prior.heading_rad) == pytest.approx(math.pi, abs=1e-9)
    prior, _ = buf.prior_at(T0 - 50 * MS, rules(stream))
    assert math.degrees(prior.heading_rad) == pytest.approx(175.0, abs=1e-9)
    # One side only: the nearest sample within max_heading_age_s, else no heading.
    assert buf.heading_at(T0 + 400 * MS, LAT0, LON0, rules(stream)) == \
        pytest.approx(math.radians(-170.0))
    with pytest.raises(FrameError) as err:
        buf.heading_at(T0 + 700 * MS, LAT0, LON0, rules(stream))
    assert err.value.reason == "no_heading" and stream in str(err.value)


def test_track_heading_is_the_course_from_an_older_fix_far_enough_away() -> None:
    buf = PriorBuffer()
    course = math.radians(30.0)
    for i in range(6):  # 1 m per 100 ms along the course
        buf.add_fix(fix(T0 + i * 100 * MS, *move(LAT0, LON0, i * math.cos(course),
                                                 i * math.sin(course))))
    prior, _ = buf.prior_at(T0 + 500 * MS, rules("track"))
    assert prior.heading_rad == pytest.approx(course, abs=1e-3)
    # 5 m travelled: more than that is asked for, or the window holds too little of it.
    with pytest.raises(FrameError) as err:
        buf.prior_at(T0 + 500 * MS, rules("track", track_min_distance_m=6.0))
    assert err.value.reason == "no_heading"
    with pytest.raises(FrameError):
        buf.prior_at(T0 + 500 * MS, rules("track", track_window_s=0.15))


def test_previous_heading_is_reused_while_recent_and_none_searches() -> None:
    buf = PriorBuffer()
    buf.add_fix(fix(T0))
    assert buf.prior_at(T0, rules("previous"))[0].heading_rad is None
    buf.remember_estimate(T0 - 200 * MS, 1.25)
    assert buf.prior_at(T0, rules("previous"))[0].heading_rad == 1.25
    assert buf.heading_at(T0 + 400 * MS, LAT0, LON0, rules("previous")) is None  # stale
    buf.add_heading(T0, 0.5, "imu")
    assert buf.prior_at(T0, rules("none"))[0].heading_rad is None


def test_prior_carries_the_fix_position_covariance_and_source() -> None:
    buf = PriorBuffer()
    buf.add_fix(fix(T0, std=3.0, source="msg"))
    buf.add_heading(T0, -0.5, "imu")
    prior, paired = buf.prior_at(T0, rules("imu"))
    assert (prior.lat, prior.lon, prior.heading_rad) == (LAT0, LON0, -0.5)
    assert np.array_equal(prior.position_cov_en, np.eye(2) * 9.0) and paired.source == "msg"


def test_unknown_heading_source_is_refused() -> None:
    with pytest.raises(ValueError, match="heading_source"):
        rules("gps")


# -- clock jumps ----------------------------------------------------------------------------
def test_clock_jump_forgets_the_history_after_it() -> None:
    buf = PriorBuffer()
    for i in range(30):
        buf.add_fix(fix(T0 + i * 100 * MS))
        buf.add_heading(T0 + i * 100 * MS, 0.3, "imu")
    buf.note_image(T0 + 2900 * MS)
    buf.remember_estimate(T0 + 2900 * MS, 0.3)
    # The bag restarts: the image stream jumps back 2.9 s.
    problem = buf.note_image(T0)
    assert problem.reason == "clock_jump" and "image stamp jumped back 2.9 s" in problem.message
    kept = [T0 + i * 100 * MS for i in range(11)]  # up to one CLOCK_JUMP_NS past the jump
    assert buf.fix_stamps() == kept and buf.heading_stamps() == kept
    assert buf.heading_at(T0 + 2900 * MS, LAT0, LON0, rules("previous")) is None
    # The other streams' newest stamps moved back too: their next samples are no jump.
    assert buf.add_fix(fix(T0 + 200 * MS)) is None
    assert buf.add_heading(T0 + 200 * MS, 0.3, "imu") is None


def test_each_stream_is_judged_against_itself() -> None:
    buf = PriorBuffer()
    buf.add_fix(fix(T0 + 5 * S))  # fixes may lead images by seconds
    assert buf.note_image(T0) is None
    assert buf.add_heading(T0, 0.0, "imu") is None
    assert buf.add_fix(fix(T0 + 5 * S - CLOCK_JUMP_NS)) is None  # exactly the limit: no jump
    assert buf.add_fix(fix(T0 + 5 * S - CLOCK_JUMP_NS - 1)).reason == "clock_jump"
    assert buf.add_heading(T0 - 2 * S, 0.0, "odom") is None  # a new stream has no history
