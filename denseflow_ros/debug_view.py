# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The localizer's debug image: the ground view laid over the satellite crop it was matched to.

Drawn from an estimate made with ``keep_debug=True``: the camera image as a bird's-eye view
moved by the estimated shift and yaw, blended over the crop; confident cells tinted green; the
prior (red, the crop's centre) and the estimate (blue) as markers with heading arrows.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from denseflow_ros.localizer import InputGeometry, PoseEstimate

_PRIOR_RGB = (255, 0, 0)
_ESTIMATE_RGB = (0, 96, 255)


def _ground_as_bev(ground: np.ndarray, intrinsics: np.ndarray, size: int, mpp: float,
                   camera_height_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Return the ground image as a bird's-eye view at the prior, and where it has pixels."""
    c = size // 2
    # BEV pixel -> camera ray -> image pixel, with the crop's u forward and v to the right.
    u, v = np.meshgrid(np.arange(size, dtype=np.float32), np.arange(size, dtype=np.float32))
    fwd = (u - c) * mpp
    right = (v - c) * mpp
    k = intrinsics
    z = np.maximum(fwd, 1e-3)
    map_x = (k[0, 0] * right / z + k[0, 2]).astype(np.float32)
    map_y = (k[1, 1] * camera_height_m / z + k[1, 2]).astype(np.float32)
    map_x[fwd <= 1.0] = -1.0
    bev = cv2.remap(ground, map_x, map_y, cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    valid = cv2.remap(np.ones(ground.shape[:2], np.uint8), map_x, map_y,
                      cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return bev, valid


def debug_image(estimate: PoseEstimate, geometry: InputGeometry) -> np.ndarray:
    """Draw the ground view projected onto the crop, confident flow and prior/estimate."""
    d = estimate.debug
    if d is None:
        raise ValueError("the estimate was made without keep_debug=True")
    sat = d["satellite"].astype(np.float32)
    s = sat.shape[0]
    c = s // 2
    mpp = geometry.satellite_mpp
    bev, valid = _ground_as_bev(d["ground"], d["intrinsics"], s, mpp, geometry.camera_height_m)
    # Move the BEV by the estimate: B = c + t + R_img(yaw) (A - c).
    su, sv, yaw_deg = d["shift"]
    a = math.radians(yaw_deg)
    r = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])
    t = np.array([su, sv]) / mpp
    affine = np.hstack([r, (np.array([c, c]) + t - r @ np.array([c, c]))[:, None]])
    bev = cv2.warpAffine(bev, affine, (s, s))
    seen = cv2.warpAffine(valid, affine, (s, s), flags=cv2.INTER_NEAREST) > 0
    out = sat.copy()
    out[seen] = 0.5 * sat[seen] + 0.5 * bev[seen].astype(np.float32)
    if "confidence" in d:
        conf = cv2.resize(d["confidence"].astype(np.float32), (s, s))
        confident = conf > 0.5
        out[confident, 1] = np.minimum(255.0, out[confident, 1] * 0.7 + 76.0)
    img = np.ascontiguousarray(out.clip(0, 255).astype(np.uint8))
    est = (int(round(c + su / mpp)), int(round(c + sv / mpp)))
    cv2.drawMarker(img, (c, c), _PRIOR_RGB, cv2.MARKER_CROSS, 16, 2)
    cv2.arrowedLine(img, (c, c), (c + 24, c), _PRIOR_RGB, 2)
    tip = (int(round(est[0] + 24 * math.cos(a))), int(round(est[1] - 24 * math.sin(a))))
    cv2.drawMarker(img, est, _ESTIMATE_RGB, cv2.MARKER_TILTED_CROSS, 16, 2)
    cv2.arrowedLine(img, est, tip, _ESTIMATE_RGB, 2)
    return img
