# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Write and read rosbag2 recordings without a ROS installation, on ``rosbags``.

:class:`BagWriter` writes rosbag2 directories in mcap or sqlite3 storage that open with
``rosbags``, with the ``mcap`` reader and with ``ros2 bag play`` (Humble and newer: the
metadata is written in version 8, whose QoS field Humble still parses). The message builders
return ``rosbags`` message objects with sensor-time stamps and frame ids;
:func:`iter_messages` reads any rosbag2 (or ROS 1) recording back in time order.

Message types are named ``pkg/msg/Type``; ``pkg/Type`` is accepted as well. The builders and
the writer use the ROS 2 Humble message definitions by default; for every type used here
they serialize identically to Jazzy's.
"""

from __future__ import annotations

import contextlib
import math
import shutil
from collections.abc import Iterator, Mapping, Sequence
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

import numpy as np

# The package's one quaternion-to-yaw helper, re-exported for bag readers.
from denseflow_ros.angles import yaw_from_quaternion as yaw_from_quaternion

STORAGES = ("mcap", "sqlite3")
DISTROS = ("humble", "jazzy")
# Version 9 writes QoS profiles as a YAML list that Humble's rosbag2 cannot parse; version 8
# keeps them a string and is read by every distribution from Humble on.
BAG_VERSION = 8
# Files a rosbag2 folder holds: storage files, with sqlite3's journals and compressed forms.
_STORAGE_SUFFIXES = (".mcap", ".db3", ".db3-shm", ".db3-wal", ".db3-journal", ".zstd")

NAVSAT_STATUS_NO_FIX = -1
NAVSAT_STATUS_FIX = 0
NAVSAT_STATUS_SBAS_FIX = 1
NAVSAT_STATUS_GBAS_FIX = 2
NAVSAT_SERVICE_GPS = 1

COVARIANCE_TYPE_UNKNOWN = 0
COVARIANCE_TYPE_APPROXIMATED = 1
COVARIANCE_TYPE_DIAGONAL_KNOWN = 2
COVARIANCE_TYPE_KNOWN = 3


class BagError(Exception):
    """A recording cannot be written or read; the message says why in one sentence."""


class BagMessage(NamedTuple):
    """One message read from a recording.

    ``stamp_ns`` is the recording's timestamp (for bags written here, the sensor time that is
    also in the header); ``msg`` is the deserialized message, or the serialized CDR bytes
    when read with ``raw=True``.
    """

    topic: str
    msg_type: str
    stamp_ns: int
    msg: Any


@cache
def typestore(distro: str = "humble") -> Any:
    """Return the ``rosbags`` typestore with the message definitions of a ROS 2 ``distro``."""
    from rosbags.typesys import Stores, get_typestore

    stores = {"humble": Stores.ROS2_HUMBLE, "jazzy": Stores.ROS2_JAZZY}
    if distro not in stores:
        raise BagError(f"unknown ROS 2 distribution {distro!r}; expected one of {DISTROS}")
    return get_typestore(stores[distro])


def normalize_msg_type(msg_type: str) -> str:
    """Return a message type as ``pkg/msg/Type`` (accepts ``pkg/Type`` and ``pkg/msg/Type``)."""
    parts = msg_type.strip().split("/")
    if len(parts) == 2 and all(parts):
        return f"{parts[0]}/msg/{parts[1]}"
    if len(parts) == 3 and parts[1] == "msg" and parts[0] and parts[2]:
        return msg_type.strip()
    raise BagError(f"message type {msg_type!r} is not of the form pkg/msg/Type")


def _types() -> Any:
    return typestore("humble").types


# -- time and rotations ---------------------------------------------------------------------


def time_msg(stamp_ns: int) -> Any:
    """Return a ``builtin_interfaces/msg/Time`` for a time in integer nanoseconds."""
    stamp_ns = int(stamp_ns)
    if stamp_ns < 0:
        raise BagError(f"stamp {stamp_ns} ns is negative; ROS times start at 0")
    return _types()["builtin_interfaces/msg/Time"](
        sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000
    )


def stamp_to_ns(stamp: Any) -> int:
    """Return the integer nanoseconds of a ``builtin_interfaces/msg/Time``-like object."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def header_msg(stamp_ns: int, frame_id: str) -> Any:
    """Return a ``std_msgs/msg/Header``."""
    return _types()["std_msgs/msg/Header"](stamp=time_msg(stamp_ns), frame_id=frame_id)


