# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``denseflow convert-checkpoint SRC DST --preset NAME``: the authors' weights -> ours.

Reads the authors' released ``BEV_corr`` state_dict (with or without the ``module.`` prefix),
maps it onto the package's network for the given preset, drops what the network never uses
(``damping`` and the trunks' spare torchvision ResNet-18) and writes a package checkpoint.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the subcommand's arguments."""
    parser.add_argument("src", help="the authors' checkpoint (.pth state_dict)")
    parser.add_argument("dst", help="where to write the package checkpoint")
    parser.add_argument(
        "--preset",
        required=True,
        choices=["kitti", "ford", "vigor", "oxford"],
        help="the dataset the weights were trained on",
    )
    parser.add_argument(
        "--list-dropped", action="store_true", help="print every dropped parameter's name"
    )


def main(args: argparse.Namespace) -> int:
    """Convert the checkpoint; return 0, or 1 with one line on stderr on failure."""
    import torch

    from denseflow_ros.model.checkpoint import (
        CheckpointError,
        convert_authors_state_dict,
        is_authors_state_dict,
        read_checkpoint,
        save_checkpoint,
    )
    from denseflow_ros.model.config import get_preset
    from denseflow_ros.model.network import DenseFlow

    try:
        data = read_checkpoint(args.src)
        if not is_authors_state_dict(data):
            raise CheckpointError(
                f"checkpoint {args.src} is not the authors' BEV_corr state_dict"
            )
        config = get_preset(args.preset)
        state, dropped = convert_authors_state_dict(data, config)
    except CheckpointError as exc:
        print(f"denseflow convert-checkpoint: {exc}", file=sys.stderr)
        return 1
    net = DenseFlow(config)
    net.load_state_dict(state)
    save_checkpoint(net, args.dst, source=str(args.src), converted_from="authors BEV_corr")
    kept = sum(int(v.numel()) for v in state.values() if torch.is_floating_point(v))
    groups: dict[str, int] = {}
    for key in dropped:
        name = key.removeprefix("module.")
        group = (
            "damping" if name == "damping"
            else "spare ResNet-18" if ".resnet18." in f".{name}"
            else "unrecognised"
        )
        groups[group] = groups.get(group, 0) + 1
    dropped_n = sum(int(data[k].numel()) for k in dropped if isinstance(data[k], torch.Tensor))
    summary = ", ".join(f"{n} {group}" for group, n in sorted(groups.items())) or "nothing"
    print(
        f"wrote {args.dst}: preset {args.preset}, kept {len(state)} tensors "
        f"({kept / 1e6:.2f} M values); dropped {len(dropped)} tensors "
        f"({dropped_n / 1e6:.2f} M values): {summary}"
    )
    if args.list_dropped:
        for key in dropped:
            print(f"  dropped {key}")
    return 0
