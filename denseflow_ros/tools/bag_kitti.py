# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""KITTI raw (synced) drive -> rosbag2: left colour camera, OXTS fix and IMU, ground truth.

Reads the layout the KITTI cross-view benchmarks use: ``<root>/raw_data/<date>/`` (or the
plain raw-data layout ``<root>/<date>/``) with ``calib_cam_to_cam.txt`` and the drive's
``image_02`` and ``oxts`` folders, and ``<root>/satmap/<date>/<drive>/<frame>.png``, one
north-up satellite image per frame centred at its OXTS position (zoom 18, scale 2).

OXTS fields, per the KITTI devkit: lat lon alt roll pitch yaw vn ve vf vl vu ax ay az af al
au wx wy wz wf wl wu pos_accuracy vel_accuracy navstat numsats posmode velmode orimode. The
angles already follow REP-103 (yaw counter-clockwise from east; roll and pitch of the
forward-left-up vehicle frame), so they go into quaternions unchanged.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from denseflow_ros import bagio
from denseflow_ros.tools import bag_common

if TYPE_CHECKING:
    from denseflow_ros.geo import LocalEnu

OXTS_FIELDS = (
    "lat", "lon", "alt", "roll", "pitch", "yaw", "vn", "ve", "vf", "vl", "vu", "ax", "ay",
    "az", "af", "al", "au", "wx", "wy", "wz", "wf", "wl", "wu", "pos_accuracy",
    "vel_accuracy", "navstat", "numsats", "posmode", "velmode", "orimode",
)
# OXTS position modes: 0 none, 1 search, 2 doppler, 3 single point, 4 differential,
# 5 RTK float, 6 RTK integer (and higher codes are RTK variants).
_POSMODE_STATUS = {3: bagio.NAVSAT_STATUS_FIX, 4: bagio.NAVSAT_STATUS_SBAS_FIX}

# Orientation variances of the OXTS RT3003 (datasheet: 0.03 deg roll/pitch, 0.1 deg heading).
_ROLL_PITCH_VAR = math.radians(0.03) ** 2
_HEADING_VAR = math.radians(0.1) ** 2

DEFAULT_TOPICS = {
    "image": "/kitti/camera_color_left/image_raw",
    "camera_info": "/kitti/camera_color_left/camera_info",
    "fix": "/kitti/oxts/gps/fix",
    "imu": "/kitti/oxts/imu",
    "ground_truth": "/kitti/ground_truth/pose",
}


@dataclass(frozen=True)
class Oxts:
    """One OXTS record (all 30 fields, SI units and radians)."""

    values: tuple[float, ...]

    def __getattr__(self, name: str) -> float:
        """Return a field by its devkit name (``o.lat``, ``o.pos_accuracy``)."""
        try:
            return self.values[OXTS_FIELDS.index(name)]
        except ValueError:
            raise AttributeError(name) from None


def read_oxts(path: Path) -> Oxts:
    """Read one OXTS text file of 30 space-separated numbers."""
    parts = path.read_text().split()
    if len(parts) != len(OXTS_FIELDS):
        raise ValueError(f"{path} has {len(parts)} OXTS fields, expected {len(OXTS_FIELDS)}")
    try:
        return Oxts(tuple(float(p) for p in parts))
    except ValueError:
        raise ValueError(f"{path} holds a non-numeric OXTS field") from None


def read_calib(path: Path) -> dict[str, np.ndarray]:
    """Read a KITTI ``key: numbers`` calibration file (non-numeric entries are skipped)."""
    out: dict[str, np.ndarray] = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        try:
            out[key.strip()] = np.array([float(v) for v in value.split()], dtype=np.float64)
        except ValueError:
            continue  # calib_time is a date
    return out


def navsat_status(posmode: float) -> int:
    """Map an OXTS position mode to a NavSatStatus status."""
    mode = int(posmode)
    if mode <= 2:
        return bagio.NAVSAT_STATUS_NO_FIX
    return _POSMODE_STATUS.get(mode, bagio.NAVSAT_STATUS_GBAS_FIX)


