# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Exports of the synthetic world and its drives: a tile cache, a rosbag2, a KITTI-layout tree.

- :func:`export_tiles`: the orthophoto as an XYZ folder or MBTiles file, through
  :func:`denseflow_ros.geo.builders.build_from_image`.
- :func:`export_bag`: one drive as a rosbag2 (mcap or sqlite3) with rendered images,
  camera_info, the GNSS fix, the IMU, and the ground truth on its own topic.
- :func:`export_kitti`: drives in the published KITTI layout the HighlyAccurate-style loaders
  read: ``raw_data/<date>/calib_cam_to_cam.txt``,
  ``raw_data/<date>/<date>_drive_<NNNN>_sync/{image_02,oxts}/...``,
  ``satmap/<date>/<drive>/<frame>.png`` and the split files ``train_files.txt``,
  ``test1_files.txt``, ``test2_files.txt`` (test lines carry fixed perturbations).

KITTI conventions kept here: the OXTS record is the GPS/IMU position, and the left colour
camera sits 1.08 m ahead of it and 0.26 m to its right (the offset the loaders apply to the
satellite image); the satellite image is north-up and centred on the OXTS position at
``KITTI_SATMAP_MPP`` true metres per pixel (the loaders' constant: zoom 18, scale 2, at
latitude 49.015). ``calib_cam_to_cam.txt`` describes the images as written: at the default
1242 x 375 its ``P_rect_02`` is KITTI's; at another image size it is that matrix scaled per
axis, with ``S_rect_02`` the image size (the original HighlyAccurate loader assumes
1242 x 375 images, so export at that size for it; the training loader reads the size).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from denseflow_ros.sim.drive import Drive
from denseflow_ros.sim.render import kitti_intrinsics, prepare, render_ground
from denseflow_ros.sim.world import World

# Web Mercator ground resolution at zoom 18 halved (scale-2 tiles) at latitude 49.015.
KITTI_SATMAP_MPP = 156543.03392 * math.cos(math.radians(49.015)) / 2**18 / 2
KITTI_IMAGE_SIZE = (1242, 375)
# Left colour camera relative to the OXTS unit, metres forward and right.
KITTI_CAMERA_FROM_OXTS_M = (1.08, 0.26)
_T0_NS = 1_767_261_600 * 1_000_000_000  # 2026-01-01 10:00:00 UTC
_OXTS_FORMAT = (
    "lat", "lon", "alt", "roll", "pitch", "yaw", "vn", "ve", "vf", "vl", "vu", "ax", "ay", "az",
    "af", "al", "au", "wx", "wy", "wz", "wf", "wl", "wu", "pos_accuracy", "vel_accuracy",
    "navstat", "numsats", "posmode", "velmode", "orimode",
)

DEFAULT_BAG_TOPICS = {
    "image": "/camera/image_raw",
    "camera_info": "/camera/camera_info",
    "fix": "/gnss/fix",
    "imu": "/imu/data",
    "ground_truth": "/ground_truth/pose",
}


def _progress(iterable: Iterable, total: int, desc: str, enabled: bool) -> Iterable:
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="frame", disable=not enabled)


# State shared with forked worker processes (set before the pool forks; read-only there).
_FORK_STATE: dict[str, Any] = {}


def _ordered_map(fn: Callable[[int], Any], count: int, jobs: int) -> Iterator[Any]:
    """Yield ``fn(i)`` for i in 0..count-1 in order, on ``jobs`` forked processes if > 1.

    Workers inherit the parent's memory (the world is not copied or pickled); results come
    back in order, so the output does not depend on ``jobs``. At most a few results per
    worker wait ahead of the consumer. A worker that dies (killed, out of memory) raises
    :class:`ChildProcessError` instead of leaving the caller waiting for its result.
    """
    import multiprocessing as mp
    from collections import deque
    from concurrent.futures import Future, ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    if jobs <= 1 or count < 2 or "fork" not in mp.get_all_start_methods():
        for i in range(count):
            yield fn(i)
        return
    workers = min(jobs, count)
    _FORK_STATE["fn"] = fn
    try:
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as pool:
            pending: deque[tuple[int, Future]] = deque()
            submitted = 0
            while pending or submitted < count:
                while submitted < count and len(pending) < 4 * workers:
                    pending.append((submitted, pool.submit(_call_forked, submitted)))
                    submitted += 1
                i, future = pending.popleft()
                try:
                    result = future.result()
                except BrokenProcessPool as exc:
                    raise ChildProcessError(
                        f"a rendering process died (killed, or out of memory?) before frame "
                        f"{i} of {count} was done; try fewer jobs than {jobs}") from exc
                yield result
    finally:
        _FORK_STATE.clear()