def quaternion_from_euler(roll: float, pitch: float, yaw: float) -> tuple[float, ...]:
    """Return (x, y, z, w) of the rotation Rz(yaw) Ry(pitch) Rx(roll) (radians)."""
    cr, sr = math.cos(roll / 2), math.sin(roll / 2)
    cp, sp = math.cos(pitch / 2), math.sin(pitch / 2)
    cy, sy = math.cos(yaw / 2), math.sin(yaw / 2)
    return (
        sr * cp * cy - cr * sp * sy,
        cr * sp * cy + sr * cp * sy,
        cr * cp * sy - sr * sp * cy,
        cr * cp * cy + sr * sp * sy,
    )


def euler_from_quaternion(x: float, y: float, z: float, w: float) -> tuple[float, float, float]:
    """Return (roll, pitch, yaw) in radians of a unit quaternion, inverse of the above."""
    roll = math.atan2(2 * (w * x + y * z), 1 - 2 * (x * x + y * y))
    pitch = math.asin(max(-1.0, min(1.0, 2 * (w * y - z * x))))
    return roll, pitch, yaw_from_quaternion(x, y, z, w)


def _vector3(values: Sequence[float]) -> Any:
    x, y, z = (float(v) for v in values)
    return _types()["geometry_msgs/msg/Vector3"](x=x, y=y, z=z)


def _quaternion(xyzw: Sequence[float]) -> Any:
    q = np.asarray(xyzw, dtype=np.float64).reshape(4)
    norm = float(np.linalg.norm(q))
    if not math.isfinite(norm) or norm < 1e-9:
        raise BagError(f"orientation {tuple(q)} is not a valid quaternion")
    x, y, z, w = (float(v) for v in q / norm)
    return _types()["geometry_msgs/msg/Quaternion"](x=x, y=y, z=z, w=w)


def _pose(position: Sequence[float], orientation_xyzw: Sequence[float]) -> Any:
    x, y, z = (float(v) for v in position)
    return _types()["geometry_msgs/msg/Pose"](
        position=_types()["geometry_msgs/msg/Point"](x=x, y=y, z=z),
        orientation=_quaternion(orientation_xyzw),
    )


def _covariance(values: Any, n: int, name: str) -> np.ndarray:
    """Return an n x n covariance flattened row-major; accepts None, n variances or n x n."""
    if values is None:
        return np.zeros(n * n, dtype=np.float64)
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == n:
        arr = np.diag(arr.reshape(n))
    if arr.size != n * n:
        raise BagError(f"{name} needs {n} variances or {n}x{n} values, got {arr.size}")
    if not np.all(np.isfinite(arr)):
        raise BagError(f"{name} contains NaN or infinite values")
    return arr.reshape(n * n).copy()


# -- message builders -----------------------------------------------------------------------


def image_msg(image: np.ndarray, stamp_ns: int, frame_id: str = "camera") -> Any:
    """Return a ``sensor_msgs/msg/Image``: (H, W, 3) uint8 RGB as rgb8, (H, W) as mono8."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise BagError(f"image must be uint8, got {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] == 3:
        encoding, channels = "rgb8", 3
    elif arr.ndim == 2:
        encoding, channels = "mono8", 1
    else:
        raise BagError(f"image must be (H, W, 3) RGB or (H, W) grey, got shape {arr.shape}")
    height, width = arr.shape[:2]
    return _types()["sensor_msgs/msg/Image"](
        header=header_msg(stamp_ns, frame_id),
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=0,
        step=width * channels,
        data=np.ascontiguousarray(arr).reshape(-1),
    )


def image_array(msg: Any) -> np.ndarray:
    """Return an Image message's pixels as (H, W, 3) uint8 RGB, or (H, W) for mono8."""
    channels = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}
    if msg.encoding not in channels:
        raise BagError(f"image encoding {msg.encoding!r} is not one of {sorted(channels)}")
    c = channels[msg.encoding]
    data = np.frombuffer(bytes(msg.data), dtype=np.uint8)
    rows = data.reshape(msg.height, msg.step)[:, : msg.width * c]
    arr = rows.reshape(msg.height, msg.width, c)
    if msg.encoding == "mono8":
        return arr[:, :, 0].copy()
    if msg.encoding.startswith("bgr"):
        arr = arr[:, :, 2::-1]
    return np.ascontiguousarray(arr[:, :, :3])