def _rigid(r: np.ndarray, t: np.ndarray) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = r.reshape(3, 3)
    m[:3, 3] = t.reshape(3)
    return m


def camera_in_imu(date_dir: Path, p_rect: np.ndarray) -> np.ndarray | None:
    """Return the left colour camera's position (m) in the IMU frame, or None without calib.

    Chains IMU -> velodyne -> camera 0 -> rectified camera 0, then the rectified camera 2's
    offset along x from its projection matrix (``P[0, 3] = -fx * x_offset``).
    """
    files = [date_dir / n for n in ("calib_imu_to_velo.txt", "calib_velo_to_cam.txt",
                                    "calib_cam_to_cam.txt")]
    if not all(f.is_file() for f in files):
        return None
    imu_velo, velo_cam, cam_cam = (read_calib(f) for f in files)
    try:
        t_velo_imu = _rigid(imu_velo["R"], imu_velo["T"])
        t_cam_velo = _rigid(velo_cam["R"], velo_cam["T"])
        rect = np.eye(4)
        rect[:3, :3] = cam_cam["R_rect_00"].reshape(3, 3)
    except KeyError:
        return None
    t_rect_imu = rect @ t_cam_velo @ t_velo_imu
    origin_rect = np.array([-p_rect[0, 3] / p_rect[0, 0], 0.0, 0.0, 1.0])
    return (np.linalg.inv(t_rect_imu) @ origin_rect)[:3]


def find_drive(root: Path, drive: str) -> tuple[Path, Path]:
    """Return (date folder, drive folder) of ``drive`` under ``root``."""
    if len(drive) < 10:
        raise ValueError(f"drive {drive!r} is not like 2011_09_26_drive_0005_sync")
    date = drive[:10]
    for base in (root / "raw_data" / date, root / date):
        if (base / drive).is_dir():
            return base, base / drive
    raise ValueError(f"drive folder {drive} not found under {root}/raw_data/{date} or "
                     f"{root}/{date}")