def _call_forked(i: int) -> Any:
    return _FORK_STATE["fn"](i)


def render_drive(world: World, drive: Drive, K: np.ndarray, width: int, height: int,
                 camera_height_m: float = 1.65, seed: int | None = None, jobs: int = 1
                 ) -> Iterator[np.ndarray]:
    """Yield the drive's rendered frames in order (frame i uses render seed ``seed + i``).

    ``seed`` defaults to one derived from the drive's seed; ``jobs`` > 1 renders on that many
    processes with the same result.
    """
    seed0 = drive.seed * 100_003 if seed is None else int(seed)
    prepare(world)  # workers inherit the caches instead of each building them

    def one(i: int) -> np.ndarray:
        return render_ground(world, K, width, height, float(drive.east[i]),
                             float(drive.north[i]), float(drive.yaw_rad[i]),
                             camera_height_m=camera_height_m, seed=seed0 + i)

    yield from _ordered_map(one, len(drive), jobs)


def export_tiles(world: World, out_path: str | Path, zoom: int | None = None,
                 progress: bool = True) -> Path:
    """Write the orthophoto as a tile cache (XYZ folder, or MBTiles if the name ends so)."""
    from denseflow_ros.geo.builders import build_from_image

    build_from_image(world.ortho, world.center_lat, world.center_lon, world.mpp, str(out_path),
                     zoom=zoom, progress=progress)
    return Path(out_path)


def frame_stamp_ns(drive: Drive, i: int) -> int:
    """Return frame ``i``'s timestamp in nanoseconds (drives start at 2026-01-01 10:00 UTC)."""
    return _T0_NS + int(round(float(drive.t_s[i]) * 1e9))