def camera_info_msg(
    k: Any,
    width: int,
    height: int,
    stamp_ns: int,
    frame_id: str = "camera",
    d: Sequence[float] | None = None,
    p: Any = None,
    r: Any = None,
    distortion_model: str = "plumb_bob",
) -> Any:
    """Return a ``sensor_msgs/msg/CameraInfo``.

    ``k`` is the 3x3 intrinsic matrix, ``p`` the 3x4 projection (default ``[k | 0]``), ``r``
    the rectification rotation (default identity), ``d`` the distortion coefficients (default
    five zeros: an already rectified image).
    """
    k_arr = np.asarray(k, dtype=np.float64).reshape(3, 3)
    p_arr = (
        np.hstack([k_arr, np.zeros((3, 1))])
        if p is None
        else np.asarray(p, dtype=np.float64).reshape(3, 4)
    )
    r_arr = np.eye(3) if r is None else np.asarray(r, dtype=np.float64).reshape(3, 3)
    d_arr = np.zeros(5) if d is None else np.asarray(d, dtype=np.float64).reshape(-1)
    return _types()["sensor_msgs/msg/CameraInfo"](
        header=header_msg(stamp_ns, frame_id),
        height=int(height),
        width=int(width),
        distortion_model=distortion_model,
        d=d_arr.copy(),
        k=k_arr.reshape(9).copy(),
        r=r_arr.reshape(9).copy(),
        p=p_arr.reshape(12).copy(),
        binning_x=0,
        binning_y=0,
        roi=_types()["sensor_msgs/msg/RegionOfInterest"](
            x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
        ),
    )


def navsatfix_msg(
    latitude: float,
    longitude: float,
    altitude: float,
    stamp_ns: int,
    frame_id: str = "gps",
    covariance: Any = None,
    covariance_type: int | None = None,
    status: int = NAVSAT_STATUS_FIX,
    service: int = NAVSAT_SERVICE_GPS,
) -> Any:
    """Return a ``sensor_msgs/msg/NavSatFix``.

    ``covariance`` is in m^2 in the ENU tangent plane at the fix: None (unknown), three
    variances (east, north, up; diagonal known) or a 3x3 matrix (known). ``covariance_type``
    overrides the type inferred from it.
    """
    cov = _covariance(covariance, 3, "position covariance")
    if covariance_type is None:
        if covariance is None:
            covariance_type = COVARIANCE_TYPE_UNKNOWN
        elif np.asarray(covariance).size == 3:
            covariance_type = COVARIANCE_TYPE_DIAGONAL_KNOWN
        else:
            covariance_type = COVARIANCE_TYPE_KNOWN
    return _types()["sensor_msgs/msg/NavSatFix"](
        header=header_msg(stamp_ns, frame_id),
        status=_types()["sensor_msgs/msg/NavSatStatus"](status=int(status), service=int(service)),
        latitude=float(latitude),
        longitude=float(longitude),
        altitude=float(altitude),
        position_covariance=cov,
        position_covariance_type=int(covariance_type),
    )


