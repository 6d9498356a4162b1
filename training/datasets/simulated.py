# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Unlimited training samples rendered on the fly from the synthetic towns.

Each split holds its own towns (one seed each), generated once, saved as ``.npz`` under the
dataset root and kept in memory. Every sample draws, from ``(seed, epoch, index)`` in training
and from ``(seed, index)`` otherwise, a town, a vehicle pose anywhere across a street's
carriageway in either direction, a prior around it, the renderer's cars, pedestrians,
exposure and noise, and a colour grade for each view. The ground image is rendered directly
at the network's size with :func:`denseflow_ros.sim.kitti_intrinsics`, the satellite crop
cut from the town's orthophoto. Because the pose spans the whole road, the heading-aligned
crop alone says nothing about where the vehicle sits on it.

``dataset_options`` (YAML)::

    towns: {train: [1000, 1001], val: [2000], test: [0]}
    samples: {train: 4000, val: 64, test: 200}   # samples per epoch / fixed set size
    world_size_m: 600.0
"""

from __future__ import annotations

import math
import os
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from training.datasets.common import CropOptions, CrossViewDataset, perturbed_crop

CAMERA_HEIGHT_M = 1.65
# A pose sits at least this far from the town's edge, so a crop around any prior is full.
_EDGE_MARGIN_M = 60.0
# The vehicle's distance from the carriageway's edge and its heading spread about the street.
_KERB_CLEARANCE_M = 1.2
_YAW_SPREAD_DEG = 4.0
_DEFAULT_SAMPLES = {"train": 4000, "val": 64, "test": 200}

_WORLDS: dict[tuple[str, int, float], Any] = {}
_WORLDS_LOCK = threading.Lock()


def load_town(root: Path, seed: int, size_m: float) -> Any:
    """Return town ``seed``, generating and saving it under ``root`` on first use."""
    from denseflow_ros.sim import World, generate_world
    from denseflow_ros.sim.render import prepare

    key = (str(root), int(seed), float(size_m))
    with _WORLDS_LOCK:
        if key in _WORLDS:
            return _WORLDS[key]
        path = root / f"town_{int(seed)}_{int(round(size_m))}m.npz"
        if path.is_file():
            world = World.load(path)
        else:
            world = generate_world(int(seed), size_m=size_m)
            root.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.stem + f".{os.getpid()}.tmp.npz")
            world.save(tmp)
            tmp.replace(path)
        prepare(world)
        _WORLDS[key] = world
        return world


def street_pose(world: Any, rng: np.random.Generator) -> tuple[float, float, float]:
    """Draw (east_m, north_m, yaw_rad) on a random street's carriageway, away from the edge."""
    lay = world.layout
    limit = world.size_m / 2.0 - _EDGE_MARGIN_M
    for _ in range(1000):
        along_x = bool(rng.integers(2))  # a street of constant design y, running along x
        lines, widths, other = (lay.ys, lay.yw, lay.xs) if along_x else (lay.xs, lay.xw, lay.ys)
        k = int(rng.integers(len(lines)))
        half = max(float(widths[k]) / 2.0 - _KERB_CLEARANCE_M, 0.0)
        lateral = float(lines[k]) + float(rng.uniform(-half, half))
        along = float(rng.uniform(float(other[0]), float(other[-1])))
        x, y = (along, lateral) if along_x else (lateral, along)
        east, north = lay.design_to_enu(np.array([x]), np.array([y]))
        if abs(east[0]) > limit or abs(north[0]) > limit:
            continue
        step = np.array([0.5, 0.0]) if along_x else np.array([0.0, 0.5])
        e1, n1 = lay.design_to_enu(np.array([x + step[0]]), np.array([y + step[1]]))
        e0, n0 = lay.design_to_enu(np.array([x - step[0]]), np.array([y - step[1]]))
        yaw = math.atan2(float(n1[0] - n0[0]), float(e1[0] - e0[0]))
        if rng.random() < 0.5:
            yaw += math.pi
        yaw += math.radians(float(np.clip(rng.normal(0.0, _YAW_SPREAD_DEG), -10.0, 10.0)))
        return float(east[0]), float(north[0]), (yaw + math.pi) % (2 * math.pi) - math.pi
    raise ValueError(f"town {world.seed} has no street {_EDGE_MARGIN_M} m inside its edge")


def colour_grade(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Apply a random exposure, per-channel gain, gamma and contrast to uint8 RGB."""
    x = image.astype(np.float32) / 255.0
    gain = rng.uniform(0.8, 1.2) * rng.uniform(0.92, 1.08, size=3)
    x = np.clip(x * gain, 0.0, 1.0) ** rng.uniform(0.8, 1.25)
    mean = x.mean()
    x = (x - mean) * rng.uniform(0.8, 1.2) + mean
    return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


class SimulatedTowns(CrossViewDataset):
    """Samples rendered on the fly from seeded synthetic towns (see the module docstring)."""

    name = "simulated towns"

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        options: CropOptions | None = None,
        towns: Mapping[str, Sequence[int]] | None = None,
        samples: Mapping[str, int] | None = None,
        world_size_m: float = 600.0,
    ) -> None:
        Path(root).mkdir(parents=True, exist_ok=True)
        super().__init__(root, split, options or CropOptions())
        towns = dict(towns or {})
        if not towns.get(split):
            raise ValueError(f"simulated towns: no towns listed for split {split!r} "
                             "(dataset_options.towns.<split>)")
        self.towns = [int(t) for t in towns[split]]
        sizes = {**_DEFAULT_SAMPLES, **dict(samples or {})}
        self.length = int(sizes.get(split, _DEFAULT_SAMPLES["test"]))
        if self.length < 1:
            raise ValueError(f"simulated towns: samples.{split} must be positive")
        self.world_size_m = float(world_size_m)
        if self.options.satellite_mpp is None:
            raise ValueError("simulated towns need a satellite resolution (satellite_mpp)")
        # Loaded here, so that loader processes forked later share them.
        for town in tqdm(self.towns, desc=f"{split} towns", unit="town", leave=False,
                         disable=not sys.stderr.isatty()):
            load_town(self.root, town, self.world_size_m)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Render and label one sample."""
        from denseflow_ros.sim import kitti_intrinsics, render_ground

        rng = self.rng(index)
        town = self.towns[int(rng.integers(len(self.towns)))]
        world = load_town(self.root, town, self.world_size_m)
        east, north, yaw = street_pose(world, rng)
        x, y, t = rng.uniform(-1.0, 1.0, size=3)
        o = self.options
        offsets = (float(x * o.shift_range_lon_m), float(y * o.shift_range_lat_m),
                   float(t * o.rotation_range_deg))
        h, w = o.ground_size
        k = kitti_intrinsics(w, h)
        ground = render_ground(world, k, w, h, east, north, yaw,
                               camera_height_m=CAMERA_HEIGHT_M,
                               seed=int(rng.integers(2**31)))
        col, row = world.enu_to_pixel(east, north)
        satellite, targets = perturbed_crop(world.ortho, (float(col), float(row)), yaw, offsets,
                                            world.mpp, float(o.satellite_mpp), o.satellite_size)
        return self.pack(index, colour_grade(ground, rng), k, colour_grade(satellite, rng),
                         targets, float(o.satellite_mpp), CAMERA_HEIGHT_M, town=town)


__all__ = ["SimulatedTowns", "colour_grade", "load_town", "street_pose"]
