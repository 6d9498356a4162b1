# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``record`` and ``play`` as functions: a ``threading.Event`` ends them from any thread."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from denseflow_ros import bagio
from denseflow_ros.dds import loopback_env
from denseflow_ros.tools.record import RecordSummary, StopRules, record
from denseflow_ros.tools.replay import PlayOptions, PlaySummary, play

pytest.importorskip("rclpy")

T0 = 1_700_000_000_000_000_000
# Longer than any test may run: only the stop event can end the wait between messages.
GAP_NS = 3_600 * 1_000_000_000
PUBLISHER = """
import rclpy
from std_msgs.msg import String

rclpy.init()
node = rclpy.create_node("stop_source")
pub = node.create_publisher(String, "/chatter", 100)
node.create_timer(0.02, lambda: pub.publish(String(data="x")))
rclpy.spin(node)
"""


@pytest.fixture
def own_domain(ros_domain: int, monkeypatch: pytest.MonkeyPatch) -> int:
    """Put this process's DDS on the test's own loopback domain (restored afterwards)."""
    for key, value in loopback_env(ros_domain).items():
        monkeypatch.setenv(key, value)
    return ros_domain


def _in_thread(target: Any, *args: Any) -> tuple[threading.Thread, list[Any]]:
    """Start ``target(*args)`` on a thread; its return value or exception lands in the list."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(target(*args))
        except BaseException as exc:  # noqa: BLE001 - checked by the test
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def test_stop_event_ends_playback_while_it_waits_for_the_next_message(
        tmp_path: Path, own_domain: int, monkeypatch: pytest.MonkeyPatch) -> None:
    bag = tmp_path / "bag"
    with bagio.BagWriter(bag) as writer:
        for k in range(2):
            t = T0 + k * GAP_NS
            writer.write("/pose", "geometry_msgs/msg/PoseStamped", t,
                         bagio.pose_stamped_msg(t, "map", (0.0, 0.0, 0.0)))
    first_published = threading.Event()
    real_iter = bagio.iter_messages

    def iter_marking_the_first(*args: Any, **kwargs: Any) -> Iterator[Any]:
        for n, item in enumerate(real_iter(*args, **kwargs)):
            if n == 1:  # the player asks for the second message once it sent the first
                first_published.set()
            yield item

    monkeypatch.setattr(bagio, "iter_messages", iter_marking_the_first)
    stop = threading.Event()
    thread, out = _in_thread(play, bag, PlayOptions(delay_s=0.0), stop)
    assert first_published.wait(60.0), out
    stop.set()
    thread.join(60.0)
    assert not thread.is_alive()
    summary, = out
    assert isinstance(summary, PlaySummary), summary
    assert summary.published == {"/pose": 1}
    assert summary.interrupted and summary.wall_s < 60.0


def test_stop_event_ends_a_recording_still_waiting_for_its_publisher(own_domain: int) -> None:
    stop = threading.Event()
    rules = StopRules(discovery_timeout_s=3_600.0)
    thread, out = _in_thread(record, ["/nobody"], lambda *m: None, rules, stop)
    stop.set()
    thread.join(60.0)
    assert not thread.is_alive()
    summary, = out
    assert isinstance(summary, RecordSummary), summary
    assert summary.interrupted and summary.never_published == ["/nobody"]
    assert summary.received == {"/nobody": 0}


def test_stop_event_set_by_a_message_ends_the_recording_after_it(own_domain: int) -> None:
    stop = threading.Event()
    seen: list[str] = []

    def on_message(topic: str, msg_type: str, receive_ns: int, data: bytes) -> None:
        seen.append(topic)
        stop.set()

    source = subprocess.Popen([sys.executable, "-c", PUBLISHER],
                              env=loopback_env(own_domain))
    try:
        summary = record(["/chatter"], on_message, StopRules(discovery_timeout_s=60.0), stop)
    finally:
        source.terminate()
        source.wait(timeout=30)
    assert seen == ["/chatter"]
    assert summary.received == {"/chatter": 1} and summary.interrupted
    assert summary.types == {"/chatter": "std_msgs/msg/String"}
