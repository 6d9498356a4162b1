# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""KITTI and Ford fixture trees in their real formats -> bags holding the source values."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from denseflow_ros import bagio
from denseflow_ros.cli import main as cli_main
from denseflow_ros.tools import bag_common, bag_ford, bag_kitti

DRIVE = "2011_09_26_drive_0005_sync"
# Real 2011_09_26 calibration lines (KITTI raw data).
CAM_TO_CAM = """calib_time: 09-Jan-2012 13:57:47
corner_dist: 9.950000e-02
S_00: 1.392000e+03 5.120000e+02
R_rect_00: 9.999239e-01 9.837760e-03 -7.445048e-03 -9.869795e-03 9.999421e-01 -4.278459e-03 \
7.402527e-03 4.351614e-03 9.999631e-01
P_rect_00: 7.215377e+02 0.000000e+00 6.095593e+02 0.000000e+00 0.000000e+00 7.215377e+02 \
1.728540e+02 0.000000e+00 0.000000e+00 0.000000e+00 1.000000e+00 0.000000e+00
S_rect_02: 1.242000e+03 3.750000e+02
P_rect_02: 7.215377e+02 0.000000e+00 6.095593e+02 4.485728e+01 0.000000e+00 7.215377e+02 \
1.728540e+02 2.163791e-01 0.000000e+00 0.000000e+00 1.000000e+00 2.745884e-03
"""
IMU_TO_VELO = """calib_time: 25-May-2012 16:47:16
R: 9.999976e-01 7.553071e-04 -2.035826e-03 -7.854027e-04 9.998898e-01 -1.482298e-02 \
2.024406e-03 1.482454e-02 9.998881e-01
T: -8.086759e-01 3.195559e-01 -7.997231e-01
"""
VELO_TO_CAM = """calib_time: 15-Mar-2012 11:37:16
R: 7.533745e-03 -9.999714e-01 -6.166020e-04 1.480249e-02 7.280733e-04 -9.998902e-01 \
9.998621e-01 7.523790e-03 1.480755e-02
T: -4.069766e-03 -7.631618e-02 -2.717806e-01
delta_f: 0.000000e+00 0.000000e+00
delta_c: 0.000000e+00 0.000000e+00
"""
# Frame 0 of drive 0005, all 30 fields; later frames move the position and heading.
OXTS_0 = ("49.011212804408 8.4228850417969 112.83492279053 0.022447 1e-05 -1.2219096732051 "
          "-3.3256321640686 1.1384311814592 3.5147680214713 0.037625160413037 "
          "-0.03878884255623 -0.29437452763793 0.037166856911681 9.9957015129717 "
          "-0.30581030960531 -0.19635662515203 9.9942128010936 -0.017332142869546 "
          "0.024792163815438 0.14511808479348 -0.017498934149631 0.021393359392165 "
          "0.14563031426063 0.49229361157748 0.068883960397178 4 10 4 4 0")
IMAGE_TIMES = ["2011-09-26 13:02:25.964389445", "2011-09-26 13:02:26.068101331",
               "2011-09-26 13:02:26.171812789"]
OXTS_TIMES = ["2011-09-26 13:02:25.951199337", "2011-09-26 13:02:26.061400189",
              "2011-09-26 13:02:26.167207155"]


def _oxts(i: int) -> list[float]:
    values = [float(v) for v in OXTS_0.split()]
    values[0] += i * 2e-6
    values[1] -= i * 3e-6
    values[5] += i * 0.01
    values[23] = 0.4 + 0.1 * i  # pos_accuracy
    values[27] = (4, 5, 2)[i]  # posmode
    return values


def _image(i: int) -> np.ndarray:
    rng = np.random.default_rng(i)
    return rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)


