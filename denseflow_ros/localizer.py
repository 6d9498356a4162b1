# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""One camera frame and a GNSS prior in, one pose estimate out (no ROS).

This is the seam between the tile cache (``geo``) and the network (``model``).
:meth:`Localizer.open` builds the pipeline from :class:`LocalizerSettings`: it chooses the
device, loads the checkpoint, opens the tile cache and fixes the map frame and the camera
mount (each part opened by :mod:`denseflow_ros.parts`), and reports a bad setting as one
:class:`SettingsError`. :meth:`Localizer.localize` then crops the satellite imagery around
the prior, prepares the ground image for the network, runs it, and turns the network's
(u, v, yaw) correction back into latitude/longitude and a map-frame pose with a 3x3
covariance. The node (``denseflow_ros.ros``) only converts messages around it;
:mod:`denseflow_ros.prior` assembles the prior it passes in, and
:mod:`denseflow_ros.debug_view` draws an estimate.

Conventions: ENU, yaw counter-clockwise from east. The network estimates the *camera*
position; the GNSS fix measures the *antenna*; the published pose is ``base_link``.
``CameraMount`` holds where both sit in ``base_link`` (x forward, y left). The network's shift
(u, v) is in the crop's image axes: u along the crop's heading, v to its right.
"""

from __future__ import annotations

import contextlib
import gc
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from denseflow_ros.angles import wrap_angle
from denseflow_ros.camera import scale_intrinsics
from denseflow_ros.geo import mercator
from denseflow_ros.geo.mapframe import MapFrame
from denseflow_ros.geo.projection import offset_latlon
from denseflow_ros.geo.sources import image_size
from denseflow_ros.parts import (
    Model,
    NetworkFactory,
    SettingsError,
    choose_device,
    load_network,
    open_map_frame,
    open_tile_cache,
)

PRECISIONS = ("fp32", "fp16", "bf16")
# Beyond Web Mercator's latitude limit there are no tiles to localize against.
MAX_LATITUDE_DEG = mercator.MAX_LATITUDE_DEG
# The fix's covariance when the one given is unusable: 10 m on both axes.
_UNKNOWN_FIX_COV = np.eye(2) * 100.0


class FrameError(ValueError):
    """A frame that cannot be localized; ``reason`` is a short counter key."""

    def __init__(self, reason: str, message: str) -> None:
        """Keep the counter key beside the sentence."""
        super().__init__(message)
        self.reason = reason


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
class LocalizerSettings:
    """Everything :meth:`Localizer.open` needs; the node's parameters of the same names.

    ``datum`` None fixes the map frame at the first prior; ``utm_zone``, ``iterations`` and
    ``camera_height_m`` 0 take the zone from the datum and the rest from the preset;
    ``fine_stage`` runs the network's fine stage where it has one.
    """

    model_path: str
    preset: str
    device: str
    precision: str
    tile_cache: str
    tile_cache_mb: int
    map_projection: str
    yaw_hypotheses: int
    datum: Sequence[float] | None = None
    utm_zone: int = 0
    iterations: int = 0
    fine_stage: bool = True
    camera_height_m: float = 0.0
    mount: CameraMount = CameraMount()


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
    position_cov_en: np.ndarray = field(default_factory=lambda: _UNKNOWN_FIX_COV.copy())


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
    """A localized frame: ``base_link`` pose in lat/lon and in the map frame.

    ``rejection`` is set (``low_confidence`` or ``outside_gate``) when the thresholds refuse
    the estimate; :meth:`raise_rejection` turns it into the :class:`FrameError` an unusable
    frame raises, so a caller that only wants accepted poses handles one exception.
    """

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

    def raise_rejection(self) -> None:
        """Raise the rejection as a :class:`FrameError`; return when the estimate passed."""
        if self.rejection is None:
            return
        if self.rejection == "low_confidence":
            text = f"mean confidence {self.confidence:.3f} is below min_confidence"
        else:
            text = (f"estimate moved {self.correction_m:.1f} m ({self.gate_distance:.1f} "
                    "sigma) from the prior, outside the gate")
        raise FrameError(self.rejection, text)


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


def image_header_size(data: bytes) -> tuple[int, int]:
    """Return (width, height) of a PNG, JPEG or WebP image from its header, without decoding.

    Raise ValueError when the header is not one of those, so a compressed camera frame can be
    checked before it is decoded.
    """
    return image_size(data)


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


# -- the localizer ------------------------------------------------------------------------
@dataclass(frozen=True)
class _Correction:
    """The network's answer for the chosen crop: camera shift (m), yaw (rad), covariance."""

    shift_u_m: float
    shift_v_m: float
    yaw_rad: float
    covariance: np.ndarray  # over (shift_u_m, shift_v_m, yaw_rad)
    confidence: float

    @classmethod
    def pick(cls, out: dict[str, np.ndarray], i: int) -> _Correction:
        """Return crop ``i``'s answer; FrameError when the pose is not finite."""
        su, sv = float(out["shift_u_m"][i]), float(out["shift_v_m"][i])
        dyaw = math.radians(float(out["yaw_deg"][i]))
        if not (math.isfinite(su) and math.isfinite(sv) and math.isfinite(dyaw)):
            raise FrameError("bad_estimate", "the network returned a non-finite pose")
        return cls(su, sv, dyaw, np.asarray(out["covariance"][i], dtype=np.float64),
                   float(out["confidence"][i]))


