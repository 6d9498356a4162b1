# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""launch_testing: ``localize.launch.py`` starts the node and poses arrive.

Needs a ROS 2 distribution (launch, launch_ros, launch_testing have no PyPI wheels); the same
behaviour is covered without one by test_node.py, which starts the console script directly.
"""

from __future__ import annotations

import math
import sys
import tempfile
import time
import unittest
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("launch_testing", reason="launch_testing is not installed: it comes with "
                    "a ROS 2 distribution (test_node.py covers the node without one)")
pytest.importorskip("launch_ros", reason="launch_ros is not installed (ROS 2 distribution)")

import launch  # noqa: E402
import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
import launch_testing.markers  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_node_support import LAT0, LON0, intrinsics, write_tile_cache  # noqa: E402

LAUNCH_FILE = Path(__file__).resolve().parents[1] / "launch" / "localize.launch.py"
W, H = 160, 48


@pytest.mark.launch_test
@launch_testing.markers.keep_alive
def generate_test_description() -> tuple:
    from denseflow_ros.model import DenseFlow, get_preset, save_checkpoint

    tmp = Path(tempfile.mkdtemp(prefix="denseflow_launch_"))
    model = tmp / "lite.pt"
    save_checkpoint(DenseFlow(get_preset("lite")).eval(), model)
    tiles = write_tile_cache(tmp / "xyz")
    include = launch.actions.IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(LAUNCH_FILE)),
        launch_arguments={
            "model_path": str(model), "tile_cache": str(tiles), "namespace": "car",
            "image": "/cam/image_raw", "fix": "/gps/fix",
        }.items(),
    )
    return launch.LaunchDescription([include, launch_testing.actions.ReadyToTest()]), {}


class TestPosesArrive(unittest.TestCase):
    """Publish frames on the remapped topics; expect poses on /car/pose."""

    def test_poses_arrive(self) -> None:
        import rclpy
        from geometry_msgs.msg import PoseWithCovarianceStamped
        from rclpy.qos import QoSProfile, qos_profile_sensor_data
        from sensor_msgs.msg import CameraInfo, Image, Imu, NavSatFix

        rclpy.init()
        node = rclpy.create_node("launch_test_client")
        try:
            poses: list = []
            node.create_subscription(PoseWithCovarianceStamped, "/car/pose", poses.append,
                                     QoSProfile(depth=10))
            pub_image = node.create_publisher(Image, "/cam/image_raw", qos_profile_sensor_data)
            pub_info = node.create_publisher(CameraInfo, "/car/camera_info",
                                             qos_profile_sensor_data)
            pub_fix = node.create_publisher(NavSatFix, "/gps/fix", qos_profile_sensor_data)
            pub_imu = node.create_publisher(Imu, "/car/imu", qos_profile_sensor_data)
            deadline = time.monotonic() + 120.0
            while pub_image.get_subscription_count() == 0 and time.monotonic() < deadline:
                rclpy.spin_once(node, timeout_sec=0.1)
            self.assertGreater(pub_image.get_subscription_count(), 0, "node never subscribed")
            info = CameraInfo(width=W, height=H)
            info.k = [float(v) for v in intrinsics(W, H).reshape(-1)]
            rng = np.random.default_rng(0)
            for i in range(5):
                fix = NavSatFix(latitude=LAT0, longitude=LON0)
                fix.header.stamp.sec = 10 + i
                imu = Imu()
                imu.header.stamp.sec = 10 + i
                imu.orientation.z, imu.orientation.w = math.sin(0.2), math.cos(0.2)
                image = Image(height=H, width=W, encoding="rgb8", step=W * 3)
                image.header.stamp.sec = 10 + i
                image.data = rng.integers(0, 255, H * W * 3, dtype=np.uint8).tobytes()
                for pub, msg in ((pub_info, info), (pub_fix, fix), (pub_imu, imu)):
                    pub.publish(msg)
                rclpy.spin_once(node, timeout_sec=0.2)
                pub_image.publish(image)
                end = time.monotonic() + 20.0
                while len(poses) <= i and time.monotonic() < end:
                    rclpy.spin_once(node, timeout_sec=0.1)
            self.assertGreaterEqual(len(poses), 3)
            self.assertEqual(poses[0].header.frame_id, "map")
        finally:
            node.destroy_node()
            rclpy.shutdown()


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    """The node exits cleanly when the launch ends."""

    def test_exit_code(self, proc_info) -> None:
        launch_testing.asserts.assertExitCodes(proc_info, allowable_exit_codes=[0, -2, -15])
