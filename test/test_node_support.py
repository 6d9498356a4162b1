# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Shared pieces of the localizer and node tests: tile caches, the oracle, a DDS client.

Run as a script, this module is the oracle launcher: it starts ``localizer_node``'s ``main``
with :class:`Oracle` in place of the network (``DENSEFLOW_ORACLE_TABLE`` names its table,
``DENSEFLOW_ORACLE_FAULTS`` optionally its faults), so every argument after it is what the
real console script would get.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from pyproj import Geod

GEOD = Geod(ellps="WGS84")
LAT0, LON0 = 49.0, 8.4
REPO = Path(__file__).resolve().parents[1]


# -- geodesy, independent of the package ----------------------------------------------------
def move(lat: float, lon: float, east: float, north: float) -> tuple[float, float]:
    """Return the point (east, north) metres from (lat, lon) along the geodesic."""
    if east == 0.0 and north == 0.0:
        return lat, lon
    lon2, lat2, _ = GEOD.fwd(lon, lat, math.degrees(math.atan2(east, north)),
                             math.hypot(east, north))
    return float(lat2), float(lon2)


def offset(lat0: float, lon0: float, lat: float, lon: float) -> tuple[float, float]:
    """Return (east, north) of (lat, lon) from (lat0, lon0), geodesic azimuth and distance."""
    az, _, dist = GEOD.inv(lon0, lat0, lon, lat)
    return dist * math.sin(math.radians(az)), dist * math.cos(math.radians(az))


def rot(a: float, x: float, y: float) -> tuple[float, float]:
    """Rotate (x, y) by a counter-clockwise."""
    return x * math.cos(a) - y * math.sin(a), x * math.sin(a) + y * math.cos(a)


def wrap(a: float) -> float:
    """Wrap to [-pi, pi)."""
    return (a + math.pi) % (2 * math.pi) - math.pi


# -- a small XYZ tile cache ---------------------------------------------------------------
def write_tile_cache(path: Path, lat: float = LAT0, lon: float = LON0, radius_m: float = 300.0,
                     zoom: int = 18, seed: int = 0, ramp: bool = False) -> Path:
    """Write an XYZ folder of textured 256 px tiles covering radius_m around (lat, lon).

    With ``ramp`` the red channel grows steadily eastward across the whole cache, so a crop's
    heading can be read back from its red gradient.
    """
    import cv2

    from denseflow_ros.geo.mercator import tile_for

    rng = np.random.default_rng(seed)
    north = move(lat, lon, -radius_m, radius_m)
    south = move(lat, lon, radius_m, -radius_m)
    x0, y0 = tile_for(north[1], north[0], zoom)
    x1, y1 = tile_for(south[1], south[0], zoom)
    base = cv2.resize(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8), (256, 256))
    for x in range(x0, x1 + 1):
        for y in range(y0, y1 + 1):
            tile = np.clip(base.astype(int) + rng.integers(-40, 40, (256, 256, 3)), 0, 255)
            if ramp:
                gx = (x - x0) * 256 + np.arange(256)
                tile[..., 2] = 20 + 210 * gx / ((x1 - x0 + 1) * 256)  # OpenCV writes BGR
            out = path / str(zoom) / str(x) / f"{y}.png"
            out.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(out), tile.astype(np.uint8))
    return path


# -- frames that say which pose they were rendered at -----------------------------------------
def frame_image(frame_id: int, width: int = 96, height: int = 32) -> np.ndarray:
    """Return a uniform RGB image whose colour encodes ``frame_id`` (survives resizing)."""
    image = np.empty((height, width, 3), np.uint8)
    image[..., 0] = frame_id % 256
    image[..., 1] = frame_id // 256
    image[..., 2] = 128
    return image


def intrinsics(width: int = 96, height: int = 32) -> np.ndarray:
    """Return a pinhole K for the test frames."""
    f = width / 2.0
    return np.array([[f, 0.0, width / 2.0 - 0.5], [0.0, f, height / 2.0 - 0.5], [0, 0, 1.0]])