def make_kitti(root: Path, with_satmaps: bool = False) -> None:
    date = root / "raw_data" / DRIVE[:10]
    drive = date / DRIVE
    (drive / "image_02" / "data").mkdir(parents=True)
    (drive / "oxts" / "data").mkdir(parents=True)
    (date / "calib_cam_to_cam.txt").write_text(CAM_TO_CAM)
    (date / "calib_imu_to_velo.txt").write_text(IMU_TO_VELO)
    (date / "calib_velo_to_cam.txt").write_text(VELO_TO_CAM)
    (drive / "image_02" / "timestamps.txt").write_text("\n".join(IMAGE_TIMES) + "\n")
    (drive / "oxts" / "timestamps.txt").write_text("\n".join(OXTS_TIMES) + "\n")
    sat_dir = root / "satmap" / DRIVE[:10] / DRIVE
    if with_satmaps:
        sat_dir.mkdir(parents=True)
    for i in range(3):
        name = f"{i:010d}"
        cv2.imwrite(str(drive / "image_02" / "data" / f"{name}.png"), _image(i)[:, :, ::-1])
        (drive / "oxts" / "data" / f"{name}.txt").write_text(
            " ".join(str(int(v)) if k >= 25 else repr(v) for k, v in enumerate(_oxts(i)))
            + "\n")
        if with_satmaps:
            cv2.imwrite(str(sat_dir / f"{name}.png"), np.full((40, 40, 3), 90 + i, np.uint8))


def _by_topic(bag: Path) -> dict[str, list[bagio.BagMessage]]:
    out: dict[str, list[bagio.BagMessage]] = {}
    for item in bagio.iter_messages(bag):
        out.setdefault(item.topic, []).append(item)
    return out


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_kitti_drive_to_bag_keeps_source_values(tmp_path: Path, storage: str) -> None:
    make_kitti(tmp_path / "KITTI")
    out = tmp_path / "bag"
    rc = cli_main(["bag", "kitti", "--root", str(tmp_path / "KITTI"), "--drive", DRIVE,
                   "--out", str(out), "--storage", storage, "--no-tiles"])
    assert rc == 0
    topics = _by_topic(out)
    t = bag_kitti.DEFAULT_TOPICS
    assert {k: len(v) for k, v in topics.items()} == {v: 3 for v in t.values()}
    for i in range(3):
        o = _oxts(i)
        t_img = bag_common.parse_kitti_time(IMAGE_TIMES[i])
        t_oxts = bag_common.parse_kitti_time(OXTS_TIMES[i])
        image = topics[t["image"]][i]
        assert image.stamp_ns == t_img == bagio.stamp_to_ns(image.msg.header.stamp)
        assert image.msg.header.frame_id == "camera_color_left"
        np.testing.assert_array_equal(bagio.image_array(image.msg), _image(i))
        info = topics[t["camera_info"]][i].msg
        assert list(info.p) == [float(v) for v in CAM_TO_CAM.split("P_rect_02:")[1].replace(
            "\\\n", "").split()[:12]]
        assert (info.width, info.height) == (8, 6) and info.k[0] == 721.5377
        fix = topics[t["fix"]][i]
        assert fix.stamp_ns == t_oxts
        assert (fix.msg.latitude, fix.msg.longitude, fix.msg.altitude) == (o[0], o[1], o[2])
        assert fix.msg.position_covariance[0] == fix.msg.position_covariance[4] == o[23] ** 2
        assert fix.msg.header.frame_id == "imu_link"
        assert fix.msg.status.status == bag_kitti.navsat_status(o[27])
        imu = topics[t["imu"]][i].msg
        q = imu.orientation
        assert np.allclose(bagio.euler_from_quaternion(q.x, q.y, q.z, q.w), o[3:6])
        assert (imu.angular_velocity.x, imu.angular_velocity.y, imu.angular_velocity.z) == (
            o[20], o[21], o[22])
        assert (imu.linear_acceleration.x, imu.linear_acceleration.z) == (o[14], o[16])
        gt = topics[t["ground_truth"]][i]
        assert gt.stamp_ns == t_img and gt.msg.header.frame_id == "map"
        q = gt.msg.pose.orientation
        assert math.isclose(bagio.yaw_from_quaternion(q.x, q.y, q.z, q.w), o[5], abs_tol=1e-12)
    # Ground truth is ENU metres at the first fix: frame 1 moved +2e-6 deg north, -3e-6 east.
    gt1 = topics[t["ground_truth"]][1].msg.pose.position
    assert gt1.y == pytest.approx(2e-6 * 111_200, rel=0.01)
    assert gt1.x == pytest.approx(-3e-6 * 111_320 * math.cos(math.radians(49.0112)), rel=0.01)
    assert [topics[t["fix"]][i].msg.status.status for i in range(3)] == [
        bagio.NAVSAT_STATUS_SBAS_FIX, bagio.NAVSAT_STATUS_GBAS_FIX, bagio.NAVSAT_STATUS_NO_FIX]
    custom = bagio_custom(out)
    assert float(custom["datum_lat"]) == _oxts(0)[0]
    # The calibration chain puts the left colour camera 1.08 m ahead of and 0.25 m to the
    # right of the OXTS unit, as the benchmark loaders' fixed (1.08, 0.26) m shift says.
    assert float(custom["camera_x_m"]) == pytest.approx(1.08, abs=0.01)
    assert float(custom["camera_y_m"]) == pytest.approx(-0.26, abs=0.02)


