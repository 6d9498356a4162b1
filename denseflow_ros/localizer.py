# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""One camera frame and a GNSS prior in, one pose estimate out (no ROS).

This is the seam between the tile cache (``geo``) and the network (``model``): it crops the
satellite imagery around the prior, prepares the ground image for the network, runs it, and
turns the network's (u, v, yaw) correction back into latitude/longitude and a map-frame pose
with a 3x3 covariance. The node (``denseflow_ros.ros``) only converts messages around it.

Conventions (see the project's contracts): ENU, yaw counter-clockwise from east. The network
estimates the *camera* position; the GNSS fix measures the *antenna*; the published pose is
``base_link``. ``CameraMount`` holds where both sit in ``base_link`` (x forward, y left).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from denseflow_ros.camera import scale_intrinsics

# WGS84, for metre offsets of a few metres around a point (first order is exact to well
# below a millimetre over that range).
_WGS84_A = 6378137.0
_WGS84_E2 = 6.69437999014e-3

PRECISIONS = ("fp32", "fp16", "bf16")


class FrameError(ValueError):
    """A frame that cannot be localized; ``reason`` is a short counter key."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Model(Protocol):
    """Anything with the network's call signature (the real network or a test oracle)."""

    def __call__(
        self, ground: Any, satellite: Any, intrinsics: Any,
        satellite_mpp: float | None = None, camera_height_m: float | None = None,
    ) -> Any:
        """Return an object with shift_u_m, shift_v_m, yaw_deg, covariance, confidence, mask."""


@dataclass(frozen=True)
class InputGeometry:
    """The network's input sizes and ground geometry (from a model preset)."""

    ground_size: tuple[int, int]
    satellite_size: int
    satellite_mpp: float
    camera_height_m: float

    @classmethod
    def from_preset(cls, config: Any, camera_height_m: float | None = None) -> InputGeometry:
        """Build from a ``ModelConfig``; ``camera_height_m`` overrides the preset's."""
        height = camera_height_m if camera_height_m else float(config.camera_height_m)
        return cls(
            ground_size=(int(config.ground_size[0]), int(config.ground_size[1])),
            satellite_size=int(config.satellite_size),
            satellite_mpp=float(config.satellite_mpp),
            camera_height_m=height,
        )


@dataclass(frozen=True)
class CameraMount:
    """Where the camera and the GNSS antenna sit in ``base_link`` (x forward, y left), m."""

    camera_x_m: float = 0.0
    camera_y_m: float = 0.0
    antenna_x_m: float = 0.0
    antenna_y_m: float = 0.0


@dataclass(frozen=True)
class Frame:
    """A ground image (H, W, 3) uint8 RGB with its 3x3 intrinsics and optional distortion."""

    image: np.ndarray
    intrinsics: np.ndarray
    distortion: np.ndarray | None = None


@dataclass(frozen=True)
class Prior:
    """The GNSS antenna's position and the vehicle heading (ENU rad; None when unknown)."""

    lat: float
    lon: float
    heading_rad: float | None
    position_cov_en: np.ndarray = field(default_factory=lambda: np.eye(2) * 100.0)


@dataclass(frozen=True)
class Thresholds:
    """Acceptance rules for an estimate (all run-time changeable in the node)."""

    min_confidence: float = 0.0
    min_coverage: float = 0.5
    gate_sigma: float = 3.0
    gate_floor_m: float = 2.0
    max_yaw_correction_deg: float = 0.0


@dataclass
class PoseEstimate:
    """A localized frame: ``base_link`` pose in lat/lon and in the map frame."""

    lat: float
    lon: float
    x: float
    y: float
    yaw: float
    covariance: np.ndarray
    confidence: float
    heading_enu_rad: float
    prior_x: float
    prior_y: float
    prior_yaw: float
    correction_m: float
    gate_distance: float
    coverage: float
    rejection: str | None = None
    debug: dict[str, np.ndarray] | None = None


class MapFrame:
    """A planar map frame: a local ENU plane at a datum, or a fixed UTM zone."""

    def __init__(self, kind: str, datum: Sequence[float] | None = None,
                 utm_zone: int = 0) -> None:
        if kind not in ("enu", "utm"):
            raise ValueError(f"map projection must be 'enu' or 'utm', got {kind!r}")
        self.kind = kind
        self.utm_zone = utm_zone
        self._projection: Any = None
        if datum is not None and len(datum) == 2:
            self._init(float(datum[0]), float(datum[1]))

    @property
    def ready(self) -> bool:
        """Return whether the datum (or UTM zone) is fixed."""
        return self._projection is not None

    @property
    def datum(self) -> tuple[float, float] | None:
        """Return the datum latitude/longitude, once fixed."""
        return self._datum if self.ready else None

    def _init(self, lat: float, lon: float) -> None:
        from denseflow_ros.geo import LocalEnu, Utm

        self._datum = (lat, lon)
        if self.kind == "enu":
            self._projection = LocalEnu(lat, lon)
        else:
            # One zone for the whole run, so a drive across a zone border stays continuous.
            self._projection = Utm(zone=self.utm_zone or None, south=lat < 0.0)
            self._projection.forward(lat, lon)
            self.utm_zone = int(self._projection.zone)

    def ensure(self, lat: float, lon: float) -> None:
        """Fix the datum at (lat, lon) if none was configured."""
        if not self.ready:
            self._init(lat, lon)

    def forward(self, lat: float, lon: float) -> tuple[float, float]:
        """Return map (x, y) in metres of a latitude/longitude."""
        x, y = self._projection.forward(lat, lon)
        return float(x), float(y)


def offset_latlon(lat: float, lon: float, east_m: float, north_m: float) -> tuple[float, float]:
    """Return the lat/lon a few metres (east, north) away from (lat, lon) on WGS84."""
    phi = math.radians(lat)
    s2 = math.sin(phi) ** 2
    n = _WGS84_A / math.sqrt(1.0 - _WGS84_E2 * s2)
    m = _WGS84_A * (1.0 - _WGS84_E2) / (1.0 - _WGS84_E2 * s2) ** 1.5
    return lat + math.degrees(north_m / m), lon + math.degrees(east_m / (n * math.cos(phi)))


def _rot(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s], [s, c]])


