# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``denseflow sim``: generate synthetic towns and drives, render frames, export datasets.

::

    denseflow sim world --seed 7 --size-m 1000 --out world.npz [--ortho ortho.png]
    denseflow sim drive --world world.npz --seed 1 --frames 600 --out drive.npz
    denseflow sim render --world world.npz --drive drive.npz --frame 10 --out frame.png
    denseflow sim export tiles --world world.npz --out cache.mbtiles
    denseflow sim export bag --world world.npz --drive drive.npz --out drive_bag
    denseflow sim export kitti --out kitti_sim --train-worlds 1 2 --test2-worlds 3
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from denseflow_ros.sim import Drive, World


def _image_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    if w < 2 or h < 2:
        raise argparse.ArgumentTypeError(f"image size must be at least 2x2, got {text!r}")
    return w, h


def _add_world_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size-m", type=float, default=1000.0, help="side of the town (m)")
    p.add_argument("--mpp", type=float, default=0.2, help="orthophoto metres per pixel")
    p.add_argument("--lat", type=float, default=49.0, help="latitude of the town's centre")
    p.add_argument("--lon", type=float, default=8.4, help="longitude of the town's centre")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``world``, ``drive``, ``render`` and ``export`` sub-subcommands."""
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    p = sub.add_parser("world", help="generate a town and save it (.npz)")
    p.add_argument("--seed", type=int, required=True)
    _add_world_options(p)
    p.add_argument("--out", required=True, help="output .npz")
    p.add_argument("--ortho", help="also write the orthophoto as an image file (PNG/JPEG)")

    p = sub.add_parser("drive", help="simulate a drive with GNSS/IMU priors (.npz)")
    p.add_argument("--world", required=True, help="world .npz from 'sim world'")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--frames", type=int, required=True)
    p.add_argument("--rate-hz", type=float, default=10.0)
    p.add_argument("--out", required=True, help="output .npz")

    p = sub.add_parser("render", help="render one frame of a drive to an image file")
    p.add_argument("--world", required=True)
    p.add_argument("--drive", required=True)
    p.add_argument("--frame", type=int, default=0)
    p.add_argument("--image-size", type=_image_size, default=(1242, 375), metavar="WxH")
    p.add_argument("--camera-height-m", type=float, default=1.65)
    p.add_argument("--out", required=True)

    p = sub.add_parser("export", help="export a tile cache, a rosbag2 or a KITTI-layout tree")
    ex = p.add_subparsers(dest="kind", required=True, metavar="KIND")
    t = ex.add_parser("tiles", help="the orthophoto as XYZ tiles or MBTiles")
    t.add_argument("--world", required=True)
    t.add_argument("--out", required=True, help="folder (XYZ) or file ending in .mbtiles")
    t.add_argument("--zoom", type=int, help="tile zoom (default: the finest the image needs)")

    b = ex.add_parser("bag", help="a drive as a rosbag2 with rendered images and priors")
    b.add_argument("--world", required=True)
    b.add_argument("--drive", required=True)
    b.add_argument("--out", required=True, help="bag folder to create")
    b.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    b.add_argument("--image-size", type=_image_size, default=(1242, 375), metavar="WxH")
    b.add_argument("--camera-height-m", type=float, default=1.65)

    k = ex.add_parser("kitti", help="drives in KITTI's published layout, with split files")
    k.add_argument("--out", required=True, help="dataset root to create")
    k.add_argument("--train-worlds", type=int, nargs="+", required=True, metavar="SEED",
                   help="world seeds of the training drives (test1 drives too: same area)")
    k.add_argument("--test2-worlds", type=int, nargs="*", default=[], metavar="SEED",
                   help="world seeds of the cross-area test drives")
    _add_world_options(k)
    k.add_argument("--drives-per-world", type=int, default=2, help="training drives per world")
    k.add_argument("--test-drives-per-world", type=int, default=1,
                   help="test1 drives per training world and test2 drives per test2 world")
    k.add_argument("--frames", type=int, default=100, help="frames per drive")
    k.add_argument("--rate-hz", type=float, default=2.0,
                   help="frame rate of the exported drives (2 Hz: frames ~5 m apart)")
    k.add_argument("--image-size", type=_image_size, default=(1242, 375), metavar="WxH")
    k.add_argument("--satmap-px", type=int, default=1280, help="satellite map side (pixels)")
    k.add_argument("--camera-height-m", type=float, default=1.65)
    k.add_argument("--perturbation-seed", type=int, default=0)
    for q in (b, k):
        q.add_argument("--jobs", type=int, default=1, help="rendering processes")
    for q in (p, t, b, k):
        q.add_argument("--quiet", action="store_true", help="no progress bars")


@dataclass(frozen=True)
class WorldOptions:
    """A generated town's side (m), orthophoto metres per pixel and centre (degrees)."""

    size_m: float = 1000.0
    mpp: float = 0.2
    lat: float = 49.0
    lon: float = 8.4

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> WorldOptions:
        """Build from ``--size-m``, ``--mpp``, ``--lat`` and ``--lon``."""
        return cls(args.size_m, args.mpp, args.lat, args.lon)