def imu_msg(
    stamp_ns: int,
    frame_id: str = "imu",
    orientation_xyzw: Sequence[float] | None = None,
    angular_velocity: Sequence[float] = (0.0, 0.0, 0.0),
    linear_acceleration: Sequence[float] = (0.0, 0.0, 0.0),
    orientation_covariance: Any = None,
    angular_velocity_covariance: Any = None,
    linear_acceleration_covariance: Any = None,
) -> Any:
    """Return a ``sensor_msgs/msg/Imu`` (rad/s, m/s^2, orientation in the ENU world frame).

    Without an orientation, ``orientation_covariance[0]`` is -1, the sensor_msgs convention
    for "no orientation estimate". A covariance of None means unknown (all zeros).
    """
    if orientation_xyzw is None:
        orientation = _types()["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0)
        o_cov = np.zeros(9)
        o_cov[0] = -1.0
    else:
        orientation = _quaternion(orientation_xyzw)
        o_cov = _covariance(orientation_covariance, 3, "orientation covariance")
    return _types()["sensor_msgs/msg/Imu"](
        header=header_msg(stamp_ns, frame_id),
        orientation=orientation,
        orientation_covariance=o_cov,
        angular_velocity=_vector3(angular_velocity),
        angular_velocity_covariance=_covariance(
            angular_velocity_covariance, 3, "angular velocity covariance"
        ),
        linear_acceleration=_vector3(linear_acceleration),
        linear_acceleration_covariance=_covariance(
            linear_acceleration_covariance, 3, "linear acceleration covariance"
        ),
    )


def pose_stamped_msg(
    stamp_ns: int,
    frame_id: str,
    position: Sequence[float],
    orientation_xyzw: Sequence[float] = (0.0, 0.0, 0.0, 1.0),
) -> Any:
    """Return a ``geometry_msgs/msg/PoseStamped`` (position in metres, unit quaternion)."""
    return _types()["geometry_msgs/msg/PoseStamped"](
        header=header_msg(stamp_ns, frame_id), pose=_pose(position, orientation_xyzw)
    )


def pose_with_covariance_stamped_msg(
    stamp_ns: int,
    frame_id: str,
    position: Sequence[float],
    orientation_xyzw: Sequence[float] = (0.0, 0.0, 0.0, 1.0),
    covariance: Any = None,
) -> Any:
    """Return a ``geometry_msgs/msg/PoseWithCovarianceStamped``.

    ``covariance`` is over (x, y, z, roll, pitch, yaw): six variances or a 6x6 matrix.
    """
    pose_cov = _types()["geometry_msgs/msg/PoseWithCovariance"](
        pose=_pose(position, orientation_xyzw),
        covariance=_covariance(covariance, 6, "pose covariance"),
    )
    return _types()["geometry_msgs/msg/PoseWithCovarianceStamped"](
        header=header_msg(stamp_ns, frame_id), pose=pose_cov
    )


# -- writer ---------------------------------------------------------------------------------


class BagWriter:
    """Context manager that writes a rosbag2 directory in mcap or sqlite3 storage.

    ``with BagWriter("out_bag") as bag: bag.write("/gps/fix", "sensor_msgs/msg/NavSatFix",
    stamp_ns, msg)``. Each topic's connection is added on its first message. ``metadata`` is
    stored as the bag's ``custom_data``.

    The bag is written under ``<path>.partial`` and moved to ``path`` only once it is closed,
    so a bag at ``path`` is complete. When the block raises or closing fails, what was written
    stays in ``<path>.partial`` (closed, and readable where the storage allows) and ``path``
    is untouched. ``overwrite`` replaces an existing bag, only after the new one is complete,
    and never a file or a folder that holds anything but a rosbag2.
    """

    def __init__(
        self,
        path: str | Path,
        storage: str = "mcap",
        *,
        distro: str = "humble",
        metadata: Mapping[str, str] | None = None,
        overwrite: bool = False,
    ) -> None:
        """Prepare a writer; nothing is created on disk before :meth:`open`."""
        if storage not in STORAGES:
            raise BagError(f"storage {storage!r} is not one of {STORAGES}")
        self.path = Path(path)
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.storage = storage
        self.typestore = typestore(distro)
        self.metadata = dict(metadata or {})
        self.overwrite = overwrite
        self.counts: dict[str, int] = {}
        self._writer: Any = None
        self._connections: dict[str, tuple[str, Any]] = {}

    @property
    def staging(self) -> Path:
        """Return the bag directory being written (inside ``<path>.partial``)."""
        return self.partial / self.path.name

    def __enter__(self) -> BagWriter:
        """Open the bag for writing."""
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the bag, or keep what was written in ``<path>.partial`` when the block raised."""
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def check_output(self) -> None:
        """Raise :class:`BagError` unless ``path`` is free, or a bag that may be overwritten."""
        if not self.path.exists() and not self.path.is_symlink():
            return
        if not self.overwrite:
            raise BagError(f"{self.path} exists; choose another output or overwrite it")
        if not is_bag_dir(self.path):
            raise BagError(f"{self.path} is not a rosbag2 folder; refusing to overwrite it")

    def open(self) -> None:
        """Create the bag directory and its storage file under ``<path>.partial``."""
        from rosbags.rosbag2 import StoragePlugin, Writer

        self.check_output()
        if self.partial.exists() or self.partial.is_symlink():
            # A leftover of an earlier failed run, replaced only when it holds nothing else.
            if not (self.partial.is_dir() and not self.partial.is_symlink()
                    and all(is_bag_dir(p) for p in self.partial.iterdir())):
                raise BagError(f"{self.partial} exists and is not a partial recording; "
                               "move it away")
            shutil.rmtree(self.partial)
        self.partial.mkdir(parents=True)
        plugin = StoragePlugin.MCAP if self.storage == "mcap" else StoragePlugin.SQLITE3
        writer = Writer(self.staging, version=BAG_VERSION, storage_plugin=plugin)
        for key, value in self.metadata.items():
            writer.set_custom_data(str(key), str(value))
        writer.open()
        self._writer = writer

    def set_metadata(self, key: str, value: str) -> None:
        """Store one ``custom_data`` entry in the bag's metadata (before closing)."""
        self.metadata[key] = str(value)
        if self._writer is not None:
            self._writer.set_custom_data(key, str(value))

    def write(self, topic: str, msg_type: str, stamp_ns: int, msg: Any) -> None:
        """Serialize ``msg`` (a ``rosbags`` message of ``msg_type``) to ``topic`` at ``stamp_ns``.

        ``msg`` may also be CDR bytes already serialized for ``msg_type``.
        """
        if self._writer is None:
            raise BagError(f"{self.path} is not open for writing")
        msg_type = normalize_msg_type(msg_type)
        if not topic.startswith("/"):
            raise BagError(f"topic {topic!r} must be absolute (start with '/')")
        if isinstance(msg, bytes | bytearray | memoryview):
            data = bytes(msg)
        else:
            own = getattr(msg, "__msgtype__", msg_type)
            if own != msg_type:
                raise BagError(f"message of type {own} written as {msg_type} on {topic}")
            if msg_type not in self.typestore.types:
                raise BagError(f"message type {msg_type} is not in the ROS 2 typestore")
            data = self.typestore.serialize_cdr(msg, msg_type)
        known = self._connections.get(topic)
        if known is None:
            if msg_type not in self.typestore.types:
                raise BagError(f"message type {msg_type} is not in the ROS 2 typestore")
            connection = self._writer.add_connection(topic, msg_type, typestore=self.typestore)
            known = self._connections[topic] = (msg_type, connection)
            self.counts[topic] = 0
        elif known[0] != msg_type:
            raise BagError(f"topic {topic} already carries {known[0]}, not {msg_type}")
        self._writer.write(known[1], int(stamp_ns), data)
        self.counts[topic] += 1

    def close(self) -> None:
        """Finish the storage file and ``metadata.yaml``, then move the bag to ``path``.

        Raises :class:`BagError` when the bag cannot be finished; what was written is then
        left in ``<path>.partial``.
        """
        if self._writer is None:
            return
        writer, self._writer = self._writer, None
        try:
            writer.close()
        except Exception as err:  # disk full, I/O errors: rosbags and sqlite raise many types
            with contextlib.suppress(Exception):
                writer.abort()
            raise BagError(f"{self.path} could not be finished ({err}); what was written is "
                           f"in {self.staging}") from err
        self.check_output()
        old = self.partial / (self.path.name + ".replaced")
        if self.path.exists():
            self.path.rename(old)
        self.staging.rename(self.path)
        if old.exists():
            shutil.rmtree(old)
        self.partial.rmdir()

    def abort(self) -> None:
        """Stop writing; keep what was written in ``<path>.partial``, closed where possible."""
        if self._writer is not None:
            writer, self._writer = self._writer, None
            try:
                writer.close()
            except Exception:  # noqa: BLE001 - the storage may be what failed
                with contextlib.suppress(Exception):
                    writer.abort()


def is_bag_dir(path: Path) -> bool:
    """Return whether ``path`` is a folder holding only rosbag2 files (or nothing)."""
    if not path.is_dir() or path.is_symlink():
        return False
    return all(p.is_file() and not p.is_symlink() and (
        p.name in ("metadata.yaml", "metadata.yaml.tmp") or p.suffix in _STORAGE_SUFFIXES
        or p.name.endswith(_STORAGE_SUFFIXES)) for p in path.iterdir())


# -- reader ---------------------------------------------------------------------------------


def _open_reader(path: str | Path) -> Any:
    from rosbags.highlevel import AnyReader

    bag = Path(path)
    if not bag.exists():
        raise BagError(f"recording {bag} does not exist")
    try:
        return AnyReader([bag], default_typestore=typestore("humble"))
    except Exception as err:  # rosbags raises several unrelated types for unreadable input
        raise BagError(f"{bag} is not a readable rosbag2 or ROS 1 bag: {err}") from None


def bag_topics(path: str | Path) -> dict[str, tuple[str, int]]:
    """Return ``{topic: (msg_type, message_count)}`` of a recording."""
    with _open_reader(path) as reader:
        return {name: (info.msgtype or "", info.msgcount) for name, info in reader.topics.items()}


def iter_messages(
    path: str | Path, topics: Sequence[str] | None = None, *, raw: bool = False
) -> Iterator[BagMessage]:
    """Yield a recording's messages in timestamp order, optionally only on ``topics``.

    With ``raw=True`` each message is its CDR serialization (rosbag2 only), as a publisher
    would send it.
    """
    with _open_reader(path) as reader:
        connections = [
            c for c in reader.connections if topics is None or c.topic in set(topics)
        ]
        if topics is not None and not connections:
            return
        if raw and not reader.is2:
            raise BagError(f"{path} is a ROS 1 bag; raw CDR reading needs a rosbag2")
        for connection, stamp_ns, data in reader.messages(connections=connections):
            msg = bytes(data) if raw else reader.deserialize(data, connection.msgtype)
            yield BagMessage(connection.topic, connection.msgtype, int(stamp_ns), msg)
