# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""VIGOR with the corrected labels (``splits__corrected``), positives only.

::

    ROOT/<City>/panorama/<pano>            equirectangular, north at the centre column
    ROOT/<City>/satellite/<sat>            640x640 north-up
    ROOT/splits__corrected/<City>/satellite_list.txt
    ROOT/splits__corrected/<City>/same_area_balanced_{train,test}__corrected.txt
    ROOT/splits__corrected/<City>/pano_label_balanced__corrected.txt   (cross-area)

A label line is ``<pano> <sat> dr dc <sat> dr dc ...`` with four satellite images, the
positive first; ``dr``/``dc`` put the panorama at row ``centre + dr`` and column
``centre - dc`` of that image, in pixels at 640. Same-area uses all four cities for training
and testing; cross-area trains on New York and Seattle and tests on San Francisco and
Chicago. The prior is the satellite image centre heading north (the panorama's centre
column), so crops have north along +u; the yaw is an unknown turn of the panorama (a roll by
whole columns, content moving right turning the camera counter-clockwise) uniform in
+-``rotation_range_deg`` (0 for known orientation, 180 for unknown). VIGOR's test labels
carry no rotation, so test rotations come from the fixed ``(seed, index)`` generator.
``val`` is the last 20 % of the training labels.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
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
    warp_crop,
)

CITIES = ("NewYork", "Seattle", "SanFrancisco", "Chicago")
CROSS_TRAIN = ("NewYork", "Seattle")
CROSS_TEST = ("SanFrancisco", "Chicago")
#: Metres per pixel of each city's 640x640 satellite images.
MPP_640 = {"NewYork": 0.113248, "Seattle": 0.100817, "SanFrancisco": 0.118141,
           "Chicago": 0.111262}
LABEL_ROOT = "splits__corrected"


class VigorDataset(CrossViewDataset):
    """VIGOR panorama-to-satellite samples."""

    name = "VIGOR"

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        options: CropOptions | None = None,
        area: str = "same",
        cities: tuple[str, ...] | None = None,
        val_fraction: float = 0.2,
        camera_height_m: float = 2.0,
        check_files: bool = True,
    ) -> None:
        super().__init__(root, split, options or CropOptions(ground_size=(320, 640)))
        if area not in ("same", "cross"):
            raise ValueError(f"VIGOR area must be 'same' or 'cross', not {area!r}")
        self.camera_height_m = float(camera_height_m)
        is_test = split not in ("train", "val")
        if cities is None:
            cities = CITIES if area == "same" else (CROSS_TEST if is_test else CROSS_TRAIN)
        labels = Path(self.root) / LABEL_ROOT
        require(labels, "the label folder", self.name)
        self.entries: list[tuple[str, str, str, float, float]] = []
        for city in cities:
            if area == "same":
                kind = "test" if is_test else "train"
                label_file = labels / city / f"same_area_balanced_{kind}__corrected.txt"
            else:
                label_file = labels / city / "pano_label_balanced__corrected.txt"
            require(labels / city / "satellite_list.txt", "the satellite list", self.name)
            require(label_file, "the label file", self.name)
            for number, line in enumerate(read_lines(label_file), 1):
                f = line.split()
                if len(f) < 4:
                    raise ValueError(f"{label_file}:{number}: expected '<pano> <sat> dr dc ...'")
                self.entries.append((city, f[0], f[1], float(f[2]), float(f[3])))
        if not is_test:
            n_val = int(len(self.entries) * val_fraction)
            n_train = len(self.entries) - n_val
            self.entries = self.entries[n_train:] if split == "val" else self.entries[:n_train]
        if check_files:
            paths = []
            for city, pano, sat, _, _ in self.entries:
                paths.append(self.root / city / "panorama" / pano)
                paths.append(self.root / city / "satellite" / sat)
            require_all(paths, "images named in the labels", self.name)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Load, crop and label one sample."""
        city, pano, sat, d_row, d_col = self.entries[index]
        o = self.options
        ground = resize_ground(imread_rgb(self.root / city / "panorama" / pano), o.ground_size)
        width = ground.shape[1]
        angle = self.rng(index).uniform(-1.0, 1.0) * o.rotation_range_deg
        columns = int(np.round(angle / 360.0 * width))
        # Rolling the content right turns the camera counter-clockwise (azimuth grows to the
        # right in the panorama), so the truth is that many columns CCW of the prior.
        ground = np.roll(ground, columns, axis=1)
        yaw_deg = columns * 360.0 / width
        yaw_deg = (yaw_deg + 180.0) % 360.0 - 180.0

        satmap = imread_rgb(self.root / city / "satellite" / sat)
        n_rows, n_cols = satmap.shape[:2]
        src_mpp = MPP_640[city] * 640.0 / n_cols
        centre = np.array([(n_cols - 1) / 2.0, (n_rows - 1) / 2.0])
        truth = centre + np.array([-d_col, d_row]) * (n_cols / 640.0)
        mpp = o.satellite_mpp or MPP_640[city] * 640.0 / o.satellite_size
        # The panorama's centre column faces north: that is the prior heading, along +u.
        north = math.pi / 2.0
        satellite = warp_crop(satmap, centre, north, mpp / src_mpp, o.satellite_size)
        targets = crop_targets(truth, north + math.radians(yaw_deg), centre, north, src_mpp)
        h, w = o.ground_size
        k = np.array([[w / (2 * np.pi), 0.0, w / 2.0], [0.0, h / np.pi, h / 2.0], [0, 0, 1]])
        return self.pack(index, ground, k, satellite, targets, mpp, self.camera_height_m,
                         name=f"{city}/{pano}")
