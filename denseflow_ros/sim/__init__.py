# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The synthetic georeferenced world used by the demo, the tests and CPU training."""

from denseflow_ros.sim.drive import (
    Drive,
    GnssModel,
    ImuModel,
    gnss_errors,
    imu_yaw_errors,
    simulate_drive,
)
from denseflow_ros.sim.export import (
    DEFAULT_BAG_TOPICS,
    KITTI_SATMAP_MPP,
    KittiDrive,
    export_bag,
    export_kitti,
    export_tiles,
    render_drive,
)
from denseflow_ros.sim.render import kitti_intrinsics, render_ground
from denseflow_ros.sim.world import World, generate_world

__all__ = [
    "DEFAULT_BAG_TOPICS",
    "KITTI_SATMAP_MPP",
    "Drive",
    "GnssModel",
    "ImuModel",
    "KittiDrive",
    "World",
    "export_bag",
    "export_kitti",
    "export_tiles",
    "generate_world",
    "gnss_errors",
    "imu_yaw_errors",
    "kitti_intrinsics",
    "render_drive",
    "render_ground",
    "simulate_drive",
]
