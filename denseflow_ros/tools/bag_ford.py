# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Ford multi-AV -> rosbag2, from the processed benchmark layout or from Ford's recordings.

Processed layout (the cross-view benchmark's): ``<root>/<log>/grd_sat_quaternion_latlon.txt``
(9 columns: image name, body-to-NED quaternion w x y z, vehicle lat lon, satellite image lat
lon) or ``..._test.txt`` (12 columns: the same plus the benchmark's fixed perturbation, which
is ignored here), front-left images in ``<root>/<log>/<log with '/' as '-'>-FL/``, satellite
images ``<root>/<log>/SatelliteMaps_18/<lat>_<lon>.png`` and calibration in
``<root>/Calibration-V2/V2/`` (``cameraFrontLeft_body.yaml``: camera-to-body transform;
``cameraFrontLeftIntrinsics.yaml``: K, D, R, P).

Recordings: a Ford ROS 1 bag converted with ``rosbags-convert`` (topics ``/image_front_left``,
``/gps``, ``/imu``, ``/pose_ground_truth``). Ford's body frame is forward-right-down and its
world and map frames are north-east-down; everything written here is ENU with a
forward-left-up body (REP-103): for a rotation, ``R_enu_flu = M R_ned_frd F`` with ``M`` the
NED->ENU axis swap and ``F = diag(1, -1, -1)``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from denseflow_ros import bagio
from denseflow_ros.tools import bag_common

NED_TO_ENU = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
FRD_TO_FLU = np.diag([1.0, -1.0, -1.0])

DEFAULT_TOPICS = {
    "image": "/ford/camera_front_left/image_raw",
    "camera_info": "/ford/camera_front_left/camera_info",
    "fix": "/ford/gps/fix",
    "imu": "/ford/imu",
    "ground_truth": "/ford/ground_truth/pose",
}
SOURCE_TOPICS = {
    "image": "/image_front_left", "fix": "/gps", "imu": "/imu",
    "ground_truth": "/pose_ground_truth",
}


def rotation_from_quaternion(x: float, y: float, z: float, w: float) -> np.ndarray:
    """Return the 3x3 rotation matrix of a quaternion (normalized first)."""
    q = np.array([x, y, z, w], dtype=np.float64)
    n = float(np.linalg.norm(q))
    if not math.isfinite(n) or n < 1e-9:
        raise ValueError(f"quaternion {tuple(q)} has no rotation")
    x, y, z, w = q / n
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def quaternion_from_rotation(r: np.ndarray) -> tuple[float, float, float, float]:
    """Return (x, y, z, w) of a 3x3 rotation matrix, with w >= 0."""
    m = np.asarray(r, dtype=np.float64)
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = 2.0 * math.sqrt(1.0 + trace)
        q = ((m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, s / 4)
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * math.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = (s / 4, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s)
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * math.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = ((m[0, 1] + m[1, 0]) / s, s / 4, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s)
    else:
        s = 2.0 * math.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = ((m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, s / 4, (m[1, 0] - m[0, 1]) / s)
    qa = np.array(q)
    qa = qa / np.linalg.norm(qa)
    if qa[3] < 0:
        qa = -qa
    return float(qa[0]), float(qa[1]), float(qa[2]), float(qa[3])


def ned_frd_to_enu_flu(x: float, y: float, z: float, w: float) -> tuple[float, float, float,
                                                                         float]:
    """Convert a body(FRD)-to-NED orientation quaternion to body(FLU)-to-ENU (x, y, z, w)."""
    return quaternion_from_rotation(NED_TO_ENU @ rotation_from_quaternion(x, y, z, w)
                                    @ FRD_TO_FLU)


def frd_vector_to_flu(v: Any) -> tuple[float, float, float]:
    """Convert a vector from forward-right-down to forward-left-up axes."""
    return float(v.x), -float(v.y), -float(v.z)


def _flip_cov(cov: Any) -> np.ndarray:
    c = np.asarray(cov, dtype=np.float64).reshape(3, 3)
    if c[0, 0] == -1.0:  # "not provided" stays so
        return c.reshape(9)
    return (FRD_TO_FLU @ c @ FRD_TO_FLU).reshape(9)


def read_yaml(path: Path) -> dict:
    """Read a Ford calibration YAML (an OpenCV ``%YAML:1.0`` directive is tolerated)."""
    import yaml

    text = path.read_text()
    if text.startswith("%YAML:"):
        text = text.split("\n", 1)[1]
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a YAML mapping")
    return data


@dataclasses.dataclass(frozen=True)
class FordCalibration:
    """Front-left camera intrinsics and its position in the FLU body frame."""

    k: np.ndarray
    d: np.ndarray
    r: np.ndarray
    p: np.ndarray
    width: int
    height: int
    distortion_model: str
    camera_in_body_flu: np.ndarray


def read_calibration(calib_dir: Path) -> FordCalibration:
    """Read ``cameraFrontLeftIntrinsics.yaml`` and ``cameraFrontLeft_body.yaml``."""
    intr_path = calib_dir / "cameraFrontLeftIntrinsics.yaml"
    body_path = calib_dir / "cameraFrontLeft_body.yaml"
    for path in (intr_path, body_path):
        if not path.is_file():
            raise ValueError(f"calibration file {path} is missing")
    intr = read_yaml(intr_path)
    body = read_yaml(body_path)
    try:
        k = np.asarray(intr["K"], dtype=np.float64).reshape(3, 3)
        t = body["transform"]["translation"]
        position_frd = np.array([float(t["x"]), float(t["y"]), float(t["z"])])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{calib_dir} lacks K or transform.translation in its YAML") from None
    d = np.asarray(intr.get("D", [0.0] * 5), dtype=np.float64).reshape(-1)
    r = np.asarray(intr.get("R", np.eye(3).reshape(-1)), dtype=np.float64).reshape(3, 3)
    p_raw = intr.get("P")
    p = (np.hstack([k, np.zeros((3, 1))]) if p_raw is None
         else np.asarray(p_raw, dtype=np.float64).reshape(3, 4))
    return FordCalibration(
        k=k, d=d, r=r, p=p, width=int(intr.get("width", 1656)),
        height=int(intr.get("height", 860)),
        distortion_model=str(intr.get("distortion_model", "plumb_bob")),
        camera_in_body_flu=FRD_TO_FLU @ position_frd,
    )


@dataclasses.dataclass(frozen=True)
class PoseLine:
    """One line of ``grd_sat_quaternion_latlon*.txt``."""

    name: str
    q_wxyz: tuple[float, float, float, float]
    lat: float
    lon: float
    sat_lat: str
    sat_lon: str


def read_pose_list(path: Path) -> list[PoseLine]:
    """Read the 9- or 12-column pose list (the 12-column test form's last three ignored)."""
    lines = []
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        parts = raw.split()
        if not parts:
            continue
        if len(parts) not in (9, 12):
            raise ValueError(f"{path}:{number} has {len(parts)} columns, expected 9 or 12")
        try:
            q = tuple(float(v) for v in parts[1:5])
            lat, lon = float(parts[5]), float(parts[6])
            float(parts[7]), float(parts[8])
        except ValueError:
            raise ValueError(f"{path}:{number} holds a non-numeric value") from None
        lines.append(PoseLine(parts[0], q, lat, lon, parts[7], parts[8]))  # type: ignore[arg-type]
    if not lines:
        raise ValueError(f"{path} holds no poses")
    return lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``denseflow bag ford`` options."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--root", type=Path, help="processed Ford root (with the logs and "
                                                   "Calibration-V2/)")
    source.add_argument("--bag", type=Path,
                        help="a Ford recording converted to rosbag2 with rosbags-convert")
    parser.add_argument("--log", default=None,
                        help="log under --root, e.g. 2017-10-26/V2/Log1")
    parser.add_argument("--pose-list", default="grd_sat_quaternion_latlon.txt",
                        help="pose list in the log folder (9- or 12-column form)")
    parser.add_argument("--calibration", type=Path, default=None,
                        help="folder with cameraFrontLeft*.yaml (default: "
                             "<root>/Calibration-V2/V2; optional with --bag)")
    parser.add_argument("--rate-hz", type=float, default=10.0,
                        help="frame rate for stamps when image names are not Unix times")
    parser.add_argument("--fix-sigma-m", type=float, default=0.1,
                        help="standard deviation published with the processed layout's fixes")
    parser.add_argument("--map-origin", type=bag_common.latlon_arg, default=None,
                        metavar="LAT,LON",
                        help="lat/lon of the recording's NED map origin (default: fitted to "
                             "the GPS fixes)")
    bag_common.add_output_arguments(parser)
    bag_common.add_tiles_arguments(parser)
    parser.add_argument("--satmap-zoom", type=int, default=18)
    parser.add_argument("--satmap-scale", type=int, default=2)
    parser.add_argument("--start", type=int, default=0, help="first frame index")
    parser.add_argument("--end", type=int, default=None, help="frame index to stop before")
    parser.add_argument("--step", type=int, default=1, help="use every STEP-th frame")
    for key, topic in DEFAULT_TOPICS.items():
        parser.add_argument(f"--{key.replace('_', '-')}-topic", default=topic,
                            help=f"topic of the {key.replace('_', ' ')} (default {topic})")
    parser.add_argument("--camera-frame", default="camera_front_left")
    parser.add_argument("--gps-frame", default="gps")
    parser.add_argument("--imu-frame", default="imu_link")
    bag_common.add_degradation_arguments(parser)


@dataclasses.dataclass(frozen=True)
class FordOptions:
    """How a Ford log or recording is converted (see :func:`add_arguments` for each option).

    ``calibration`` None: ``<root>/Calibration-V2/V2`` for the processed layout, no
    camera_info for a recording. ``map_origin`` None: fitted to the recording's fixes.
    ``degradation`` is a template: each conversion starts from a fresh copy.
    """

    output: bag_common.OutputOptions = dataclasses.field(
        default_factory=bag_common.OutputOptions)
    pose_list: str = "grd_sat_quaternion_latlon.txt"
    calibration: Path | None = None
    rate_hz: float = 10.0
    fix_sigma_m: float = 0.1
    map_origin: tuple[float, float] | None = None
    satmap_zoom: int = 18
    satmap_scale: int = 2
    frames: bag_common.FrameRange = dataclasses.field(default_factory=bag_common.FrameRange)
    topics: bag_common.Topics = dataclasses.field(
        default_factory=lambda: bag_common.Topics(**DEFAULT_TOPICS))
    camera_frame: str = "camera_front_left"
    gps_frame: str = "gps"
    imu_frame: str = "imu_link"
    degradation: bag_common.GnssDegradation = dataclasses.field(
        default_factory=bag_common.GnssDegradation)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> FordOptions:
        """Return the options of a ``denseflow bag ford`` command line."""
        return cls(bag_common.OutputOptions.from_args(args), args.pose_list, args.calibration,
                   args.rate_hz, args.fix_sigma_m, args.map_origin, args.satmap_zoom,
                   args.satmap_scale, bag_common.FrameRange.from_args(args),
                   bag_common.Topics.from_args(args), args.camera_frame, args.gps_frame,
                   args.imu_frame, bag_common.GnssDegradation.from_args(args))


@dataclasses.dataclass
class ProcessedSummary:
    """What a processed-layout conversion wrote (``tiles`` None: no tile cache)."""

    bag: str
    frames: int
    datum: tuple[float, float]
    satellite_images: int = 0
    tiles: str | None = None


@dataclasses.dataclass
class RecordingSummary:
    """What a recording conversion wrote, per source topic, and how well its map was placed."""

    bag: str
    messages: dict[str, int]
    datum: tuple[float, float]
    map_origin_fit_rms_m: float
    map_origin_fit_pairs: int


def _metadata(options: FordOptions, datum: tuple[float, float],
              degrade: bag_common.GnssDegradation,
              calib: FordCalibration | None) -> dict[str, str]:
    t = options.topics
    meta = {
        "source": "ford", "datum_lat": repr(datum[0]), "datum_lon": repr(datum[1]),
        "map_frame": options.output.map_frame, "ground_truth_topic": t.ground_truth,
        "fix_topic": t.fix, "imu_topic": t.imu,
        "image_topic": t.image, "camera_info_topic": t.camera_info,
        "ground_truth_point": "vehicle body origin (base_link)",
        "gnss_degradation": json.dumps({k: v for k, v in vars(degrade).items()
                                        if not k.startswith("_")}),
    }
    if calib is not None:
        for axis, value in zip("xyz", calib.camera_in_body_flu, strict=True):
            meta[f"camera_{axis}_m"] = repr(round(float(value), 4))
    return meta


def _write_fix(bag: bagio.BagWriter, options: FordOptions, enu: Any,
               degrade: bag_common.GnssDegradation, t0: int, stamp: int, lat: float,
               lon: float, alt: float, variance: float, status: int) -> None:
    if degrade.active:
        east, north = enu.forward(lat, lon)
        de, dn = degrade.offset((stamp - t0) * 1e-9)
        lat, lon = enu.inverse(east + de, north + dn)
    var = variance + degrade.added_variance_m2
    bag.write(options.topics.fix, "sensor_msgs/msg/NavSatFix", stamp, bagio.navsatfix_msg(
        lat, lon, alt, stamp, options.gps_frame, covariance=[var, var, 4.0 * var],
        covariance_type=bagio.COVARIANCE_TYPE_DIAGONAL_KNOWN, status=status))


def _with_yaw_error(q_xyzw: tuple[float, ...], yaw_err: float) -> tuple[float, ...]:
    if yaw_err == 0.0:
        return q_xyzw
    roll, pitch, yaw = bagio.euler_from_quaternion(*q_xyzw)
    return bagio.quaternion_from_euler(roll, pitch, yaw + yaw_err)


def _camera_info(calib: FordCalibration, width: int, height: int, stamp: int,
                 frame_id: str) -> Any:
    return bagio.camera_info_msg(calib.k, width, height, stamp, frame_id, d=calib.d,
                                 p=calib.p, r=calib.r, distortion_model=calib.distortion_model)


def _write_pose_frame(bag: bagio.BagWriter, options: FordOptions, rgb: np.ndarray,
                      calib: FordCalibration, pose: PoseLine, stamp: int, enu: Any,
                      degrade: bag_common.GnssDegradation, t0: int) -> None:
    """Write one processed-layout frame: image, camera_info, fix, IMU and ground truth."""
    t = options.topics
    bag.write(t.image, "sensor_msgs/msg/Image", stamp,
              bagio.image_msg(rgb, stamp, options.camera_frame))
    bag.write(t.camera_info, "sensor_msgs/msg/CameraInfo", stamp,
              _camera_info(calib, rgb.shape[1], rgb.shape[0], stamp, options.camera_frame))
    w, x, y, z = pose.q_wxyz
    q_enu = ned_frd_to_enu_flu(x, y, z, w)
    _write_fix(bag, options, enu, degrade, t0, stamp, pose.lat, pose.lon, 0.0,
               options.fix_sigma_m**2, bagio.NAVSAT_STATUS_FIX)
    unknown = [-1.0] + [0.0] * 8  # sensor_msgs: rates and accelerations not given
    bag.write(t.imu, "sensor_msgs/msg/Imu", stamp, bagio.imu_msg(
        stamp, options.imu_frame, _with_yaw_error(q_enu, degrade.yaw_error_rad()),
        orientation_covariance=[1e-6, 1e-6, 1e-6 + math.radians(degrade.yaw_noise_deg) ** 2],
        angular_velocity_covariance=unknown, linear_acceleration_covariance=unknown))
    east, north = enu.forward(pose.lat, pose.lon)
    bag.write(t.ground_truth, "geometry_msgs/msg/PoseStamped", stamp,
              bagio.pose_stamped_msg(stamp, options.output.map_frame, (east, north, 0.0),
                                     q_enu))


def convert_ford_processed(root: Path, log: str, out: Path,
                           options: FordOptions) -> ProcessedSummary:
    """Convert ``log`` (e.g. ``2017-10-26/V2/Log1``) of the processed layout at ``root``."""
    import cv2

    from denseflow_ros.geo import LocalEnu

    if not log:
        raise ValueError("--log is required with --root (e.g. 2017-10-26/V2/Log1)")
    log_dir = Path(root) / log
    poses = read_pose_list(log_dir / options.pose_list)
    image_dir = log_dir / (log.strip("/").replace("/", "-") + "-FL")
    calib = read_calibration(Path(options.calibration or Path(root) / "Calibration-V2" / "V2"))
    selected = options.frames.select(len(poses))
    degrade = dataclasses.replace(options.degradation)
    datum = options.output.datum or (poses[selected[0]].lat, poses[selected[0]].lon)
    enu = LocalEnu(*datum)
    stamps = [bag_common.stamp_from_name(p.name) for p in poses]
    if any(s is None for s in stamps):
        stamps = [round(i * 1e9 / options.rate_hz) for i in range(len(poses))]
    t0 = int(stamps[selected[0]])  # type: ignore[arg-type]
    satmaps: dict[str, bag_common.Satmap] = {}
    summary = ProcessedSummary(str(out), len(selected), datum)
    with bagio.BagWriter(out, options.output.storage,
                         metadata=_metadata(options, datum, degrade, calib),
                         overwrite=options.output.overwrite) as bag:
        for i in selected:
            pose, stamp = poses[i], int(stamps[i])  # type: ignore[arg-type]
            img_path = image_dir / (Path(pose.name).stem + ".png")
            bgr = cv2.imread(str(img_path), cv2.IMREAD_COLOR)
            if bgr is None:
                raise ValueError(f"{img_path} is missing or not an image")
            _write_pose_frame(bag, options, np.ascontiguousarray(bgr[:, :, ::-1]), calib, pose,
                              stamp, enu, degrade, t0)
            key = f"{pose.sat_lat}_{pose.sat_lon}"
            sat_path = log_dir / "SatelliteMaps_18" / f"{key}.png"
            if key not in satmaps and sat_path.is_file():
                sat_lat = float(pose.sat_lat)
                satmaps[key] = bag_common.Satmap(
                    sat_path, sat_lat, float(pose.sat_lon),
                    bag_common.satmap_mpp(sat_lat, options.satmap_zoom, options.satmap_scale))
        summary.satellite_images = len(satmaps)
        tiles = options.output.tiles_path(out)
        if tiles is not None and satmaps:
            for key, value in bag_common.build_tile_cache(list(satmaps.values()),
                                                          tiles).items():
                bag.set_metadata(key, repr(value))
            summary.tiles = str(tiles)
        elif tiles is not None:
            bag_common.LOG.warning("no satellite images in %s; no tile cache built",
                                   log_dir / "SatelliteMaps_18")
    return summary


# ROS Bayer encodings -> OpenCV demosaicing codes (OpenCV names the pattern one pixel later).
_BAYER_TO_BGR = {
    "bayer_rggb8": "COLOR_BayerBG2BGR", "bayer_bggr8": "COLOR_BayerRG2BGR",
    "bayer_gbrg8": "COLOR_BayerGR2BGR", "bayer_grbg8": "COLOR_BayerGB2BGR",
}


def camera_image(msg: Any, msg_type: str, stamp: int, frame_id: str) -> Any:
    """Return the recording's camera frame as an Image the localizer reads.

    Compressed frames are decoded and Bayer frames demosaiced to rgb8; any other Image keeps
    its pixels and encoding. The frame id becomes ``frame_id``.
    """
    import cv2

    if msg_type == "sensor_msgs/msg/CompressedImage":
        bgr = cv2.imdecode(np.frombuffer(bytes(msg.data), np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"compressed frame at {stamp} ns ({msg.format}) cannot be decoded")
        return bagio.image_msg(np.ascontiguousarray(bgr[:, :, ::-1]), stamp, frame_id)
    if msg.encoding in _BAYER_TO_BGR:
        raw = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)
        bgr = cv2.cvtColor(np.ascontiguousarray(raw[:, : msg.width]),
                           getattr(cv2, _BAYER_TO_BGR[msg.encoding]))
        return bagio.image_msg(np.ascontiguousarray(bgr[:, :, ::-1]), stamp, frame_id)
    return dataclasses.replace(msg, header=dataclasses.replace(msg.header, frame_id=frame_id))


def _stamp(msg: Any, fallback: int) -> int:
    header = getattr(msg, "header", None)
    if header is None:
        return fallback
    stamp = bagio.stamp_to_ns(header.stamp)
    return stamp if stamp > 0 else fallback


def _map_offset(source: Path, map_origin: tuple[float, float] | None,
                enu: Any) -> tuple[np.ndarray, float, int]:
    """Return the ENU offset of the recording's map origin, the fit's RMS and its samples."""
    if map_origin is not None:
        east, north = enu.forward(*map_origin)
        return np.array([east, north]), 0.0, 0
    fixes: list[tuple[int, float, float]] = []
    truth: list[tuple[int, float, float]] = []
    for item in bagio.iter_messages(source, [SOURCE_TOPICS["fix"],
                                             SOURCE_TOPICS["ground_truth"]]):
        stamp = _stamp(item.msg, item.stamp_ns)
        if item.topic == SOURCE_TOPICS["fix"]:
            if math.isfinite(item.msg.latitude) and item.msg.status.status >= 0:
                e, n = enu.forward(item.msg.latitude, item.msg.longitude)
                fixes.append((stamp, float(e), float(n)))
        else:
            p = item.msg.pose.position
            truth.append((stamp, float(p.y), float(p.x)))  # NED -> ENU
    if not fixes or not truth:
        raise ValueError(f"{source} needs {SOURCE_TOPICS['fix']} and "
                         f"{SOURCE_TOPICS['ground_truth']} to place its map; or give "
                         "--map-origin")
    t_truth = np.array([t for t, _, _ in truth], dtype=np.int64)
    diffs = []
    for stamp, e, n in fixes:
        j = int(np.argmin(np.abs(t_truth - stamp)))
        if abs(int(t_truth[j]) - stamp) <= 50_000_000:
            diffs.append((e - truth[j][1], n - truth[j][2]))
    if not diffs:
        raise ValueError("no GPS fix lies within 50 ms of a ground-truth pose; give "
                         "--map-origin")
    d = np.array(diffs)
    offset = d.mean(axis=0)
    rms = float(np.sqrt(np.mean(np.sum((d - offset) ** 2, axis=1))))
    return offset, rms, len(d)


def _recording_datum(source: Path, options: FordOptions) -> tuple[float, float]:
    """Return the ENU datum: the option, else the first valid fix, else the map origin."""
    datum = options.output.datum
    if datum is None:
        for item in bagio.iter_messages(source, [SOURCE_TOPICS["fix"]]):
            if math.isfinite(item.msg.latitude) and item.msg.status.status >= 0:
                datum = (float(item.msg.latitude), float(item.msg.longitude))
                break
        if datum is None and options.map_origin is not None:
            datum = options.map_origin
    if datum is None:
        raise ValueError(f"{source} has no valid GPS fix; give --datum and --map-origin")
    return datum


def _write_imu(bag: bagio.BagWriter, options: FordOptions, msg: Any, stamp: int,
               degrade: bag_common.GnssDegradation) -> None:
    """Write a recording's IMU sample in FLU axes, its orientation in ENU."""
    o = msg.orientation
    has_orientation = msg.orientation_covariance[0] != -1.0 and (
        o.x, o.y, o.z, o.w) != (0.0, 0.0, 0.0, 0.0)
    q = (_with_yaw_error(ned_frd_to_enu_flu(o.x, o.y, o.z, o.w), degrade.yaw_error_rad())
         if has_orientation else None)
    bag.write(options.topics.imu, "sensor_msgs/msg/Imu", stamp, bagio.imu_msg(
        stamp, options.imu_frame, q,
        frd_vector_to_flu(msg.angular_velocity), frd_vector_to_flu(msg.linear_acceleration),
        orientation_covariance=_flip_cov(msg.orientation_covariance)
        if has_orientation else None,
        angular_velocity_covariance=_flip_cov(msg.angular_velocity_covariance),
        linear_acceleration_covariance=_flip_cov(msg.linear_acceleration_covariance)))


def convert_ford_recording(source: Path, out: Path, options: FordOptions) -> RecordingSummary:
    """Convert a Ford recording (rosbag2 from rosbags-convert) to the bag ``out``."""
    from denseflow_ros.geo import LocalEnu

    calib = read_calibration(Path(options.calibration)) if options.calibration else None
    topics = bagio.bag_topics(source)
    missing = [t for t in SOURCE_TOPICS.values() if t not in topics]
    if SOURCE_TOPICS["image"] in missing or SOURCE_TOPICS["ground_truth"] in missing:
        raise ValueError(f"{source} lacks {', '.join(missing)}")
    datum = _recording_datum(source, options)
    enu = LocalEnu(*datum)
    offset, rms, pairs = _map_offset(source, options.map_origin, enu)
    degrade = dataclasses.replace(options.degradation)
    meta = _metadata(options, datum, degrade, calib)
    meta["map_origin_fit_rms_m"] = repr(round(rms, 4))
    counts = dict.fromkeys(SOURCE_TOPICS, 0)
    t, frame = options.topics, -1
    t0: int | None = None
    with bagio.BagWriter(out, options.output.storage, metadata=meta,
                         overwrite=options.output.overwrite) as bag:
        for item in bagio.iter_messages(source, list(SOURCE_TOPICS.values())):
            msg = item.msg
            stamp = _stamp(msg, item.stamp_ns)
            t0 = stamp if t0 is None else t0
            if item.topic == SOURCE_TOPICS["image"]:
                frame += 1
                if not options.frames.keeps(frame):
                    continue
                image = camera_image(msg, item.msg_type, stamp, options.camera_frame)
                bag.write(t.image, "sensor_msgs/msg/Image", stamp, image)
                if calib is not None:
                    bag.write(t.camera_info, "sensor_msgs/msg/CameraInfo", stamp, _camera_info(
                        calib, image.width, image.height, stamp, options.camera_frame))
                counts["image"] += 1
            elif item.topic == SOURCE_TOPICS["fix"]:
                cov = np.asarray(msg.position_covariance, dtype=np.float64)
                variance = float(max(cov[0], cov[4])) if msg.position_covariance_type else 1.0
                _write_fix(bag, options, enu, degrade, t0, stamp, msg.latitude, msg.longitude,
                           msg.altitude, variance, int(msg.status.status))
                counts["fix"] += 1
            elif item.topic == SOURCE_TOPICS["imu"]:
                _write_imu(bag, options, msg, stamp, degrade)
                counts["imu"] += 1
            else:
                p, o = msg.pose.position, msg.pose.orientation
                east, north = p.y + offset[0], p.x + offset[1]
                bag.write(t.ground_truth, "geometry_msgs/msg/PoseStamped", stamp,
                          bagio.pose_stamped_msg(stamp, options.output.map_frame,
                                                 (east, north, -p.z),
                                                 ned_frd_to_enu_flu(o.x, o.y, o.z, o.w)))
                counts["ground_truth"] += 1
    return RecordingSummary(str(out), counts, datum, rms, pairs)
