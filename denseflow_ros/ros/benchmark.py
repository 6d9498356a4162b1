# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``denseflow bench node``: per-frame latency through the node versus the bare network call.

The node runs in this process on its own executor thread; a second node publishes KITTI-sized
camera frames, fixes and headings to it over DDS (loopback, shared memory), one frame at a
time, and the node's own latency (image arrival to pose publication) is recorded. The bare
network call is then timed on exactly the inputs the node gave the network for the same frame
(ground image resized, satellite crop), interleaved frame by frame so that both see the same
machine load. The overhead ratio is (node latency - network time) / network time.
"""

from __future__ import annotations

import math
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

FRAMES = 24
WARMUP_FRAMES = 3
IMAGE_W, IMAGE_H = 1242, 375
LAT0, LON0 = 49.0, 8.4


def _tile_cache(root: Path) -> Path:
    from denseflow_ros.geo.builders import build_from_image

    rng = np.random.default_rng(0)
    import cv2

    ortho = cv2.resize(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), (1200, 1200),
                       interpolation=cv2.INTER_CUBIC)
    out = root / "tiles"
    build_from_image(ortho, LAT0, LON0, 0.2, out, progress=False)
    return out


class _RecordingNet:
    """The network, keeping each call's inputs and timing it (the node's network)."""

    def __init__(self, net: Any, sync: Callable[[], None]) -> None:
        self.net = net
        self.sync = sync
        self.config = net.config
        self.seen: list[tuple[Any, Any, Any]] = []
        self.inside_ms: list[float] = []

    @property
    def iterations(self) -> int:
        """Return the network's decoder iterations."""
        return int(self.net.iterations)

    @iterations.setter
    def iterations(self, value: int) -> None:
        self.net.iterations = value

    def __call__(self, ground: Any, satellite: Any, intrinsics: Any, **kw: Any) -> Any:
        """Run the network on a copy-kept input, timed between device synchronisations."""
        self.seen.append((ground.clone(), satellite.clone(), intrinsics.clone()))
        self.sync()
        t0 = time.perf_counter()
        out = self.net(ground, satellite, intrinsics, **kw)
        self.sync()
        self.inside_ms.append((time.perf_counter() - t0) * 1000.0)
        return out