def bagio_custom(bag: Path) -> dict[str, str]:
    import yaml

    meta = yaml.safe_load((bag / "metadata.yaml").read_text())
    return meta["rosbag2_bagfile_information"]["custom_data"]


def test_kitti_degradation_and_topic_names(tmp_path: Path) -> None:
    make_kitti(tmp_path / "KITTI")
    out = tmp_path / "bag"
    rc = cli_main(["bag", "kitti", "--root", str(tmp_path / "KITTI"), "--drive", DRIVE,
                   "--out", str(out), "--no-tiles", "--fix-topic", "/gnss/fix",
                   "--gnss-bias-m", "5", "--gnss-noise-m", "1", "--seed", "3",
                   "--start", "1"])
    assert rc == 0
    topics = _by_topic(out)
    assert len(topics["/gnss/fix"]) == 2 and bag_kitti.DEFAULT_TOPICS["fix"] not in topics
    for item, i in zip(topics["/gnss/fix"], (1, 2), strict=True):
        o = _oxts(i)
        moved = math.hypot((item.msg.latitude - o[0]) * 111_200,
                           (item.msg.longitude - o[1]) * 73_000)
        assert 0.01 < moved < 40.0
        assert item.msg.position_covariance[0] == pytest.approx(o[23] ** 2 + 26.0)
    gt = topics[bag_kitti.DEFAULT_TOPICS["ground_truth"]][0].msg.pose.position
    assert (gt.x, gt.y) == (0.0, 0.0)  # the datum is the first converted frame, undegraded


