# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``denseflow bag kitti|ford``: convert benchmark recordings to rosbag2 (mcap or sqlite3).

Each bag carries the camera images with camera_info, the GNSS fix (optionally degraded), the
IMU and the ground truth as PoseStamped in a local ENU frame, all stamped with sensor time.
The ENU datum, the topics and the camera's position in ``base_link`` are stored in the bag's
metadata (``custom_data``), where ``denseflow evaluate`` finds them.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``kitti`` and ``ford`` subcommands."""
    from denseflow_ros.tools import bag_ford, bag_kitti

    sub = parser.add_subparsers(dest="dataset", required=True, metavar="DATASET")
    kitti = sub.add_parser(
        "kitti", help="a KITTI raw synced drive (with the benchmark's satmaps)",
        description="Convert a KITTI raw synced drive to rosbag2.",
    )
    bag_kitti.add_arguments(kitti)
    ford = sub.add_parser(
        "ford", help="a Ford multi-AV log (processed layout or rosbags-convert output)",
        description="Convert a Ford multi-AV log to rosbag2.",
    )
    bag_ford.add_arguments(ford)


def _convert(args: argparse.Namespace) -> object:
    """Run the converter a ``denseflow bag`` command line names; return its summary."""
    from denseflow_ros.tools import bag_ford, bag_kitti

    if args.dataset == "kitti":
        return bag_kitti.convert_kitti(args.root, args.drive, args.out,
                                       bag_kitti.KittiOptions.from_args(args))
    options = bag_ford.FordOptions.from_args(args)
    if args.root:
        return bag_ford.convert_ford_processed(args.root, args.log or "", args.out, options)
    return bag_ford.convert_ford_recording(args.bag, args.out, options)


def main(args: argparse.Namespace) -> int:
    """Run the converter and print a JSON summary of what it wrote."""
    from denseflow_ros.bagio import BagError
    from denseflow_ros.tools.bag_common import summary_dict

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        summary = _convert(args)
    except (ValueError, OSError, BagError) as err:
        print(f"denseflow bag {args.dataset}: {err}", file=sys.stderr)
        return 1
    print(json.dumps(summary_dict(summary), indent=2))
    return 0
