# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Evaluate a checkpoint on a benchmark split with the paper's protocol.

::

    python -m training.evaluate --dataset kitti --root ROOT --split test1 --checkpoint CKPT \
        [--preset kitti] [--limit N] [--json OUT] [--baseline ncc]

``--split`` reads ``<split>_files.txt`` (KITTI layout) from ROOT unless ``--split-file`` names
another list; every line of a test split is one sample, and a frame listed twice with two
perturbations counts twice. Prints the results table (prior beside estimate) and writes the
project's results JSON ``{"samples", "prior", "estimate"}``. Takes our checkpoints and the
authors' (``--preset`` says which network an authors' file holds). ``--baseline ncc`` also
runs the classical matcher (:mod:`denseflow_ros.baseline`) on the same samples and adds its
column and ``"baseline"`` to the document. Under ``torchrun`` the
split is sharded over the processes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch.distributed as dist

from denseflow_ros import metrics
from denseflow_ros.baseline import NccBaseline
from denseflow_ros.model import CheckpointError, load_model
from training.datasets import DATASETS, DatasetRootError
from training.engine import crop_options_for, open_dataset, predict, score, setup_distributed


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    p = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, choices=DATASETS)
    p.add_argument("--root", required=True, help="dataset root in its published layout")
    p.add_argument("--split", default="test1",
                   help="split name (KITTI: test1, test2; Ford/VIGOR: test; Oxford: test1-3)")
    p.add_argument("--split-file", help="read this list instead of the split's own file")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--preset", help="network preset (needed for the authors' checkpoints)")
    p.add_argument("--limit", type=int, help="evaluate the first N samples only")
    p.add_argument("--json", help="write the results document here")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--num-workers", type=int, default=4)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda")
    p.add_argument("--iterations", type=int, help="flow decoder iterations (default: preset)")
    p.add_argument("--amp", action="store_true", help="float16 autocast on CUDA")
    p.add_argument("--shift-range-lon-m", type=float, default=20.0)
    p.add_argument("--shift-range-lat-m", type=float, default=20.0)
    p.add_argument("--rotation-range-deg", type=float, default=None,
                   help="yaw range (default: 10; Oxford 0; VIGOR 0 = known orientation)")
    p.add_argument("--seed", type=int, default=0, help="seed of rotations a split lacks (VIGOR)")
    p.add_argument("--plot", help="write the errors in their covariance's frame to this PNG")
    p.add_argument("--baseline", choices=("ncc",),
                   help="also score the classical matcher on the same samples")
    p.add_argument("--dataset-option", action="append", default=[], metavar="KEY=VALUE",
                   help="loader option, e.g. log=2 (Ford), area=cross (VIGOR); repeatable")
    return p


def run(args: argparse.Namespace) -> dict:
    """Evaluate and return the results document (also printed and optionally written)."""
    import yaml

    info, device = setup_distributed(args.device)
    net = load_model(args.checkpoint, args.preset, device=device)
    if args.iterations is not None:
        net.iterations = int(args.iterations)
    rotation = args.rotation_range_deg
    if rotation is None:
        rotation = 0.0 if args.dataset in ("oxford", "vigor") else 10.0
    opts = crop_options_for(
        net.config, args.dataset, shift_range_lon_m=args.shift_range_lon_m,
        shift_range_lat_m=args.shift_range_lat_m, rotation_range_deg=rotation, seed=args.seed,
    )
    options = {}
    for item in args.dataset_option:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ValueError(f"--dataset-option expects KEY=VALUE, got {item!r}")
        options[key] = yaml.safe_load(raw)
    dataset = open_dataset(args.dataset, args.root, args.split, opts, options, args.split_file)
    pred = predict(net, dataset, device, args.batch_size, args.num_workers, info,
                   limit=args.limit, amp=args.amp, progress=True)
    base = None
    if args.baseline == "ncc":
        matcher = NccBaseline(net.config.satellite_mpp, net.config.camera_height_m,
                              shift_range_m=1.2 * max(args.shift_range_lon_m,
                                                      args.shift_range_lat_m),
                              yaw_range_deg=max(rotation, 1.0))
        base = predict(matcher, dataset, device, args.batch_size, args.num_workers, info,
                       limit=args.limit, progress=True)
    doc = score(pred, base)
    if args.plot and info.is_main:
        from denseflow_ros.plots import plot_consistency

        err = np.stack([pred["est_u"] - pred["true_u"], pred["est_v"] - pred["true_v"]], 1)
        plot_consistency(err, pred["covariance"][:, :2, :2], Path(args.plot),
                         f"{args.dataset} {args.split}: covariance against the errors")
    if info.is_main:
        print(metrics.format_table(doc))
        if args.json:
            path = Path(args.json)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(metrics.dumps(doc) + "\n", encoding="utf-8")
    return doc


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and evaluate."""
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except (CheckpointError, DatasetRootError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