def is_positive_definite(cov: np.ndarray) -> bool:
    """Return whether a square matrix is finite, symmetric and positive definite."""
    cov = np.asarray(cov, dtype=np.float64)
    if not np.all(np.isfinite(cov)) or not np.allclose(cov, cov.T, rtol=1e-6, atol=1e-9):
        return False
    try:
        np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        return False
    return True


def wrap_angle(a: float) -> float:
    """Wrap an angle to [-pi, pi)."""
    return (a + math.pi) % (2.0 * math.pi) - math.pi


def prepare_ground(frame: Frame, ground_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Undistort and resize a frame to the network's size; return (image, rescaled K)."""
    import cv2

    image = frame.image
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 2 or image.shape[1] < 2:
        raise FrameError("bad_image", f"ground image must be (H, W, 3), got {image.shape}")
    k = np.asarray(frame.intrinsics, dtype=np.float64).reshape(3, 3)
    if not (np.all(np.isfinite(k)) and k[0, 0] > 0 and k[1, 1] > 0):
        raise FrameError("bad_camera_info", "camera intrinsics must be finite with fx, fy > 0")
    if frame.distortion is not None and np.any(np.asarray(frame.distortion) != 0):
        image = cv2.undistort(image, k, np.asarray(frame.distortion, dtype=np.float64))
    h, w = ground_size
    k_h, k_w = image.shape[:2]
    sx, sy = w / k_w, h / k_h
    if (image.shape[0], image.shape[1]) != (h, w):
        shrink = sx < 1.0 and sy < 1.0
        image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrink
                           else cv2.INTER_LINEAR)
    scaled = scale_intrinsics(k, (k_w, k_h), (h, w))
    return np.ascontiguousarray(image), scaled


