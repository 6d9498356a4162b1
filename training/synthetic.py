# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The synthetic towns as a training set: the simulator's KITTI-layout export.

``synthetic`` datasets are read by the KITTI loader with the export's own constants from
``sim_info.json`` (satellite metres per pixel, camera height, camera offset from the OXTS
unit). When a config gives ``dataset_options.generate`` and the root holds no export yet, the
export is written first, deterministically from the listed seeds, so one command reproduces a
run from nothing::

    generate:
      train_seeds: [1, 2, 3]     # one town and one drive per seed
      val_seeds: [50]            # model selection (val_files.txt)
      test_seeds: [0]            # held out (test1_files.txt, fixed perturbations)
      frames: 40                 # frames per drive
      rate_hz: 1.0               # frame rate along the drive
      world_size_m: 600.0
      image_size: [512, 155]     # rendered ground image (W, H)
      satmap_px: 640
      satmap_mpp: 0.4
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from training.datasets.common import DatasetRootError

LOG = logging.getLogger("training")
INFO_FILE = "sim_info.json"


def read_sim_info(root: str | os.PathLike) -> dict[str, Any]:
    """Return the export's ``sim_info.json`` or raise ``DatasetRootError`` naming it."""
    path = Path(root) / INFO_FILE
    if not path.is_file():
        raise DatasetRootError(f"synthetic root is missing the export description: {path}")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def loader_options(root: str | os.PathLike) -> dict[str, Any]:
    """Return the KITTI loader options that describe an export."""
    info = read_sim_info(root)
    options: dict[str, Any] = {"satmap_mpp": float(info["satmap_mpp"])}
    if "camera_height_m" in info:
        options["camera_height_m"] = float(info["camera_height_m"])
    if "camera_from_oxts_m" in info:
        options["camera_gps_offset_m"] = tuple(float(x) for x in info["camera_from_oxts_m"])
    return options


def ensure_export(root: str | os.PathLike, spec: dict[str, Any], progress: bool = False) -> None:
    """Write the export described by ``spec`` under ``root`` unless it is already there."""
    from denseflow_ros.sim.drive import simulate_drive
    from denseflow_ros.sim.export import KITTI_SATMAP_MPP, KittiDrive, export_kitti
    from denseflow_ros.sim.world import generate_world

    root = Path(root)
    if (root / INFO_FILE).is_file():
        return
    allowed = {"train_seeds", "val_seeds", "test_seeds", "frames", "rate_hz", "world_size_m",
               "image_size", "satmap_px", "satmap_mpp", "perturbation_seed"}
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise ValueError(f"unknown synthetic generate options: {', '.join(unknown)}")
    frames = int(spec.get("frames", 40))
    rate = float(spec.get("rate_hz", 1.0))
    size_m = float(spec.get("world_size_m", 600.0))
    drives = []
    for key, split in (("train_seeds", "train"), ("val_seeds", "test2"),
                       ("test_seeds", "test1")):
        for seed in spec.get(key, []):
            LOG.info("synthetic export: town %d (%s)", seed, split)
            world = generate_world(int(seed), size_m=size_m)
            drives.append(KittiDrive(world, simulate_drive(world, int(seed), frames, rate), split))
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / ".export"
    export_kitti(
        tmp, drives, image_size=tuple(spec.get("image_size", (1242, 375))),
        satmap_px=int(spec.get("satmap_px", 1280)),
        satmap_mpp=float(spec.get("satmap_mpp", KITTI_SATMAP_MPP)),
        perturbation_seed=int(spec.get("perturbation_seed", 0)), progress=progress,
    )
    # The validation towns are exported as a second test list; give them their own name.
    (tmp / "test2_files.txt").rename(tmp / "val_files.txt")
    # sim_info.json moves last: its presence marks a complete export.
    for item in sorted(tmp.iterdir(), key=lambda p: p.name == INFO_FILE):
        item.rename(root / item.name)
    tmp.rmdir()