@dataclass(frozen=True)
class CameraOptions:
    """The rendered camera's image size (width, height) and height above the road (m)."""

    image_size: tuple[int, int] = (1242, 375)
    camera_height_m: float = 1.65

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> CameraOptions:
        """Build from ``--image-size`` and ``--camera-height-m``."""
        return cls(args.image_size, args.camera_height_m)


@dataclass
class WorldSummary:
    """A saved town: its file, orthophoto size (rows, columns, bands), scale and centre."""

    out: str
    pixels: list[int]
    mpp: float
    center: list[float]
    generation_s: float


@dataclass
class DriveSummary:
    """A saved drive: its file, length and how far its GNSS strays from the truth."""

    out: str
    frames: int
    duration_s: float
    distance_m: float
    gnss_error_median_m: float
    multipath_fraction: float


@dataclass
class RenderSummary:
    """A rendered frame: its image file, frame index and size (width, height)."""

    out: str
    frame: int
    size: list[int]


def _load_world(path: str) -> World:
    from denseflow_ros.sim import World

    return World.load(path)


def _load_drive(path: str) -> Drive:
    from denseflow_ros.sim import Drive

    return Drive.load(path)


def make_world(seed: int, out: str, options: WorldOptions,
               ortho: str | None = None) -> WorldSummary:
    """Generate the town of ``seed``, save it to ``out`` and its orthophoto to ``ortho``."""
    from denseflow_ros import sim

    t0 = time.perf_counter()
    world = sim.generate_world(seed, options.size_m, options.mpp, options.lat, options.lon)
    seconds = time.perf_counter() - t0
    world.save(out)
    if ortho:
        import cv2

        if not cv2.imwrite(ortho, world.ortho[:, :, ::-1]):
            raise OSError(f"could not write {ortho}")
    return WorldSummary(out, list(world.shape), world.mpp,
                        [world.center_lat, world.center_lon], round(seconds, 2))


def make_drive(world_path: str, seed: int, frames: int, out: str,
               rate_hz: float = 10.0) -> DriveSummary:
    """Simulate drive ``seed`` of ``frames`` frames through a saved town; save it to ``out``."""
    import numpy as np

    from denseflow_ros import sim

    drive = sim.simulate_drive(_load_world(world_path), seed, frames, rate_hz)
    drive.save(out)
    err = np.hypot(drive.gnss_east - drive.east, drive.gnss_north - drive.north)
    return DriveSummary(out, len(drive), float(drive.t_s[-1]),
                        float(np.hypot(np.diff(drive.east), np.diff(drive.north)).sum()),
                        float(np.median(err)), float(drive.gnss_multipath.mean()))