class Oracle:
    """The exact flow of the known pose, solved by the real pose solver.

    ``table`` maps a frame id (the ground image's colour) to the true (shift_u_m, shift_v_m,
    yaw_deg) of the camera relative to the crop the localizer made; or, for a heading search,
    to (east_m, north_m, yaw_rad, hypotheses): the true camera offset from the prior and the
    true heading. The crop's heading is then read from the tile cache's eastward red ramp
    (``write_tile_cache(ramp=True)``), snapped to the searched headings, and the confidence
    is highest for the crop turned closest to the truth.

    ``faults`` make frames misbehave by id: ``{"sleep": {id: seconds}, "raise": {id: text}}``
    (a slow inference; an exception, such as CUDA running out of memory). Warm-up frames are
    uniform grey 127: id 32639.
    """

    WARMUP_ID = 127 + 256 * 127

    def __init__(self, table: dict[int, tuple[float, ...]], preset: str = "lite",
                 faults: dict[str, dict[int, Any]] | None = None) -> None:
        from denseflow_ros.model import get_preset

        self.table = table
        self.faults = faults or {}
        self.config = get_preset(preset)
        self.iterations = self.config.iterations
        self.run_fine_stage = True

    @classmethod
    def load(cls, path: str, preset: str, faults_path: str | None = None) -> Oracle:
        """Read a table written by :func:`save_table` (and faults by :func:`save_faults`)."""
        data = json.loads(Path(path).read_text())
        faults = None
        if faults_path:
            faults = {kind: {int(k): v for k, v in rows.items()}
                      for kind, rows in json.loads(Path(faults_path).read_text()).items()}
        return cls({int(k): tuple(v) for k, v in data.items()}, preset or "lite", faults)

    def _frame_id(self, ground: Any, i: int) -> int:
        r = int(round(float(ground[i, 0, 0, 0]) * 255))
        g = int(round(float(ground[i, 1, 0, 0]) * 255))
        return r + 256 * g

    def _row(self, ground: Any, satellite: Any, i: int) -> tuple[float, float, float, float]:
        row = self.table.get(self._frame_id(ground, i), (0.0, 0.0, 0.0))
        if len(row) == 3:
            return (*row, 1.0)
        east, north, yaw_true, n = row
        red = satellite[i, 0].double()
        gu = float((red[:, 1:] - red[:, :-1]).mean())
        gv = float((red[1:, :] - red[:-1, :]).mean())
        step = 2 * math.pi / n
        h = round(math.atan2(gv, gu) / step) * step
        forward = east * math.cos(h) + north * math.sin(h)
        left = -east * math.sin(h) + north * math.cos(h)
        dyaw = wrap(yaw_true - h)
        return forward, -left, math.degrees(dyaw), (1 + math.cos(dyaw)) / 2

    def __call__(self, ground: Any, satellite: Any, intrinsics: Any,
                 satellite_mpp: float | None = None, camera_height_m: float | None = None
                 ) -> SimpleNamespace:
        """Return the network's outputs for the frames' known poses."""
        import torch

        from denseflow_ros.model import analytic_flow, solve_pose

        b = ground.shape[0]
        s = satellite.shape[-1]
        frame_id = self._frame_id(ground, 0)
        if frame_id in self.faults.get("raise", {}):
            raise RuntimeError(self.faults["raise"][frame_id])
        time.sleep(float(self.faults.get("sleep", {}).get(frame_id, 0.0)))
        mpp = satellite_mpp or self.config.satellite_mpp
        rows = [self._row(ground, satellite, i) for i in range(b)]
        su, sv, yaw, c = (torch.tensor([row[j] for row in rows], dtype=torch.float64)
                          for j in range(4))
        flow = analytic_flow(su, sv, yaw, s, mpp)
        conf = c[:, None, None, None].expand(b, 1, s, s).contiguous()
        mask = torch.ones(b, 1, s, s, dtype=torch.bool)
        u, v, y, cov = solve_pose(flow, conf, mask, mpp)
        return SimpleNamespace(shift_u_m=u, shift_v_m=v, yaw_deg=y, covariance=cov,
                               confidence=conf.float(), mask=mask, flow=flow)


