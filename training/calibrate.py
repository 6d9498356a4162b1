# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Fit a network's covariance calibration on a validation split and store it in a checkpoint.

::

    python -m training.calibrate --dataset sim --root .cache/sim_towns --split val \
        --dataset-option 'towns={val: [2000, 2001]}' --checkpoint runs/x/best.pt \
        --out runs/x/calibrated.pt [--limit N]

Runs the network (its fit's own covariance, any earlier calibration set aside) over the split,
fits the terms of :mod:`denseflow_ros.model.calibration` to its errors, prints the
consistency before and after, and writes the checkpoint again with the calibration in its
metadata (``load_model`` applies it). Fit on validation data only, never on a test split.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from denseflow_ros import metrics
from denseflow_ros.model import CheckpointError, DenseFlow, load_model, save_checkpoint
from denseflow_ros.model.calibration import apply_calibration, fit_calibration
from denseflow_ros.model.checkpoint import read_checkpoint
from training.datasets import DATASETS, CrossViewDataset, DatasetRootError
from training.engine import DistInfo, crop_options_for, open_dataset, predict


def fit_on(net: DenseFlow, dataset: CrossViewDataset, device: torch.device, batch_size: int,
           num_workers: int, limit: int | None = None) -> tuple[dict[str, float], dict, dict]:
    """Return the calibration fitted on ``dataset`` and the consistency before and after."""
    saved = net.covariance_calibration
    net.covariance_calibration = None
    try:
        pred = predict(net, dataset, device, batch_size, num_workers, DistInfo(), limit=limit)
    finally:
        net.covariance_calibration = saved
    err = np.stack([pred["est_u"] - pred["true_u"], pred["est_v"] - pred["true_v"]], 1)
    dyaw = np.radians(metrics.wrap_deg(pred["est_yaw"] - pred["true_yaw"]))
    cov = pred["covariance"]
    calibration = fit_calibration(err, cov[:, :2, :2], dyaw, cov[:, 2, 2])
    after = apply_calibration(torch.from_numpy(cov), calibration).numpy()
    before_doc = metrics.consistency(err, cov[:, :2, :2], dyaw, cov[:, 2, 2])
    after_doc = metrics.consistency(err, after[:, :2, :2], dyaw, after[:, 2, 2])
    return calibration, before_doc, after_doc


def write_calibrated(source: Path, net: DenseFlow, calibration: dict[str, float],
                     out: Path, **extra: Any) -> None:
    """Write ``net`` to ``out`` with ``source``'s metadata plus the calibration."""
    meta = dict(read_checkpoint(source).get("metadata", {}))
    meta.update(extra, covariance_calibration=calibration)
    clone = DenseFlow(net.config)
    clone.load_state_dict(net.state_dict())
    if meta.get("dtype") == "float16":
        clone.half()
    out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(clone, out, **meta)


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    p = argparse.ArgumentParser(prog="python -m training.calibrate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, choices=DATASETS)
    p.add_argument("--root", required=True)
    p.add_argument("--split", default="val", help="a validation split (default %(default)s)")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--out", required=True, help="the calibrated checkpoint to write")
    p.add_argument("--preset", help="network preset (needed for the authors' checkpoints)")
    p.add_argument("--limit", type=int, help="use the first N samples only")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--num-workers", type=int, default=1)
    p.add_argument("--shift-range-lon-m", type=float, default=10.0)
    p.add_argument("--shift-range-lat-m", type=float, default=10.0)
    p.add_argument("--rotation-range-deg", type=float, default=5.0)
    p.add_argument("--dataset-option", action="append", default=[], metavar="KEY=VALUE")
    return p


def main(argv: list[str] | None = None) -> int:
    """Fit, report and write; errors are one sentence."""
    import yaml

    args = build_parser().parse_args(argv)
    if args.split.startswith("test"):
        print("error: calibrate on a validation split, never on a test split", file=sys.stderr)
        return 2
    try:
        net = load_model(args.checkpoint, args.preset)
        opts = crop_options_for(net.config, args.dataset,
                                shift_range_lon_m=args.shift_range_lon_m,
                                shift_range_lat_m=args.shift_range_lat_m,
                                rotation_range_deg=args.rotation_range_deg)
        options = {}
        for item in args.dataset_option:
            key, sep, raw = item.partition("=")
            if not sep:
                raise ValueError(f"--dataset-option expects KEY=VALUE, got {item!r}")
            options[key] = yaml.safe_load(raw)
        dataset = open_dataset(args.dataset, args.root, args.split, opts, options)
        calibration, before, after = fit_on(net, dataset, torch.device("cpu"), args.batch_size,
                                            args.num_workers, args.limit)
        write_calibrated(Path(args.checkpoint), net, calibration, Path(args.out),
                         calibration_split=f"{args.dataset}:{args.split}")
    except (CheckpointError, DatasetRootError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("calibration: " + ", ".join(f"{k} {v:.4g}" for k, v in calibration.items()))
    for key in metrics.CONSISTENCY_KEYS:
        print(f"  {key:<22} {before[key]:10.3f} -> {after[key]:8.3f}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