def _read_times(path: Path, count: int) -> list[int]:
    if not path.is_file():
        raise ValueError(f"{path} is missing; the synced drive needs its timestamps")
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    if len(lines) < count:
        raise ValueError(f"{path} has {len(lines)} stamps for {count} frames")
    return [bag_common.parse_kitti_time(line) for line in lines[:count]]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``denseflow bag kitti`` options."""
    parser.add_argument("--root", required=True, type=Path,
                        help="KITTI root holding raw_data/ (or the dates) and satmap/")
    parser.add_argument("--drive", required=True,
                        help="synced drive folder name, e.g. 2011_09_26_drive_0005_sync")
    bag_common.add_output_arguments(parser)
    parser.add_argument("--satmap-dir", type=Path, default=None,
                        help="satellite images root (default: <root>/satmap)")
    parser.add_argument("--satmap-zoom", type=int, default=18,
                        help="Web Mercator zoom of the satellite images")
    parser.add_argument("--satmap-scale", type=int, default=2,
                        help="pixel scale of the satellite images (2: 'scale=2' downloads)")
    bag_common.add_tiles_arguments(parser)
    parser.add_argument("--start", type=int, default=0, help="first frame index")
    parser.add_argument("--end", type=int, default=None, help="frame index to stop before")
    parser.add_argument("--step", type=int, default=1, help="use every STEP-th frame")
    for key, topic in DEFAULT_TOPICS.items():
        parser.add_argument(f"--{key.replace('_', '-')}-topic", default=topic,
                            help=f"topic of the {key.replace('_', ' ')} (default {topic})")
    parser.add_argument("--camera-frame", default="camera_color_left")
    parser.add_argument("--imu-frame", default="imu_link",
                        help="frame id of the fix and the IMU (the OXTS unit)")
    bag_common.add_degradation_arguments(parser)


@dataclass(frozen=True)
class KittiOptions:
    """How a KITTI drive is converted (see :func:`add_arguments` for each option).

    ``satmap_dir`` None: ``<root>/satmap``. ``degradation`` is a template: each conversion
    starts from a fresh copy, so equal options give equal bags.
    """

    output: bag_common.OutputOptions = field(default_factory=bag_common.OutputOptions)
    satmap_dir: Path | None = None
    satmap_zoom: int = 18
    satmap_scale: int = 2
    frames: bag_common.FrameRange = field(default_factory=bag_common.FrameRange)
    topics: bag_common.Topics = field(
        default_factory=lambda: bag_common.Topics(**DEFAULT_TOPICS))
    camera_frame: str = "camera_color_left"
    imu_frame: str = "imu_link"
    degradation: bag_common.GnssDegradation = field(
        default_factory=bag_common.GnssDegradation)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> KittiOptions:
        """Return the options of a ``denseflow bag kitti`` command line."""
        return cls(bag_common.OutputOptions.from_args(args), args.satmap_dir, args.satmap_zoom,
                   args.satmap_scale, bag_common.FrameRange.from_args(args),
                   bag_common.Topics.from_args(args), args.camera_frame, args.imu_frame,
                   bag_common.GnssDegradation.from_args(args))


@dataclass
class KittiSummary:
    """What a KITTI conversion wrote (``tiles`` None: no tile cache)."""

    bag: str
    frames: int
    satellite_images: int
    datum: tuple[float, float]
    tiles: str | None = None
    camera_in_imu_m: list[float] | None = None


def _metadata(drive: str, options: KittiOptions, datum: tuple[float, float],
              degrade: bag_common.GnssDegradation, camera_offset: np.ndarray | None
              ) -> dict[str, str]:
    """Return the bag's metadata: source, datum, topics, degradation, camera position."""
    t = options.topics
    metadata = {
        "source": "kitti", "drive": drive, "datum_lat": repr(datum[0]),
        "datum_lon": repr(datum[1]), "map_frame": options.output.map_frame,
        "ground_truth_topic": t.ground_truth, "fix_topic": t.fix, "imu_topic": t.imu,
        "image_topic": t.image, "camera_info_topic": t.camera_info,
        "ground_truth_point": "oxts (base_link)",
        "gnss_degradation": json.dumps({k: v for k, v in vars(degrade).items()
                                        if not k.startswith("_")}),
    }
    if camera_offset is not None:
        for axis, value in zip("xyz", camera_offset, strict=True):
            metadata[f"camera_{axis}_m"] = repr(round(float(value), 4))
    return metadata


def _write_frame(bag: bagio.BagWriter, options: KittiOptions, rgb: np.ndarray,
                 p_rect: np.ndarray, t_img: int, t_oxts: int, o: Oxts, enu: LocalEnu,
                 degrade: bag_common.GnssDegradation, t0: int, alt0: float) -> None:
    """Write one frame: image, camera_info, the (degraded) fix, the IMU and ground truth.

    ``o`` is the frame's OXTS record; ground truth heights are relative to ``alt0``.
    """
    t, camera_frame = options.topics, options.camera_frame
    bag.write(t.image, "sensor_msgs/msg/Image", t_img,
              bagio.image_msg(rgb, t_img, camera_frame))
    bag.write(t.camera_info, "sensor_msgs/msg/CameraInfo", t_img,
              bagio.camera_info_msg(p_rect[:, :3], rgb.shape[1], rgb.shape[0], t_img,
                                    camera_frame, p=p_rect))
    east, north = enu.forward(o.lat, o.lon)
    de, dn = degrade.offset((t_oxts - t0) * 1e-9) if degrade.active else (0.0, 0.0)
    lat, lon = (o.lat, o.lon) if (de, dn) == (0.0, 0.0) else enu.inverse(
        east + de, north + dn)
    var_h = o.pos_accuracy**2 + degrade.added_variance_m2
    bag.write(t.fix, "sensor_msgs/msg/NavSatFix", t_oxts, bagio.navsatfix_msg(
        lat, lon, o.alt, t_oxts, options.imu_frame,
        covariance=[var_h, var_h, (2.0 * o.pos_accuracy) ** 2 + degrade.added_variance_m2],
        covariance_type=bagio.COVARIANCE_TYPE_DIAGONAL_KNOWN,
        status=navsat_status(o.posmode)))
    yaw_err = degrade.yaw_error_rad()
    bag.write(t.imu, "sensor_msgs/msg/Imu", t_oxts, bagio.imu_msg(
        t_oxts, options.imu_frame,
        bagio.quaternion_from_euler(o.roll, o.pitch, o.yaw + yaw_err),
        (o.wf, o.wl, o.wu), (o.af, o.al, o.au),
        orientation_covariance=[_ROLL_PITCH_VAR, _ROLL_PITCH_VAR,
                                _HEADING_VAR + math.radians(degrade.yaw_noise_deg) ** 2]))
    # The synced drive pairs OXTS record i with image i, so ground truth carries the
    # image stamp: the node's pose for that image matches it exactly.
    bag.write(t.ground_truth, "geometry_msgs/msg/PoseStamped", t_img,
              bagio.pose_stamped_msg(t_img, options.output.map_frame,
                                     (east, north, o.alt - alt0),
                                     bagio.quaternion_from_euler(o.roll, o.pitch,
                                                                 o.yaw)))