def save_table(path: Path, table: dict[int, tuple[float, ...]]) -> Path:
    """Write an oracle table as JSON."""
    path.write_text(json.dumps({str(k): list(v) for k, v in table.items()}))
    return path


def save_faults(path: Path, sleep: dict[int, float] | None = None,
                raise_: dict[int, str] | None = None) -> Path:
    """Write oracle faults as JSON (see :class:`Oracle`)."""
    path.write_text(json.dumps({"sleep": {str(k): v for k, v in (sleep or {}).items()},
                                "raise": {str(k): v for k, v in (raise_ or {}).items()}}))
    return path


# -- one pose case, computed here without the package's geometry ------------------------------
def make_case(rng: np.random.Generator, yaw_true: float, mount: dict[str, float],
              max_pos_err: float = 20.0, max_yaw_err_deg: float = 10.0,
              spread_m: float = 120.0) -> dict[str, float]:
    """Return a true base_link pose, its GNSS/heading prior and the oracle's shifts."""
    lat_b, lon_b = move(LAT0, LON0, *rng.uniform(-spread_m, spread_m, 2))
    cam = rot(yaw_true, mount["camera_x_m"], mount["camera_y_m"])
    ant = rot(yaw_true, mount["antenna_x_m"], mount["antenna_y_m"])
    lat_c, lon_c = move(lat_b, lon_b, *cam)
    lat_a, lon_a = move(lat_b, lon_b, *ant)
    lat_p, lon_p = move(lat_a, lon_a, *rng.uniform(-max_pos_err, max_pos_err, 2))
    heading = wrap(yaw_true + math.radians(rng.uniform(-max_yaw_err_deg, max_yaw_err_deg)))
    # The crop is centred on where the prior puts the camera.
    lever = rot(heading, mount["camera_x_m"] - mount["antenna_x_m"],
                mount["camera_y_m"] - mount["antenna_y_m"])
    lat_k, lon_k = move(lat_p, lon_p, *lever)
    east, north = offset(lat_k, lon_k, lat_c, lon_c)
    forward = east * math.cos(heading) + north * math.sin(heading)
    left = -east * math.sin(heading) + north * math.cos(heading)
    return dict(lat=lat_b, lon=lon_b, yaw=yaw_true, prior_lat=lat_p, prior_lon=lon_p,
                prior_heading=heading, shift_u=forward, shift_v=-left,
                yaw_deg=math.degrees(wrap(yaw_true - heading)))


def map_yaw(project: Callable[[float, float], tuple[float, float]], lat: float, lon: float,
            yaw_enu: float) -> float:
    """Return the map-frame yaw of an ENU heading at (lat, lon) under ``project``."""
    x0, y0 = project(lat, lon)
    x1, y1 = project(*move(lat, lon, math.cos(yaw_enu), math.sin(yaw_enu)))
    return math.atan2(y1 - y0, x1 - x0)


# -- the node as a process, and a DDS client ------------------------------------------------
def write_params(path: Path, **params: Any) -> Path:
    """Write a ROS 2 params file for the node (any node name)."""
    import yaml

    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": params}}))
    return path


def wait_for_subscriber(domain: int, topic: str, timeout_s: float = 200.0) -> None:
    """Return once the DDS graph of ``domain`` shows a subscription to ``topic``."""
    import rclpy

    context = rclpy.context.Context()
    rclpy.init(context=context, domain_id=domain)
    try:
        node = rclpy.create_node("graph_watch", context=context)
        executor = rclpy.executors.SingleThreadedExecutor(context=context)
        executor.add_node(node)
        deadline = time.monotonic() + timeout_s
        while node.count_subscribers(topic) == 0:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no subscription to {topic} within {timeout_s:g} s")
            executor.spin_once(timeout_sec=0.1)
    finally:
        rclpy.shutdown(context=context)