def test_kitti_errors_are_one_sentence(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    make_kitti(tmp_path / "KITTI")
    (tmp_path / "KITTI" / "raw_data" / DRIVE[:10] / DRIVE / "oxts" / "data"
     / "0000000001.txt").write_text("49.0 8.4 112.0\n")
    rc = cli_main(["bag", "kitti", "--root", str(tmp_path / "KITTI"), "--drive", DRIVE,
                   "--out", str(tmp_path / "bag"), "--no-tiles"])
    assert rc == 1
    err = capsys.readouterr().err.strip()
    assert "has 3 OXTS fields, expected 30" in err and err.count("\n") == 0
    assert not (tmp_path / "bag").exists()


FORD_LOG = "2017-10-26/V2/Log1"
FL_INTRINSICS = """height: 860
width: 1656
distortion_model: plumb_bob
D: [-0.2, 0.05, 0.001, -0.002, 0.0]
K: [948.5, 0.0, 820.1, 0.0, 948.9, 426.3, 0.0, 0.0, 1.0]
R: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
P: [948.5, 0.0, 820.1, 0.0, 0.0, 948.9, 426.3, 0.0, 0.0, 0.0, 1.0, 0.0]
"""
FL_BODY = """header:
  seq: 0
  stamp: {secs: 0, nsecs: 0}
  frame_id: body
child_frame_id: camera_front_left
transform:
  translation: {x: 1.45, y: -0.32, z: -1.55}
  rotation: {x: 0.5, y: 0.5, z: 0.5, w: 0.5}
"""
# name, q0..q3 (w x y z, body FRD -> NED), vehicle lat lon, satellite lat lon
FORD_LINES = [
    ("1508964524100000.txt", (math.cos(math.pi / 4), 0.0, 0.0, math.sin(math.pi / 4)),
     42.29424422604817, -83.22431541935, "42.294200", "-83.224300"),
    ("1508964524200000.txt", (1.0, 0.0, 0.0, 0.0), 42.2942542, -83.2243000,
     "42.294200", "-83.224300"),
]


def make_ford(root: Path, test_form: bool = False) -> None:
    log = root / FORD_LOG
    fl = log / (FORD_LOG.replace("/", "-") + "-FL")
    fl.mkdir(parents=True)
    (log / "SatelliteMaps_18").mkdir()
    calib = root / "Calibration-V2" / "V2"
    calib.mkdir(parents=True)
    (calib / "cameraFrontLeftIntrinsics.yaml").write_text(FL_INTRINSICS)
    (calib / "cameraFrontLeft_body.yaml").write_text(FL_BODY)
    rows = []
    for i, (name, q, lat, lon, slat, slon) in enumerate(FORD_LINES):
        cv2.imwrite(str(fl / name.replace(".txt", ".png")), _image(10 + i)[:, :, ::-1])
        row = [name, *(repr(v) for v in q), repr(lat), repr(lon), slat, slon]
        if test_form:
            row += ["0.25", "-0.5", "0.75"]
        rows.append(" ".join(row))
    name = "grd_sat_quaternion_latlon_test.txt" if test_form else "grd_sat_quaternion_latlon.txt"
    (log / name).write_text("\n".join(rows) + "\n")


@pytest.mark.parametrize("test_form", [False, True], ids=["9-column", "12-column"])
def test_ford_processed_layout_to_bag(tmp_path: Path, test_form: bool) -> None:
    make_ford(tmp_path / "Ford", test_form)
    out = tmp_path / "bag"
    pose_list = "grd_sat_quaternion_latlon_test.txt" if test_form else \
        "grd_sat_quaternion_latlon.txt"
    rc = cli_main(["bag", "ford", "--root", str(tmp_path / "Ford"), "--log", FORD_LOG,
                   "--pose-list", pose_list, "--out", str(out), "--no-tiles"])
    assert rc == 0
    topics = _by_topic(out)
    t = bag_ford.DEFAULT_TOPICS
    assert {k: len(v) for k, v in topics.items()} == {v: 2 for v in t.values()}
    stamps = [1508964524100000000, 1508964524200000000]
    for i, (_, q, lat, lon, _, _) in enumerate(FORD_LINES):
        image = topics[t["image"]][i]
        assert image.stamp_ns == stamps[i]
        np.testing.assert_array_equal(bagio.image_array(image.msg), _image(10 + i))
        info = topics[t["camera_info"]][i].msg
        assert info.k[0] == 948.5 and list(info.d) == [-0.2, 0.05, 0.001, -0.002, 0.0]
        fix = topics[t["fix"]][i].msg
        assert (fix.latitude, fix.longitude) == (lat, lon)
        gt = topics[t["ground_truth"]][i].msg
        qq = gt.pose.orientation
        yaw_ned = math.atan2(2 * (q[0] * q[3] + q[1] * q[2]), 1 - 2 * (q[2] ** 2 + q[3] ** 2))
        yaw_enu = bagio.yaw_from_quaternion(qq.x, qq.y, qq.z, qq.w)
        assert yaw_enu == pytest.approx(math.pi / 2 - yaw_ned, abs=1e-9)
        imu = topics[t["imu"]][i].msg
        assert imu.angular_velocity_covariance[0] == -1.0
    # Line 0 heads east in NED terms (yaw 90 deg clockwise from north): ENU yaw 0.
    q0 = topics[t["ground_truth"]][0].msg.pose.orientation
    assert bagio.yaw_from_quaternion(q0.x, q0.y, q0.z, q0.w) == pytest.approx(0.0, abs=1e-9)
    gt1 = topics[t["ground_truth"]][1].msg.pose.position
    assert gt1.y == pytest.approx((42.2942542 - 42.29424422604817) * 111_090, rel=0.01)
    custom = bagio_custom(out)
    # FRD (1.45, -0.32, -1.55) is FLU (1.45, 0.32, 1.55).
    assert (float(custom["camera_x_m"]), float(custom["camera_y_m"])) == (1.45, 0.32)


def _bayer_rggb(rgb: np.ndarray) -> np.ndarray:
    raw = np.empty(rgb.shape[:2], np.uint8)
    raw[0::2, 0::2] = rgb[0::2, 0::2, 0]
    raw[0::2, 1::2] = rgb[0::2, 1::2, 1]
    raw[1::2, 0::2] = rgb[1::2, 0::2, 1]
    raw[1::2, 1::2] = rgb[1::2, 1::2, 2]
    return raw


def _camera_msg(kind: str, rgb: np.ndarray, t: int) -> tuple[str, object]:
    if kind == "bayer":
        msg = bagio.image_msg(_bayer_rggb(rgb), t, "camera_front_left_raw")
        msg.encoding = "bayer_rggb8"
        return "sensor_msgs/msg/Image", msg
    if kind == "png":
        types = bagio.typestore().types
        ok, data = cv2.imencode(".png", rgb[:, :, ::-1])
        assert ok
        return "sensor_msgs/msg/CompressedImage", types["sensor_msgs/msg/CompressedImage"](
            header=bagio.header_msg(t, "camera_front_left_raw"), format="png",
            data=np.frombuffer(data.tobytes(), np.uint8))
    return "sensor_msgs/msg/Image", bagio.image_msg(rgb, t, "camera_front_left_raw")


def make_ford_recording(path: Path, image_kind: str = "rgb8") -> dict:
    """Write a Ford-style recording: NED map poses, FRD IMU, GPS fixes, images."""
    from denseflow_ros.geo import LocalEnu

    origin = (42.30, -83.23)
    enu = LocalEnu(*origin)
    truth = {}
    with bagio.BagWriter(path, "sqlite3") as bag:
        for i in range(4):
            t = 1_508_964_524_000_000_000 + i * 100_000_000
            north, east = 100.0 + 2.0 * i, 50.0 - 1.0 * i
            yaw_ned = math.radians(30.0 + i)
            q_ned = bagio.quaternion_from_euler(0.0, 0.0, yaw_ned)
            bag.write("/pose_ground_truth", "geometry_msgs/msg/PoseStamped", t,
                      bagio.pose_stamped_msg(t, "map", (north, east, -1.0), q_ned))
            lat, lon = enu.inverse(east, north)
            bag.write("/gps", "sensor_msgs/msg/NavSatFix", t,
                      bagio.navsatfix_msg(lat, lon, 200.0, t, "gps", covariance=[4.0, 4.0, 9.0]))
            bag.write("/imu", "sensor_msgs/msg/Imu", t, bagio.imu_msg(
                t, "imu", q_ned, (0.1, 0.2, 0.3), (1.0, 2.0, -9.8),
                orientation_covariance=[0.01, 0.02, 0.03]))
            rgb = np.full((6, 8, 3), (200, 100, 50), np.uint8) if image_kind == "bayer" \
                else _image(20 + i)
            msg_type, msg = _camera_msg(image_kind, rgb, t)
            bag.write("/image_front_left", msg_type, t, msg)
            truth[t] = (east, north, math.pi / 2 - yaw_ned)
    return truth


def test_ford_recording_ned_to_enu(tmp_path: Path) -> None:
    truth = make_ford_recording(tmp_path / "ford_raw")
    out = tmp_path / "bag"
    rc = cli_main(["bag", "ford", "--bag", str(tmp_path / "ford_raw"), "--out", str(out),
                   "--datum", "42.30,-83.23"])
    assert rc == 0
    topics = _by_topic(out)
    t = bag_ford.DEFAULT_TOPICS
    assert t["camera_info"] not in topics  # no calibration given
    for item in topics[t["ground_truth"]]:
        east, north, yaw = truth[item.stamp_ns]
        p, q = item.msg.pose.position, item.msg.pose.orientation
        assert (p.x, p.y, p.z) == pytest.approx((east, north, 1.0), abs=1e-6)
        assert bagio.yaw_from_quaternion(q.x, q.y, q.z, q.w) == pytest.approx(yaw, abs=1e-9)
    imu = topics[t["imu"]][0].msg
    assert (imu.angular_velocity.x, imu.angular_velocity.y, imu.angular_velocity.z) == (
        0.1, -0.2, -0.3)
    assert imu.linear_acceleration.z == 9.8
    assert list(imu.orientation_covariance[[0, 4, 8]]) == [0.01, 0.02, 0.03]
    images = topics[t["image"]]
    assert [m.msg.header.frame_id for m in images] == ["camera_front_left"] * 4
    np.testing.assert_array_equal(bagio.image_array(images[2].msg), _image(22))
    assert float(bagio_custom(out)["map_origin_fit_rms_m"]) < 1e-6


def test_kitti_builds_tile_cache_from_satmaps(tmp_path: Path) -> None:
    from denseflow_ros.geo import SatelliteCache

    make_kitti(tmp_path / "KITTI", with_satmaps=True)
    out = tmp_path / "bag"
    rc = cli_main(["bag", "kitti", "--root", str(tmp_path / "KITTI"), "--drive", DRIVE,
                   "--out", str(out)])
    assert rc == 0
    tiles = tmp_path / "bag.mbtiles"
    assert tiles.is_file()
    custom = bagio_custom(out)
    assert float(custom["tiles_zoom"]) == 19  # zoom 18 at scale 2 has zoom 19's pixels
    o = _oxts(0)
    crop = SatelliteCache(tiles).crop(o[0], o[1], 0.0, 21, 0.2)
    # The 40 px image of frame 0 spans 7.8 m around its fix: a 4 m crop there is all its grey.
    assert crop.coverage == 1.0
    assert np.abs(crop.image.astype(int) - 90).max() <= 1


def test_gnss_degradation_statistics() -> None:
    drift = bag_common.GnssDegradation(bias_m=5.0, bias_tau_s=20.0, seed=1)
    errors = np.array([drift.offset(float(t)) for t in range(20000)])
    assert np.std(errors, axis=0) == pytest.approx([5.0, 5.0], rel=0.15)
    # Neighbouring fixes share the slowly drifting bias: their steps are small.
    assert np.std(np.diff(errors[:, 0])) < 5.0 * math.sqrt(2.0 / 20.0) * 1.2
    noisy = bag_common.GnssDegradation(noise_m=2.0, seed=2)
    errors = np.array([noisy.offset(float(t)) for t in range(5000)])
    assert np.std(errors, axis=0) == pytest.approx([2.0, 2.0], rel=0.1)
    assert np.abs(np.mean(errors, axis=0)).max() < 0.15
    jumps = bag_common.GnssDegradation(jump_rate_hz=0.05, jump_m=10.0, bias_tau_s=1e6, seed=3)
    errors = np.array([jumps.offset(float(t)) for t in range(400)])
    steps = np.hypot(*np.diff(errors, axis=0).T)
    assert 5 <= np.sum(steps > 9.0) <= 40  # about 0.05 per second for 400 s
    assert np.sum((steps > 0.01) & (steps < 9.0)) == 0
    assert not bag_common.GnssDegradation().active
    with pytest.raises(ValueError, match="noise_m must be >= 0"):
        bag_common.GnssDegradation(noise_m=-1.0)


@pytest.mark.parametrize("kind", ["bayer", "png"])
def test_ford_recording_camera_encodings(tmp_path: Path, kind: str) -> None:
    make_ford_recording(tmp_path / "ford_raw", kind)
    out = tmp_path / "bag"
    assert cli_main(["bag", "ford", "--bag", str(tmp_path / "ford_raw"), "--out", str(out)]) == 0
    images = [m.msg for m in bagio.iter_messages(out, [bag_ford.DEFAULT_TOPICS["image"]])]
    assert len(images) == 4 and all(m.encoding == "rgb8" for m in images)
    for i, msg in enumerate(images):
        rgb = bagio.image_array(msg)
        if kind == "png":
            np.testing.assert_array_equal(rgb, _image(20 + i))
        else:  # a uniform colour demosaics to itself away from the border
            assert rgb[2:-2, 2:-2].reshape(-1, 3).tolist() == [[200, 100, 50]] * 8


def test_converters_run_without_a_command_line(tmp_path: Path) -> None:
    make_kitti(tmp_path / "KITTI")
    options = bag_kitti.KittiOptions(
        output=bag_common.OutputOptions(build_tiles=False),
        frames=bag_common.FrameRange(start=1),
        topics=bag_common.Topics(**{**bag_kitti.DEFAULT_TOPICS, "fix": "/gnss/fix"}),
        degradation=bag_common.GnssDegradation(noise_m=3.0, seed=4))
    kitti = bag_kitti.convert_kitti(tmp_path / "KITTI", DRIVE, tmp_path / "kitti", options)
    assert (kitti.frames, kitti.satellite_images, kitti.tiles) == (2, 0, None)
    assert kitti.camera_in_imu_m is not None and len(kitti.camera_in_imu_m) == 3
    assert "tiles" not in bag_common.summary_dict(kitti)
    topics = bagio.bag_topics(tmp_path / "kitti")
    assert topics["/gnss/fix"][1] == 2
    # The degradation is a template: the same options give the same bag twice.
    again = bag_kitti.convert_kitti(tmp_path / "KITTI", DRIVE, tmp_path / "kitti2", options)
    assert again.datum == kitti.datum
    fixes = [[(m.msg.latitude, m.msg.longitude) for m in bagio.iter_messages(b, ["/gnss/fix"])]
             for b in (tmp_path / "kitti", tmp_path / "kitti2")]
    assert fixes[0] == fixes[1]

    make_ford(tmp_path / "Ford")
    ford = bag_ford.convert_ford_processed(tmp_path / "Ford", FORD_LOG, tmp_path / "ford",
                                           bag_ford.FordOptions())
    assert (ford.frames, ford.satellite_images, ford.tiles) == (len(FORD_LINES), 0, None)
    assert bagio.bag_topics(tmp_path / "ford")[bag_ford.DEFAULT_TOPICS["image"]][1] == ford.frames

    make_ford_recording(tmp_path / "ford_raw")
    recording = bag_ford.convert_ford_recording(
        tmp_path / "ford_raw", tmp_path / "ford_rec",
        bag_ford.FordOptions(frames=bag_common.FrameRange(step=2)))
    assert recording.messages == {"image": 2, "fix": 4, "imu": 4, "ground_truth": 4}
    assert recording.map_origin_fit_pairs == 4 and recording.map_origin_fit_rms_m < 1e-3


@pytest.mark.parametrize("dataset", ["kitti", "ford"])
def test_a_step_below_one_is_one_sentence(dataset: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture) -> None:
    source = (["--root", str(tmp_path), "--drive", DRIVE] if dataset == "kitti"
              else ["--bag", str(tmp_path / "ros2_bag")])
    rc = cli_main(["bag", dataset, *source, "--out", str(tmp_path / "bag"), "--no-tiles",
                   "--step", "0"])
    assert rc == 1
    err = capsys.readouterr().err.strip()
    assert "--step must be >= 1, got 0" in err and err.count("\n") == 0
    assert not (tmp_path / "bag").exists()
