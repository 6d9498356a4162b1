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
import json
import logging
import signal
import sys
import time
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


def play(args: argparse.Namespace, stop: list[bool]) -> dict:
    """Publish the bag; return counts and timing. ``stop[0]`` ends playback early."""
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    from denseflow_ros import bagio

    if not args.rate > 0:
        raise ValueError(f"--rate must be > 0, got {args.rate}")
    available = bagio.bag_topics(args.bag)
    wanted = list(available) if args.topics is None else args.topics
    missing = [t for t in wanted if t not in available]
    if missing:
        raise ValueError(f"{args.bag} has no topic {', '.join(missing)}")
    topics = {t: available[t][0] for t in wanted}

    # The tool's own SIGINT/SIGTERM handlers end playback cleanly; rclpy's would shut the
    # context down under a publish call.
    rclpy.init(args=None, signal_handler_options=SignalHandlerOptions.NO)
    try:
        node = rclpy.create_node("denseflow_replay")
        player = _Player(node, topics, args.reliability, args.clock)
        time.sleep(max(0.0, args.delay))
        lonely = player.wait_for_subscribers(args.wait_for_subscribers) \
            if args.wait_for_subscribers > 0 else []
        counts = dict.fromkeys(player.publishers, 0)
        first_ns: int | None = None
        start_wall = 0.0
        clock_period = 1.0 / args.clock_hz if args.clock_hz > 0 else float("inf")
        for item in bagio.iter_messages(args.bag, list(player.publishers), raw=True):
            if stop[0]:
                break
            if first_ns is None:
                first_ns = item.stamp_ns + int(args.start_offset * 1e9)
                start_wall = time.monotonic()
            if item.stamp_ns < first_ns:
                continue
            target = start_wall + (item.stamp_ns - first_ns) * 1e-9 / args.rate
            while not stop[0]:
                now = time.monotonic()
                if now >= target:
                    break
                player.publish_clock(first_ns + int((now - start_wall) * args.rate * 1e9))
                time.sleep(min(target - now, clock_period))
            player.publish_clock(item.stamp_ns)
            player.publishers[item.topic].publish(item.msg)
            counts[item.topic] += 1
        wall = time.monotonic() - start_wall if first_ns is not None else 0.0
        # Let reliable messages still in flight reach slow subscribers before shutdown.
        time.sleep(0.2)
        node.destroy_node()
    finally:
        rclpy.try_shutdown()
    return {"bag": str(args.bag), "published": counts, "skipped_topics": player.skipped,
            "topics_without_subscribers": lonely, "wall_s": round(wall, 3),
            "interrupted": stop[0]}


def main(args: argparse.Namespace) -> int:
    """Replay the bag and print a JSON summary."""
    from denseflow_ros.bagio import BagError

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    how = replay_dds.apply_env(args)
    LOG.info("DDS: %s", how)
    stop = [False]

    def on_signal(signum: int, frame: Any) -> None:
        stop[0] = True

    previous = signal.signal(signal.SIGINT, on_signal), signal.signal(signal.SIGTERM, on_signal)
    try:
        summary = play(args, stop)
    except (ValueError, BagError, OSError) as err:
        print(f"denseflow replay: {err}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])
    print(json.dumps(summary, indent=2))
    return 0
