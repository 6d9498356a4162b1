# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Checkpoints: the package's format, and the authors' released ``BEV_corr`` state_dicts.

Package format: one ``torch.save`` file holding
``{"format": "denseflow_ros/1", "config": ModelConfig dict, "state_dict": ..., "metadata": ...}``,
read with ``weights_only=True``. A file's config is bounded (:data:`CONFIG_BOUNDS`) and its
state's keys, shapes and dtypes are checked against the network the config describes, built
on the ``meta`` device (no memory), before any network is built for real.

The authors' files are plain state_dicts of their ``BEV_corr`` module (sometimes with a
``module.`` prefix). Their keys map onto ours by prefix only; everything below the prefix
(``conv1``, ``layer3.0.downsample.1.running_var``, ``encoder.convc1.weight``,
``gru.convz1.bias``, ``flow_conf.conv4.weight``, ``mask.2.weight`` ...) is unchanged:

==================================  ==========================
authors' prefix                     package prefix
==================================  ==========================
``GrdFeatureNet.``                  ``ground_trunk.``
``SatFeatureNet.``                  ``satellite_trunk.``
``op_flow.fnet1.``                  ``feature_encoder.``
``op_flow.cnet1.``                  ``context_encoder.``
``op_flow.update_block.``           ``update.``
==================================  ==========================

