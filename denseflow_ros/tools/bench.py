# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``denseflow bench``: the project's benchmarks, printed as ratios measured in one run.

Timings on shared machines are noisy, so every section reports its numbers beside a
baseline measured in the same process with the same threads.
"""

from __future__ import annotations

import argparse
import importlib

SECTIONS: dict[str, str] = {
    "network": "denseflow_ros.model.benchmark",
    "crop": "denseflow_ros.geo.benchmark",
    "node": "denseflow_ros.ros.benchmark",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the benchmark selection arguments."""
    parser.add_argument(
        "sections", nargs="*", metavar="SECTION",
        help=f"benchmarks to run, of {', '.join(SECTIONS)} (default: all)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")


def main(args: argparse.Namespace) -> int:
    """Run the selected benchmarks and print their reports."""
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    unknown = sorted(set(args.sections) - set(SECTIONS))
    if unknown:
        print(f"denseflow bench: unknown section(s) {unknown}; choose from {list(SECTIONS)}")
        return 2
    for name in args.sections or SECTIONS:
        print(f"== {name}", flush=True)
        importlib.import_module(SECTIONS[name]).run(lambda line: print(line, flush=True))
    return 0
