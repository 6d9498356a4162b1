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
    offset,
    pose_xyyaw,
    rot,
    save_table,
    start_node,
    stop,
    wrap,
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
        diagnostics_period_s=0.2,
        min_confidence=0.5, map_frame="world", **MOUNT)
    proc = start_node(params, ros_env, oracle_table=table)
    client = Client(ros_domain)
    topic = "odom" if heading_source == "odom" else "imu"
    try:
        client.wait_for_node(proc, heading=None if heading_source == "track" else topic)
        w, h = 96, 32
        client.send_camera_info(intrinsics(w, h), w, h)
        for i, c in enumerate(cases):
            t = 1000.0 + 2.0 * i
            if heading_source == "track":
                # The antenna 5 m back along the (straight) drive, half a second earlier.
                back = rot(c["yaw"], -5.0, 0.0)
                client.send_prior(t - 0.5, *move(c["prior_lat"], c["prior_lon"], *back), None)
            if heading_source == "imu":
                # Fixes a quarter second either side, 3 m apart: the node must interpolate.
                step = rot(c["yaw"] + 1.0, 3.0, 0.0)
                client.send_prior(t - 0.25, *move(c["prior_lat"], c["prior_lon"],
                                                  -step[0], -step[1]), c["prior_heading"])
                client.send_prior(t + 0.25, *move(c["prior_lat"], c["prior_lon"], *step),
                                  c["prior_heading"])
            else:
                client.send_prior(t, c["prior_lat"], c["prior_lon"],
                                  None if heading_source == "track" else c["prior_heading"],
                                  heading_topic=topic)
            client.send_camera_info(intrinsics(w, h), w, h)
            client.wait_inputs()
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


def _entry(prior_lat: float, prior_lon: float, lat: float, lon: float, yaw: float,
           heading: float | None, hypotheses: int) -> tuple[float, ...]:
    """Oracle row for a camera at base_link (no lever arms)."""
    east, north = offset(prior_lat, prior_lon, lat, lon)
    if heading is None:
        return (east, north, yaw, float(hypotheses))
    forward = east * math.cos(heading) + north * math.sin(heading)
    left = -east * math.sin(heading) + north * math.cos(heading)
    return (forward, -left, math.degrees(wrap(yaw - heading)))


@pytest.mark.parametrize("heading_source", ["none", "previous"])
def test_unknown_heading_is_searched_and_previous_estimate_is_reused(
        tmp_path: Path, ros_env: dict[str, str], ros_domain: int, heading_source: str) -> None:
    rng = np.random.default_rng(11 if heading_source == "none" else 12)
    hypotheses = 24
    truths = []
    for i in range(8):
        yaw = wrap(math.radians(-170.0 + 47.0 * i) if heading_source == "none"
                   else math.radians(100.0 + 8.0 * i))
        lat, lon = move(LAT0, LON0, *rng.uniform(-100.0, 100.0, 2))
        prior = move(lat, lon, *rng.uniform(-20.0, 20.0, 2))
        truths.append((lat, lon, yaw, prior))
    table = {}
    for i, (lat, lon, yaw, prior) in enumerate(truths):
        # 'previous' reuses the last estimate's heading (exact here) after the first frame.
        heading = None if heading_source == "none" or i == 0 else truths[i - 1][2]
        table[i] = _entry(*prior, lat, lon, yaw, heading, hypotheses)
    params = write_params(
        tmp_path / "params.yaml", preset="lite",
        tile_cache=str(write_tile_cache(tmp_path / "xyz", ramp=True)),
        datum=[LAT0, LON0], heading_source=heading_source, warmup_runs=1,
        yaw_hypotheses=hypotheses, max_heading_age_s=0.5, diagnostics_period_s=0.2)
    proc = start_node(params, ros_env,
                      oracle_table=save_table(tmp_path / "table.json", table))
    client = Client(ros_domain)
    try:
        client.wait_for_node(proc, heading=None)
        w, h = 96, 32
        for i, (_, _, _, prior) in enumerate(truths):
            t = 500.0 + 0.3 * i
            client.send_prior(t, *prior, None)
            client.send_camera_info(intrinsics(w, h), w, h)
            client.wait_inputs()
            client.send_image(t, frame_image(i, w, h))
            assert client.spin(30.0, lambda n=i + 1: len(client.poses) >= n), \
                f"frame {i}: no pose; diagnostics {client.diag()}"
    finally:
        stop(proc)
        client.close()
    enu = LocalEnu(LAT0, LON0)
    for i, ((lat, lon, yaw, _), pose) in enumerate(zip(truths, client.poses)):
        x, y, est_yaw = pose_xyyaw(pose)
        tx, ty = enu.forward(lat, lon)
        assert math.hypot(x - tx, y - ty) < 0.05, i
        tyaw = map_yaw(enu.forward, lat, lon, yaw)
        assert abs(math.degrees(math.remainder(est_yaw - tyaw, 2 * math.pi))) < 0.05, i