def render_frame(world_path: str, drive_path: str, frame: int, out: str,
                 camera: CameraOptions) -> RenderSummary:
    """Render ``frame`` of a saved drive through a saved town to the image ``out``."""
    import cv2

    from denseflow_ros import sim

    world, drive = _load_world(world_path), _load_drive(drive_path)
    if not 0 <= frame < len(drive):
        raise ValueError(f"--frame must be in 0..{len(drive) - 1}, got {frame}")
    w, h = camera.image_size
    img = sim.render_ground(world, sim.kitti_intrinsics(w, h), w, h, float(drive.east[frame]),
                            float(drive.north[frame]), float(drive.yaw_rad[frame]),
                            camera_height_m=camera.camera_height_m, seed=frame)
    if not cv2.imwrite(out, img[:, :, ::-1]):
        raise OSError(f"could not write {out}")
    return RenderSummary(out, frame, [w, h])


@dataclass(frozen=True)
class KittiExportOptions:
    """How ``sim export kitti`` builds its drives; see :func:`add_arguments` for each option."""

    world: WorldOptions = field(default_factory=WorldOptions)
    drives_per_world: int = 2
    test_drives_per_world: int = 1
    frames: int = 100
    rate_hz: float = 2.0
    camera: CameraOptions = field(default_factory=CameraOptions)
    satmap_px: int = 1280
    perturbation_seed: int = 0
    jobs: int = 1
    progress: bool = True

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> KittiExportOptions:
        """Return the options of a ``denseflow sim export kitti`` command line."""
        return cls(WorldOptions.from_args(args), args.drives_per_world,
                   args.test_drives_per_world, args.frames, args.rate_hz,
                   CameraOptions.from_args(args), args.satmap_px, args.perturbation_seed,
                   args.jobs, not args.quiet)


def export_kitti_drives(out: str, train_worlds: list[int], test2_worlds: list[int],
                        options: KittiExportOptions) -> dict[str, Any]:
    """Generate the worlds' drives and write them in KITTI's layout under ``out``.

    Each training world gives the training and test1 drives, each test2 world the test2 ones.
    """
    from denseflow_ros import sim
    from denseflow_ros.sim import export

    w, items = options.world, []
    for seeds, split_drives in ((train_worlds, (("train", options.drives_per_world),
                                                ("test1", options.test_drives_per_world))),
                                (test2_worlds, (("test2", options.test_drives_per_world),))):
        for seed in seeds:
            world = sim.generate_world(seed, w.size_m, w.mpp, w.lat, w.lon)
            k = 0
            for split, count in split_drives:
                for _ in range(count):
                    drive = sim.simulate_drive(world, seed * 1000 + k, options.frames,
                                               options.rate_hz)
                    items.append(export.KittiDrive(world, drive, split))
                    k += 1
    return export.export_kitti(out, items, image_size=options.camera.image_size,
                               satmap_px=options.satmap_px,
                               camera_height_m=options.camera.camera_height_m,
                               perturbation_seed=options.perturbation_seed,
                               progress=options.progress, jobs=options.jobs)


def main(args: argparse.Namespace) -> int:
    """Run one ``denseflow sim`` action; print a JSON summary; return the exit status."""
    try:
        summary = _run(args)
    except (ValueError, OSError) as exc:
        print(f"denseflow sim: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2))
    return 0


def _run(args: argparse.Namespace) -> dict[str, Any]:
    from denseflow_ros.sim import export

    if args.action == "world":
        return asdict(make_world(args.seed, args.out, WorldOptions.from_args(args), args.ortho))
    if args.action == "drive":
        return asdict(make_drive(args.world, args.seed, args.frames, args.out, args.rate_hz))
    if args.action == "render":
        return asdict(render_frame(args.world, args.drive, args.frame, args.out,
                                   CameraOptions.from_args(args)))
    progress = not args.quiet
    if args.kind == "tiles":
        export.export_tiles(_load_world(args.world), args.out, zoom=args.zoom,
                            progress=progress)
        return {"out": args.out}
    if args.kind == "bag":
        world, drive = _load_world(args.world), _load_drive(args.drive)
        w, h = args.image_size
        return export.export_bag(world, drive, args.out, width=w, height=h,
                                 camera_height_m=args.camera_height_m, storage=args.storage,
                                 progress=progress, jobs=args.jobs)
    return export_kitti_drives(args.out, args.train_worlds, args.test2_worlds,
                               KittiExportOptions.from_args(args))
