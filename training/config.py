# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Training configuration: one flat dataclass, YAML files per dataset, CLI overrides.

Precedence: dataclass defaults < ``--config FILE`` (YAML mapping of field names) < command
line. Every field has a flag (``--batch-size 8``, ``--no-amp``); ``dataset_options`` (passed to
the loader) is a mapping set in YAML or with ``--dataset-option key=value``.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import yaml


@dataclass
class TrainConfig:
    """Everything one training run needs; defaults follow the paper's KITTI recipe."""

    dataset: str = "kitti"
    root: str = ""
    preset: str = "kitti"
    out: str = "runs/kitti"
    train_split: str = "train"
    val_split: str = "val"
    dataset_options: dict[str, Any] = field(default_factory=dict)
    # Crop geometry; None takes the preset's (satellite_mpp None on VIGOR: per city).
    ground_size: list[int] | None = None
    satellite_size: int | None = None
    satellite_mpp: float | None = None
    shift_range_lon_m: float = 20.0
    shift_range_lat_m: float = 20.0
    rotation_range_deg: float = 10.0
    iterations: int | None = None
    # The ground trunk's output stride (4 or 8); None takes the preset's.
    ground_stride: int | None = None
    # The decoder's coarse shift search half-width in metres; None takes the preset's, 0 is off.
    coarse_search_m: float | None = None
    # The fine stage's descriptor channels (see denseflow_ros.model.fine); None takes the
    # preset's, 0 is no fine stage. With fine_only the run trains the fine stage alone, every
    # other weight frozen (from init_checkpoint), on windows placed around the true pose.
    fine_channels: int | None = None
    fine_only: bool = False
    # Optimisation: AdamW, a OneCycle schedule with a 5 % linear warm-up, gradients clipped
    # to norm 1.0.
    epochs: int = 20
    total_steps: int | None = None
    batch_size: int = 16
    grad_accum: int = 1
    lr: float = 2e-5
    weight_decay: float = 5e-5
    adam_eps: float = 1e-8
    pct_start: float = 0.05
    clip_grad: float = 1.0
    # Loss coefficients (the terms are defined in training.losses; these are the only
    # defaults of training.losses.LossWeights) and the two stages: flow and confidence
    # terms alone, then the pose term from pose_loss_start_epoch on.
    pose_loss_start_epoch: int = 16
    gamma: float = 0.8
    conf_weight: float = 100.0
    conf_k: float = 0.05
    pose_weight: float = 50.0
    pose_u: float = 10.0
    pose_v: float = 10.0
    pose_yaw: float = 10.0
    # From-scratch options (see training.losses): "paper" or "bce" confidence term, and the
    # dense contrastive feature term, alone for the first nce_warmup_steps, then beside the
    # flow loss with weight nce_weight.
    confidence_loss: str = "paper"
    confidence_tolerance_px: float = 8.0
    nce_weight: float = 0.0
    nce_temperature: float = 0.1
    nce_warmup_steps: int = 0
    # The coarse shift search's own loss (see training.losses.search_loss), on the features.
    search_weight: float = 0.0
    # False: the trunks and the feature encoder learn from the contrastive term only, so the
    # flow and pose terms cannot wear their matching down (the decoder still learns).
    flow_trains_encoders: bool = True
    # Runtime.
    seed: int = 0
    # Loader processes; never more than the machine's cores.
    num_workers: int = 4
    amp: bool = True
    device: str = "auto"
    max_steps: int | None = None
    val_limit: int | None = None
    val_batch_size: int | None = None
    select_metric: str = "distance_mean_m"
    log_every: int = 20
    # Also write last.pt every this many steps inside an epoch (0: at epoch ends only).
    save_every: int = 200
    init_checkpoint: str | None = None
    save_half: bool = False
    # When the run finishes, also write the chosen network (best on validation, else the
    # final one) here in float16, e.g. a bundled resource.
    export: str | None = None
    resume: bool = False


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--config`` and one flag per ``TrainConfig`` field to ``parser``."""
    parser.add_argument("--config", help="YAML file of TrainConfig fields")
    parser.add_argument(
        "--dataset-option", action="append", default=[], metavar="KEY=VALUE",
        help="loader option (YAML value), e.g. log=2, area=cross; repeatable",
    )
    hints = get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        if f.name == "dataset_options":
            continue
        hint = str(hints[f.name])
        if hints[f.name] is bool:
            parser.add_argument(_flag(f.name), dest=f.name, action=argparse.BooleanOptionalAction,
                                default=None)
        elif "list" in hint:
            parser.add_argument(_flag(f.name), dest=f.name, type=int, nargs="+", default=None)
        else:
            kind = float if "float" in hint else int if "int" in hint else str
            parser.add_argument(_flag(f.name), dest=f.name, type=kind, default=None)


def load_config(args: argparse.Namespace) -> TrainConfig:
    """Build the config from defaults, the YAML file and the command line."""
    values: dict[str, Any] = {}
    if getattr(args, "config", None):
        path = Path(args.config)
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} does not exist")
        with open(path, encoding="utf-8") as f:
            loaded = yaml.safe_load(f) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"config file {path} must hold a mapping of TrainConfig fields")
        values.update(loaded)
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"unknown config fields: {', '.join(unknown)}")
    for name in names:
        value = getattr(args, name, None)
        if value is not None:
            values[name] = value
    options = dict(values.get("dataset_options") or {})
    for item in getattr(args, "dataset_option", []) or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--dataset-option expects KEY=VALUE, got {item!r}")
        options[key] = yaml.safe_load(raw)
    values["dataset_options"] = options
    return TrainConfig(**values)


def to_dict(config: TrainConfig) -> dict[str, Any]:
    """Return the config as a plain dict (for checkpoints and logs)."""
    return dataclasses.asdict(config)
