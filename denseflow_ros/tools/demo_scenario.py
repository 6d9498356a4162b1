# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The demo's scenario: its settings in ``config/demo.yaml`` and its cached town and drive.

The town (tile cache, orthophoto) is cached per seed and size, the drive (its arrays and
its rosbag2) per drive and frame count; a ``scenario.json`` written last marks each as
complete.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCENARIO_SECTION = "denseflow_demo"
# How export_bag logs a frame's messages (all at the frame's stamp); part of the drive cache.
BAG_ORDER = "fix,imu,camera_info,image,ground_truth"


class DemoError(Exception):
    """A reason the demo cannot go on, in one sentence."""


@dataclass(frozen=True)
class ScenarioSettings:
    """The ``denseflow_demo`` section: town, drive, camera image size and replay speed."""

    world_seed: int = 0
    world_size_m: float = 600.0
    drive_seed: int = 0
    frames: int = 240
    rate_hz: float = 1.0
    image_size: tuple[int, int] = (1242, 375)
    replay_rate: float = 2.0


@dataclass(frozen=True)
class ScenarioFiles:
    """A prepared scenario: its files, the town's datum and raster, the bag's topics.

    ``topics`` maps the drive's inputs (camera_info, fix, imu, image, ground_truth) to the
    bag's topic names; ``shape`` is the orthophoto's (rows, cols) at ``mpp`` metres a pixel,
    centred on ``datum`` (lat, lon).
    """

    tiles: Path
    ortho: Path
    bag: Path
    drive: Path
    datum: tuple[float, float]
    mpp: float
    shape: tuple[int, int]
    topics: dict[str, str]
    frames: int


# How each setting is read from the YAML document.
_CASTS: dict[str, Any] = {
    "world_seed": int, "world_size_m": float, "drive_seed": int, "frames": int,
    "rate_hz": float, "image_size": lambda v: tuple(int(x) for x in v), "replay_rate": float,
}


def progress_enabled() -> bool:
    """Return whether progress bars are shown (stderr is a terminal)."""
    return sys.stderr.isatty()


