# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Ford multi-AV seasonal, in the processed cross-view layout, one log per model.

::

    ROOT/<date>/V2/<Log>/<date>-V2-<Log>-FL/<frame>.png        front-left camera, 1656x860
    ROOT/<date>/V2/<Log>/SatelliteMaps_18/<sat_lat>_<sat_lon>.png  north-up, 0.22 m/px
    ROOT/<date>/V2/<Log>/grd_sat_quaternion_latlon.txt         training lines
    ROOT/<date>/V2/<Log>/grd_sat_quaternion_latlon_test.txt    test lines (+ perturbation)
    ROOT/Calibration-V2/V2/cameraFrontLeft_body.yaml, cameraFrontLeftIntrinsics.yaml

A line is ``<frame>.txt q0 q1 q2 q3 lat lon sat_lat sat_lon`` (body orientation as a w-first
quaternion in north-east-down, body position, satellite image centre); test lines append
``du dv dyaw`` in [-1, 1]: the prior's offset from the body across the heading (right
positive) and against it (backward positive) in units of the shift ranges, and the yaw in
units of the rotation range. The protocol trains and tests one model per log index (0-5):
training uses fixed frame ranges of six logs, testing the whole test file of six other logs.
``val`` is the last ``val_fraction`` of the training frames. Positions are the body origin's.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from denseflow_ros.angles import yaw_from_quaternion
from training.datasets.common import (
    CropOptions,
    CrossViewDataset,
    imread_rgb,
    load_ground,
    perturbed_crop,
    read_lines,
    require,
    require_all,
)

SATMAP_DIR = "SatelliteMaps_18"
SATMAP_MPP = 0.22
CALIB_DIR = Path("Calibration-V2") / "V2"
EARTH_RADIUS_M = 6378137.0

TRAIN_LOGS = (
    "2017-10-26/V2/Log1", "2017-10-26/V2/Log2", "2017-08-04/V2/Log3",
    "2017-10-26/V2/Log4", "2017-08-04/V2/Log5", "2017-08-04/V2/Log6",
)
TEST_LOGS = (
    "2017-08-04/V2/Log1", "2017-08-04/V2/Log2", "2017-08-04/V2/Log3",
    "2017-08-04/V2/Log4", "2017-10-26/V2/Log5", "2017-10-26/V2/Log6",
)
# The protocol's training frames of each training log, as half-open line ranges.
TRAIN_RANGES: tuple[tuple[tuple[int, int], ...], ...] = (
    ((4500, 8500),),
    ((0, 3150), (6000, 9200), (11000, 15000)),
    ((0, 1500),),
    ((0, 7466),),
    ((0, 3200), (5300, 9900), (10500, 11130)),
    ((1000, 3500), (4500, 5000), (7000, 7857)),
)


def quaternion_to_matrix(w: float, x: float, y: float, z: float) -> np.ndarray:
    """Return the rotation matrix of a unit quaternion (w first)."""
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def mercator_xy(lat: float, lon: float, ref_lat: float) -> tuple[float, float]:
    """Return scaled-Mercator metres (x east, y north) at reference latitude ``ref_lat``."""
    s = math.cos(math.radians(ref_lat))
    x = s * EARTH_RADIUS_M * math.radians(lon)
    y = s * EARTH_RADIUS_M * math.log(math.tan(math.pi * (90.0 + lat) / 360.0))
    return x, y