@dataclass(frozen=True)
class _Placed:
    """An estimate and its prior, both of ``base_link``, in the crop's plane and the map."""

    lat: float
    lon: float
    x: float
    y: float
    yaw_map: float
    yaw_enu: float
    prior_x: float
    prior_y: float
    prior_yaw: float
    delta_en: np.ndarray  # estimate minus prior, east/north metres
    covariance: np.ndarray  # over map (x, y, yaw)


def _most_confident(confidence: np.ndarray) -> int:
    """Return the index of the highest confidence; a NaN never wins (argmax would pick it)."""
    scores = np.asarray(confidence, dtype=np.float64)
    return int(np.argmax(np.where(np.isfinite(scores), scores, -np.inf)))


def _check_prior(prior: Prior) -> None:
    if not (math.isfinite(prior.lat) and math.isfinite(prior.lon)
            and -90.0 <= prior.lat <= 90.0 and -180.0 <= prior.lon <= 180.0):
        raise FrameError("bad_fix", f"prior position ({prior.lat}, {prior.lon}) is invalid")


def _map_covariance(c: _Correction, heading: float, yaw_enu: float, gamma: float,
                    cam_off: np.ndarray) -> np.ndarray:
    """Return the covariance over map (x, y, yaw): C' = J C J^T.

    J = d(map x, y, yaw) / d(shift_u_m, shift_v_m, yaw_rad); ``gamma`` turns ENU into the
    map's axes, and the camera's offset turns yaw uncertainty into base_link's position.
    """
    r_g = _rot(gamma)
    j = np.zeros((3, 3))
    j[:2, :2] = r_g @ _rot(heading) @ np.diag([1.0, -1.0])
    d_rot = np.array([[-math.sin(yaw_enu), -math.cos(yaw_enu)],
                      [math.cos(yaw_enu), -math.sin(yaw_enu)]])
    j[:2, 2] = r_g @ (-d_rot @ cam_off)
    j[2, 2] = 1.0
    cov = j @ c.covariance @ j.T
    if not np.all(np.isfinite(cov)):
        raise FrameError("bad_estimate", "the network returned a non-finite covariance")
    return 0.5 * (cov + cov.T)


def gate_distance(delta_en: np.ndarray, fix_cov_en: np.ndarray, estimate_cov: np.ndarray,
                  floor_m: float) -> float:
    """Return the Mahalanobis distance of a correction from the prior, in sigmas.

    The correction is tested against the covariance of a difference of two independent
    estimates, the fix's plus the (calibrated) estimate's, plus a floor. So a gate of 3
    rejects about 1 % of the frames whose fix and estimate are both consistent, however wide
    either one is. A fix covariance that is not positive definite would make the distance
    negative (the gate then passes anything) or singular: it is treated as unknown (10 m).
    """
    sigma = np.asarray(fix_cov_en, dtype=np.float64).reshape(2, 2)
    sigma = 0.5 * (sigma + sigma.T)
    if not is_positive_definite(sigma):
        sigma = _UNKNOWN_FIX_COV
    own = np.linalg.eigh(np.asarray(estimate_cov, dtype=np.float64)[:2, :2])
    sigma = sigma + (own.eigenvectors * np.clip(own.eigenvalues, 0.0, None)) @ \
        own.eigenvectors.T + np.eye(2) * floor_m ** 2
    return float(math.sqrt(max(0.0, delta_en @ np.linalg.solve(sigma, delta_en))))


