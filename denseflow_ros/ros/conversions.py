# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Message <-> numpy conversion for the localizer node (cv_bridge where present)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from denseflow_ros.angles import quaternion_from_yaw
from denseflow_ros.localizer import (
    FrameError,
    PoseEstimate,
    image_header_size,
    is_positive_definite,
)

# Variance given to the pose components the localizer does not observe (z, roll, pitch):
# large enough that any filter ignores them, finite so that none divides by infinity.
UNOBSERVED_VARIANCE = 1.0e6
# Lower bounds on the observed variances, so the published diagonal is never zero.
MIN_POSITION_VARIANCE_M2 = 1.0e-6
MIN_YAW_VARIANCE_RAD2 = 1.0e-8

# Largest image accepted from a camera: 8K UHD. Compressed images are checked against it (and
# against camera_info) from their header, before a byte is decoded.
MAX_IMAGE_PIXELS = 7680 * 4320
# Distortion vector lengths per camera_info distortion model ('' = any OpenCV takes).
_DISTORTION_LENGTHS = {"plumb_bob": (5,), "rational_polynomial": (8,), "": (4, 5, 8, 12, 14)}

# encoding -> (channels, conversion from the message's layout to RGB)
_ENCODINGS: dict[str, tuple[int, str]] = {
    "rgb8": (3, "rgb"), "bgr8": (3, "bgr"), "rgba8": (4, "rgba"), "bgra8": (4, "bgra"),
    "mono8": (1, "mono"), "8UC3": (3, "bgr"), "8UC1": (1, "mono"),
}

try:  # pragma: no cover - only on a ROS distribution
    from cv_bridge import CvBridge as _CvBridge

    _BRIDGE: Any = _CvBridge()
except Exception:  # noqa: BLE001 - PyPI's cv_bridge is ROS 1 and fails in many ways
    _BRIDGE = None


def printable(text: Any, limit: int = 40) -> str:
    """Return ``text`` with control and non-ASCII characters escaped, cut to ``limit`` chars.

    For strings taken from messages (encodings, formats) on their way into logs and
    /diagnostics.
    """
    s = str(text)
    cut = s[:limit].encode("ascii", "backslashreplace").decode("ascii")
    cut = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in cut)
    return f"'{cut}'" + ("..." if len(s) > limit else "")


def has_cv_bridge() -> bool:
    """Return whether a working cv_bridge is importable."""
    return _BRIDGE is not None


def _to_rgb(array: np.ndarray, layout: str) -> np.ndarray:
    if layout == "rgb":
        return array
    if layout == "bgr":
        return array[:, :, ::-1]
    if layout == "rgba":
        return array[:, :, :3]
    if layout == "bgra":
        return array[:, :, 2::-1]
    return np.repeat(array, 3, axis=2)


def _bytes(data: Any) -> np.ndarray:
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except TypeError:
        return np.asarray(data, dtype=np.uint8).reshape(-1)


def _check_size(w: int, h: int, size: tuple[int, int] | None, max_pixels: int) -> None:
    if w <= 0 or h <= 0:
        raise FrameError("bad_image", f"image has zero size ({w}x{h})")
    if w * h > max_pixels:
        raise FrameError("bad_image", f"image is {w}x{h}, over the {max_pixels} pixel limit")
    if size is not None and (w, h) != tuple(size):
        raise FrameError("bad_image", f"image is {w}x{h} but camera_info says "
                                      f"{size[0]}x{size[1]}")


