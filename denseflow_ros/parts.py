# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The parts :meth:`denseflow_ros.localizer.Localizer.open` builds the pipeline from.

The network (its call protocol, and a checkpoint loaded onto a torch device), the satellite
tile cache and the map frame, each opened from the value of one setting. A value they cannot
be opened with raises :class:`SettingsError` with the setting's name and one sentence, so the
node reports it under the parameter of the same name.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from denseflow_ros.geo.mapframe import MAP_PROJECTIONS, MapFrame


class SettingsError(ValueError):
    """A setting the pipeline cannot be built with: its name and one sentence about it."""

    def __init__(self, param: str, text: str) -> None:
        """Keep the setting's name and the sentence apart, for callers that rename it."""
        super().__init__(f"{param}: {text}")
        self.param = param
        self.text = text


class Model(Protocol):
    """Anything with the network's call signature (the real network, a baseline, an oracle)."""

    def __call__(
        self, ground: Any, satellite: Any, intrinsics: Any,
        satellite_mpp: float | None = None, camera_height_m: float | None = None,
    ) -> Any:
        """Return an object with shift_u_m, shift_v_m, yaw_deg, covariance, confidence, mask."""


class Network(Model, Protocol):
    """A model with its preset (``ModelConfig``), decoder iterations and fine-stage switch."""

    config: Any
    iterations: int
    run_fine_stage: bool


# (preset name, device) -> a network; replaces loading ``model_path`` (tests, benchmarks).
NetworkFactory = Callable[[str, str], Network]


def choose_device(name: str) -> str:
    """Return the torch device for ``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SettingsError("device", f"{name!r} asked for, but torch sees no CUDA device")
    if name != "cpu" and not name.startswith("cuda"):
        raise SettingsError("device", f"must be auto, cpu, cuda or cuda:N, got {name!r}")
    return name


def load_network(path: str, preset: str, device: str) -> Network:
    """Load the checkpoint at ``path`` (``preset`` for the authors' format) onto ``device``."""
    if not path:
        raise SettingsError("model_path", "not set: give a DenseFlow checkpoint file")
    if not os.path.isfile(path):
        raise SettingsError("model_path", f"no such file {path!r}")
    from denseflow_ros.model import PRESETS, load_model

    if preset and preset not in PRESETS:
        raise SettingsError("preset", f"unknown preset {preset!r} (choose from "
                                      f"{sorted(PRESETS)})")
    try:
        return load_model(path, preset=preset or None, device=device)
    except Exception as exc:  # noqa: BLE001 - any load failure is the file's fault
        raise SettingsError("model_path", f"cannot load {path!r}: {exc}") from exc


def open_tile_cache(path: str, cache_mb: int) -> Any:
    """Open the satellite tile cache (XYZ folder or .mbtiles) with ``cache_mb`` of memory."""
    if not path:
        raise SettingsError("tile_cache", "not set: give an XYZ tile folder or an .mbtiles "
                                          "file")
    if not os.path.exists(path):
        raise SettingsError("tile_cache", f"no such file or folder {path!r}")
    from denseflow_ros.geo import SatelliteCache

    try:
        return SatelliteCache(path, cache_mb=int(cache_mb))
    except Exception as exc:  # noqa: BLE001 - TileSourceError and I/O errors alike
        raise SettingsError("tile_cache", str(exc)) from exc


def open_map_frame(projection: str, datum: Sequence[float] | None, utm_zone: int) -> MapFrame:
    """Return the map frame; ``datum`` None fixes it at the first prior."""
    if projection not in MAP_PROJECTIONS:
        raise SettingsError("map_projection", f"must be one of {list(MAP_PROJECTIONS)}, got "
                                              f"{projection!r}")
    if datum is not None:
        datum = [float(v) for v in datum]
        if len(datum) != 2 or not all(math.isfinite(v) for v in datum) or \
                not (-90 <= datum[0] <= 90 and -180 <= datum[1] <= 180):
            raise SettingsError("datum", f"must be [lat, lon] in degrees, got {datum}")
    try:
        return MapFrame(projection, datum, utm_zone)
    except ValueError as exc:  # a datum or zone the projection does not cover
        raise SettingsError("datum" if datum is not None else "utm_zone", str(exc)) from exc