def convert_kitti(root: Path, drive: str, out: Path, options: KittiOptions) -> KittiSummary:
    """Convert the KITTI ``drive`` under ``root`` to the bag ``out``; return a summary."""
    import cv2

    from denseflow_ros.geo import LocalEnu

    date_dir, drive_dir = find_drive(Path(root), drive)
    calib = read_calib(date_dir / "calib_cam_to_cam.txt")
    if "P_rect_02" not in calib:
        raise ValueError(f"{date_dir / 'calib_cam_to_cam.txt'} has no P_rect_02")
    p_rect = calib["P_rect_02"].reshape(3, 4)
    images = sorted((drive_dir / "image_02" / "data").glob("*.png"))
    if not images:
        raise ValueError(f"no images in {drive_dir / 'image_02' / 'data'}")
    image_times = _read_times(drive_dir / "image_02" / "timestamps.txt", len(images))
    oxts_times = _read_times(drive_dir / "oxts" / "timestamps.txt", len(images))
    indices = options.frames.select(len(images))

    degrade = dataclasses.replace(options.degradation)
    records = {i: read_oxts(drive_dir / "oxts" / "data" / (images[i].stem + ".txt"))
               for i in indices}
    datum = options.output.datum or (records[indices[0]].lat, records[indices[0]].lon)
    enu = LocalEnu(*datum)
    camera_offset = camera_in_imu(date_dir, p_rect)
    metadata = _metadata(drive, options, datum, degrade, camera_offset)

    t0 = image_times[indices[0]]
    satmap_base = Path(options.satmap_dir or Path(root) / "satmap")
    satmap_root = satmap_base / drive[:10] / drive
    satmaps = [bag_common.Satmap(satmap_root / images[i].name, records[i].lat, records[i].lon,
                                 bag_common.satmap_mpp(records[i].lat, options.satmap_zoom,
                                                       options.satmap_scale))
               for i in indices if (satmap_root / images[i].name).is_file()]
    summary = KittiSummary(str(out), len(indices), len(satmaps), datum)
    writer = bagio.BagWriter(out, options.output.storage, metadata=metadata,
                             overwrite=options.output.overwrite)
    writer.check_output()
    # The tile cache is built before the bag, so a failure there costs no finished recording.
    tiles = options.output.tiles_path(out)
    if tiles is not None and satmaps:
        facts = bag_common.build_tile_cache(satmaps, tiles)
        summary.tiles = str(tiles)
        for key, value in facts.items():
            writer.set_metadata(key, repr(value))
    elif tiles is not None:
        bag_common.LOG.warning("no satellite images under %s; no tile cache built", satmap_root)
    with writer as bag:
        for i in indices:
            bgr = cv2.imread(str(images[i]), cv2.IMREAD_COLOR)
            if bgr is None:
                raise ValueError(f"{images[i]} is not a readable image")
            _write_frame(bag, options, np.ascontiguousarray(bgr[:, :, ::-1]), p_rect,
                         image_times[i], oxts_times[i], records[i], enu, degrade, t0,
                         records[indices[0]].alt)
    summary.camera_in_imu_m = None if camera_offset is None else [
        round(float(v), 4) for v in camera_offset]
    return summary
