# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The demo's classical column: the NCC matcher on the same frames, crops and priors.

Every camera frame of the drive's bag is localized by :class:`denseflow_ros.localizer.
Localizer` with :class:`denseflow_ros.baseline.NccBaseline` in place of the network, from the
prior the node gets for that frame (the drive's GNSS fix at the frame's stamp and its IMU
heading), against the same tile cache and the network's input geometry. Every frame counts:
the matcher has no acceptance gate.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from denseflow_ros import bagio, metrics
from denseflow_ros.tools.demo_scenario import ScenarioFiles


def localize_drive(files: ScenarioFiles, geometry: Any, progress: bool = False) -> dict:
    """Return the summary ``M`` of the matcher's errors over the drive's frames."""
    from tqdm import tqdm

    from denseflow_ros.baseline import NccBaseline
    from denseflow_ros.geo import SatelliteCache
    from denseflow_ros.localizer import Frame, FrameError, Localizer, MapFrame, Prior
    from denseflow_ros.sim import Drive
    from denseflow_ros.sim.export import frame_stamp_ns

    drive = Drive.load(files.drive)
    matcher = NccBaseline(geometry.satellite_mpp, geometry.camera_height_m)
    cache = SatelliteCache(str(files.tiles), cache_mb=256)
    loc = Localizer(matcher, cache, geometry, MapFrame("enu", files.datum))
    topics = files.topics
    k = None
    est, truth = [], []
    index = {frame_stamp_ns(drive, i): i for i in range(len(drive))}
    messages = bagio.iter_messages(files.bag, [topics["camera_info"], topics["image"]])
    frames = tqdm(messages, total=2 * len(drive), desc="NCC baseline", unit="msg",
                  leave=False, disable=not progress)
    for m in frames:
        if m.topic == topics["camera_info"]:
            k = np.asarray(m.msg.k, dtype=np.float64).reshape(3, 3)
            continue
        i = index.get(bagio.stamp_to_ns(m.msg.header.stamp))
        if k is None or i is None:
            continue
        prior = Prior(float(drive.gnss_lat[i]), float(drive.gnss_lon[i]),
                      float(drive.imu_yaw_rad[i]))
        try:
            pose = loc.localize(Frame(bagio.image_array(m.msg), k), prior)
        except FrameError:
            continue  # outside the tile cache: the node cannot localize it either
        est.append((pose.x, pose.y, pose.yaw))
        truth.append((float(drive.east[i]), float(drive.north[i]), float(drive.yaw_rad[i])))
    if not est:
        raise ValueError("the drive's bag holds no camera frame with camera_info before it")
    e, t = np.array(est), np.array(truth)
    return metrics.summarize(*metrics.pose_errors(e[:, 0], e[:, 1], e[:, 2],
                                                  t[:, 0], t[:, 1], t[:, 2]))