def run(report: Callable[[str], None], preset: str = "lite", precision: str = "fp32",
        frames: int = FRAMES) -> None:
    """Measure the node's per-frame latency against the bare network on the same frames."""
    import rclpy
    import torch
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.parameter import Parameter
    from rclpy.qos import QoSProfile, qos_profile_sensor_data

    from denseflow_ros.dds import apply_loopback_env
    from denseflow_ros.model import DenseFlow, get_preset
    from denseflow_ros.ros.node import LocalizerNode

    apply_loopback_env(int(os.environ.get("ROS_DOMAIN_ID", "45")))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    net = DenseFlow(get_preset(preset)).eval().to(device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    recording_net = _RecordingNet(net, sync)
    seen, inside_ms = recording_net.seen, recording_net.inside_ms

    with tempfile.TemporaryDirectory() as tmp:
        tiles = _tile_cache(Path(tmp))
        context = rclpy.context.Context()
        rclpy.init(context=context)
        try:
            node = LocalizerNode(
                model_factory=lambda _preset, _device: recording_net, context=context,
                parameter_overrides=[
                    Parameter("tile_cache", value=str(tiles)),
                    Parameter("preset", value=preset),
                    Parameter("device", value=device),
                    Parameter("precision", value=precision),
                    Parameter("datum", value=[LAT0, LON0]),
                    Parameter("gate_sigma", value=0.0),
                ])
            node.trigger_configure()
            node.trigger_activate()
            feeder = rclpy.create_node("bench_feeder", context=context)
            executor = MultiThreadedExecutor(num_threads=2, context=context)
            executor.add_node(node)
            executor.add_node(feeder)
            spinner = threading.Thread(target=executor.spin, daemon=True)
            spinner.start()
            try:
                node_ms, net_ms = _measure(feeder, node, recording_net, net, seen, frames,
                                           qos_profile_sensor_data, QoSProfile(depth=10),
                                           precision, device)
            finally:
                executor.shutdown()
                node.stop_worker()
        finally:
            rclpy.try_shutdown(context=context)

    # The same frames' network time inside the node: the rest of the latency is the node's.
    inside = inside_ms[-len(node_ms):]
    rest = statistics.median(a - b for a, b in zip(node_ms, inside))
    med_node, med_net = statistics.median(node_ms), statistics.median(net_ms)
    paired = statistics.median((a - b) / b for a, b in zip(node_ms, net_ms))
    report(f"preset {preset}, device {device}, precision {precision}, {len(node_ms)} frames "
           f"({IMAGE_W}x{IMAGE_H} rgb8 over DDS)")
    report(f"  network alone    median {med_net:8.1f} ms   ({1000.0 / med_net:6.1f} frames/s)")
    report(f"  through the node median {med_node:8.1f} ms   ({1000.0 / med_node:6.1f} frames/s)")
    report(f"  node overhead    {med_node - med_net:8.1f} ms = "
           f"{(med_node - med_net) / med_net:.1%} of the network time (target <= 10 %); "
           f"frame-by-frame median {paired:.1%}")
    report(f"  per frame, node latency minus its own network call: median {rest:.1f} ms = "
           f"{rest / statistics.median(inside):.1%} of that call")


def _measure(feeder: Any, node: Any, recording_net: Any, net: Any, seen: list, frames: int,
             sensor_qos: Any, reliable: Any, precision: str, device: str
             ) -> tuple[list[float], list[float]]:
    import torch
    from geometry_msgs.msg import PoseWithCovarianceStamped
    from sensor_msgs.msg import CameraInfo, Image, Imu, NavSatFix

    poses: list[Any] = []
    done = threading.Event()

    def on_pose(msg: Any) -> None:
        poses.append(msg)
        done.set()

    feeder.create_subscription(PoseWithCovarianceStamped, "pose", on_pose, reliable)
    pub_image = feeder.create_publisher(Image, "image", sensor_qos)
    pub_info = feeder.create_publisher(CameraInfo, "camera_info", sensor_qos)
    pub_fix = feeder.create_publisher(NavSatFix, "fix", sensor_qos)
    pub_imu = feeder.create_publisher(Imu, "imu", sensor_qos)
    deadline = time.monotonic() + 30.0
    while pub_image.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)

    rng = np.random.default_rng(1)
    f = 718.0
    info = CameraInfo(width=IMAGE_W, height=IMAGE_H)
    info.k = [f, 0.0, IMAGE_W / 2.0, 0.0, f, IMAGE_H / 2.0, 0.0, 0.0, 1.0]
    node_ms: list[float] = []
    net_ms: list[float] = []
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for i in range(frames + WARMUP_FRAMES):
        stamp_s = 100 + i
        fix = NavSatFix(latitude=LAT0 + rng.uniform(-2e-4, 2e-4),
                        longitude=LON0 + rng.uniform(-2e-4, 2e-4))
        fix.header.stamp.sec = stamp_s
        fix.position_covariance_type = NavSatFix.COVARIANCE_TYPE_UNKNOWN
        imu = Imu()
        imu.header.stamp.sec = stamp_s
        yaw = rng.uniform(-math.pi, math.pi)
        imu.orientation.z, imu.orientation.w = math.sin(yaw / 2), math.cos(yaw / 2)
        image = Image(height=IMAGE_H, width=IMAGE_W, encoding="rgb8", step=IMAGE_W * 3)
        image.header.stamp.sec = stamp_s
        image.data = rng.integers(0, 255, IMAGE_H * IMAGE_W * 3, dtype=np.uint8).tobytes()
        pub_info.publish(info)
        pub_fix.publish(fix)
        pub_imu.publish(imu)
        time.sleep(0.05)
        done.clear()
        before = len(node.stats.latencies_ms())
        pub_image.publish(image)
        if not done.wait(timeout=120.0):
            raise RuntimeError(f"the node published no pose for frame {i}: "
                               f"{node.stats.snapshot()}")
        while len(node.stats.latencies_ms()) == before:
            time.sleep(0.001)
        latency = node.stats.latencies_ms()[-1]
        ground, satellite, intrinsics = seen[-1]
        loc = node.localizer
        with torch.inference_mode(), loc.autocast():
            sync()
            t0 = time.perf_counter()
            net(ground, satellite, intrinsics, satellite_mpp=loc.geometry.satellite_mpp,
                camera_height_m=loc.geometry.camera_height_m)
            sync()
            bare = (time.perf_counter() - t0) * 1000.0
        if i >= WARMUP_FRAMES:
            node_ms.append(latency)
            net_ms.append(bare)
    return node_ms, net_ms
