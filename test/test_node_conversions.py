# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Message conversion: images (numpy path and cv_bridge), camera_info, fixes, covariance."""

from __future__ import annotations

import math

import numpy as np
import pytest

from denseflow_ros.angles import quaternion_from_yaw, yaw_from_quaternion
from denseflow_ros.localizer import FrameError, PoseEstimate
from denseflow_ros.ros import conversions as conv

pytest.importorskip("sensor_msgs")
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, NavSatFix  # noqa: E402

RNG = np.random.default_rng(3)
RGB = RNG.integers(0, 255, (5, 7, 3), dtype=np.uint8)


def _image(array: np.ndarray, encoding: str, pad: int = 0) -> Image:
    h, w = array.shape[:2]
    row = array.reshape(h, -1)
    step = row.shape[1] + pad
    data = np.zeros((h, step), np.uint8)
    data[:, : row.shape[1]] = row
    msg = Image(height=h, width=w, encoding=encoding, step=step)
    msg.data = data.tobytes()
    return msg


@pytest.mark.parametrize("pad", [0, 3])
def test_numpy_path_turns_every_supported_encoding_into_rgb(pad: int) -> None:
    alpha = np.full((5, 7, 1), 9, np.uint8)
    cases = {
        "rgb8": RGB, "bgr8": RGB[:, :, ::-1], "8UC3": RGB[:, :, ::-1],
        "rgba8": np.concatenate([RGB, alpha], 2), "bgra8": np.concatenate([RGB[:, :, ::-1],
                                                                            alpha], 2),
    }
    for encoding, array in cases.items():
        out = conv.image_to_rgb_numpy(_image(np.ascontiguousarray(array), encoding, pad))
        assert out.dtype == np.uint8 and np.array_equal(out, RGB), encoding
    mono = RGB[:, :, 0].copy()
    out = conv.image_to_rgb_numpy(_image(mono[:, :, None], "mono8", pad))
    assert np.array_equal(out, np.repeat(mono[:, :, None], 3, 2))


def test_bad_images_are_frame_errors_with_reasons() -> None:
    bad = [
        _image(RGB, "yuv422"),
        Image(height=0, width=7, encoding="rgb8", step=21),
        Image(height=5, width=7, encoding="rgb8", step=20, data=bytes(100)),
        Image(height=5, width=7, encoding="rgb8", step=21, data=bytes(104)),
    ]
    for msg in bad:
        with pytest.raises(FrameError) as err:
            conv.image_to_rgb(msg)
        assert err.value.reason == "bad_image" and str(err.value)
    with pytest.raises(FrameError):
        conv.compressed_to_rgb(CompressedImage(format="jpeg", data=b"\xff\xd8 not a jpeg"))
    with pytest.raises(FrameError):
        conv.compressed_to_rgb(CompressedImage(format="png", data=b""))


def test_compressed_png_decodes_to_rgb() -> None:
    import cv2

    png = cv2.imencode(".png", RGB[:, :, ::-1])[1].tobytes()
    assert np.array_equal(conv.compressed_to_rgb(CompressedImage(format="png", data=png)), RGB)


def test_cv_bridge_and_numpy_paths_give_the_same_arrays() -> None:
    if not conv.has_cv_bridge():
        pytest.skip("cv_bridge is not importable here (no ROS distribution); the numpy path "
                    "is in use")
    from cv_bridge import CvBridge

    bridge = CvBridge()
    for encoding, array in {"rgb8": RGB, "bgr8": RGB[:, :, ::-1],
                            "mono8": RGB[:, :, :1]}.items():
        msg = _image(np.ascontiguousarray(array), encoding, pad=2)
        ours = conv.image_to_rgb_numpy(msg)
        theirs = bridge.imgmsg_to_cv2(msg, desired_encoding="rgb8")
        assert np.array_equal(ours, theirs), encoding
        assert np.array_equal(conv.image_to_rgb(msg), ours)