def export_bag(world: World, drive: Drive, out_path: str | Path, K: np.ndarray | None = None,
               width: int = 1242, height: int = 375, camera_height_m: float = 1.65,
               storage: str = "mcap", topics: dict[str, str] | None = None,
               render_seed: int | None = None, progress: bool = True, jobs: int = 1) -> dict:
    """Render ``drive`` (on ``jobs`` processes) and write it as a rosbag2; return a summary.

    Topics (defaults in :data:`DEFAULT_BAG_TOPICS`): the image (rgb8) and camera_info in
    frame ``camera``, the GNSS fix (reported covariance, which may lie) and the IMU (heading
    prior with its variance, yaw rate, accelerations) in frame ``imu_link``, and the ground
    truth as a PoseStamped of the camera in ``map``, the local ENU plane at the world's
    centre. A frame's messages share its stamp and are logged fix, IMU, camera_info, image,
    ground truth, so a replay delivers the prior before the image. The bag's metadata names
    the datum and the topics. A rendering process that dies raises ChildProcessError.
    """
    from denseflow_ros import bagio

    topics = {**DEFAULT_BAG_TOPICS, **(topics or {})}
    K = kitti_intrinsics(width, height) if K is None else np.asarray(K, dtype=np.float64)
    metadata = {
        "source": "denseflow_ros.sim", "world_seed": str(world.seed),
        "world_size_m": repr(world.size_m), "drive_seed": str(drive.seed),
        "datum_lat": repr(world.center_lat), "datum_lon": repr(world.center_lon),
        "map_frame": "map", "camera_height_m": repr(float(camera_height_m)),
        **{f"{key}_topic": value for key, value in topics.items()},
    }
    im = drive.imu_model
    gyro_var = [im.gyro_white_sigma_rps ** 2] * 3
    acc_var = [im.accel_white_sigma_mps2 ** 2] * 3
    with bagio.BagWriter(out_path, storage, metadata=metadata) as bag:
        frames = render_drive(world, drive, K, width, height, camera_height_m, render_seed,
                              jobs)
        for i, image in _progress(enumerate(frames), len(drive), "bag", progress):
            t = frame_stamp_ns(drive, i)
            # The prior first: a player then delivers a frame's fix and IMU sample before its
            # image, as a node pairing the image with them expects.
            bag.write(topics["fix"], "sensor_msgs/msg/NavSatFix", t, bagio.navsatfix_msg(
                float(drive.gnss_lat[i]), float(drive.gnss_lon[i]), 115.0, t, "imu_link",
                covariance=drive.gnss_cov[i], status=int(drive.gnss_status[i])))
            yaw_var = float(drive.imu_yaw_var_rad2[i])
            bag.write(topics["imu"], "sensor_msgs/msg/Imu", t, bagio.imu_msg(
                t, "imu_link", bagio.quaternion_from_euler(0.0, 0.0, float(drive.imu_yaw_rad[i])),
                angular_velocity=[float(v) for v in drive.imu_gyro_rps[i]],
                linear_acceleration=[float(v) for v in drive.imu_accel_mps2[i]],
                orientation_covariance=[1e-4, 1e-4, yaw_var],
                angular_velocity_covariance=gyro_var,
                linear_acceleration_covariance=acc_var))
            bag.write(topics["camera_info"], "sensor_msgs/msg/CameraInfo", t,
                      bagio.camera_info_msg(K, width, height, t, "camera"))
            bag.write(topics["image"], "sensor_msgs/msg/Image", t,
                      bagio.image_msg(image, t, "camera"))
            bag.write(topics["ground_truth"], "geometry_msgs/msg/PoseStamped", t,
                      bagio.pose_stamped_msg(
                          t, "map", (float(drive.east[i]), float(drive.north[i]), 0.0),
                          bagio.quaternion_from_euler(0.0, 0.0, float(drive.yaw_rad[i]))))
    return {"path": str(out_path), "frames": len(drive), "topics": topics,
            "datum": [world.center_lat, world.center_lon]}


# -- KITTI layout ---------------------------------------------------------------------------


@dataclass
class KittiDrive:
    """One drive to export: its world, the drive, and its split (train, test1 or test2)."""

    world: World
    drive: Drive
    split: str


def _fmt(values: Sequence[float]) -> str:
    return " ".join(f"{v:.6e}" for v in values)


def calib_cam_to_cam_text(width: int = 1242, height: int = 375) -> str:
    """Return a ``calib_cam_to_cam.txt`` for the sim's rectified cameras (KITTI format).

    The four cameras share the rectified intrinsics of the rendered left colour camera
    (``P_rect_02`` for ``width`` x ``height`` images); the fourth column of each ``P_rect``
    holds the baseline like KITTI's (camera 02 is 0.06 m left of camera 00, camera 01
    0.54 m right of it).
    """
    k = kitti_intrinsics(width, height)
    size = (width, height)
    fx = k[0, 0]
    offsets_m = {"00": 0.0, "01": -0.54, "02": 0.06, "03": -0.48}  # x of the camera, left +
    lines = ["calib_time: 01-Jan-2026 10:00:00", "corner_dist: 9.950000e-02"]
    for cam, x_m in offsets_m.items():
        p = np.hstack([k, [[fx * x_m], [0.0], [0.0]]])
        lines += [
            f"S_{cam}: {_fmt(size)}",
            f"K_{cam}: {_fmt(k.ravel())}",
            f"D_{cam}: {_fmt([0.0] * 5)}",
            f"R_{cam}: {_fmt(np.eye(3).ravel())}",
            f"T_{cam}: {_fmt([-x_m, 0.0, 0.0])}",
            f"S_rect_{cam}: {_fmt(size)}",
            f"R_rect_{cam}: {_fmt(np.eye(3).ravel())}",
            f"P_rect_{cam}: {_fmt(p.ravel())}",
        ]
    return "\n".join(lines) + "\n"


