# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Oxford RobotCar against one stitched satellite map.

::

    ROOT/satellite_map_new.png                 the stitched map
    ROOT/training.txt, validation.txt, test1_j.txt, test2_j.txt, test3_j.txt
    ROOT/train_yaw.npy, val_yaw.npy, test_yaw.npy
    ROOT/<traversal>/ground/<E>_<N>.png        1200x800 front camera frames

A line is ``<traversal>/ground/<E>_<N>.png <traversal>/satellite/<E>_<N>.png E N`` (UTM).
Map pixels come from the benchmark's affine fit of five UTM control points. Yaws are radians;
the map is turned by ``yaw - 90 deg`` (counter-clockwise) to put the heading up, so the
heading's direction on the map is ``180 deg - yaw``. ``train_yaw.npy`` has five entries more
than ``training.txt`` (broken frames, dropped here); ``test_yaw.npy`` holds the three test
traversals back to back. Training priors are offset uniformly in angle and radius up to
``200 sqrt(2)`` map pixels (~26 m); validation and test priors are the centre of the
800-pixel window on the map's 400-pixel grid that keeps the truth in its middle half, so they
follow from the split files alone. The protocol's rotation range is 0; a non-zero one draws
test yaws from the fixed ``(seed, index)`` generator.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from training.datasets.common import (
    CropOptions,
    CrossViewDataset,
    crop_targets,
    imread_rgb,
    read_lines,
    require,
    require_all,
    resize_ground,
    scale_intrinsics,
    warp_crop,
)

MAP_FILE = "satellite_map_new.png"
BROKEN_TRAIN = (937, 9050, 11811, 12388, 16584)
#: Pinhole intrinsics of the 1200x800 frames.
K_1200x800 = np.array([[964.828979, 0.0, 643.788025], [0.0, 964.828979, 484.407990],
                       [0.0, 0.0, 1.0]])
#: Control points: UTM (E, N) and the stitched map's (column, row) for the same places.
UTM_POINTS = np.array([[619400.0, 5736195.0], [619400.0, 5734600.0], [620795.0, 5736195.0],
                       [620795.0, 5734600.0], [620100.0, 5735400.0]])
MAP_POINTS = np.array([[900.0, 900.0], [492.0, 18168.0], [15966.0, 1260.0],
                       [15553.0, 18528.0], [8255.0, 9688.0]])
#: Map pixels per 512-pixel crop (so a crop pixel is 800/512 map pixels, ~0.1444 m).
WINDOW_PX = 800
MAP_MPP = 0.0924
SPLIT_FILES = {"train": "training.txt", "val": "validation.txt", "test1": "test1_j.txt",
               "test2": "test2_j.txt", "test3": "test3_j.txt"}


def utm_to_map_fit() -> np.ndarray:
    """Return the 3x2 least-squares affine map from (E, N, 1) to map (column, row)."""
    x = np.hstack([UTM_POINTS, np.ones((len(UTM_POINTS), 1))])
    y = np.hstack([MAP_POINTS, np.ones((len(MAP_POINTS), 1))])
    a, *_ = np.linalg.lstsq(x, y, rcond=None)
    return a[:, :2]


def grid_prior(pixel: np.ndarray, window: int = WINDOW_PX) -> np.ndarray:
    """Return the centre of the grid-aligned window that holds ``pixel`` in its middle half."""
    half, quarter = window // 2, window // 4
    out = []
    for value in np.round(pixel):
        cell = int(value // half)
        if value - half * cell < quarter:
            cell -= 1
        out.append(cell * half + half)
    return np.array(out, dtype=np.float64)


class OxfordDataset(CrossViewDataset):
    """Oxford RobotCar cross-view samples."""

    name = "Oxford RobotCar"
    _maps: dict[str, np.ndarray] = {}

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        options: CropOptions | None = None,
        camera_height_m: float = 1.65,
        check_files: bool = True,
    ) -> None:
        super().__init__(root, split, options or CropOptions(ground_size=(800, 1200),
                                                              rotation_range_deg=0.0))
        if split not in SPLIT_FILES:
            choices = ", ".join(SPLIT_FILES)
            raise ValueError(f"Oxford split must be one of {choices}, not {split!r}")
        self.camera_height_m = float(camera_height_m)
        require(self.root / MAP_FILE, "the stitched satellite map", self.name)
        list_path = require(self.root / SPLIT_FILES[split], "the split file", self.name)
        lines = read_lines(list_path)
        if split == "train":
            yaws = np.load(require(self.root / "train_yaw.npy", "the yaw array", self.name))
            yaws = np.delete(yaws, BROKEN_TRAIN)
        elif split == "val":
            yaws = np.load(require(self.root / "val_yaw.npy", "the yaw array", self.name))
        else:
            yaws = np.load(require(self.root / "test_yaw.npy", "the yaw array", self.name))
            start = 0
            for earlier in ("test1", "test2", "test3"):
                if earlier == split:
                    break
                path = require(self.root / SPLIT_FILES[earlier], "the split file", self.name)
                start += len(read_lines(path))
            yaws = yaws[start:start + len(lines)]
        if len(yaws) != len(lines):
            raise ValueError(
                f"{list_path.name} has {len(lines)} lines but its yaw array gives {len(yaws)}"
            )
        fit = utm_to_map_fit()
        self.entries: list[tuple[str, np.ndarray, float]] = []
        for number, (line, yaw) in enumerate(zip(lines, yaws), 1):
            f = line.split()
            if len(f) != 4:
                raise ValueError(f"{list_path}:{number}: expected '<ground> <satellite> E N'")
            pixel = np.array([float(f[2]), float(f[3]), 1.0]) @ fit
            self.entries.append((f[0], pixel, float(yaw)))
        if check_files:
            require_all([self.root / e[0] for e in self.entries],
                        f"ground images listed in {list_path.name}", self.name)

    def satellite_map(self) -> np.ndarray:
        """Return the decoded stitched map (decoded once per process)."""
        key = str(self.root / MAP_FILE)
        if key not in self._maps:
            self._maps[key] = imread_rgb(self.root / MAP_FILE)
        return self._maps[key]

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Load, crop and label one sample."""
        name, truth, yaw = self.entries[index]
        o = self.options
        ground = imread_rgb(self.root / name)
        k = scale_intrinsics(K_1200x800, (1200, 800), o.ground_size)
        ground = resize_ground(ground, o.ground_size)

        heading = math.pi - yaw
        rng = self.rng(index)
        if self.is_train:
            alpha = 2.0 * math.pi * rng.random()
            radius = WINDOW_PX / 4 * math.sqrt(2.0) * rng.random()
            prior = np.round(truth) + radius * np.array([math.sin(alpha), math.cos(alpha)])
        else:
            prior = grid_prior(truth)
        yaw_deg = rng.uniform(-1.0, 1.0) * o.rotation_range_deg
        prior_heading = heading - math.radians(yaw_deg)
        mpp = o.satellite_mpp or MAP_MPP * WINDOW_PX / 512
        satellite = warp_crop(self.satellite_map(), prior, prior_heading, mpp / MAP_MPP,
                              o.satellite_size)
        targets = crop_targets(truth, heading, prior, prior_heading, MAP_MPP)
        return self.pack(index, ground, k, satellite, targets, mpp, self.camera_height_m,
                         name=name)