def image_to_rgb_numpy(msg: Any, size: tuple[int, int] | None = None,
                       max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Convert a sensor_msgs/Image to an (H, W, 3) uint8 RGB array without cv_bridge.

    ``size`` (width, height), when given, is the only size accepted.
    """
    spec = _ENCODINGS.get(msg.encoding)
    if spec is None:
        raise FrameError("bad_image", f"unsupported image encoding {printable(msg.encoding)}")
    channels, layout = spec
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    _check_size(w, h, size, max_pixels)
    if step < w * channels:
        raise FrameError("bad_image", f"image step {step} is below width x channels "
                                      f"{w * channels}")
    data = _bytes(msg.data)
    if data.size != step * h:
        raise FrameError("bad_image", f"image data has {data.size} bytes, expected step x "
                                      f"height = {step * h}")
    array = data.reshape(h, step)[:, : w * channels].reshape(h, w, channels)
    return np.ascontiguousarray(_to_rgb(array, layout))


def image_to_rgb(msg: Any, size: tuple[int, int] | None = None,
                 max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Convert a sensor_msgs/Image to RGB, through cv_bridge where the distribution has it."""
    if _BRIDGE is None:
        return image_to_rgb_numpy(msg, size, max_pixels)
    # Validate first so that cv_bridge and the numpy path reject the same messages.
    image_to_rgb_numpy(msg, size, max_pixels)
    return np.ascontiguousarray(_BRIDGE.imgmsg_to_cv2(msg, desired_encoding="rgb8"))


def compressed_to_rgb(msg: Any, size: tuple[int, int] | None = None,
                      max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Decode a sensor_msgs/CompressedImage (JPEG, PNG or WebP) to (H, W, 3) uint8 RGB.

    The size in the image's header is checked first, against ``size`` (width, height) when
    given and against ``max_pixels``, so a small file that claims a huge image is refused
    before it is decoded.
    """
    import cv2

    data = _bytes(msg.data)
    what = f"compressed image ({printable(msg.format or 'no format')}, {data.size} bytes)"
    try:
        w, h = image_header_size(data.tobytes())
    except ValueError as exc:
        raise FrameError("bad_image", f"{what}: {exc}") from None
    _check_size(w, h, size, max_pixels)
    decoded = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if decoded is None or decoded.shape[:2] != (h, w):
        raise FrameError("bad_image", f"{what} could not be decoded")
    return np.ascontiguousarray(decoded[:, :, ::-1])


def rgb_to_image(array: np.ndarray, header: Any) -> Any:
    """Build an rgb8 sensor_msgs/Image from an (H, W, 3) uint8 array."""
    from sensor_msgs.msg import Image

    h, w = array.shape[:2]
    msg = Image(header=header, height=h, width=w, encoding="rgb8", is_bigendian=0, step=w * 3)
    msg.data = np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    return msg


def camera_info_to_intrinsics(msg: Any, rectified: bool = False
                              ) -> tuple[np.ndarray, np.ndarray | None, int, int]:
    """Return (K, distortion or None, width, height) of a CameraInfo; FrameError if unusable.

    For a ``rectified`` image (``image_rect``) the intrinsics are P's left 3x3 and there is no
    distortion: D describes the raw image, and applying it again would distort the frame.
    """
    k = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
    if rectified:
        p = np.asarray(msg.p, dtype=np.float64).reshape(3, 4)[:, :3]
        k = p if np.all(np.isfinite(p)) and p[0, 0] > 0 and p[1, 1] > 0 else k
    w, h = int(msg.width), int(msg.height)
    if not np.all(np.isfinite(k)) or k[0, 0] <= 0 or k[1, 1] <= 0 or k[2, 2] != 1.0:
        raise FrameError("bad_camera_info", "camera_info K must be finite with fx, fy > 0 "
                                            "and K[2][2] = 1")
    if w <= 0 or h <= 0:
        raise FrameError("bad_camera_info", f"camera_info has zero size ({w}x{h})")
    d = np.asarray(msg.d, dtype=np.float64)
    if d.size and not np.all(np.isfinite(d)):
        raise FrameError("bad_camera_info", "camera_info distortion has non-finite values")
    if rectified or not np.any(d != 0):
        return k, None, w, h
    lengths = _DISTORTION_LENGTHS.get(msg.distortion_model)
    if lengths is None:
        raise FrameError("bad_camera_info", f"distortion model "
                                            f"{printable(msg.distortion_model)} is not supported")
    if d.size not in lengths:
        raise FrameError("bad_camera_info", f"camera_info has {d.size} distortion "
                                            f"coefficients; {printable(msg.distortion_model)} "
                                            f"needs {' or '.join(map(str, lengths))}")
    return k, d, w, h


def fix_is_valid(msg: Any) -> str | None:
    """Return why a NavSatFix is unusable, or None when it is a usable fix."""
    from denseflow_ros.prior import fix_problem

    return fix_problem(msg.status.status, msg.latitude, msg.longitude)


def fix_covariance_en(msg: Any, default_std_m: float) -> tuple[np.ndarray, bool]:
    """Return the fix's horizontal (east, north) covariance and whether it was usable.

    An unknown covariance, or a known one that is not symmetric positive definite (it would
    disable the gate or make it singular), is replaced by ``default_std_m`` on both axes; the
    flag is False only in the second case.
    """
    from sensor_msgs.msg import NavSatFix

    default = np.eye(2) * default_std_m ** 2
    if msg.position_covariance_type == NavSatFix.COVARIANCE_TYPE_UNKNOWN:
        return default, True
    cov = np.asarray(msg.position_covariance, dtype=np.float64).reshape(3, 3)[:2, :2]
    if not is_positive_definite(cov):
        return default, False
    return 0.5 * (cov + cov.T), True


def covariance_6x6(cov_xyyaw: np.ndarray) -> list[float]:
    """Embed a (x, y, yaw) covariance in ROS's row-major 6x6 (x, y, z, roll, pitch, yaw)."""
    c = np.zeros((6, 6))
    idx = [0, 1, 5]
    for i, a in enumerate(idx):
        for j, b in enumerate(idx):
            c[a, b] = cov_xyyaw[i, j]
    c[0, 0] = max(c[0, 0], MIN_POSITION_VARIANCE_M2)
    c[1, 1] = max(c[1, 1], MIN_POSITION_VARIANCE_M2)
    c[5, 5] = max(c[5, 5], MIN_YAW_VARIANCE_RAD2)
    for i in (2, 3, 4):
        c[i, i] = UNOBSERVED_VARIANCE
    return [float(v) for v in c.reshape(-1)]


def pose_message(estimate: PoseEstimate, header: Any) -> Any:
    """Build a PoseWithCovarianceStamped of an estimate (header already stamped/framed)."""
    from geometry_msgs.msg import PoseWithCovarianceStamped

    msg = PoseWithCovarianceStamped(header=header)
    p = msg.pose.pose
    p.position.x, p.position.y, p.position.z = estimate.x, estimate.y, 0.0
    qx, qy, qz, qw = quaternion_from_yaw(estimate.yaw)
    p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w = qx, qy, qz, qw
    msg.pose.covariance = covariance_6x6(estimate.covariance)
    return msg


def refined_fix_message(estimate: PoseEstimate, header: Any, source_fix: Any) -> Any:
    """Build the refined NavSatFix of ``base_link`` (altitude and status from the fix)."""
    from sensor_msgs.msg import NavSatFix

    msg = NavSatFix(header=header)
    msg.status = source_fix.status
    msg.latitude, msg.longitude = estimate.lat, estimate.lon
    msg.altitude = source_fix.altitude
    # Back from the map frame to east/north: undo the map's rotation against true north.
    g = estimate.yaw - estimate.heading_enu_rad
    r = np.array([[math.cos(g), math.sin(g)], [-math.sin(g), math.cos(g)]])
    en = r @ estimate.covariance[:2, :2] @ r.T
    cov = np.zeros((3, 3))
    cov[:2, :2] = en
    cov[0, 0] = max(cov[0, 0], MIN_POSITION_VARIANCE_M2)
    cov[1, 1] = max(cov[1, 1], MIN_POSITION_VARIANCE_M2)
    up = np.asarray(source_fix.position_covariance, dtype=np.float64).reshape(3, 3)[2, 2]
    cov[2, 2] = up if math.isfinite(up) and up > 0 else UNOBSERVED_VARIANCE
    msg.position_covariance = [float(v) for v in cov.reshape(-1)]
    msg.position_covariance_type = NavSatFix.COVARIANCE_TYPE_KNOWN
    return msg