def start_node(params_file: Path, env: dict[str, str], oracle_table: Path | None = None,
               extra: list[str] | None = None,
               oracle_faults: Path | None = None) -> subprocess.Popen:
    """Start the node as users do, or through the oracle launcher when a table is given."""
    if oracle_table is None:
        cmd = [str(Path(sys.executable).with_name("localizer_node"))]
    else:
        cmd = [sys.executable, str(Path(__file__).resolve())]
        env = {**env, "DENSEFLOW_ORACLE_TABLE": str(oracle_table)}
        if oracle_faults is not None:
            env["DENSEFLOW_ORACLE_FAULTS"] = str(oracle_faults)
    cmd += ["--ros-args", "--params-file", str(params_file), *(extra or [])]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


class Client:
    """An in-process rclpy peer of the node: publishes its inputs, records its outputs."""

    def __init__(self, domain: int) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import PoseWithCovarianceStamped
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, qos_profile_sensor_data
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image, Imu, NavSatFix

        self.context = rclpy.context.Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = rclpy.create_node("localizer_test_client", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        q = qos_profile_sensor_data
        self.pub_image = self.node.create_publisher(Image, "image", q)
        self.pub_compressed = self.node.create_publisher(CompressedImage, "image/compressed", q)
        self.pub_info = self.node.create_publisher(CameraInfo, "camera_info", q)
        self.pub_fix = self.node.create_publisher(NavSatFix, "fix", q)
        self.pub_imu = self.node.create_publisher(Imu, "imu", q)
        from nav_msgs.msg import Odometry

        self.pub_odom = self.node.create_publisher(Odometry, "odom", q)
        self.poses: list[Any] = []
        self.fixes: list[Any] = []
        self.diagnostics: list[Any] = []
        self.sent: Counter[str] = Counter()  # messages published, by kind
        # Messages of each kind published since the node last confirmed them all.
        self._unconfirmed: dict[str, list[Any]] = {}
        reliable = QoSProfile(depth=100)
        self.sub_pose = self.node.create_subscription(
            PoseWithCovarianceStamped, "pose", self.poses.append, reliable)
        self.node.create_subscription(NavSatFix, "fix_refined", self.fixes.append, reliable)
        self.node.create_subscription(DiagnosticArray, "/diagnostics",
                                      self.diagnostics.append, 10)

    def spin(self, seconds: float, until: Callable[[], bool] | None = None) -> bool:
        """Spin for up to ``seconds``; return True as soon as ``until()`` holds."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.02)
            if until is not None and until():
                return True
        return until is None

    def wait_for_node(self, proc: subprocess.Popen, seconds: float = 60.0,
                      heading: str | None = "imu") -> None:
        """Wait until the node is active and subscribed to every input this client sends.

        ``heading`` is the heading topic the node subscribes to (imu, odom, None for none).
        """
        heading_pub = {"imu": self.pub_imu, "odom": self.pub_odom}.get(heading or "")

        def ready() -> bool:
            return ((self.pub_image.get_subscription_count() > 0
                     or self.pub_compressed.get_subscription_count() > 0)
                    and self.sub_pose.get_publisher_count() > 0
                    and self.pub_fix.get_subscription_count() > 0
                    and self.pub_info.get_subscription_count() > 0
                    and (heading_pub is None or heading_pub.get_subscription_count() > 0))

        ok = self.spin(seconds, lambda: ready() or proc.poll() is not None)
        if not ok or proc.poll() is not None:
            out = proc.stdout.read() if proc.poll() is not None else ""
            raise AssertionError(f"node did not become active: {out}")

    def stamp(self, t: float) -> Any:
        """Return a builtin_interfaces/Time of t seconds."""
        from builtin_interfaces.msg import Time

        return Time(sec=int(t), nanosec=int(round((t - int(t)) * 1e9)))

    def send_prior(self, t: float, lat: float, lon: float, heading: float | None,
                   std_m: float = 15.0, status: int = 0, heading_topic: str = "imu") -> None:
        """Publish a fix (and a heading on ``heading_topic``, when given) stamped t."""
        from sensor_msgs.msg import NavSatFix

        fix = NavSatFix()
        fix.header.stamp = self.stamp(t)
        fix.header.frame_id = "gps"
        fix.status.status = status
        fix.latitude, fix.longitude, fix.altitude = lat, lon, 110.0
        fix.position_covariance = [std_m ** 2, 0.0, 0.0, 0.0, std_m ** 2, 0.0, 0.0, 0.0, 25.0]
        fix.position_covariance_type = NavSatFix.COVARIANCE_TYPE_DIAGONAL_KNOWN
        self.publish("fix", fix)
        if heading is not None:
            self.send_heading(t, heading, heading_topic)

    def send_heading(self, t: float, heading: float, heading_topic: str = "imu") -> None:
        """Publish a heading sample stamped t on ``heading_topic`` (imu or odom)."""
        from nav_msgs.msg import Odometry
        from sensor_msgs.msg import Imu

        if heading_topic == "odom":
            odom = Odometry()
            odom.header.stamp = self.stamp(t)
            odom.header.frame_id = "map"
            q = odom.pose.pose.orientation
            q.z, q.w = math.sin(heading / 2), math.cos(heading / 2)
            self.publish("odom", odom)
        else:
            imu = Imu()
            imu.header.stamp = self.stamp(t)
            imu.header.frame_id = "imu"
            imu.orientation.z, imu.orientation.w = math.sin(heading / 2), math.cos(heading / 2)
            self.publish("imu", imu)

    def publish(self, kind: str, msg: Any, again: bool = False) -> None:
        """Publish ``msg`` on the publisher of ``kind`` and count it (``again``: a resend)."""
        pubs = {"fix": self.pub_fix, "imu": self.pub_imu, "odom": self.pub_odom,
                "camera_info": self.pub_info, "image": self.pub_image,
                "compressed": self.pub_compressed}
        pubs[kind].publish(msg)
        if not again:
            self.sent[kind] += 1
            self._unconfirmed.setdefault(kind, []).append(msg)

    def send_camera_info(self, k: np.ndarray, width: int, height: int) -> None:
        """Publish a CameraInfo."""
        from sensor_msgs.msg import CameraInfo

        info = CameraInfo(width=width, height=height, distortion_model="plumb_bob")
        info.k = [float(v) for v in np.asarray(k).reshape(-1)]
        info.d = [0.0] * 5
        self.publish("camera_info", info)

    def send_image(self, t: float, image: np.ndarray, encoding: str = "rgb8") -> None:
        """Publish an Image stamped t."""
        from sensor_msgs.msg import Image

        h, w = image.shape[:2]
        channels = 1 if image.ndim == 2 else image.shape[2]
        msg = Image(height=h, width=w, encoding=encoding, step=w * channels)
        msg.header.stamp = self.stamp(t)
        msg.header.frame_id = "camera"
        msg.data = np.ascontiguousarray(image).tobytes()
        self.publish("image", msg)

    def diag(self) -> dict[str, str]:
        """Return the key/values of the node's latest /diagnostics status."""
        for msg in reversed(self.diagnostics):
            for status in msg.status:
                if "localizer" in status.name:
                    return {kv.key: kv.value for kv in status.values}
        return {}

    def wait_diag(self, key: str, at_least: int, seconds: float = 20.0) -> bool:
        """Spin until the diagnostics counter ``key`` reaches ``at_least``."""
        return self.spin(seconds, lambda: int(self.diag().get(key, "0")) >= at_least)

    def counter(self, key: str) -> int:
        """Return the diagnostics counter ``key`` (0 before it first moves)."""
        return int(self.diag().get(key, "0"))

    def level(self) -> int | None:
        """Return the level of the node's latest /diagnostics status (None before one)."""
        for msg in reversed(self.diagnostics):
            for status in msg.status:
                if "localizer" in status.name:
                    return int.from_bytes(status.level, "little") \
                        if isinstance(status.level, bytes) else int(status.level)
        return None

    def wait_inputs(self, seconds: float = 30.0, resend_s: float = 5.0) -> None:
        """Wait until the node has received every fix, heading and camera_info sent so far.

        Orders inputs by what the node reports, not by time: an image sent after this pairs
        with everything sent before it. Best-effort messages sent while the node's side of a
        new subscription is still matching are lost: while a fix, heading or camera_info is
        still missing after ``resend_s``, every message of its kind sent since the last
        complete wait is sent again, the lost one among them (a repeated stamp changes
        nothing).
        """
        streams = {"received_fixes": ("fix",), "received_headings": ("imu", "odom"),
                   "received_camera_info": ("camera_info",)}

        def missing() -> list[str]:
            lagging = [kind for key, kinds in streams.items()
                       if self.counter(key) < sum(self.sent[k] for k in kinds)
                       for kind in kinds if self._unconfirmed.get(kind)]
            images = self.sent["image"] + self.sent["compressed"]
            return lagging + (["image"] if self.counter("received_images") < images else [])

        deadline = time.monotonic() + seconds
        while not self.spin(min(resend_s, deadline - time.monotonic()), lambda: not missing()):
            assert time.monotonic() < deadline, \
                f"inputs not received: sent {dict(self.sent)}, diagnostics {self.diag()}"
            for kind in missing():
                for msg in self._unconfirmed.get(kind, []) if kind != "image" else []:
                    self.publish(kind, msg, again=True)
        self._unconfirmed.clear()

    def settle(self, kind: str, received_key: str, quiet_reports: int = 10,
               seconds: float = 60.0) -> None:
        """Take what the node received of a best-effort burst of ``kind`` as all of it.

        ``wait_inputs`` resends what is missing, but resent samples stamped before the newest
        one arrive out of order, which the node rightly takes for a clock jump. A burst whose
        lost samples do not matter is settled here instead: once the node has counted all of
        it, or its count stood still over ``quiet_reports`` diagnostics reports, that count is
        what was sent.
        """
        def drained() -> bool:
            if self.counter(received_key) >= self.sent[kind]:
                return True
            counts = [self._count_in(msg, received_key)
                      for msg in self.diagnostics[-quiet_reports:]]
            return len(counts) == quiet_reports and None not in counts and len(set(counts)) == 1

        assert self.spin(seconds, drained), f"{kind} never settled: {self.diag()}"
        self.sent[kind] = min(self.sent[kind], self.counter(received_key))
        self._unconfirmed.pop(kind, None)

    @staticmethod
    def _count_in(msg: Any, key: str) -> int | None:
        for status in msg.status:
            if "localizer" in status.name:
                return next((int(kv.value) for kv in status.values if kv.key == key), 0)
        return None

    def wait_idle(self, seconds: float = 60.0) -> None:
        """Wait until the node has received every image sent and finished with each one."""
        def idle() -> bool:
            images = self.sent["image"] + self.sent["compressed"]
            done = sum(self.counter(k) for k in ("processed_frames", "dropped_stale",
                                                 "dropped_inactive"))
            return self.counter("received_images") >= images and done >= images

        assert self.spin(seconds, idle), f"node not idle: sent {dict(self.sent)}, " \
                                         f"diagnostics {self.diag()}"

    def set_parameters(self, node: str, **values: Any) -> list[Any]:
        """Call the node's set_parameters service; return the SetParametersResults."""
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        cli = self.node.create_client(SetParameters, f"{node}/set_parameters")
        assert self.spin(20.0, cli.service_is_ready), "set_parameters service missing"
        req = SetParameters.Request(
            parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()])
        future = cli.call_async(req)
        assert self.spin(20.0, future.done)
        return list(future.result().results)

    def close(self) -> None:
        """Shut the client's context down."""
        import rclpy

        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


def stop(proc: subprocess.Popen) -> str:
    """Interrupt the node process and return what it printed."""
    import signal

    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.stdout.read() if proc.stdout else ""


def pose_xyyaw(msg: Any) -> tuple[float, float, float]:
    """Return (x, y, yaw) of a PoseWithCovarianceStamped."""
    p = msg.pose.pose
    q = p.orientation
    return p.position.x, p.position.y, math.atan2(2 * (q.w * q.z + q.x * q.y),
                                                  1 - 2 * (q.y * q.y + q.z * q.z))


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    from denseflow_ros.ros.node import main

    table_file = os.environ["DENSEFLOW_ORACLE_TABLE"]
    faults_file = os.environ.get("DENSEFLOW_ORACLE_FAULTS")
    sys.exit(main(model_factory=lambda preset, device: Oracle.load(table_file, preset,
                                                                   faults_file)))
