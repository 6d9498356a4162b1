# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``denseflow evaluate`` scores the node's prior and reads the localizer's map frames."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from pyproj import Transformer
from test_localizer import FixedOutput
from test_node_support import LAT0, LON0, frame_image, intrinsics, move, write_tile_cache

from denseflow_ros import bagio
from denseflow_ros.angles import yaw_from_quaternion
from denseflow_ros.geo import LocalEnu, SatelliteCache
from denseflow_ros.localizer import CameraMount, Frame, InputGeometry, Localizer, MapFrame
from denseflow_ros.model import get_preset
from denseflow_ros.prior import Fix, PriorBuffer, PriorRules
from denseflow_ros.tools.evaluate import EvaluateOptions, evaluate

T0 = 1_700_000_000_000_000_000
MS = 1_000_000
SPEED = 10.0  # m/s
TURN = 0.3  # rad/s, counter-clockwise
MOUNT = dict(camera_x_m=1.3, camera_y_m=-0.4, antenna_x_m=-0.6, antenna_y_m=0.25)


def _drive(t_ns: int) -> tuple[float, float, float]:
    """Return (east, north, yaw) of the truth in the bag's ENU frame: an arc from the datum."""
    t = (t_ns - T0) / 1e9
    yaw = 0.2 + TURN * t
    r = SPEED / TURN
    return r * (math.sin(yaw) - math.sin(0.2)), -r * (math.cos(yaw) - math.cos(0.2)), yaw


def write_drive(path: Path, datum: tuple[float, float], seconds: float = 6.0) -> list[int]:
    """Write truth (10 Hz), fixes (5 Hz, offset from the frames) and IMU (50 Hz) of an arc.

    The fixes carry a 2 m east bias and the IMU a 1 deg heading error; return the truth
    stamps.
    """
    enu = LocalEnu(*datum)
    meta = {"datum_lat": repr(datum[0]), "datum_lon": repr(datum[1]),
            "ground_truth_topic": "/gt", "fix_topic": "/fix", "imu_topic": "/imu"}
    stamps = [T0 + i * 100 * MS for i in range(int(seconds * 10))]
    with bagio.BagWriter(path, metadata=meta) as bag:
        for t in stamps:
            east, north, yaw = _drive(t)
            bag.write("/gt", "geometry_msgs/msg/PoseStamped", t, bagio.pose_stamped_msg(
                t, "map", (east, north, 0.0), bagio.quaternion_from_euler(0, 0, yaw)))
        for t in range(T0 + 37 * MS, stamps[-1] + 200 * MS, 200 * MS):
            east, north, _ = _drive(t)
            lat, lon = enu.inverse(east + 2.0, north)
            bag.write("/fix", "sensor_msgs/msg/NavSatFix", t,
                      bagio.navsatfix_msg(float(lat), float(lon), 100.0, t, covariance=[9, 9, 9]))
        for t in range(T0 + 3 * MS, stamps[-1] + 100 * MS, 20 * MS):
            yaw = _drive(t)[2] + math.radians(1.0)
            bag.write("/imu", "sensor_msgs/msg/Imu", t, bagio.imu_msg(
                t, "imu", bagio.quaternion_from_euler(0, 0, yaw)))
    return stamps


MapPose = Callable[[float, float, float], tuple[float, float, float]]


def write_poses(path: Path, stamps: list[int], to_map: MapPose | None = None) -> None:
    """Write the truth as PoseWithCovarianceStamped: bag ENU, or projected with ``to_map``."""
    with bagio.BagWriter(path, "sqlite3") as bag:
        for t in stamps:
            east, north, yaw = _drive(t)
            if to_map is not None:
                # The truth is known in the bag's ENU frame; to_map takes it on to the map's.
                east, north, yaw = to_map(east, north, yaw)
            bag.write("/pose", "geometry_msgs/msg/PoseWithCovarianceStamped", t,
                      bagio.pose_with_covariance_stamped_msg(
                          t, "map", (east, north, 0.0), bagio.quaternion_from_euler(0, 0, yaw),
                          covariance=[1] * 6))


def _utm(datum: tuple[float, float], epsg: int) -> MapPose:
    """Return bag ENU (x, y, yaw) -> the UTM zone of ``epsg``, by pyproj, not the package."""
    enu = LocalEnu(*datum)
    utm = Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True)

    def to_map(x: float, y: float, yaw: float) -> tuple[float, float, float]:
        lat, lon = enu.inverse(x, y)
        lat1, lon1 = enu.inverse(x + math.cos(yaw), y + math.sin(yaw))
        e, n = utm.transform(lon, lat)
        e1, n1 = utm.transform(lon1, lat1)
        return e, n, math.atan2(n1 - n, e1 - e)

    return to_map


