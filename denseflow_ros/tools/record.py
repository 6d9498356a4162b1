# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``denseflow record --topics ... --out BAG``: record topics into a rosbag2 (no rosbag2 needed).

Each topic's type is taken from the ROS graph once a publisher appears; messages are stored
as received (serialized CDR) with their receive time as the bag timestamp, as ``ros2 bag
record`` does. Recording stops on Ctrl-C / SIGTERM, after ``--duration``, after
``--max-messages`` or when no message arrived for ``--idle-timeout`` seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from denseflow_ros.tools import replay_dds

LOG = logging.getLogger("denseflow.record")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``denseflow record`` options."""
    parser.add_argument("--topics", nargs="+", required=True, metavar="TOPIC",
                        help="topics to record")
    parser.add_argument("--out", type=Path, required=True, help="output rosbag2 directory")
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    add_stop_arguments(parser)
    replay_dds.add_dds_arguments(parser)


def add_stop_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options that end a recording."""
    parser.add_argument("--duration", type=float, default=0.0,
                        help="stop after this many seconds (0: no limit)")
    parser.add_argument("--max-messages", type=int, default=0,
                        help="stop after this many messages in all (0: no limit)")
    parser.add_argument("--idle-timeout", type=float, default=0.0,
                        help="stop when no message arrived for this many seconds after the "
                             "first (0: never)")
    parser.add_argument("--discovery-timeout", type=float, default=10.0,
                        help="seconds to wait for each topic's publisher to appear")
    parser.add_argument("--reliability", choices=("reliable", "best_effort"),
                        default="reliable",
                        help="subscription reliability (best_effort also takes best-effort "
                             "publishers)")


@dataclass(frozen=True)
class StopRules:
    """When a recording ends (besides its stop event) and how it subscribes.

    A zero ``duration_s``, ``max_messages`` or ``idle_timeout_s`` means no such limit.
    """

    duration_s: float = 0.0
    max_messages: int = 0
    idle_timeout_s: float = 0.0
    discovery_timeout_s: float = 10.0
    reliability: str = "reliable"

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> StopRules:
        """Return the rules of the options :func:`add_stop_arguments` added."""
        return cls(args.duration, args.max_messages, args.idle_timeout,
                   args.discovery_timeout, args.reliability)


@dataclass
class RecordSummary:
    """What a recording received: counts and types per topic, topics never published."""

    received: dict[str, int]
    types: dict[str, str]
    never_published: list[str]
    interrupted: bool


def record(
    topics: Sequence[str],
    on_message: Callable[[str, str, int, bytes], None],
    rules: StopRules,
    stop: threading.Event,
) -> RecordSummary:
    """Subscribe to ``topics`` (raw) and call ``on_message(topic, type, receive_ns, cdr)``.

    Runs until ``stop`` is set or one of ``rules`` ends it. rclpy must not be initialised.
    """
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    if any(not t.startswith("/") for t in topics):
        raise ValueError("topics must be absolute names starting with '/'")
    rclpy.init(args=None, signal_handler_options=SignalHandlerOptions.NO)
    counts = dict.fromkeys(topics, 0)
    types: dict[str, str] = {}
    state = {"last": 0.0, "total": 0}
    try:
        node = rclpy.create_node("denseflow_record")
        qos = replay_dds.qos_profile(rules.reliability, depth=100)

        def subscribe(topic: str, msg_type: str) -> None:
            def callback(data: bytes) -> None:
                on_message(topic, msg_type, time.time_ns(), data)
                counts[topic] += 1
                state["total"] += 1
                state["last"] = time.monotonic()

            node.create_subscription(replay_dds.message_class(msg_type), topic, callback, qos,
                                     raw=True)
            types[topic] = msg_type
            LOG.info("recording %s (%s)", topic, msg_type)

        start = time.monotonic()
        while not stop.is_set():
            now = time.monotonic()
            pending = [t for t in topics if t not in types]
            if pending and now - start <= rules.discovery_timeout_s:
                graph = dict(node.get_topic_names_and_types())
                for topic in pending:
                    if graph.get(topic):
                        subscribe(topic, graph[topic][0])
            elif pending and not types:
                raise ValueError(f"no publisher of {', '.join(pending)} appeared within "
                                 f"{rules.discovery_timeout_s:g} s")
            if rules.duration_s > 0 and now - start >= rules.duration_s:
                break
            if rules.max_messages > 0 and state["total"] >= rules.max_messages:
                break
            if (rules.idle_timeout_s > 0 and state["total"] > 0
                    and now - state["last"] >= rules.idle_timeout_s):
                break
            rclpy.spin_once(node, timeout_sec=0.05)
        node.destroy_node()
    finally:
        rclpy.try_shutdown()
    return RecordSummary(counts, types, [t for t in topics if t not in types], stop.is_set())


def install_stop_handlers() -> tuple[threading.Event, Callable[[], None]]:
    """Make SIGINT/SIGTERM set a stop event; return it and a function restoring the handlers."""
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    old_int = signal.signal(signal.SIGINT, on_signal)
    old_term = signal.signal(signal.SIGTERM, on_signal)

    def restore() -> None:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)

    return stop, restore


def main(args: argparse.Namespace) -> int:
    """Record until stopped and print a JSON summary.

    When a message cannot be written (a full disk, for instance) recording stops and the
    messages written before it are kept: in ``--out`` when the bag can still be finished,
    else in ``<out>.partial``. The exit status is then 1.
    """
    from denseflow_ros.bagio import BagError, BagWriter

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    LOG.info("DDS: %s", replay_dds.apply_env(args.dds, args.domain_id))
    stop, restore = install_stop_handlers()
    failures: list[str] = []

    def write(bag: BagWriter, topic: str, msg_type: str, stamp_ns: int, data: bytes) -> None:
        if failures:
            return
        try:
            bag.write(topic, msg_type, stamp_ns, data)
        except Exception as err:  # noqa: BLE001 - OSError, sqlite3 and mcap errors alike
            failures.append(f"writing {topic} failed ({err}); recording stopped")
            stop.set()

    try:
        with BagWriter(args.out, args.storage, overwrite=args.overwrite,
                       metadata={"recorded_by": "denseflow record"}) as bag:
            result = record(args.topics, lambda *m: write(bag, *m), StopRules.from_args(args),
                            stop)
    except (ValueError, BagError, OSError) as err:
        print(f"denseflow record: {'; '.join([*failures, str(err)])}", file=sys.stderr)
        return 1
    finally:
        restore()
    summary = dataclasses.asdict(result)
    summary["interrupted"] = result.interrupted and not failures
    summary["bag"] = str(args.out)
    summary["written"] = dict(bag.counts)
    print(json.dumps(summary, indent=2))
    if failures:
        print(f"denseflow record: {failures[0]}; the bag holds the messages before it",
              file=sys.stderr)
        return 1
    return 0