def test_camera_info_checks() -> None:
    good = CameraInfo(width=640, height=480, distortion_model="plumb_bob")
    good.k = [500.0, 0, 320, 0, 500, 240, 0, 0, 1]
    good.d = [0.0] * 5
    k, d, w, h = conv.camera_info_to_intrinsics(good)
    assert k[0, 0] == 500 and d is None and (w, h) == (640, 480)
    good.d = [-0.1, 0.01, 0, 0, 0]
    assert conv.camera_info_to_intrinsics(good)[1] is not None
    for broken in (CameraInfo(width=640, height=480),
                   CameraInfo(width=0, height=0, k=good.k),
                   CameraInfo(width=640, height=480, k=[math.nan] * 9)):
        with pytest.raises(FrameError) as err:
            conv.camera_info_to_intrinsics(broken)
        assert err.value.reason == "bad_camera_info"
    # A distortion vector of the wrong length for its model is refused once, here, instead
    # of failing in OpenCV on every frame.
    for model, d in (("plumb_bob", [-0.1, 0.01, 0.0]), ("rational_polynomial", [-0.1] * 5),
                     ("", [-0.1] * 6), ("equidistant", [-0.1] * 4)):
        good.distortion_model, good.d = model, d
        with pytest.raises(FrameError, match="distortion") as err:
            conv.camera_info_to_intrinsics(good)
        assert err.value.reason == "bad_camera_info"
    good.distortion_model, good.d = "rational_polynomial", [-0.1] * 8
    assert conv.camera_info_to_intrinsics(good)[1].size == 8


def test_rectified_images_use_p_and_no_distortion() -> None:
    info = CameraInfo(width=640, height=480, distortion_model="plumb_bob")
    info.k = [500.0, 0, 320, 0, 500, 240, 0, 0, 1]
    info.d = [-0.3, 0.1, 0.0, 0.0, 0.0]
    info.p = [480.0, 0, 310, 0, 0, 480, 235, 0, 0, 0, 1, 0]
    k, d, _, _ = conv.camera_info_to_intrinsics(info, rectified=True)
    assert d is None and k[0, 0] == 480 and k[1, 2] == 235
    k, d, _, _ = conv.camera_info_to_intrinsics(info)
    assert d is not None and k[0, 0] == 500


def test_message_strings_are_escaped_and_bounded() -> None:
    text = conv.printable("png\x1b[2J\nFAKE LOG LINE" * 100)
    assert "\x1b" not in text and "\n" not in text and len(text) < 60
    msg = CompressedImage(format="\x1b[31m" * 1000, data=b"not an image")
    with pytest.raises(FrameError) as err:
        conv.compressed_to_rgb(msg)
    assert "\x1b" not in str(err.value) and len(str(err.value)) < 200


def test_fix_checks_and_covariance() -> None:
    fix = NavSatFix(latitude=49.0, longitude=8.4)
    assert conv.fix_is_valid(fix) is None
    fix.status.status = -1
    assert conv.fix_is_valid(fix) == "fix_no_fix"
    assert conv.fix_is_valid(NavSatFix(latitude=math.nan, longitude=8.4)) == "fix_nan"
    assert conv.fix_is_valid(NavSatFix(latitude=91.0, longitude=8.4)) == "fix_out_of_range"
    # Web Mercator tiles end at 85.0511 deg.
    assert conv.fix_is_valid(NavSatFix(latitude=85.05, longitude=8.4)) is None
    assert conv.fix_is_valid(NavSatFix(latitude=-85.06, longitude=8.4)) == "fix_out_of_range"
    cov, usable = conv.fix_covariance_en(NavSatFix(), 7.0)
    assert usable and np.allclose(cov, np.eye(2) * 49.0)
    known = NavSatFix(position_covariance=[4.0, 1, 0, 1, 9.0, 0, 0, 0, 16.0],
                      position_covariance_type=NavSatFix.COVARIANCE_TYPE_KNOWN)
    cov, usable = conv.fix_covariance_en(known, 7.0)
    assert usable and np.allclose(cov, [[4, 1], [1, 9]])
    # Indefinite, singular or asymmetric covariances are unusable: the default replaces them.
    for values in ([1.0, 10, 0, 10, 1.0, 0, 0, 0, 1], [4.0, 4, 0, 4, 4.0, 0, 0, 0, 1],
                   [4.0, 3, 0, 0, 4.0, 0, 0, 0, 1], [math.inf, 0, 0, 0, 1.0, 0, 0, 0, 1]):
        known.position_covariance = values
        cov, usable = conv.fix_covariance_en(known, 7.0)
        assert not usable and np.allclose(cov, np.eye(2) * 49.0), values


