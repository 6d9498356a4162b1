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
from typing import TYPE_CHECKING

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


def _load_world(path: str) -> World:
    from denseflow_ros.sim import World

    return World.load(path)


def _load_drive(path: str) -> Drive:
    from denseflow_ros.sim import Drive

    return Drive.load(path)


def main(args: argparse.Namespace) -> int:
    """Run one ``denseflow sim`` action; print a JSON summary; return the exit status."""
    try:
        summary = _run(args)
    except (ValueError, OSError) as exc:
        print(f"denseflow sim: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2))
    return 0


def _run(args: argparse.Namespace) -> dict:
    import numpy as np

    from denseflow_ros import sim
    from denseflow_ros.sim import export

    if args.action == "world":
        t0 = time.perf_counter()
        world = sim.generate_world(args.seed, args.size_m, args.mpp, args.lat, args.lon)
        seconds = time.perf_counter() - t0
        world.save(args.out)
        if args.ortho:
            import cv2

            if not cv2.imwrite(args.ortho, world.ortho[:, :, ::-1]):
                raise OSError(f"could not write {args.ortho}")
        return {"out": args.out, "pixels": list(world.shape), "mpp": world.mpp,
                "center": [world.center_lat, world.center_lon],
                "generation_s": round(seconds, 2)}
    if args.action == "drive":
        world = _load_world(args.world)
        drive = sim.simulate_drive(world, args.seed, args.frames, args.rate_hz)
        drive.save(args.out)
        err = np.hypot(drive.gnss_east - drive.east, drive.gnss_north - drive.north)
        return {"out": args.out, "frames": len(drive), "duration_s": float(drive.t_s[-1]),
                "distance_m": float(np.hypot(np.diff(drive.east), np.diff(drive.north)).sum()),
                "gnss_error_median_m": float(np.median(err)),
                "multipath_fraction": float(drive.gnss_multipath.mean())}
    if args.action == "render":
        import cv2

        world, drive = _load_world(args.world), _load_drive(args.drive)
        if not 0 <= args.frame < len(drive):
            raise ValueError(f"--frame must be in 0..{len(drive) - 1}, got {args.frame}")
        w, h = args.image_size
        i = args.frame
        img = sim.render_ground(world, sim.kitti_intrinsics(w, h), w, h, float(drive.east[i]),
                                float(drive.north[i]), float(drive.yaw_rad[i]),
                                camera_height_m=args.camera_height_m, seed=i)
        if not cv2.imwrite(args.out, img[:, :, ::-1]):
            raise OSError(f"could not write {args.out}")
        return {"out": args.out, "frame": i, "size": [w, h]}
    progress = not args.quiet
    if args.kind == "tiles":
        world = _load_world(args.world)
        export.export_tiles(world, args.out, zoom=args.zoom, progress=progress)
        return {"out": args.out}
    if args.kind == "bag":
        world, drive = _load_world(args.world), _load_drive(args.drive)
        w, h = args.image_size
        return export.export_bag(world, drive, args.out, width=w, height=h,
                                 camera_height_m=args.camera_height_m, storage=args.storage,
                                 progress=progress, jobs=args.jobs)
    return _export_kitti(args, progress)


def _export_kitti(args: argparse.Namespace, progress: bool) -> dict:
    from denseflow_ros import sim
    from denseflow_ros.sim import export

    items = []
    for seeds, split_drives in ((args.train_worlds, (("train", args.drives_per_world),
                                                     ("test1", args.test_drives_per_world))),
                                (args.test2_worlds, (("test2", args.test_drives_per_world),))):
        for seed in seeds:
            world = sim.generate_world(seed, args.size_m, args.mpp, args.lat, args.lon)
            k = 0
            for split, count in split_drives:
                for _ in range(count):
                    drive = sim.simulate_drive(world, seed * 1000 + k, args.frames, args.rate_hz)
                    items.append(export.KittiDrive(world, drive, split))
                    k += 1
    return export.export_kitti(args.out, items, image_size=args.image_size,
                               satmap_px=args.satmap_px, camera_height_m=args.camera_height_m,
                               perturbation_seed=args.perturbation_seed, progress=progress,
                               jobs=args.jobs)