@pytest.mark.parametrize(("datum", "epsg", "zone"), [
    ((-33.87, 151.21), 32756, 0),  # Sydney: southern zone 56
    ((-33.87, 151.21), 32756, 56),  # the zone given, the hemisphere from the datum
    ((60.39, 5.32), 32632, 0),  # Bergen: zone 32V, which (lon + 180) // 6 calls 31
], ids=["south", "south-zone-given", "zone-32V"])
def test_utm_poses_in_their_zone_score_zero(tmp_path: Path, datum: tuple[float, float],
                                            epsg: int, zone: int) -> None:
    stamps = write_drive(tmp_path / "rec", datum)
    write_poses(tmp_path / "poses", stamps, _utm(datum, epsg))
    result = evaluate(tmp_path / "rec", tmp_path / "poses",
                      EvaluateOptions(map_projection="utm", utm_zone=zone))
    assert result.counts.matched == len(stamps)
    lateral, longitudinal, yaw_deg = result.estimate_errors
    assert np.hypot(lateral, longitudinal).max() < 1e-3
    assert np.abs(yaw_deg).max() < 1e-3
    # The covariance is turned by the grid convergence, not left in grid axes.
    assert result.covariance is not None


def _node_priors(bag: Path, datum: tuple[float, float], stamps: list[int], tmp_path: Path
                 ) -> np.ndarray:
    """Return the node's prior of base_link at each stamp, in the bag's ENU frame.

    The node's code path: every fix and IMU sample into a :class:`PriorBuffer`, its prior for
    the frame's stamp, then the localizer (a network that corrects nothing) placing that
    prior's ``base_link`` in an ENU map frame at the bag's datum.
    """
    buffer = PriorBuffer()
    for item in bagio.iter_messages(bag, ["/fix", "/imu"]):
        msg, t = item.msg, bagio.stamp_to_ns(item.msg.header.stamp)
        if item.topic == "/fix":
            buffer.add_fix(Fix(t, msg.latitude, msg.longitude, np.eye(2) * 9.0))
        else:
            q = msg.orientation
            buffer.add_heading(t, yaw_from_quaternion(q.x, q.y, q.z, q.w), "imu")
    cache = SatelliteCache(write_tile_cache(tmp_path / "xyz", LAT0, LON0, radius_m=200.0))
    loc = Localizer(FixedOutput(0.0, 0.0, 0.0, np.diag([1.0, 1.0, 1e-4])), cache,
                    InputGeometry.from_preset(get_preset("lite")),
                    MapFrame("enu", datum), CameraMount(**MOUNT))
    rules = PriorRules(heading_source="imu", max_fix_age_s=0.5, max_heading_age_s=0.5,
                       track_window_s=5.0, track_min_distance_m=2.0)
    out = []
    for t in stamps:
        buffer.note_image(t)
        prior, _ = buffer.prior_at(t, rules)
        est = loc.localize(Frame(frame_image(0), intrinsics()), prior)
        out.append((est.prior_x, est.prior_y, est.prior_yaw))
    return np.array(out)


def test_the_prior_scored_is_the_nodes(tmp_path: Path) -> None:
    datum = move(LAT0, LON0, -30.0, -20.0)
    stamps = write_drive(tmp_path / "rec", datum)
    write_poses(tmp_path / "poses", stamps)
    options = EvaluateOptions(antenna_x_m=MOUNT["antenna_x_m"],
                              antenna_y_m=MOUNT["antenna_y_m"])
    result = evaluate(tmp_path / "rec", tmp_path / "poses", options)
    assert result.stamps == stamps
    node = _node_priors(tmp_path / "rec", datum, stamps, tmp_path)
    assert np.abs(result.prior[:, :2] - node[:, :2]).max() < 1e-3
    dyaw = np.degrees(np.abs(np.angle(np.exp(1j * (result.prior[:, 2] - node[:, 2])))))
    assert dyaw.max() < 1e-3
    # Interpolated, not the nearest fix: at 10 m/s a fix 37 or 63 ms away is 0.37-0.63 m off.
    plain = evaluate(tmp_path / "rec", tmp_path / "poses", EvaluateOptions())
    enu = LocalEnu(*datum)
    nearest = []
    fixes = [(bagio.stamp_to_ns(i.msg.header.stamp), i.msg.latitude, i.msg.longitude)
             for i in bagio.iter_messages(tmp_path / "rec", ["/fix"])]
    for t in stamps:
        _, flat, flon = min(fixes, key=lambda f: abs(f[0] - t))
        nearest.append(enu.forward(flat, flon))
    gap = np.hypot(*(plain.prior[:, :2] - np.array(nearest)).T)
    assert np.median(gap) > 0.3
    # Without the lever arm, between two fixes, the prior is the fixes' 2 m east bias (up to
    # the arc's sagitta); the first frame has only a later fix, 37 ms on.
    bias = plain.prior[1:, 0] - plain.truth[1:, 0]
    assert bias == pytest.approx([2.0] * (len(stamps) - 1), abs=0.02)
