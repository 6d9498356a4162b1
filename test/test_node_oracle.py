# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Every frame convention end to end: the node, with the exact flow, lands on the truth.

The node runs as its own process (the oracle launcher in test_node_support.py: the real
``main`` with the model seam given an oracle that returns the exact flow of each frame's known
pose, solved by the real pose solver). Frames at known poses all round the compass, GNSS
priors off by up to 20 m and headings by up to 10 deg, a camera and an antenna away from
base_link: the published poses must be the truth in the map frame to 5 cm and 0.05 deg.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from pyproj import Transformer
from test_node_support import (
    LAT0,
    LON0,
    Client,
    frame_image,
    intrinsics,
    make_case,
    map_yaw,
    move,
    pose_xyyaw,
    rot,
    save_table,
    start_node,
    stop,
    write_params,
    write_tile_cache,
)

from denseflow_ros.geo import LocalEnu

pytest.importorskip("rclpy")

MOUNT = dict(camera_x_m=1.4, camera_y_m=-0.3, antenna_x_m=-0.7, antenna_y_m=0.2)


@pytest.mark.parametrize(
    ("projection", "heading_source"), [("enu", "imu"), ("utm", "odom"), ("enu", "track")])
def test_oracle_poses_are_the_truth_in_the_map_frame(
        tmp_path: Path, ros_env: dict[str, str], ros_domain: int, projection: str,
        heading_source: str) -> None:
    rng = np.random.default_rng(sum(map(ord, projection + heading_source)))
    yaw_err = 0.0 if heading_source == "track" else 10.0
    cases = [make_case(rng, math.radians(a + rng.uniform(-15, 15)), MOUNT,
                       max_yaw_err_deg=yaw_err) for a in range(-180, 180, 30)]
    table = save_table(tmp_path / "table.json",
                       {i: (c["shift_u"], c["shift_v"], c["yaw_deg"])
                        for i, c in enumerate(cases)})
    datum = [0.0, 0.0] if projection == "utm" else list(move(LAT0, LON0, -40.0, 25.0))
    params = write_params(
        tmp_path / "params.yaml", preset="lite",
        tile_cache=str(write_tile_cache(tmp_path / "xyz")), map_projection=projection,
        datum=datum, heading_source=heading_source, warmup_runs=1, gate_sigma=3.0,
        min_confidence=0.5, map_frame="world", **MOUNT)
    proc = start_node(params, ros_env, oracle_table=table)
    client = Client(ros_domain)
    topic = "odom" if heading_source == "odom" else "imu"
    try:
        client.wait_for_node(proc)
        w, h = 96, 32
        client.send_camera_info(intrinsics(w, h), w, h)
        for i, c in enumerate(cases):
            t = 1000.0 + 2.0 * i
            if heading_source == "track":
                # The antenna 5 m back along the (straight) drive, half a second earlier.
                back = rot(c["yaw"], -5.0, 0.0)
                client.send_prior(t - 0.5, *move(c["prior_lat"], c["prior_lon"], *back), None)
            client.send_prior(t, c["prior_lat"], c["prior_lon"],
                              None if heading_source == "track" else c["prior_heading"],
                              heading_topic=topic)
            client.send_camera_info(intrinsics(w, h), w, h)
            client.spin(0.15)
            client.send_image(t, frame_image(i, w, h))
            assert client.spin(30.0, lambda n=i + 1: len(client.poses) >= n), \
                f"frame {i}: no pose; diagnostics {client.diag()}"
    finally:
        stop(proc)
        client.close()

    if projection == "enu":
        enu = LocalEnu(*datum)

        def project(lat: float, lon: float) -> tuple[float, float]:
            return enu.forward(lat, lon)
    else:
        utm = Transformer.from_crs("EPSG:4326", "EPSG:32632", always_xy=True)

        def project(lat: float, lon: float) -> tuple[float, float]:
            return utm.transform(lon, lat)
    for i, (c, pose) in enumerate(zip(cases, client.poses)):
        assert pose.header.frame_id == "world"
        assert pose.header.stamp.sec == 1000 + 2 * i
        x, y, yaw = pose_xyyaw(pose)
        tx, ty = project(c["lat"], c["lon"])
        tyaw = map_yaw(project, c["lat"], c["lon"], c["yaw"])
        assert math.hypot(x - tx, y - ty) < 0.05, (i, x - tx, y - ty)
        assert abs(math.degrees(math.remainder(yaw - tyaw, 2 * math.pi))) < 0.05, i
        cov = np.array(pose.pose.covariance).reshape(6, 6)
        assert np.all(np.isfinite(cov)) and np.all(np.diag(cov) > 0)