def test_quaternion_yaw_round_trip() -> None:
    for yaw in np.linspace(-3.1, 3.1, 13):
        x, y, z, w = quaternion_from_yaw(yaw)
        assert yaw_from_quaternion(x, y, z, w) == pytest.approx(yaw)
        # Unnormalised quaternions give the same yaw.
        assert yaw_from_quaternion(0.0, 0.0, 3 * z, 3 * w) == pytest.approx(yaw)
    assert math.isnan(yaw_from_quaternion(0.0, 0.0, 0.0, 0.0))
    assert math.isnan(yaw_from_quaternion(math.nan, 0.0, 0.0, 1.0))
    # A rolled and pitched orientation keeps its yaw about z.
    from denseflow_ros.bagio import quaternion_from_euler

    assert yaw_from_quaternion(*quaternion_from_euler(0.3, -0.2, 2.0)) == pytest.approx(2.0)


def _estimate(cov: np.ndarray) -> PoseEstimate:
    return PoseEstimate(lat=49.0, lon=8.4, x=1.0, y=2.0, yaw=0.5, covariance=cov,
                        confidence=0.8, heading_enu_rad=0.5, prior_x=0, prior_y=0,
                        prior_yaw=0, correction_m=0, gate_distance=0, coverage=1.0)


def test_pose_covariance_layout_and_floors() -> None:
    from std_msgs.msg import Header

    cov = np.array([[0.5, 0.1, 0.01], [0.1, 0.3, 0.02], [0.01, 0.02, 0.001]])
    msg = conv.pose_message(_estimate(cov), Header(frame_id="map"))
    c = np.array(msg.pose.covariance).reshape(6, 6)
    assert c[0, 0] == 0.5 and c[1, 1] == 0.3 and c[5, 5] == 0.001
    assert c[0, 1] == c[1, 0] == 0.1 and c[0, 5] == c[5, 0] == 0.01 and c[1, 5] == 0.02
    assert c[2, 2] == c[3, 3] == c[4, 4] == conv.UNOBSERVED_VARIANCE
    assert msg.pose.pose.orientation.z == pytest.approx(math.sin(0.25))
    zero = conv.pose_message(_estimate(np.zeros((3, 3))), Header())
    assert np.all(np.diag(np.array(zero.pose.covariance).reshape(6, 6)) > 0)


def test_refined_fix_covariance_is_east_north() -> None:
    from std_msgs.msg import Header

    est = _estimate(np.diag([4.0, 1.0, 0.01]))
    # The map frame is turned 90 deg against ENU (map yaw 0.5 + pi/2 for ENU yaw 0.5).
    est.yaw = est.heading_enu_rad + math.pi / 2
    fix = conv.refined_fix_message(est, Header(frame_id="base_link"), NavSatFix(altitude=5.0))
    c = np.array(fix.position_covariance).reshape(3, 3)
    assert c[0, 0] == pytest.approx(1.0) and c[1, 1] == pytest.approx(4.0)
    assert fix.altitude == 5.0 and fix.latitude == 49.0