def read_scenario(config: Path) -> ScenarioSettings:
    """Return the config's ``denseflow_demo`` settings over the defaults."""
    import yaml

    try:
        doc = yaml.safe_load(config.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise DemoError(f"cannot read the demo config {config}: {exc}") from None
    section = (doc.get(SCENARIO_SECTION) or {}).get("ros__parameters") or {}
    unknown = sorted(set(section) - set(_CASTS))
    if unknown:
        raise DemoError(f"{config}: unknown {SCENARIO_SECTION} settings {', '.join(unknown)}")
    try:
        return ScenarioSettings(**{k: _CASTS[k](v) for k, v in section.items()})
    except (TypeError, ValueError) as exc:
        raise DemoError(f"{config}: {SCENARIO_SECTION}: {exc}") from None


def _first_frames(drive: Any, n: int) -> Any:
    """Return the drive cut to its first ``n`` frames (the same route and priors)."""
    import numpy as np

    arrays = {f.name: getattr(drive, f.name)[:n] for f in dataclasses.fields(drive)
              if isinstance(getattr(drive, f.name), np.ndarray)}
    return dataclasses.replace(drive, **arrays)


def _bag_order(drive_info: Path) -> str | None:
    """Return the message order a cached drive's bag was logged in (None: none, or unknown)."""
    try:
        return json.loads(drive_info.read_text()).get("bag_order")
    except (OSError, ValueError, AttributeError):
        return None


def _export_town(settings: ScenarioSettings, town_dir: Path) -> Any:
    """Generate the town; write its tile cache, orthophoto and ``scenario.json``."""
    import cv2

    from denseflow_ros.sim import export_tiles, generate_world

    seed, size_m = settings.world_seed, settings.world_size_m
    print(f"demo: generating town {seed} ({size_m:g} m square)", file=sys.stderr, flush=True)
    world = generate_world(seed, size_m=size_m)
    town_dir.mkdir(parents=True, exist_ok=True)
    (town_dir / "tiles.mbtiles").unlink(missing_ok=True)  # an interrupted export
    export_tiles(world, town_dir / "tiles.mbtiles", progress=progress_enabled())
    if not cv2.imwrite(str(town_dir / "ortho.jpg"), world.ortho[:, :, ::-1],
                       [cv2.IMWRITE_JPEG_QUALITY, 90]):
        raise DemoError(f"cannot write {town_dir / 'ortho.jpg'}")
    (town_dir / "scenario.json").write_text(json.dumps({
        "world_seed": seed, "world_size_m": size_m, "mpp": world.mpp,
        "datum": [world.center_lat, world.center_lon], "shape": list(world.shape)}) + "\n")
    return world


def _export_drive(settings: ScenarioSettings, world: Any, frames: int, drive_dir: Path
                  ) -> None:
    """Drive through the town; write the first ``frames`` frames' arrays and bag."""
    from denseflow_ros.sim import export_bag, simulate_drive

    width, height = settings.image_size
    try:
        drive = simulate_drive(world, settings.drive_seed, settings.frames,
                               rate_hz=settings.rate_hz)
    except ValueError as exc:
        raise DemoError(f"cannot drive {settings.frames} frames through town "
                        f"{settings.world_seed} of {settings.world_size_m:g} m: {exc}"
                        ) from None
    drive = _first_frames(drive, frames)
    drive_dir.mkdir(parents=True, exist_ok=True)
    drive.save(drive_dir / "drive.npz")
    drive_info = drive_dir / "scenario.json"
    drive_info.unlink(missing_ok=True)
    if (drive_dir / "bag").exists():
        shutil.rmtree(drive_dir / "bag")  # an interrupted export, or an older order
    print(f"demo: rendering the drive ({frames} frames at {width}x{height})",
          file=sys.stderr, flush=True)
    summary = export_bag(world, drive, drive_dir / "bag", width=width, height=height,
                         progress=progress_enabled())
    drive_info.write_text(json.dumps({"frames": frames, "topics": summary["topics"],
                                      "bag_order": BAG_ORDER}) + "\n")


def prepare_scenario(settings: ScenarioSettings, frames: int, work_dir: Path) -> ScenarioFiles:
    """Generate (or reuse) the town's tile cache and the drive's bag; return their paths.

    A cached drive records its bag's message order, :data:`BAG_ORDER`: a bag logged in
    another order is exported again.
    """
    from denseflow_ros.sim import generate_world

    seed, size_m = settings.world_seed, settings.world_size_m
    width, height = settings.image_size
    town_dir = work_dir / f"town{seed}-{size_m:g}m"
    drive_dir = town_dir / (f"drive{settings.drive_seed}-{frames}of{settings.frames}-"
                            f"{settings.rate_hz:g}hz-{width}x{height}")
    town_info, drive_info = town_dir / "scenario.json", drive_dir / "scenario.json"
    world = None
    if not town_info.is_file():
        world = _export_town(settings, town_dir)
    if _bag_order(drive_info) != BAG_ORDER:
        if world is None:
            print(f"demo: regenerating town {seed} to render its drive", file=sys.stderr,
                  flush=True)
            world = generate_world(seed, size_m=size_m)
        _export_drive(settings, world, frames, drive_dir)
    town = json.loads(town_info.read_text())
    drive_doc = json.loads(drive_info.read_text())
    return ScenarioFiles(
        tiles=town_dir / "tiles.mbtiles", ortho=town_dir / "ortho.jpg", bag=drive_dir / "bag",
        drive=drive_dir / "drive.npz", datum=tuple(town["datum"]), mpp=float(town["mpp"]),
        shape=tuple(town["shape"]), topics=drive_doc["topics"], frames=drive_doc["frames"])