def oxts_line(world: World, drive: Drive, i: int) -> str:
    """Return frame ``i``'s OXTS record: 30 space-separated fields in KITTI's order.

    The position is the OXTS unit's (the camera minus :data:`KITTI_CAMERA_FROM_OXTS_M`),
    ``yaw`` is the heading (0 = east, counter-clockwise), velocities and rates in the vehicle
    frame (x forward, y left, z up), accuracies of an RTK fix.
    """
    yaw = float(drive.yaw_rad[i])
    c, s = math.cos(yaw), math.sin(yaw)
    fwd_m, right_m = KITTI_CAMERA_FROM_OXTS_M
    east = float(drive.east[i]) - fwd_m * c - right_m * s
    north = float(drive.north[i]) - fwd_m * s + right_m * c
    lat, lon = world.enu.inverse(east, north)
    v = float(drive.speed_mps[i])
    a = float(drive.accel_mps2[i])
    w = float(drive.yaw_rate_rps[i])
    g = 9.80665
    values = [
        lat, lon, 115.0, 0.0, 0.0, yaw, v * s, v * c, v, 0.0, 0.0,
        a, v * w, g, a, v * w, g, 0.0, 0.0, w, 0.0, 0.0, w, 0.05, 0.02,
    ]
    floats = " ".join(format(float(x), ".14g") for x in values)
    return f"{floats} 4 10 4 4 0"


def _timestamp_text(drive: Drive) -> str:
    import datetime as dt

    lines = []
    for i in range(len(drive)):
        ns = frame_stamp_ns(drive, i)
        secs, frac = divmod(ns, 1_000_000_000)
        stamp = dt.datetime.fromtimestamp(secs, tz=dt.timezone.utc)
        lines.append(f"{stamp:%Y-%m-%d %H:%M:%S}.{frac:09d}")
    return "\n".join(lines) + "\n"