Dropped: ``damping`` (never used) and ``GrdFeatureNet.resnet18.*`` /
``SatFeatureNet.resnet18.*`` (the whole torchvision ResNet-18 the trunks were cut from: its
conv1/bn1/layer1/layer2 duplicate the trunk's own keys, its layer3/layer4/fc are unused).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from denseflow_ros.model.config import PRESETS, ModelConfig, get_preset
from denseflow_ros.model.network import DenseFlow

FORMAT = "denseflow_ros/1"

AUTHORS_PREFIXES: tuple[tuple[str, str], ...] = (
    ("GrdFeatureNet.", "ground_trunk."),
    ("SatFeatureNet.", "satellite_trunk."),
    ("op_flow.fnet1.", "feature_encoder."),
    ("op_flow.cnet1.", "context_encoder."),
    ("op_flow.update_block.", "update."),
)
AUTHORS_DROPPED_PREFIXES: tuple[str, ...] = (
    "GrdFeatureNet.resnet18.",
    "SatFeatureNet.resnet18.",
    "damping",
)


# Bounds on a checkpoint's config: wide enough for every network this package builds, tight
# enough that a crafted file cannot make the loader allocate gigabytes or loop for hours.
CONFIG_BOUNDS: dict[str, tuple[float, float]] = {
    "ground_size": (8, 4096),
    "satellite_size": (16, 4096),
    "satellite_mpp": (1e-3, 100.0),
    "camera_height_m": (1e-2, 100.0),
    "iterations": (1, 64),
    "native_turns": (0, 1),
    "trunk_widths": (1, 1024),
    "refine_dim": (1, 1024),
    "refine_stages": (1, 8),
    "feature_dim": (1, 1024),
    "hidden_dim": (1, 1024),
    "context_dim": (1, 1024),
    "corr_levels": (1, 6),
    "corr_radius": (1, 8),
    "motion_corr_dims": (1, 1024),
    "motion_flow_dims": (1, 1024),
    "motion_dim": (1, 1024),
    "head_dim": (1, 1024),
    "confidence_dim": (1, 1024),
    "coarse_search_m": (0.0, 1000.0),
    "match_temperature": (1e-3, 10.0),
    "ground_stride": (4, 8),
    "search_view_m": (0.0, 1000.0),
}


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read or does not fit the requested network."""


def check_config(config: ModelConfig) -> None:
    """Raise :class:`CheckpointError` unless every size of ``config`` is within its bounds."""
    for name, (low, high) in CONFIG_BOUNDS.items():
        value = getattr(config, name)
        values = value if isinstance(value, tuple | list) else (value,)
        for v in values:
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) \
                    or not low <= v <= high or (isinstance(low, int) and not isinstance(v, int)):
                raise CheckpointError(f"checkpoint config {name} = {value!r} is outside "
                                      f"[{low:g}, {high:g}]")


def expected_state(config: ModelConfig) -> dict[str, torch.Tensor]:
    """Return the state_dict ``DenseFlow(config)`` has, on the meta device (no memory)."""
    with torch.device("meta"):
        return DenseFlow(config).state_dict()


def save_checkpoint(net: DenseFlow, path: str | os.PathLike[str], **metadata: Any) -> None:
    """Write ``net``'s config and weights to ``path`` in the package format."""
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    payload = {
        "format": FORMAT,
        "config": net.config.to_dict(),
        "state_dict": state,
        "metadata": dict(metadata),
    }
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def read_checkpoint(path: str | os.PathLike[str]) -> Mapping[str, Any]:
    """Read a checkpoint file safely (``weights_only=True``) and return what it holds."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        raise CheckpointError(
            f"checkpoint {path} could not be read as a torch file ({type(exc).__name__})"
        ) from None
    if not isinstance(data, Mapping):
        raise CheckpointError(f"checkpoint {path} holds a {type(data).__name__}, not a dict")
    return data


def is_authors_state_dict(state: Mapping[str, Any]) -> bool:
    """Return whether ``state`` looks like the authors' ``BEV_corr`` state_dict."""
    return any(
        k.removeprefix("module.").startswith(("GrdFeatureNet.", "op_flow.")) for k in state
    )


def convert_authors_state_dict(
    state: Mapping[str, torch.Tensor], config: ModelConfig
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Map the authors' state_dict onto a ``DenseFlow(config)`` state_dict.

    Returns the converted state_dict and the sorted list of the authors' keys that were
    dropped. Raises :class:`CheckpointError` when a needed key is missing or a shape differs.
    """
    converted: dict[str, torch.Tensor] = {}
    dropped: list[str] = []
    for key, value in state.items():
        name = key.removeprefix("module.")
        if name.startswith(AUTHORS_DROPPED_PREFIXES):
            dropped.append(key)
            continue
        for theirs, ours in AUTHORS_PREFIXES:
            if name.startswith(theirs):
                converted[ours + name[len(theirs):]] = value
                break
        else:
            dropped.append(key)
    check_state_dict(converted, expected_state(config), config.name)
    return converted, sorted(dropped)


def check_state_dict(
    state: Mapping[str, Any], expected: Mapping[str, torch.Tensor], preset: str
) -> None:
    """Raise :class:`CheckpointError` unless ``state`` matches ``expected``.

    Keys and shapes must be the same, each value a dense tensor, floating where the network's
    is floating (any float precision) and integer where it is integer.
    """
    missing = sorted(set(expected) - set(state))
    if missing:
        raise CheckpointError(
            f"checkpoint does not fit preset {preset!r}: {len(missing)} parameters are missing "
            f"(first: {missing[0]})"
        )
    unexpected = sorted(set(state) - set(expected))
    if unexpected:
        raise CheckpointError(
            f"checkpoint does not fit preset {preset!r}: {len(unexpected)} unexpected "
            f"parameters (first: {unexpected[0]})"
        )
    for key, ref in expected.items():
        value = state[key]
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != tuple(ref.shape):
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise CheckpointError(
                f"checkpoint does not fit preset {preset!r}: {key} has shape {shape}, "
                f"expected {tuple(ref.shape)}"
            )
        if value.layout != torch.strided or value.is_floating_point() != \
                ref.is_floating_point() or value.is_complex():
            raise CheckpointError(
                f"checkpoint does not fit preset {preset!r}: {key} is a {value.layout} "
                f"{value.dtype} tensor, expected a dense {ref.dtype} one"
            )


def _config_for(data: Mapping[str, Any], preset: str | None, path: Path) -> ModelConfig:
    try:
        config = ModelConfig.from_dict(dict(data["config"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path} has an unusable config ({exc})") from None
    check_config(config)
    if preset is not None and preset != config.name:
        raise CheckpointError(
            f"checkpoint {path} holds a {config.name!r} network, not the requested {preset!r}"
        )
    return config


def load_state(
    path: str | os.PathLike[str], preset: str | None = None
) -> tuple[ModelConfig, dict[str, torch.Tensor], list[str]]:
    """Read either checkpoint format -> (config, package state_dict, dropped authors' keys)."""
    path = Path(path)
    data = read_checkpoint(path)
    if data.get("format") == FORMAT:
        config = _config_for(data, preset, path)
        state = data.get("state_dict")
        if not isinstance(state, Mapping):
            raise CheckpointError(f"checkpoint {path} has no state_dict")
        check_state_dict(state, expected_state(config), config.name)
        return config, dict(state), []
    if "format" in data and isinstance(data["format"], str):
        raise CheckpointError(f"checkpoint {path} has unknown format {data['format']!r}")
    if not is_authors_state_dict(data):
        raise CheckpointError(
            f"checkpoint {path} is neither a denseflow_ros checkpoint nor the authors' "
            "BEV_corr state_dict"
        )
    if preset is None:
        raise CheckpointError(
            f"checkpoint {path} is the authors' format, which does not record its dataset: "
            f"pass a preset ({', '.join(sorted(PRESETS))})"
        )
    config = get_preset(preset)
    state, dropped = convert_authors_state_dict(data, config)
    return config, state, dropped


def load_model(
    path: str | os.PathLike[str], preset: str | None = None, device: str | torch.device = "cpu"
) -> DenseFlow:
    """Load a network from either checkpoint format, in eval mode on ``device``."""
    config, state, _ = load_state(path, preset)
    net = DenseFlow(config)
    net.load_state_dict(state)
    data = read_checkpoint(path)
    calibration = data.get("metadata", {}).get("covariance_calibration") \
        if isinstance(data, Mapping) and data.get("format") == FORMAT else None
    if calibration is not None:
        from denseflow_ros.model.calibration import check_calibration

        net.covariance_calibration = check_calibration(calibration)
    return net.to(device).eval()
