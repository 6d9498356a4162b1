# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``denseflow replay BAG``: publish a rosbag2 over DDS with its original timing.

For machines without rosbag2 (the PyPI rclpy wheels); on a ROS distribution ``ros2 bag play``
does the same job. Messages are published as the bag stores them (serialized CDR), so their
header stamps are the recorded sensor times; ``--clock`` also publishes ``/clock`` with the
bag's time, for nodes run with ``use_sim_time``. A topic whose message type is not installed
for rclpy is skipped and reported.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from denseflow_ros.tools import replay_dds

LOG = logging.getLogger("denseflow.replay")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``denseflow replay`` options."""
    parser.add_argument("bag", type=Path, help="rosbag2 directory (mcap or sqlite3)")
    parser.add_argument("--rate", type=float, default=1.0,
                        help="playback speed factor (2 = twice as fast)")
    parser.add_argument("--topics", nargs="+", default=None, metavar="TOPIC",
                        help="only these topics (default: all)")
    parser.add_argument("--clock", action="store_true",
                        help="publish /clock (rosgraph_msgs/Clock) with the bag's time")
    parser.add_argument("--clock-hz", type=float, default=40.0,
                        help="/clock rate between messages (Hz)")
    parser.add_argument("--delay", type=float, default=0.5,
                        help="seconds to wait after creating the publishers (discovery)")
    parser.add_argument("--wait-for-subscribers", type=float, default=0.0, metavar="SECONDS",
                        help="wait up to SECONDS until every topic has a subscriber")
    parser.add_argument("--reliability", choices=("reliable", "best_effort"),
                        default="reliable", help="publisher reliability (default reliable, "
                                                 "like ros2 bag play)")
    parser.add_argument("--start-offset", type=float, default=0.0,
                        help="skip this many seconds at the start of the bag")
    replay_dds.add_dds_arguments(parser)


class _Player:
    """Publishers for a bag's topics and the pacing of their messages."""

    def __init__(self, node: Any, topics: dict[str, str], reliability: str,
                 clock: bool) -> None:
        self.node = node
        self.publishers: dict[str, Any] = {}
        self.skipped: dict[str, str] = {}
        qos = replay_dds.qos_profile(reliability)
        for topic, msg_type in sorted(topics.items()):
            try:
                cls = replay_dds.message_class(msg_type)
            except ValueError as err:
                self.skipped[topic] = str(err)
                LOG.warning("skipping %s: %s", topic, err)
                continue
            self.publishers[topic] = node.create_publisher(cls, topic, qos)
        self.clock_pub = None
        if clock:
            from rosgraph_msgs.msg import Clock

            self.clock_pub = node.create_publisher(Clock, "/clock", replay_dds.qos_profile(
                "reliable", depth=10))

    def publish_clock(self, bag_ns: int) -> None:
        """Publish ``/clock`` at bag time ``bag_ns`` (when enabled)."""
        if self.clock_pub is None:
            return
        from rosgraph_msgs.msg import Clock

        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = divmod(int(bag_ns), 1_000_000_000)
        self.clock_pub.publish(msg)

    def wait_for_subscribers(self, timeout_s: float) -> list[str]:
        """Wait until each publisher has a subscriber; return the topics still without."""
        deadline = time.monotonic() + timeout_s
        while True:
            lonely = [t for t, p in self.publishers.items() if p.get_subscription_count() == 0]
            if not lonely or time.monotonic() >= deadline:
                return lonely
            time.sleep(0.05)


@dataclass(frozen=True)
class PlayOptions:
    """How a bag is played: speed, topics (None: all), /clock, discovery waits, QoS."""

    rate: float = 1.0
    topics: list[str] | None = None
    clock: bool = False
    clock_hz: float = 40.0
    delay_s: float = 0.5
    wait_for_subscribers_s: float = 0.0
    reliability: str = "reliable"
    start_offset_s: float = 0.0

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> PlayOptions:
        """Return the options of a ``denseflow replay`` command line."""
        return cls(args.rate, args.topics, args.clock, args.clock_hz, args.delay,
                   args.wait_for_subscribers, args.reliability, args.start_offset)