def satmap_image(world: World, east: float, north: float, size_px: int, mpp: float
                 ) -> np.ndarray:
    """Return a north-up (size_px, size_px, 3) RGB crop of the orthophoto at ``mpp``.

    The point (east, north) lies at the image's geometric centre, continuous pixel
    ``((size_px - 1) / 2, (size_px - 1) / 2)`` with integers at pixel centres.
    """
    import cv2

    col, row = world.enu_to_pixel(east, north)
    scale = mpp / world.mpp
    half = (size_px - 1) / 2.0
    # dst (u, v) -> src (col + (u - half) * scale, row + (v - half) * scale)
    m = np.array([[scale, 0.0, float(col) - half * scale],
                  [0.0, scale, float(row) - half * scale]])
    return cv2.warpAffine(world.ortho, m, (size_px, size_px),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


def _write_kitti_frame(world: World, drive: Drive, i: int, img_path: Path, oxts_path: Path,
                       sat_path: Path, K: np.ndarray, size: tuple[int, int], satmap_px: int,
                       satmap_mpp: float, camera_height_m: float) -> None:
    """Render and write one frame's image, OXTS record and satellite map."""
    import cv2

    yaw = float(drive.yaw_rad[i])
    image = render_ground(world, K, size[0], size[1], float(drive.east[i]),
                          float(drive.north[i]), yaw, camera_height_m=camera_height_m,
                          seed=drive.seed * 100_003 + i)
    if not cv2.imwrite(str(img_path), image[:, :, ::-1]):
        raise OSError(f"could not write {img_path}")
    oxts_path.write_text(oxts_line(world, drive, i) + "\n")
    fwd_m, right_m = KITTI_CAMERA_FROM_OXTS_M
    c, s = math.cos(yaw), math.sin(yaw)
    oe = float(drive.east[i]) - fwd_m * c - right_m * s
    on = float(drive.north[i]) - fwd_m * s + right_m * c
    sat = satmap_image(world, oe, on, satmap_px, satmap_mpp)
    if not cv2.imwrite(str(sat_path), sat[:, :, ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 1]):
        raise OSError(f"could not write {sat_path}")


def export_kitti(root: str | Path, drives: Sequence[KittiDrive],
                 image_size: tuple[int, int] = KITTI_IMAGE_SIZE, satmap_px: int = 1280,
                 satmap_mpp: float = KITTI_SATMAP_MPP, camera_height_m: float = 1.65,
                 perturbation_seed: int = 0, progress: bool = True, jobs: int = 1) -> dict:
    """Write ``drives`` in KITTI's layout under ``root``; return a summary.

    Each distinct world gets a date (``2026_01_01``, ``2026_01_02``, ...), each of its drives
    a drive number. Split files list ``<date>/<drive>/<frame>.png``; test lines add three
    fixed perturbations uniform in [-1, 1] (along the heading, across it, yaw; x 20 m,
    20 m, 10 deg in the loaders). ``sim_info.json`` records the satellite metres per pixel,
    the camera height and the image size. ``jobs`` > 1 renders on that many processes; the
    files are the same.
    """
    root = Path(root)
    width, height = image_size
    K = kitti_intrinsics(width, height)
    dates: dict[int, str] = {}
    worlds: dict[int, World] = {}
    drive_counts: dict[str, int] = {}
    splits: dict[str, list[str]] = {"train": [], "test1": [], "test2": []}
    rng = np.random.default_rng(perturbation_seed)
    tasks: list[tuple[World, Drive, int, Path, Path, Path]] = []
    for item in drives:
        if item.split not in splits:
            raise ValueError(f"split must be train, test1 or test2, got {item.split!r}")
        world, drive = item.world, item.drive
        key = id(world)
        if key not in dates:
            dates[key] = f"2026_01_{len(dates) + 1:02d}"
            worlds[key] = world
            (root / "raw_data" / dates[key]).mkdir(parents=True, exist_ok=True)
            (root / "raw_data" / dates[key] / "calib_cam_to_cam.txt").write_text(
                calib_cam_to_cam_text(width, height))
        date = dates[key]
        drive_counts[date] = drive_counts.get(date, 0) + 1
        drive_dir = f"{date}_drive_{drive_counts[date]:04d}_sync"
        base = root / "raw_data" / date / drive_dir
        img_dir = base / "image_02" / "data"
        oxts_dir = base / "oxts" / "data"
        sat_dir = root / "satmap" / date / drive_dir
        for d in (img_dir, oxts_dir, sat_dir):
            d.mkdir(parents=True, exist_ok=True)
        stamps = _timestamp_text(drive)
        (base / "image_02" / "timestamps.txt").write_text(stamps)
        (base / "oxts" / "timestamps.txt").write_text(stamps)
        (base / "oxts" / "dataformat.txt").write_text("\n".join(_OXTS_FORMAT) + "\n")
        for i in range(len(drive)):
            name = f"{i:010d}"
            tasks.append((world, drive, i, img_dir / f"{name}.png", oxts_dir / f"{name}.txt",
                          sat_dir / f"{name}.png"))
            line = f"{date}/{drive_dir}/{name}.png"
            if item.split != "train":
                dx, dy, dth = rng.uniform(-1.0, 1.0, 3).astype(np.float32)
                line = f"{line} {dx!s} {dy!s} {dth!s}"
            splits[item.split].append(line)

    for world in worlds.values():
        prepare(world)

    def write(t: int) -> None:
        _write_kitti_frame(*tasks[t], K, image_size, satmap_px, satmap_mpp, camera_height_m)

    for _ in _progress(_ordered_map(write, len(tasks), jobs), len(tasks), "kitti", progress):
        pass
    for split, lines in splits.items():
        (root / f"{split}_files.txt").write_text("".join(f"{line}\n" for line in lines))
    info = {
        "source": "denseflow_ros.sim", "satmap_mpp": satmap_mpp, "satmap_px": satmap_px,
        "image_size": [width, height], "camera_height_m": camera_height_m,
        "camera_from_oxts_m": list(KITTI_CAMERA_FROM_OXTS_M),
        "dates": {date: {"world_seed": worlds[k].seed, "world_size_m": worlds[k].size_m,
                         "center": [worlds[k].center_lat, worlds[k].center_lon]}
                  for k, date in dates.items()},
        "frames": {split: len(lines) for split, lines in splits.items()},
    }
    (root / "sim_info.json").write_text(json.dumps(info, indent=2) + "\n")
    return info
