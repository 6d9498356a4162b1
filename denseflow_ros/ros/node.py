# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The ``localizer_node`` executable: a managed node around :class:`Localizer`.

Camera frames, GNSS fixes and a heading prior in; ``pose`` (PoseWithCovarianceStamped in the
map frame), ``fix_refined`` (NavSatFix), ``/diagnostics`` and ``~/debug/image`` out. The
newest frame waits in a queue of one and is processed on a worker thread, so the executor
keeps serving fixes, parameters and lifecycle requests while the network runs. A frame whose
fix (or heading sample) with the same or a later stamp has not arrived yet waits for it on
that thread, up to ``fix_wait_s``, before it is paired with the fixes around its stamp.

One worker thread lives from the first activation to shutdown; deactivation only stops it
taking frames, so a transition never waits for an inference in flight, and a frame that was
waiting or in flight when the node was deactivated is dropped, not published.
"""

from __future__ import annotations

import bisect
import gc
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import rclpy
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

from denseflow_ros.localizer import (
    CameraMount,
    Frame,
    FrameError,
    InputGeometry,
    Localizer,
    MapFrame,
    PoseEstimate,
    Prior,
    Thresholds,
    offset_latlon,
    wrap_angle,
)
from denseflow_ros.ros import conversions as conv
from denseflow_ros.ros.diagnostics import Stats, diagnostic_array
from denseflow_ros.ros.parameters import SPECS, check_choice, descriptor

# (preset name, device) -> an object with the network's call signature and a ``config``
# attribute (ModelConfig-like); used instead of loading ``model_path`` when given.
ModelFactory = Callable[[str, str], Any]

_CLOCK_JUMP_NS = 1_000_000_000  # a stamp this far behind the newest one means a clock jump
# Fix history: by age behind the newest fix, and by count (a stuck stamp, a flood).
_FIX_BUFFER_NS = 120_000_000_000
_MAX_FIXES = 4096
# A fix stamped further ahead of the newest image (or of the clock) is dropped: kept, it
# would trim the history and make the next real fix look like a clock jump.
_MAX_FIX_LEAD_NS = 30_000_000_000
# Heading history: by age (frames may take seconds) and by count (10 s at 1.6 kHz).
_HEADING_BUFFER_NS = 10_000_000_000
_MAX_HEADINGS = 16384


class ConfigError(Exception):
    """A start-up error in one parameter: one sentence that names it."""


@dataclass
class _Fix:
    t_ns: int
    lat: float
    lon: float
    cov_en: np.ndarray
    msg: Any


def _stamp_ns(stamp: Any) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


class LocalizerNode(LifecycleNode):
    """Managed localizer node; ``model_factory`` replaces loading ``model_path``."""

    def __init__(self, model_factory: ModelFactory | None = None, **kwargs: Any) -> None:
        super().__init__("localizer", **kwargs)
        self._model_factory = model_factory
        from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException

        for name, spec in SPECS.items():
            try:
                self.declare_parameter(name, spec.default, descriptor(name))
            except InvalidParameterValueException as exc:
                raise ConfigError(f"parameter '{name}': {str(exc).split('Reason: ')[-1]}"
                                  ) from exc
            except InvalidParameterTypeException as exc:
                raise ConfigError(f"parameter '{name}' must be of type "
                                  f"{type(spec.default).__name__}") from exc
            reason = check_choice(name, self.get_parameter(name).value)
            if reason:
                raise ConfigError(reason)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.stats = Stats()
        self._state = "unconfigured"
        self._localizer: Localizer | None = None
        self._device = "none"
        self._lock = threading.Lock()
        self._fixes: list[_Fix] = []
        self._fix_keys: list[int] = []
        self._heading_keys: list[int] = []
        self._heading_yaws: list[float] = []
        self._previous: tuple[int, float] | None = None
        self._camera: tuple[np.ndarray, np.ndarray | None, int, int] | None = None
        self._newest_ns: dict[str, int] = {}
        self._slot: tuple[Any, float] | None = None
        self._cond = threading.Condition()
        self._worker: threading.Thread | None = None
        self._running = False  # taking frames (active)
        self._stopping = False  # the worker is to end (shutdown)
        self._busy = False  # the worker is processing a frame
        self._to_release: Localizer | None = None  # to free once the frame in flight is done
        self._generation = 0  # activations so far: a frame taken in an older one is dropped
        self._rectified = False
        self._subs: list[Any] = []
        self._pose_pub: Any = None
        self._fix_pub: Any = None
        self._debug_pub: Any = None
        self._thresholds = self._read_thresholds({})
        self._diag_pub = self.create_publisher(
            _diag_type(), "/diagnostics", QoSProfile(depth=10))
        self._diag_timer = self.create_timer(
            float(self.get_parameter("diagnostics_period_s").value), self._publish_diagnostics)

    # -- parameters ----------------------------------------------------------------------
    def _p(self, name: str) -> Any:
        return self.get_parameter(name).value

    def _read_thresholds(self, override: dict[str, Any]) -> Thresholds:
        def get(n: str) -> float:
            return float(override[n]) if n in override else float(self._p(n))

        return Thresholds(
            min_confidence=get("min_confidence"), min_coverage=get("min_coverage"),
            gate_sigma=get("gate_sigma"), gate_floor_m=get("gate_floor_m"),
            max_yaw_correction_deg=get("max_yaw_correction_deg"),
        )

    def _on_set_parameters(self, params: Sequence[Any]) -> Any:
        from rcl_interfaces.msg import SetParametersResult

        for p in params:
            reason = check_choice(p.name, p.value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        new = {p.name: p.value for p in params}
        self._thresholds = self._read_thresholds(new)
        loc = self._localizer
        if loc is not None:
            if "precision" in new:
                loc.precision = str(new["precision"])
            if "iterations" in new and hasattr(loc.model, "iterations"):
                loc.model.iterations = int(new["iterations"]) or self._preset_iterations
        return SetParametersResult(successful=True)

    # -- lifecycle -----------------------------------------------------------------------
    def _failed(self, transition: str, exc: BaseException) -> TransitionCallbackReturn:
        """Log one ERROR line naming the cause of a failed transition; report it as ERROR."""
        cause = str(exc) if isinstance(exc, ConfigError) else \
            f"{transition} failed: {type(exc).__name__}: {exc}"
        self.stats.failure = cause[:200]
        self.get_logger().error(cause)
        return TransitionCallbackReturn.FAILURE

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Load the model and open the tile cache; fail with one sentence naming the cause."""
        try:
            self._localizer = self._build_localizer()
        except Exception as exc:  # noqa: BLE001 - every cause is reported, none is fatal
            return self._failed("configure", exc)
        self.stats.failure = ""
        self._pose_pub = self.create_lifecycle_publisher(
            _pose_type(), "pose", QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        from sensor_msgs.msg import Image, NavSatFix

        self._fix_pub = self.create_lifecycle_publisher(
            NavSatFix, "fix_refined",
            QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        self._debug_pub = self.create_publisher(Image, "~/debug/image", QoSProfile(depth=1))
        self._state = "inactive"
        self.get_logger().info(
            f"configured: device {self._device}, precision {self._p('precision')}, "
            f"heading_source {self._p('heading_source')}, map {self._p('map_projection')}")
        return TransitionCallbackReturn.SUCCESS

    def _build_localizer(self) -> Localizer:
        import torch

        preset = str(self._p("preset"))
        device = str(self._p("device"))
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        elif device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"parameter 'device' is {device!r} but torch sees no CUDA device")
        elif device != "cpu" and not device.startswith("cuda"):
            raise ConfigError(f"parameter 'device' must be auto, cpu, cuda or cuda:N, "
                              f"got {device!r}")
        self._device = device
        if device == "cpu" and self._p("precision") == "fp16":
            self.get_logger().warning("precision fp16 needs CUDA; running fp32 on the CPU")
        if self._model_factory is not None:
            net = self._model_factory(preset, device)
        else:
            net = self._load_model(preset, device)
        config = getattr(net, "config", None)
        if config is None:
            from denseflow_ros.model import get_preset

            config = get_preset(preset or "lite")
        self._preset_iterations = int(getattr(config, "iterations", 0) or 0)
        if int(self._p("iterations")) and hasattr(net, "iterations"):
            net.iterations = int(self._p("iterations"))
        cache = self._open_cache()
        datum = [float(v) for v in self._p("datum")]
        if len(datum) != 2 or not all(math.isfinite(v) for v in datum) or \
                not (-90 <= datum[0] <= 90 and -180 <= datum[1] <= 180):
            raise ConfigError(f"parameter 'datum' must be [lat, lon] in degrees, got {datum}")
        map_frame = MapFrame(str(self._p("map_projection")),
                             None if datum == [0.0, 0.0] else datum, int(self._p("utm_zone")))
        mount = CameraMount(
            camera_x_m=float(self._p("camera_x_m")), camera_y_m=float(self._p("camera_y_m")),
            antenna_x_m=float(self._p("antenna_x_m")),
            antenna_y_m=float(self._p("antenna_y_m")),
        )
        return Localizer(
            net, cache, InputGeometry.from_preset(config, float(self._p("camera_height_m"))),
            map_frame, mount, device=device, precision=str(self._p("precision")),
            yaw_hypotheses=int(self._p("yaw_hypotheses")),
        )

    def _load_model(self, preset: str, device: str) -> Any:
        path = str(self._p("model_path"))
        if not path:
            raise ConfigError("parameter 'model_path' is empty: set it to a DenseFlow "
                              "checkpoint file")
        if not os.path.isfile(path):
            raise ConfigError(f"parameter 'model_path': no such file {path!r}")
        from denseflow_ros.model import PRESETS, load_model

        if preset and preset not in PRESETS:
            raise ConfigError(f"parameter 'preset': unknown preset {preset!r} "
                              f"(choose from {sorted(PRESETS)})")
        try:
            return load_model(path, preset=preset or None, device=device)
        except Exception as exc:  # noqa: BLE001 - any load failure is the file's fault
            raise ConfigError(f"parameter 'model_path': cannot load {path!r}: {exc}") from exc

    def _open_cache(self) -> Any:
        path = str(self._p("tile_cache"))
        if not path:
            raise ConfigError("parameter 'tile_cache' is empty: set it to an XYZ tile folder "
                              "or an .mbtiles file")
        if not os.path.exists(path):
            raise ConfigError(f"parameter 'tile_cache': no such file or folder {path!r}")
        from denseflow_ros.geo import SatelliteCache

        try:
            return SatelliteCache(path, cache_mb=int(self._p("tile_cache_mb")))
        except Exception as exc:  # noqa: BLE001 - TileSourceError and I/O errors alike
            raise ConfigError(f"parameter 'tile_cache': {exc}") from exc

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Warm the network up, subscribe and let the worker thread take frames."""
        assert self._localizer is not None
        t0 = time.monotonic()
        try:
            self._localizer.warm_up(int(self._p("warmup_runs")))
            self._subscribe()
        except Exception as exc:  # noqa: BLE001 - CUDA out of memory, a broken model ...
            self._unsubscribe()
            return self._failed("activate: network warm-up", exc)
        self.stats.count("warmup_ms", int((time.monotonic() - t0) * 1000))
        self.stats.failure = ""
        with self._cond:
            self._running = True
            if self._worker is None:
                self._stopping = False
                self._worker = threading.Thread(target=self._work, name="localizer",
                                                daemon=True)
                self._worker.start()
            self._cond.notify_all()
        self._state = "active"
        self.get_logger().info("active")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Unsubscribe and stop taking frames; the frame waiting or in flight is dropped."""
        self._unsubscribe()
        with self._cond:
            self._running = False
            self._generation += 1
            if self._slot is not None:
                self._slot = None
                self.stats.count("dropped_inactive")
            self._cond.notify_all()
        self._state = "inactive"
        return super().on_deactivate(state)

    def _unsubscribe(self) -> None:
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release the model (and its GPU memory), the tile cache and the publishers."""
        loc, self._localizer = self._localizer, None
        with self._cond:
            if self._busy:  # the frame in flight still uses them: released after it
                self._to_release, loc = loc, None
        _release(loc)
        for pub in (self._pose_pub, self._fix_pub):
            if pub is not None:
                self.destroy_lifecycle_publisher(pub)
        if self._debug_pub is not None:
            self.destroy_publisher(self._debug_pub)
        self._pose_pub = self._fix_pub = self._debug_pub = None
        self._state = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop processing."""
        self.stop_worker()
        self._state = "finalized"
        return TransitionCallbackReturn.SUCCESS

    def worker_alive(self) -> bool:
        """Return whether the processing thread is running."""
        return self._worker is not None and self._worker.is_alive()

    @property
    def localizer(self) -> Localizer | None:
        """Return the configured localizer (None before configure)."""
        return self._localizer

    def stop_worker(self, timeout_s: float = 30.0) -> None:
        """End the processing thread at shutdown, after the frame in flight (if any)."""
        with self._cond:
            self._running = False
            self._stopping = True
            self._slot = None
            self._cond.notify_all()
        worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout=timeout_s)
            if worker.is_alive():
                self.get_logger().warning(
                    f"the frame in flight did not finish within {timeout_s:g} s of shutdown")

    # -- subscriptions -------------------------------------------------------------------
    def _subscribe(self) -> None:
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image, Imu, NavSatFix

        qos = qos_profile_sensor_data
        if self._p("image_transport") == "compressed":
            image_sub = self.create_subscription(
                CompressedImage, "image/compressed", self._on_image, qos)
        else:
            image_sub = self.create_subscription(Image, "image", self._on_image, qos)
        self._subs.append(image_sub)
        mode = self._p("image_rectification")
        self._rectified = mode == "rectified" or (
            mode == "auto" and any(part.startswith("image_rect")
                                   for part in image_sub.topic_name.split("/")))
        self._subs.append(self.create_subscription(
            CameraInfo, "camera_info", self._on_camera_info, qos))
        self._subs.append(self.create_subscription(NavSatFix, "fix", self._on_fix, qos))
        source = self._p("heading_source")
        if source == "imu":
            self._subs.append(self.create_subscription(Imu, "imu", self._on_imu, qos))
        elif source == "odom":
            from nav_msgs.msg import Odometry

            self._subs.append(self.create_subscription(Odometry, "odom", self._on_odom, qos))

    def _problem(self, reason: str, message: str, frame: bool = False) -> None:
        self.stats.reject(reason, message, frame)
        if self.stats.should_log(reason, float(self._p("log_throttle_s"))):
            self.get_logger().warning(f"skipped ({reason}): {message}")

    def _on_image(self, msg: Any) -> None:
        self.stats.image_received()
        with self._cond:
            if not self._running:
                self.stats.count("dropped_inactive")
                return
            if self._slot is not None:
                self.stats.count("dropped_stale")
            self._slot = (msg, time.monotonic())
            self._cond.notify_all()

    def _on_camera_info(self, msg: Any) -> None:
        self.stats.count("received_camera_info")
        try:
            camera = conv.camera_info_to_intrinsics(msg, self._rectified)
        except FrameError as exc:
            self._problem(exc.reason, str(exc))
            return
        with self._lock:
            self._camera = camera

    def _on_fix(self, msg: Any) -> None:
        self.stats.count("received_fixes")
        reason = conv.fix_is_valid(msg)
        if reason:
            self._problem(reason, f"fix ({msg.latitude}, {msg.longitude}) status "
                                  f"{msg.status.status} ignored")
            return
        t_ns = _stamp_ns(msg.header.stamp)
        lead = self._fix_lead_ns(t_ns)
        if lead > _MAX_FIX_LEAD_NS:
            self._problem("fix_future", f"fix stamped {lead / 1e9:.1f} s ahead of the newest "
                                        "image or the clock ignored")
            return
        cov, usable = conv.fix_covariance_en(msg, float(self._p("default_fix_std_m")))
        if not usable:
            self._problem("fix_bad_covariance", "fix covariance is not symmetric positive "
                                                "definite; default_fix_std_m used")
        fix = _Fix(t_ns, float(msg.latitude), float(msg.longitude), cov, msg)
        with self._lock:
            self._check_clock(t_ns, "fix")
            i = bisect.bisect_left(self._fix_keys, t_ns)
            if i < len(self._fix_keys) and self._fix_keys[i] == t_ns:
                self._fixes[i] = fix  # a repeated stamp replaces its fix
            else:
                self._fix_keys.insert(i, t_ns)
                self._fixes.insert(i, fix)
            cut = max(bisect.bisect_left(self._fix_keys, self._fix_keys[-1] - _FIX_BUFFER_NS),
                      len(self._fix_keys) - _MAX_FIXES)
            if cut > 0:
                del self._fix_keys[:cut], self._fixes[:cut]
        self._prior_arrived()

    def _fix_lead_ns(self, t_ns: int) -> int:
        """Return how far ``t_ns`` is ahead of the newest image, or of the clock before one."""
        with self._lock:
            image = self._newest_ns.get("image")
        if image is not None:
            return t_ns - image
        now = self.get_clock().now().nanoseconds
        return t_ns - now if now > 0 else 0

    def _prior_arrived(self) -> None:
        """Wake a frame waiting for its fix or heading (never called with ``_lock`` held)."""
        with self._cond:
            self._cond.notify_all()

    def _check_clock(self, t_ns: int, stream: str) -> None:
        """Forget inputs from before a backward clock jump (call with the lock held).

        Each input stream is compared with itself: fixes may lead camera frames by seconds.
        """
        newest = self._newest_ns.get(stream)
        if newest is not None and t_ns < newest - _CLOCK_JUMP_NS:
            self._problem("clock_jump", f"{stream} stamp jumped back "
                                        f"{(newest - t_ns) / 1e9:.1f} s; history reset")
            limit = t_ns + _CLOCK_JUMP_NS
            n = bisect.bisect_right(self._fix_keys, limit)
            del self._fix_keys[n:], self._fixes[n:]
            n = bisect.bisect_right(self._heading_keys, limit)
            del self._heading_keys[n:], self._heading_yaws[n:]
            self._previous = None
            self._newest_ns = {k: min(v, limit) for k, v in self._newest_ns.items()}
            self._newest_ns[stream] = t_ns
        elif newest is None or t_ns > newest:
            self._newest_ns[stream] = t_ns

    def _add_heading(self, stamp: Any, yaw: float, what: str) -> None:
        self.stats.count("received_headings")
        if not math.isfinite(yaw):
            self._problem("bad_heading", f"{what} orientation is not a valid quaternion")
            return
        t_ns = _stamp_ns(stamp)
        with self._lock:
            self._check_clock(t_ns, what)
            keys = self._heading_keys
            i = bisect.bisect_right(keys, t_ns)
            keys.insert(i, t_ns)
            self._heading_yaws.insert(i, yaw)
            cut = max(bisect.bisect_left(keys, keys[-1] - _HEADING_BUFFER_NS),
                      len(keys) - _MAX_HEADINGS)
            if cut > 0:
                del keys[:cut], self._heading_yaws[:cut]
        self._prior_arrived()

    def _on_imu(self, msg: Any) -> None:
        if msg.orientation_covariance[0] == -1.0:
            self._problem("bad_heading", "imu message carries no orientation")
            return
        self._add_heading(msg.header.stamp, conv.quaternion_to_yaw(msg.orientation), "imu")

    def _on_odom(self, msg: Any) -> None:
        self._add_heading(msg.header.stamp, conv.quaternion_to_yaw(msg.pose.pose.orientation),
                          "odom")

    # -- pairing -------------------------------------------------------------------------
    def _prior_complete(self, t_ns: int) -> bool:
        """Return whether a fix, and a heading sample where one is needed, reach ``t_ns``."""
        source = self._p("heading_source")
        with self._lock:
            if not self._fix_keys or self._fix_keys[-1] < t_ns:
                return False
            if source in ("imu", "odom"):
                return bool(self._heading_keys) and self._heading_keys[-1] >= t_ns
        return True

    def _wait_for_prior(self, t_ns: int) -> None:
        """Wait up to ``fix_wait_s`` for the fix and heading at or after an image's stamp.

        Runs on the worker thread: GNSS receivers (and bag players) often deliver a frame's
        fix after its image, and a fix on each side lets the prior be interpolated. The
        executor keeps running the subscriptions meanwhile; they wake this wait.
        """
        wait_s = float(self._p("fix_wait_s"))
        if wait_s <= 0.0 or self._prior_complete(t_ns):
            return
        deadline = time.monotonic() + wait_s
        self.stats.count("waited_for_prior")
        with self._cond:
            while self._running and not self._prior_complete(t_ns):
                left = deadline - time.monotonic()
                if left <= 0.0:
                    return
                self._cond.wait(timeout=left)

    def _pair_fix(self, t_ns: int) -> tuple[float, float, np.ndarray, Any] | None:
        max_age = int(float(self._p("max_fix_age_s")) * 1e9)
        with self._lock:
            i = bisect.bisect_left(self._fix_keys, t_ns)
            before = self._fixes[i - 1] if i > 0 else None
            after = self._fixes[i] if i < len(self._fixes) else None
        if before is None and after is None:
            return None
        if after is not None and after.t_ns == t_ns:
            return after.lat, after.lon, after.cov_en, after.msg
        if before is not None and after is not None and t_ns - before.t_ns <= max_age \
                and after.t_ns - t_ns <= max_age:
            a = (t_ns - before.t_ns) / (after.t_ns - before.t_ns)
            cov = np.maximum(before.cov_en, after.cov_en)
            # Longitudes interpolate the short way round, across +-180 deg as well.
            d_lon = (after.lon - before.lon + 180.0) % 360.0 - 180.0
            lon = (before.lon + a * d_lon + 180.0) % 360.0 - 180.0
            return (before.lat + a * (after.lat - before.lat), lon, cov,
                    before.msg if a < 0.5 else after.msg)
        near = min((f for f in (before, after) if f is not None),
                   key=lambda f: abs(f.t_ns - t_ns))
        if abs(near.t_ns - t_ns) <= max_age:
            return near.lat, near.lon, near.cov_en, near.msg
        return None

    def _heading(self, t_ns: int, lat: float, lon: float) -> tuple[float | None, str | None]:
        """Return (heading or None for a search, problem reason or None)."""
        source = self._p("heading_source")
        max_age = int(float(self._p("max_heading_age_s")) * 1e9)
        if source == "none":
            return None, None
        if source in ("imu", "odom"):
            yaw = self._interpolated_heading(t_ns, max_age)
            return (yaw, None) if yaw is not None else (None, "no_heading")
        if source == "previous":
            prev = self._previous
            if prev is not None and abs(t_ns - prev[0]) <= max_age:
                return prev[1], None
            return None, None  # no recent estimate: search, as with 'none'
        # track: course over ground from an older fix far enough away.
        window = int(float(self._p("track_window_s")) * 1e9)
        min_dist = float(self._p("track_min_distance_m"))
        with self._lock:
            fixes = [f for f in self._fixes if t_ns - window <= f.t_ns <= t_ns]
        for f in reversed(fixes):
            d_lat, d_lon = offset_latlon(f.lat, f.lon, 1.0, 1.0)
            east = (lon - f.lon) / (d_lon - f.lon)
            north = (lat - f.lat) / (d_lat - f.lat)
            if math.hypot(east, north) >= min_dist:
                return math.atan2(north, east), None
        return None, "no_heading"

    def _interpolated_heading(self, t_ns: int, max_age: int) -> float | None:
        """Return the heading at ``t_ns`` between the samples around it, or the nearest one."""
        with self._lock:
            keys, yaws = self._heading_keys, self._heading_yaws
            i = bisect.bisect_left(keys, t_ns)
            before = (keys[i - 1], yaws[i - 1]) if i > 0 else None
            after = (keys[i], yaws[i]) if i < len(keys) else None
        if after is not None and after[0] == t_ns:
            return after[1]
        if before is not None and after is not None and t_ns - before[0] <= max_age \
                and after[0] - t_ns <= max_age:
            a = (t_ns - before[0]) / (after[0] - before[0])
            return wrap_angle(before[1] + a * wrap_angle(after[1] - before[1]))
        near = [h for h in (before, after) if h is not None and abs(h[0] - t_ns) <= max_age]
        return min(near, key=lambda h: abs(h[0] - t_ns))[1] if near else None

    # -- processing ----------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and (not self._running or self._slot is None):
                    self._cond.wait(timeout=0.5)
                if self._stopping:
                    return
                msg, arrival = self._slot
                self._slot = None
                self._busy = True
                generation = self._generation
            try:
                self._process(msg, arrival, generation)
            except FrameError as exc:
                self._problem(exc.reason, str(exc), frame=True)
            except Exception as exc:  # noqa: BLE001 - a bad frame must never stop the node
                self._problem("internal_error", f"{type(exc).__name__}: {exc}", frame=True)
            finally:
                self.stats.count("processed_frames")
                with self._cond:
                    self._busy = False
                    release, self._to_release = self._to_release, None
                _release(release)

    def _process(self, msg: Any, arrival: float, generation: int) -> None:
        loc = self._localizer
        if loc is None:
            return
        t_ns = _stamp_ns(msg.header.stamp)
        with self._lock:
            self._check_clock(t_ns, "image")
            camera = self._camera
        if camera is None:
            raise FrameError("no_camera_info", "no valid camera_info received yet")
        k, dist, w, h = camera
        # The size is checked before any pixel is converted or decoded.
        if hasattr(msg, "format"):
            image = conv.compressed_to_rgb(msg, (w, h))
        else:
            image = conv.image_to_rgb(msg, (w, h))
        self._wait_for_prior(t_ns)
        paired = self._pair_fix(t_ns)
        if paired is None:
            raise FrameError("no_fix", "no valid fix within max_fix_age_s of the image")
        lat, lon, cov_en, fix_msg = paired
        heading, reason = self._heading(t_ns, lat, lon)
        if reason:
            raise FrameError(reason, f"no {self._p('heading_source')} heading within "
                                     "max_heading_age_s of the image")
        keep_debug = self._debug_pub is not None and \
            self._debug_pub.get_subscription_count() > 0
        t0 = time.monotonic()
        estimate = loc.localize(Frame(image, k, dist), Prior(lat, lon, heading, cov_en),
                                self._thresholds, keep_debug=keep_debug)
        inference_ms = (time.monotonic() - t0) * 1000.0
        if keep_debug:
            self._debug_pub.publish(conv.rgb_to_image(loc.debug_image(estimate), msg.header))
        if estimate.rejection:
            raise FrameError(estimate.rejection, self._rejection_text(estimate))
        if generation != self._generation:
            self.stats.count("discarded_inactive")  # deactivated while this frame ran
            return
        self._publish(estimate, msg.header, fix_msg)
        self._previous = (t_ns, estimate.heading_enu_rad)
        self.stats.published((time.monotonic() - arrival) * 1000.0, inference_ms,
                             estimate.coverage)

    def _rejection_text(self, e: PoseEstimate) -> str:
        if e.rejection == "low_confidence":
            return f"mean confidence {e.confidence:.3f} is below min_confidence"
        return (f"estimate moved {e.correction_m:.1f} m ({e.gate_distance:.1f} sigma) from the "
                "prior, outside the gate")

    def _publish(self, estimate: PoseEstimate, image_header: Any, fix_msg: Any) -> None:
        from std_msgs.msg import Header

        header = Header(stamp=image_header.stamp, frame_id=str(self._p("map_frame")))
        self._pose_pub.publish(conv.pose_message(estimate, header))
        fix_header = Header(stamp=image_header.stamp, frame_id=str(self._p("base_frame")))
        self._fix_pub.publish(conv.refined_fix_message(estimate, fix_header, fix_msg))

    def _publish_diagnostics(self) -> None:
        values = self.stats.snapshot()
        values["device"] = self._device
        values["precision"] = str(self._p("precision"))
        values["heading_source"] = str(self._p("heading_source"))
        loc = self._localizer
        if loc is not None and hasattr(loc.model, "iterations"):
            values["iterations"] = str(loc.model.iterations)
        self._diag_pub.publish(diagnostic_array(
            self.get_clock().now().to_msg(), f"{self.get_name()}: localizer",
            self.get_fully_qualified_name(), self._state, values, self.stats.health()))


