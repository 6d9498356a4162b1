# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The ``denseflow`` command: one entry point, one module per subcommand.

Each subcommand module under :mod:`denseflow_ros.tools` provides
``add_arguments(parser)`` and ``main(args) -> int``. Only the module of the subcommand
being run is imported, so ``denseflow tiles info`` does not pay for importing torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "convert-checkpoint": (
        "denseflow_ros.tools.convert_checkpoint",
        "convert the authors' released weights to this package's checkpoint format",
    ),
    "tiles": ("denseflow_ros.tools.tiles", "inspect, crop and build satellite tile caches"),
    "sim": ("denseflow_ros.tools.sim", "generate synthetic worlds, drives and their exports"),
    "bag": ("denseflow_ros.tools.bag", "convert KITTI and Ford recordings to rosbag2"),
    "replay": ("denseflow_ros.tools.replay", "publish a rosbag2 over DDS with its timing"),
    "record": ("denseflow_ros.tools.record", "record topics into a rosbag2"),
    "evaluate": ("denseflow_ros.tools.evaluate", "score published poses against ground truth"),
    "demo": ("denseflow_ros.tools.demo", "run the localizer end to end on the synthetic drive"),
    "bench": ("denseflow_ros.tools.bench", "measure network, crop and node speed as ratios"),
}


def _top_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="denseflow",
        description="DenseFlow cross-view localization tools.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="subcommands:\n"
        + "\n".join(f"  {name:<20}{text}" for name, (_, text) in SUBCOMMANDS.items()),
    )
    parser.add_argument("command", choices=sorted(SUBCOMMANDS), metavar="COMMAND")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one ``denseflow`` subcommand and return its exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in SUBCOMMANDS:
        parser = _top_parser()
        if not argv or argv[0] in ("-h", "--help"):
            parser.print_help()
            return 0 if argv else 2
        parser.parse_args(argv[:1])  # exits with the list of valid subcommands
    name = argv[0]
    module_name, text = SUBCOMMANDS[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"denseflow {name}", description=text)
    module.add_arguments(parser)
    args = parser.parse_args(argv[1:])
    return int(module.main(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