def read_calibration(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """Return the front-left camera's K (3x3) and camera-to-body transform (4x4)."""
    calib = root / CALIB_DIR
    with open(calib / "cameraFrontLeftIntrinsics.yaml", encoding="utf-8") as f:
        intr = yaml.safe_load(f)
    k = np.array(intr["K"], dtype=np.float64).reshape(3, 3)
    with open(calib / "cameraFrontLeft_body.yaml", encoding="utf-8") as f:
        ext = yaml.safe_load(f)["transform"]
    r, t = ext["rotation"], ext["translation"]
    pose = np.eye(4)
    pose[:3, :3] = quaternion_to_matrix(r["w"], r["x"], r["y"], r["z"])
    pose[:3, 3] = (t["x"], t["y"], t["z"])
    return k, pose


class FordDataset(CrossViewDataset):
    """Ford multi-AV cross-view samples of one protocol log."""

    name = "Ford multi-AV"

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        options: CropOptions | None = None,
        log: int = 0,
        split_file: str | os.PathLike | None = None,
        val_fraction: float = 0.05,
        camera_height_m: float = 1.0,
        check_files: bool = True,
    ) -> None:
        super().__init__(root, split, options or CropOptions())
        if not 0 <= log < len(TRAIN_LOGS):
            raise ValueError(f"Ford log must be 0..{len(TRAIN_LOGS) - 1}, got {log}")
        self.camera_height_m = float(camera_height_m)
        calib = self.root / CALIB_DIR
        require(calib / "cameraFrontLeftIntrinsics.yaml", "the camera intrinsics", self.name)
        require(calib / "cameraFrontLeft_body.yaml", "the camera extrinsics", self.name)
        self.k, self.camera_to_body = read_calibration(self.root)
        is_test = split not in ("train", "val")
        self.log = (TEST_LOGS if is_test else TRAIN_LOGS)[log]
        log_dir = self.root / self.log
        require(log_dir, "the log folder", self.name)
        if split_file is not None:
            list_path = Path(split_file)
        elif is_test:
            list_path = log_dir / "grd_sat_quaternion_latlon_test.txt"
        else:
            list_path = log_dir / "grd_sat_quaternion_latlon.txt"
        require(list_path, "the pose list", self.name)
        lines = read_lines(list_path)
        if not is_test and split_file is None:
            chosen = [i for a, b in TRAIN_RANGES[log] for i in range(a, b) if i < len(lines)]
            n_val = int(round(len(chosen) * val_fraction))
            n_train = len(chosen) - n_val
            chosen = chosen[n_train:] if split == "val" else chosen[:n_train]
            lines = [lines[i] for i in chosen]
        self.entries: list[tuple[Any, ...]] = []
        for number, line in enumerate(lines, 1):
            f = line.split()
            if len(f) not in (9, 12) or (is_test and len(f) != 12):
                raise ValueError(
                    f"{list_path}:{number}: expected 'frame q0 q1 q2 q3 lat lon sat_lat sat_lon"
                    + (" du dv dyaw'" if is_test else "'")
                )
            offsets = tuple(float(x) for x in f[9:12]) if len(f) == 12 else None
            self.entries.append((f[0], *(float(x) for x in f[1:5]), float(f[5]), float(f[6]),
                                 f[7], f[8], offsets))
        if check_files:
            paths = []
            for e in self.entries:
                paths += [self.ground_path(e[0]), self.satmap_path(e[7], e[8])]
            require_all(paths, f"files listed in {list_path.name}", self.name)

    def ground_path(self, frame: str) -> Path:
        """Return the front-left image of a pose line."""
        folder = self.log.replace("/", "-") + "-FL"
        return self.root / self.log / folder / frame.replace(".txt", ".png")

    def satmap_path(self, sat_lat: str, sat_lon: str) -> Path:
        """Return the satellite map of a pose line (named by its centre as written)."""
        return self.root / self.log / SATMAP_DIR / f"{sat_lat}_{sat_lon}.png"

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Load, crop and label one sample."""
        frame, q0, q1, q2, q3, lat, lon, sat_lat, sat_lon, offsets = self.entries[index]
        o = self.options
        if offsets is None:
            forward_m, right_m, yaw_deg = self.random_offsets(index)
        else:
            # The prior sits du right of and dv behind the body: the body is -du right, +dv ahead.
            forward_m = offsets[1] * o.shift_range_lon_m
            right_m = -offsets[0] * o.shift_range_lat_m
            yaw_deg = offsets[2] * o.rotation_range_deg

        ground, k = load_ground(self.ground_path(frame), self.k, o.ground_size)

        satmap = imread_rgb(self.satmap_path(sat_lat, sat_lon))
        n_rows, n_cols = satmap.shape[:2]
        centre = np.array([(n_cols - 1) / 2.0, (n_rows - 1) / 2.0])
        gx, gy = mercator_xy(lat, lon, float(sat_lat))
        sx, sy = mercator_xy(float(sat_lat), float(sat_lon), float(sat_lat))
        body = centre + np.array([gx - sx, -(gy - sy)]) / SATMAP_MPP
        # The body quaternion is north-east-down (w first): its yaw is clockwise from north.
        heading = math.pi / 2.0 - yaw_from_quaternion(q1, q2, q3, q0)
        mpp = o.satellite_mpp or SATMAP_MPP
        satellite, targets = perturbed_crop(satmap, body, heading, (forward_m, right_m, yaw_deg),
                                            SATMAP_MPP, mpp, o.satellite_size)
        return self.pack(
            index, ground, k, satellite, targets, mpp, self.camera_height_m,
            camera_to_body=self.camera_to_body.astype(np.float32), name=frame,
        )