def _release(loc: Localizer | None) -> None:
    """Close a localizer's tile cache and free the memory its network held (GPU included).

    The localizer is unusable afterwards; callers may still hold a reference to it.
    """
    if loc is None:
        return
    close = getattr(loc.cache, "close", None)
    if close is not None:
        close()
    loc.cache = loc.model = None
    gc.collect()
    if str(loc.device).startswith("cuda"):
        import torch

        torch.cuda.empty_cache()


def _pose_type() -> Any:
    from geometry_msgs.msg import PoseWithCovarianceStamped

    return PoseWithCovarianceStamped


def _diag_type() -> Any:
    from diagnostic_msgs.msg import DiagnosticArray

    return DiagnosticArray


def main(args: list[str] | None = None, model_factory: ModelFactory | None = None) -> int:
    """Run the localizer node until shutdown; exit status 1 on a start-up error."""
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    rclpy.init(args=args)
    try:
        node = LocalizerNode(model_factory=model_factory)
    except ConfigError as exc:
        rclpy.logging.get_logger("localizer").error(str(exc))
        rclpy.try_shutdown()
        return 1
    status = 0
    try:
        if node.get_parameter("autostart").value:
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                return 1
            if node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
                return 1
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.stop_worker()
        node.destroy_node()
        rclpy.try_shutdown()
    return status


if __name__ == "__main__":
    raise SystemExit(main())