class Localizer:
    """Localize one frame against the satellite tile cache around a GNSS prior."""

    def __init__(
        self,
        model: Model | Callable[..., Any],
        cache: Any,
        geometry: InputGeometry,
        map_frame: MapFrame,
        mount: CameraMount | None = None,
        device: str = "cpu",
        precision: str = "fp32",
        yaw_hypotheses: int = 18,
    ) -> None:
        self.model = model
        self.cache = cache
        self.geometry = geometry
        self.map_frame = map_frame
        self.mount = mount or CameraMount()
        self.device = device
        self.precision = precision
        self.yaw_hypotheses = yaw_hypotheses

    @property
    def precision(self) -> str:
        """Return the inference precision: fp32, fp16 or bf16."""
        return self._precision

    @precision.setter
    def precision(self, value: str) -> None:
        if value not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {value!r}")
        self._precision = value

    # -- network -------------------------------------------------------------------------
    def autocast(self) -> Any:
        """Return the autocast context of the configured precision and device."""
        import contextlib

        import torch

        if self._precision == "fp32":
            return contextlib.nullcontext()
        device_type = "cuda" if str(self.device).startswith("cuda") else "cpu"
        if device_type == "cpu" and self._precision == "fp16":
            # CPU autocast has no fp16 kernels for most of the network: run it in fp32.
            return contextlib.nullcontext()
        dtype = torch.float16 if self._precision == "fp16" else torch.bfloat16
        return torch.autocast(device_type=device_type, dtype=dtype)

    def run_network(self, ground: np.ndarray, satellites: np.ndarray,
                    intrinsics: np.ndarray) -> dict[str, np.ndarray]:
        """Run the model on one ground image and B satellite crops; return numpy outputs."""
        import torch

        b = satellites.shape[0]
        # Scaling and layout in numpy: small torch ops outside the network cost more than
        # their work on a loaded CPU (thread-pool hand-offs).
        g = np.ascontiguousarray(ground.transpose(2, 0, 1), dtype=np.float32)
        g *= 1.0 / 255.0
        sat = np.ascontiguousarray(satellites.transpose(0, 3, 1, 2), dtype=np.float32)
        sat *= 1.0 / 255.0
        k = np.repeat(np.asarray(intrinsics, dtype=np.float32)[None], b, axis=0)
        with torch.inference_mode():
            gt = torch.from_numpy(g).to(self.device).unsqueeze(0).expand(b, -1, -1, -1)
            with self.autocast():
                out = self.model(
                    gt, torch.from_numpy(sat).to(self.device),
                    torch.from_numpy(k).to(self.device),
                    satellite_mpp=self.geometry.satellite_mpp,
                    camera_height_m=self.geometry.camera_height_m,
                )

            def arr(t: Any, dtype: Any = np.float64) -> np.ndarray:
                t = t.detach().cpu()
                if t.dtype not in (torch.float32, torch.float64, torch.bool):
                    t = t.float()  # bf16/fp16 under autocast: numpy has no bfloat16
                return np.asarray(t.numpy(), dtype=dtype)

            result = {
                "shift_u_m": arr(out.shift_u_m).reshape(b),
                "shift_v_m": arr(out.shift_v_m).reshape(b),
                "yaw_deg": arr(out.yaw_deg).reshape(b),
                "covariance": arr(out.covariance).reshape(b, 3, 3),
            }
            conf = getattr(out, "confidence", None)
            mask = getattr(out, "mask", None)
            if conf is None:
                result["confidence"] = np.ones(b)
            else:
                c = arr(conf, np.float32).reshape(b, -1)
                if mask is None:
                    result["confidence"] = c.mean(axis=1, dtype=np.float64)
                else:
                    m = arr(mask, bool).reshape(b, -1)
                    result["confidence"] = (c * m).sum(axis=1, dtype=np.float64) / \
                        np.maximum(m.sum(axis=1), 1)
                result["confidence_map"] = c.reshape(conf.shape)
        return result

    def warm_up(self, runs: int = 2) -> None:
        """Run the network on blank inputs so the first real frame is not slow."""
        h, w = self.geometry.ground_size
        s = self.geometry.satellite_size
        k = np.array([[w, 0.0, w / 2.0], [0.0, w, h / 2.0], [0.0, 0.0, 1.0]])
        ground = np.full((h, w, 3), 127, np.uint8)
        sats = np.full((1, s, s, 3), 127, np.uint8)
        for _ in range(runs):
            self.run_network(ground, sats, k)

    # -- geometry ------------------------------------------------------------------------
    def _camera_prior(self, prior: Prior, heading: float) -> tuple[float, float]:
        m = self.mount
        d = _rot(heading) @ np.array([m.camera_x_m - m.antenna_x_m, m.camera_y_m - m.antenna_y_m])
        return offset_latlon(prior.lat, prior.lon, float(d[0]), float(d[1]))

    def _crop(self, lat: float, lon: float, heading: float) -> Any:
        g = self.geometry
        return self.cache.crop(lat, lon, math.degrees(heading), g.satellite_size,
                               g.satellite_mpp)

    def _map_pose(self, geometry: Any, east: float, north: float,
                  yaw_enu: float) -> tuple[float, float, float, float, float]:
        """Return (lat, lon, x, y, yaw_map) of a point given in the crop's tangent plane."""
        lat, lon = geometry.offset_to_latlon(east, north)
        # The map's yaw is measured numerically: a 1 m step along the heading, projected.
        lat1, lon1 = geometry.offset_to_latlon(east + math.cos(yaw_enu),
                                               north + math.sin(yaw_enu))
        self.map_frame.ensure(lat, lon)
        x, y = self.map_frame.forward(lat, lon)
        x1, y1 = self.map_frame.forward(lat1, lon1)
        return float(lat), float(lon), x, y, math.atan2(y1 - y, x1 - x)

    def localize(self, frame: Frame, prior: Prior, thresholds: Thresholds | None = None,
                 keep_debug: bool = False) -> PoseEstimate:
        """Localize ``frame`` around ``prior``; raise FrameError for an unusable frame."""
        th = thresholds or Thresholds()
        if not (math.isfinite(prior.lat) and math.isfinite(prior.lon)
                and -90.0 <= prior.lat <= 90.0 and -180.0 <= prior.lon <= 180.0):
            raise FrameError("bad_fix", f"prior position ({prior.lat}, {prior.lon}) is invalid")
        ground, k = prepare_ground(frame, self.geometry.ground_size)

        if prior.heading_rad is None:
            n = max(1, self.yaw_hypotheses)
            headings = [2.0 * math.pi * i / n for i in range(n)]
        else:
            headings = [float(prior.heading_rad)]
        crops = []
        for h in headings:
            lat, lon = self._camera_prior(prior, h)
            crop = self._crop(lat, lon, h)
            if crop.coverage < th.min_coverage:
                raise FrameError(
                    "low_coverage",
                    f"tile cache covers {crop.coverage:.0%} of the crop at "
                    f"({lat:.6f}, {lon:.6f}), below min_coverage {th.min_coverage:.0%}",
                )
            crops.append(crop)
        out = self.run_network(ground, np.stack([c.image for c in crops]), k)
        # A NaN confidence must not win the search (argmax would pick it).
        scores = np.asarray(out["confidence"], dtype=np.float64)
        best = int(np.argmax(np.where(np.isfinite(scores), scores, -np.inf))) \
            if len(headings) > 1 else 0
        heading, crop = headings[best], crops[best]

        su, sv = float(out["shift_u_m"][best]), float(out["shift_v_m"][best])
        dyaw = math.radians(float(out["yaw_deg"][best]))
        cov_uvy = np.asarray(out["covariance"][best], dtype=np.float64)
        if not (math.isfinite(su) and math.isfinite(sv) and math.isfinite(dyaw)):
            raise FrameError("bad_estimate", "the network returned a non-finite pose")
        yaw_enu = wrap_angle(heading + dyaw)
        m = self.mount
        cam_off = np.array([m.camera_x_m, m.camera_y_m])
        # The crop is centred on the camera's prior position.
        cam_en = _rot(heading) @ np.array([su, -sv])
        base_en = cam_en - _rot(yaw_enu) @ cam_off
        lat, lon, x, y, yaw_map = self._map_pose(crop.geometry, *base_en, yaw_enu)
        # Prior base_link, in the same tangent plane.
        prior_base_en = -_rot(heading) @ cam_off
        _, _, px, py, pyaw = self._map_pose(crop.geometry, *prior_base_en, heading)
        gamma = wrap_angle(yaw_map - yaw_enu)

        # d(map x, y, yaw) / d(shift_u_m, shift_v_m, yaw_rad), then C' = J C J^T.
        r_g = _rot(gamma)
        j = np.zeros((3, 3))
        j[:2, :2] = r_g @ _rot(heading) @ np.diag([1.0, -1.0])
        d_rot = np.array([[-math.sin(yaw_enu), -math.cos(yaw_enu)],
                          [math.cos(yaw_enu), -math.sin(yaw_enu)]])
        j[:2, 2] = r_g @ (-d_rot @ cam_off)
        j[2, 2] = 1.0
        cov = j @ cov_uvy @ j.T
        if not np.all(np.isfinite(cov)):
            raise FrameError("bad_estimate", "the network returned a non-finite covariance")
        cov = 0.5 * (cov + cov.T)

        # Gate in ENU around the prior's base_link: the correction is tested against the
        # covariance of a difference of two independent estimates, the fix's plus the
        # (calibrated) estimate's, plus a floor. So a gate of 3 rejects about 1 % of the
        # frames whose fix and estimate are both consistent, however wide either one is.
        delta = base_en - prior_base_en
        # A fix covariance that is not positive definite would make the distance negative (the
        # gate then passes anything) or singular: it is treated as unknown (10 m).
        sigma = np.asarray(prior.position_cov_en, dtype=np.float64).reshape(2, 2)
        sigma = 0.5 * (sigma + sigma.T)
        if not is_positive_definite(sigma):
            sigma = np.eye(2) * 100.0
        own = np.linalg.eigh(cov[:2, :2])
        sigma = sigma + (own.eigenvectors * np.clip(own.eigenvalues, 0.0, None)) @ \
            own.eigenvectors.T + np.eye(2) * th.gate_floor_m ** 2
        gate = float(math.sqrt(max(0.0, delta @ np.linalg.solve(sigma, delta))))
        confidence = float(out["confidence"][best])

        rejection = None
        if not confidence >= th.min_confidence:  # NaN included
            rejection = "low_confidence"
        elif th.gate_sigma > 0 and gate > th.gate_sigma:
            rejection = "outside_gate"
        elif (prior.heading_rad is not None and th.max_yaw_correction_deg > 0
              and abs(math.degrees(dyaw)) > th.max_yaw_correction_deg):
            rejection = "outside_gate"

        debug = None
        if keep_debug:
            debug = {
                "satellite": crop.image, "ground": ground, "intrinsics": k,
                "shift": np.array([su, sv, math.degrees(dyaw)]),
            }
            if "confidence_map" in out:
                debug["confidence"] = out["confidence_map"][best, 0]
        return PoseEstimate(
            lat=lat, lon=lon, x=x, y=y, yaw=yaw_map, covariance=cov, confidence=confidence,
            heading_enu_rad=yaw_enu, prior_x=px, prior_y=py, prior_yaw=pyaw,
            correction_m=float(np.hypot(*delta)), gate_distance=gate,
            coverage=float(crop.coverage), rejection=rejection, debug=debug,
        )

    # -- debug view ----------------------------------------------------------------------
    def debug_image(self, estimate: PoseEstimate) -> np.ndarray:
        """Draw the ground view projected onto the crop, confident flow and prior/estimate."""
        import cv2

        d = estimate.debug
        if d is None:
            raise ValueError("the estimate was made without keep_debug=True")
        sat = d["satellite"].astype(np.float32)
        s = sat.shape[0]
        c = s // 2
        mpp = self.geometry.satellite_mpp
        # Ground view as a bird's-eye view at the prior: BEV pixel -> camera ray -> image.
        u, v = np.meshgrid(np.arange(s, dtype=np.float32), np.arange(s, dtype=np.float32))
        fwd = (u - c) * mpp
        right = (v - c) * mpp
        k = d["intrinsics"]
        z = np.maximum(fwd, 1e-3)
        map_x = (k[0, 0] * right / z + k[0, 2]).astype(np.float32)
        map_y = (k[1, 1] * self.geometry.camera_height_m / z + k[1, 2]).astype(np.float32)
        map_x[fwd <= 1.0] = -1.0
        bev = cv2.remap(d["ground"], map_x, map_y, cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        valid = cv2.remap(np.ones(d["ground"].shape[:2], np.uint8), map_x, map_y,
                          cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        # Move the BEV by the estimate: B = c + t + R_img(yaw) (A - c).
        su, sv, yaw_deg = d["shift"]
        a = math.radians(yaw_deg)
        r = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])
        t = np.array([su, sv]) / mpp
        affine = np.hstack([r, (np.array([c, c]) + t - r @ np.array([c, c]))[:, None]])
        bev = cv2.warpAffine(bev, affine, (s, s))
        valid = cv2.warpAffine(valid, affine, (s, s), flags=cv2.INTER_NEAREST) > 0
        out = sat.copy()
        out[valid] = 0.5 * sat[valid] + 0.5 * bev[valid].astype(np.float32)
        if "confidence" in d:
            conf = cv2.resize(d["confidence"].astype(np.float32), (s, s))
            confident = conf > 0.5
            out[confident, 1] = np.minimum(255.0, out[confident, 1] * 0.7 + 76.0)
        img = np.ascontiguousarray(out.clip(0, 255).astype(np.uint8))
        est = (int(round(c + su / mpp)), int(round(c + sv / mpp)))
        cv2.drawMarker(img, (c, c), (255, 0, 0), cv2.MARKER_CROSS, 16, 2)
        cv2.arrowedLine(img, (c, c), (c + 24, c), (255, 0, 0), 2)
        tip = (int(round(est[0] + 24 * math.cos(a))), int(round(est[1] - 24 * math.sin(a))))
        cv2.drawMarker(img, est, (0, 96, 255), cv2.MARKER_TILTED_CROSS, 16, 2)
        cv2.arrowedLine(img, est, tip, (0, 96, 255), 2)
        return img