def _rejection(c: _Correction, gate: float, prior: Prior, th: Thresholds) -> str | None:
    """Return why the thresholds refuse an estimate, or None."""
    if not c.confidence >= th.min_confidence:  # NaN included
        return "low_confidence"
    if th.gate_sigma > 0 and gate > th.gate_sigma:
        return "outside_gate"
    if (prior.heading_rad is not None and th.max_yaw_correction_deg > 0
            and abs(math.degrees(c.yaw_rad)) > th.max_yaw_correction_deg):
        return "outside_gate"
    return None


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
        """Assemble the parts; :meth:`open` builds them from settings."""
        self.model = model
        self.cache = cache
        self.geometry = geometry
        self.map_frame = map_frame
        self.mount = mount or CameraMount()
        self.device = device
        self.precision = precision
        self.yaw_hypotheses = yaw_hypotheses

    @classmethod
    def open(cls, settings: LocalizerSettings,
             network_factory: NetworkFactory | None = None) -> Localizer:
        """Build the pipeline: device, network, tile cache, map frame and camera mount.

        ``network_factory`` replaces loading ``settings.model_path``. Every bad setting is
        reported as one :class:`SettingsError`.
        """
        device = choose_device(settings.device)
        if settings.precision not in PRECISIONS:
            raise SettingsError("precision", f"must be one of {list(PRECISIONS)}, got "
                                             f"{settings.precision!r}")
        map_frame = open_map_frame(settings.map_projection, settings.datum, settings.utm_zone)
        if network_factory is not None:
            net = network_factory(settings.preset, device)
        else:
            net = load_network(settings.model_path, settings.preset, device)
        cache = open_tile_cache(settings.tile_cache, settings.tile_cache_mb)
        loc = cls(net, cache, InputGeometry.from_preset(net.config, settings.camera_height_m),
                  map_frame, settings.mount, device=device, precision=settings.precision,
                  yaw_hypotheses=settings.yaw_hypotheses)
        loc.iterations = settings.iterations
        loc.fine_stage = settings.fine_stage
        return loc

    def close(self) -> None:
        """Close the tile cache and free the memory the network held (GPU included).

        The localizer is unusable afterwards; callers may still hold a reference to it.
        """
        if self.cache is not None:
            self.cache.close()
        self.cache = self.model = None
        gc.collect()
        if str(self.device).startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    @property
    def precision(self) -> str:
        """Return the inference precision: fp32, fp16 or bf16."""
        return self._precision

    @precision.setter
    def precision(self, value: str) -> None:
        if value not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {value!r}")
        self._precision = value

    @property
    def runs_fp32_for_fp16(self) -> bool:
        """Return whether fp16 was asked for on the CPU, which runs fp32 instead."""
        return self._precision == "fp16" and not str(self.device).startswith("cuda")

    @property
    def iterations(self) -> int:
        """Return the flow decoder's iterations per frame (``parts.Network.iterations``)."""
        return int(self.model.iterations)

    @iterations.setter
    def iterations(self, value: int) -> None:
        """Set the decoder's iterations; 0 restores the preset's."""
        self.model.iterations = int(value) or int(self.model.config.iterations)

    @property
    def fine_stage(self) -> bool:
        """Return whether the network runs a fine stage (False when it has none)."""
        return bool(self.model.config.fine_channels and self.model.run_fine_stage)

    @fine_stage.setter
    def fine_stage(self, value: bool) -> None:
        """Switch the network's fine stage on or off (no effect on a network without one)."""
        self.model.run_fine_stage = bool(value)

    def status(self) -> dict[str, str]:
        """Return the device, precision, decoder iterations and fine stage, for diagnostics."""
        return {"device": str(self.device), "precision": self._precision,
                "iterations": str(self.iterations),
                "fine_stage": "on" if self.fine_stage else "off"}

    # -- network -------------------------------------------------------------------------
    def autocast(self) -> Any:
        """Return the autocast context of the configured precision and device."""
        import torch

        if self._precision == "fp32" or self.runs_fp32_for_fp16:
            # CPU autocast has no fp16 kernels for most of the network: it runs in fp32.
            return contextlib.nullcontext()
        device_type = "cuda" if str(self.device).startswith("cuda") else "cpu"
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
            return _outputs(out, b)

    def warm_up(self, runs: int = 2) -> None:
        """Run the network on blank inputs so the first real frame is not slow."""
        h, w = self.geometry.ground_size
        s = self.geometry.satellite_size
        k = np.array([[w, 0.0, w / 2.0], [0.0, w, h / 2.0], [0.0, 0.0, 1.0]])
        ground = np.full((h, w, 3), 127, np.uint8)
        sats = np.full((1, s, s, 3), 127, np.uint8)
        for _ in range(runs):
            self.run_network(ground, sats, k)

    # -- one frame -----------------------------------------------------------------------
    def localize(self, frame: Frame, prior: Prior, thresholds: Thresholds | None = None,
                 keep_debug: bool = False) -> PoseEstimate:
        """Localize ``frame`` around ``prior``.

        An unusable frame raises :class:`FrameError`; an estimate the thresholds refuse is
        returned with ``rejection`` set (see :meth:`PoseEstimate.raise_rejection`).
        """
        th = thresholds or Thresholds()
        _check_prior(prior)
        ground, k = prepare_ground(frame, self.geometry.ground_size)
        if prior.heading_rad is None:
            n = max(1, self.yaw_hypotheses)
            headings = [2.0 * math.pi * i / n for i in range(n)]
        else:
            headings = [float(prior.heading_rad)]
        crops = [self._crop(prior, h, th.min_coverage) for h in headings]
        out = self.run_network(ground, np.stack([c.image for c in crops]), k)
        best = _most_confident(out["confidence"]) if len(headings) > 1 else 0
        correction = _Correction.pick(out, best)
        placed = self._place(correction, headings[best], crops[best].geometry)
        gate = gate_distance(placed.delta_en, prior.position_cov_en, placed.covariance,
                             th.gate_floor_m)
        debug = None
        if keep_debug:
            debug = {"satellite": crops[best].image, "ground": ground, "intrinsics": k,
                     "shift": np.array([correction.shift_u_m, correction.shift_v_m,
                                        math.degrees(correction.yaw_rad)])}
            if "confidence_map" in out:
                debug["confidence"] = out["confidence_map"][best, 0]
        return PoseEstimate(
            lat=placed.lat, lon=placed.lon, x=placed.x, y=placed.y, yaw=placed.yaw_map,
            covariance=placed.covariance, confidence=correction.confidence,
            heading_enu_rad=placed.yaw_enu, prior_x=placed.prior_x, prior_y=placed.prior_y,
            prior_yaw=placed.prior_yaw, correction_m=float(np.hypot(*placed.delta_en)),
            gate_distance=gate, coverage=float(crops[best].coverage),
            rejection=_rejection(correction, gate, prior, th), debug=debug,
        )

    def _crop(self, prior: Prior, heading: float, min_coverage: float) -> Any:
        """Return the satellite crop at the camera's prior position, turned to ``heading``."""
        m = self.mount
        d = _rot(heading) @ np.array([m.camera_x_m - m.antenna_x_m, m.camera_y_m - m.antenna_y_m])
        lat, lon = offset_latlon(prior.lat, prior.lon, float(d[0]), float(d[1]))
        g = self.geometry
        crop = self.cache.crop(lat, lon, math.degrees(heading), g.satellite_size,
                               g.satellite_mpp)
        if crop.coverage < min_coverage:
            raise FrameError(
                "low_coverage",
                f"tile cache covers {crop.coverage:.0%} of the crop at ({lat:.6f}, {lon:.6f}), "
                f"below min_coverage {min_coverage:.0%}",
            )
        return crop

    def _place(self, c: _Correction, heading: float, plane: Any) -> _Placed:
        """Turn the camera's correction into base_link's pose, beside the prior's, in the map."""
        yaw_enu = wrap_angle(heading + c.yaw_rad)
        cam_off = np.array([self.mount.camera_x_m, self.mount.camera_y_m])
        # The crop is centred on the camera's prior position.
        cam_en = _rot(heading) @ np.array([c.shift_u_m, -c.shift_v_m])
        base_en = cam_en - _rot(yaw_enu) @ cam_off
        lat, lon, x, y, yaw_map = self._map_pose(plane, *base_en, yaw_enu)
        prior_base_en = -_rot(heading) @ cam_off
        _, _, px, py, pyaw = self._map_pose(plane, *prior_base_en, heading)
        gamma = wrap_angle(yaw_map - yaw_enu)
        return _Placed(lat, lon, x, y, yaw_map, yaw_enu, px, py, pyaw, base_en - prior_base_en,
                       _map_covariance(c, heading, yaw_enu, gamma, cam_off))

    def _map_pose(self, plane: Any, east: float, north: float,
                  yaw_enu: float) -> tuple[float, float, float, float, float]:
        """Return (lat, lon, x, y, yaw_map) of a point given in the crop's tangent plane."""
        lat, lon = plane.offset_to_latlon(east, north)
        # The map's yaw is measured numerically: a 1 m step along the heading, projected.
        lat1, lon1 = plane.offset_to_latlon(east + math.cos(yaw_enu), north + math.sin(yaw_enu))
        self.map_frame.ensure(lat, lon)
        x, y = self.map_frame.forward(lat, lon)
        x1, y1 = self.map_frame.forward(lat1, lon1)
        return float(lat), float(lon), x, y, math.atan2(y1 - y, x1 - x)


def _outputs(out: Any, b: int) -> dict[str, np.ndarray]:
    """Return the network's outputs for B crops as float64 numpy arrays (call under torch).

    ``confidence`` is the mean of the confidence map over the visible mask (1 without one);
    ``confidence_map`` is the map itself, where the network has one.
    """
    import torch

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
        return result
    c = arr(conf, np.float32).reshape(b, -1)
    if mask is None:
        result["confidence"] = c.mean(axis=1, dtype=np.float64)
    else:
        m = arr(mask, bool).reshape(b, -1)
        result["confidence"] = (c * m).sum(axis=1, dtype=np.float64) / \
            np.maximum(m.sum(axis=1), 1)
    result["confidence_map"] = c.reshape(conf.shape)
    return result
