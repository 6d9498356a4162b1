# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""KITTI raw with the cross-view satellite maps, in the layout the benchmark publishes.

::

    ROOT/raw_data/<date>/calib_cam_to_cam.txt
    ROOT/raw_data/<date>/<drive>/image_02/data/<frame>.png
    ROOT/raw_data/<date>/<drive>/oxts/data/<frame>.txt
    ROOT/satmap/<date>/<drive>/<frame>.png          north-up, centred on the GPS fix
    ROOT/train_files.txt, test1_files.txt (same area), test2_files.txt (cross area)

Split lines are ``<date>/<drive>/<frame>.png``; test lines add three numbers in [-1, 1]: the
camera's offset from the prior along the true heading and across it (left positive) in units
of the shift ranges, and the yaw in units of the rotation range. The camera sits 1.08 m ahead
of and 0.26 m right of the GPS antenna. ``val`` reads ``val_files.txt`` where the root has
one, else it is the last ``val_fraction`` of the training list (whole drives, as the list is
sorted), so model selection never sees a test split.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from denseflow_ros.model.config import KITTI_MPP
from training.datasets.common import (
    CropOptions,
    CrossViewDataset,
    DatasetRootError,
    heading_axes,
    imread_rgb,
    load_ground,
    perturbed_crop,
    read_lines,
    require,
    require_all,
)

#: Metres per pixel of the benchmark's satellite maps (zoom 18 at scale 2, latitude 49.015).
SATMAP_MPP = KITTI_MPP
#: Camera position relative to the GPS antenna: metres forward, metres right.
CAMERA_GPS_OFFSET_M = (1.08, 0.26)


def read_p_rect_02(path: Path) -> np.ndarray:
    """Return the 3x3 left colour camera matrix from a ``calib_cam_to_cam.txt``."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key.strip() == "P_rect_02":
                numbers = [float(x) for x in value.split()]
                if len(numbers) != 12:
                    raise ValueError(f"P_rect_02 in {path} has {len(numbers)} values, not 12")
                return np.array(numbers, dtype=np.float64).reshape(3, 4)[:, :3]
    raise ValueError(f"{path} has no P_rect_02 line")


def read_oxts_yaw(path: Path) -> float:
    """Return the yaw (radians, counter-clockwise from east) of one OXTS record."""
    with open(path, encoding="utf-8") as f:
        fields = f.readline().split()
    if len(fields) < 6:
        raise ValueError(f"OXTS record {path} has {len(fields)} fields, expected 30")
    return float(fields[5])


class KittiDataset(CrossViewDataset):
    """KITTI cross-view localization samples (also the synthetic world's export)."""

    name = "KITTI"

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        options: CropOptions | None = None,
        split_file: str | os.PathLike | None = None,
        val_fraction: float = 0.05,
        satmap_mpp: float = SATMAP_MPP,
        camera_gps_offset_m: tuple[float, float] = CAMERA_GPS_OFFSET_M,
        camera_height_m: float = 1.65,
        check_files: bool = True,
    ) -> None:
        super().__init__(root, split, options or CropOptions())
        self.satmap_mpp = float(satmap_mpp)
        self.camera_gps_offset_m = tuple(float(x) for x in camera_gps_offset_m)
        self.camera_height_m = float(camera_height_m)
        require(self.root / "raw_data", "the ground images folder raw_data/", self.name)
        require(self.root / "satmap", "the satellite maps folder satmap/", self.name)
        derive_val = False
        own_val = (self.root / "val_files.txt").is_file()
        if split_file is not None:
            list_path = Path(split_file)
        elif split == "val" and own_val:
            list_path = self.root / "val_files.txt"
        else:
            # The last val_fraction of train is validation only when there is no val list.
            derive_val = split == "val" or (split == "train" and not own_val)
            list_name = "train" if split in ("train", "val") else split
            list_path = self.root / f"{list_name}_files.txt"
        require(list_path, "the split file", self.name)
        lines = read_lines(list_path)
        if derive_val:
            n_val = int(round(len(lines) * val_fraction))
            lines = lines[len(lines) - n_val:] if split == "val" else lines[: len(lines) - n_val]
        self.entries: list[tuple[str, tuple[float, float, float] | None]] = []
        for number, line in enumerate(lines, 1):
            fields = line.split()
            if len(fields) == 4:
                offsets = (float(fields[1]), float(fields[2]), float(fields[3]))
            elif len(fields) == 1 and split in ("train", "val"):
                offsets = None
            else:
                raise ValueError(
                    f"{list_path}:{number}: a {split} line must be '<date>/<drive>/<frame>.png"
                    " dx dy dyaw' (test perturbations come from the split file)"
                )
            parts = fields[0].split("/")
            if len(parts) != 3:
                raise ValueError(f"{list_path}:{number}: expected <date>/<drive>/<frame>.png")
            self.entries.append((fields[0], offsets))
        dates = sorted({e[0].split("/")[0] for e in self.entries})
        require_all(
            [self.root / "raw_data" / d / "calib_cam_to_cam.txt" for d in dates],
            "a calibration file", self.name,
        )
        self._calib = {d: read_p_rect_02(self.root / "raw_data" / d / "calib_cam_to_cam.txt")
                       for d in dates}
        if check_files:
            paths = []
            for name, _ in self.entries:
                paths += [self.ground_path(name), self.oxts_path(name), self.satmap_path(name)]
            require_all(paths, f"files listed in {list_path.name}", self.name)

    def ground_path(self, name: str) -> Path:
        """Return the left colour image of a split entry."""
        date, drive, frame = name.split("/")
        return self.root / "raw_data" / date / drive / "image_02" / "data" / frame.lower()

    def oxts_path(self, name: str) -> Path:
        """Return the OXTS record of a split entry."""
        date, drive, frame = name.split("/")
        txt = frame.lower().replace(".png", ".txt")
        return self.root / "raw_data" / date / drive / "oxts" / "data" / txt

    def satmap_path(self, name: str) -> Path:
        """Return the satellite map of a split entry."""
        return self.root / "satmap" / name

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Load, crop and label one sample."""
        name, offsets = self.entries[index]
        o = self.options
        if offsets is None:
            forward_m, right_m, yaw_deg = self.random_offsets(index)
        else:
            # Test lines: shift along the heading, shift "up" (left), yaw, each in [-1, 1].
            forward_m = offsets[0] * o.shift_range_lon_m
            right_m = -offsets[1] * o.shift_range_lat_m
            yaw_deg = offsets[2] * o.rotation_range_deg

        ground, k = load_ground(self.ground_path(name), self._calib[name.split("/")[0]],
                                o.ground_size)
        satmap = imread_rgb(self.satmap_path(name))
        heading = read_oxts_yaw(self.oxts_path(name))
        n_rows, n_cols = satmap.shape[:2]
        gps = np.array([(n_cols - 1) / 2.0, (n_rows - 1) / 2.0])
        fwd, right = heading_axes(heading)
        camera = gps + (self.camera_gps_offset_m[0] * fwd
                        + self.camera_gps_offset_m[1] * right) / self.satmap_mpp
        mpp = o.satellite_mpp or self.satmap_mpp
        satellite, targets = perturbed_crop(satmap, camera, heading,
                                            (forward_m, right_m, yaw_deg), self.satmap_mpp,
                                            mpp, o.satellite_size)
        return self.pack(index, ground, k, satellite, targets, mpp, self.camera_height_m,
                         name=name)


__all__ = ["DatasetRootError", "KittiDataset", "read_oxts_yaw", "read_p_rect_02"]