@dataclass
class PlaySummary:
    """What a playback published, skipped and how long it took (wall seconds)."""

    bag: str
    published: dict[str, int]
    skipped_topics: dict[str, str] = field(default_factory=dict)
    topics_without_subscribers: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    interrupted: bool = False


def _topic_types(bag: Path, wanted: list[str] | None) -> dict[str, str]:
    """Return {topic: type} of the bag's ``wanted`` topics (None: all of them)."""
    from denseflow_ros import bagio

    available = bagio.bag_topics(bag)
    wanted = list(available) if wanted is None else wanted
    missing = [t for t in wanted if t not in available]
    if missing:
        raise ValueError(f"{bag} has no topic {', '.join(missing)}")
    return {t: available[t][0] for t in wanted}


def play(bag: Path, options: PlayOptions, stop: threading.Event) -> PlaySummary:
    """Publish the bag with its timing; setting ``stop`` ends playback at once."""
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    from denseflow_ros import bagio

    if not options.rate > 0:
        raise ValueError(f"--rate must be > 0, got {options.rate}")
    topics = _topic_types(bag, options.topics)
    # The tool's own SIGINT/SIGTERM handlers end playback cleanly; rclpy's would shut the
    # context down under a publish call.
    rclpy.init(args=None, signal_handler_options=SignalHandlerOptions.NO)
    try:
        node = rclpy.create_node("denseflow_replay")
        player = _Player(node, topics, options.reliability, options.clock)
        stop.wait(max(0.0, options.delay_s))
        lonely = player.wait_for_subscribers(options.wait_for_subscribers_s) \
            if options.wait_for_subscribers_s > 0 else []
        summary = PlaySummary(str(bag), dict.fromkeys(player.publishers, 0), player.skipped,
                              lonely)
        first_ns: int | None = None
        start_wall = 0.0
        rate = options.rate
        clock_period = 1.0 / options.clock_hz if options.clock_hz > 0 else float("inf")
        for item in bagio.iter_messages(bag, list(player.publishers), raw=True):
            if stop.is_set():
                break
            if first_ns is None:
                first_ns = item.stamp_ns + int(options.start_offset_s * 1e9)
                start_wall = time.monotonic()
            if item.stamp_ns < first_ns:
                continue
            target = start_wall + (item.stamp_ns - first_ns) * 1e-9 / rate
            while not stop.is_set():
                now = time.monotonic()
                if now >= target:
                    break
                player.publish_clock(first_ns + int((now - start_wall) * rate * 1e9))
                stop.wait(min(target - now, clock_period))
            if stop.is_set():
                break
            player.publish_clock(item.stamp_ns)
            player.publishers[item.topic].publish(item.msg)
            summary.published[item.topic] += 1
        summary.wall_s = round(time.monotonic() - start_wall if first_ns is not None else 0.0,
                               3)
        # Let reliable messages still in flight reach slow subscribers before shutdown.
        time.sleep(0.2)
        node.destroy_node()
    finally:
        rclpy.try_shutdown()
    summary.interrupted = stop.is_set()
    return summary


def main(args: argparse.Namespace) -> int:
    """Replay the bag and print a JSON summary."""
    from denseflow_ros.bagio import BagError
    from denseflow_ros.tools.record import install_stop_handlers

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    LOG.info("DDS: %s", replay_dds.apply_env(args.dds, args.domain_id))
    stop, restore = install_stop_handlers()
    try:
        summary = play(args.bag, PlayOptions.from_args(args), stop)
    except (ValueError, BagError, OSError) as err:
        print(f"denseflow replay: {err}", file=sys.stderr)
        return 1
    finally:
        restore()
    print(json.dumps(dataclasses.asdict(summary), indent=2))
    return 0
