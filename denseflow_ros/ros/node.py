# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The ``localizer_node`` executable: a managed node around :class:`Localizer`.

Camera frames, GNSS fixes and a heading prior in; ``pose`` (PoseWithCovarianceStamped in the
map frame), ``fix_refined`` (NavSatFix), ``/diagnostics`` and ``~/debug/image`` out. The node
maps its parameters to :class:`LocalizerSettings` (configure opens the localizer from them)
and its messages to calls: fixes and headings go into a :class:`PriorBuffer`, which pairs
each frame with the prior around its stamp.

The newest frame waits in a queue of one and is processed on a worker thread, so the executor
keeps serving fixes, parameters and lifecycle requests while the network runs. A frame whose
fix (or heading sample) with the same or a later stamp has not arrived yet waits for it on
that thread, up to ``fix_wait_s``, before it is paired with the fixes around its stamp.

One worker thread lives from the first activation to shutdown; deactivation only stops it
taking frames, so a transition never waits for an inference in flight, and a frame that was
waiting or in flight when the node was deactivated is dropped, not published.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from typing import Any

import rclpy
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

from denseflow_ros.angles import yaw_from_quaternion
from denseflow_ros.debug_view import debug_image
from denseflow_ros.localizer import (
    CameraMount,
    Frame,
    FrameError,
    Localizer,
    LocalizerSettings,
    NetworkFactory,
    PoseEstimate,
    SettingsError,
    Thresholds,
)
from denseflow_ros.prior import Fix, PriorBuffer, PriorRules
from denseflow_ros.ros import conversions as conv
from denseflow_ros.ros.diagnostics import Stats, diagnostic_array
from denseflow_ros.ros.parameters import SPECS, check_choice, descriptor


class ConfigError(Exception):
    """A start-up error in one parameter: one sentence that names it."""


def _stamp_ns(stamp: Any) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


class LocalizerNode(LifecycleNode):
    """Managed localizer node; ``model_factory`` replaces loading ``model_path``."""

    def __init__(self, model_factory: NetworkFactory | None = None, **kwargs: Any) -> None:
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
        self._lock = threading.Lock()  # guards _camera
        self._camera: tuple[Any, Any, int, int] | None = None  # K, distortion, width, height
        self._priors = PriorBuffer()
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
            if "iterations" in new:
                loc.iterations = int(new["iterations"])
            if "fine_stage" in new:
                loc.fine_stage = bool(new["fine_stage"])
        return SetParametersResult(successful=True)

    # -- lifecycle -----------------------------------------------------------------------
    def _failed(self, transition: str, exc: BaseException) -> TransitionCallbackReturn:
        """Log one ERROR line naming the cause of a failed transition; report it as ERROR."""
        if isinstance(exc, SettingsError):  # the settings are named as the parameters
            cause = f"parameter '{exc.param}': {exc.text}"
        elif isinstance(exc, ConfigError):
            cause = str(exc)
        else:
            cause = f"{transition} failed: {type(exc).__name__}: {exc}"
        self.stats.failure = cause[:200]
        self.get_logger().error(cause)
        return TransitionCallbackReturn.FAILURE

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Load the model and open the tile cache; fail with one sentence naming the cause."""
        try:
            self._localizer = Localizer.open(self._settings(), self._model_factory)
        except Exception as exc:  # noqa: BLE001 - every cause is reported, none is fatal
            return self._failed("configure", exc)
        self._device = self._localizer.device
        if self._localizer.runs_fp32_for_fp16:
            self.get_logger().warning("precision fp16 needs CUDA; running fp32 on the CPU")
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

    def _settings(self) -> LocalizerSettings:
        """Return the localizer's settings from the parameters ([0, 0] datum: the first fix)."""
        datum = [float(v) for v in self._p("datum")]
        return LocalizerSettings(
            model_path=str(self._p("model_path")), preset=str(self._p("preset")),
            device=str(self._p("device")), precision=str(self._p("precision")),
            tile_cache=str(self._p("tile_cache")), tile_cache_mb=int(self._p("tile_cache_mb")),
            map_projection=str(self._p("map_projection")),
            yaw_hypotheses=int(self._p("yaw_hypotheses")),
            datum=None if datum == [0.0, 0.0] else datum, utm_zone=int(self._p("utm_zone")),
            iterations=int(self._p("iterations")), fine_stage=bool(self._p("fine_stage")),
            camera_height_m=float(self._p("camera_height_m")),
            mount=CameraMount(
                camera_x_m=float(self._p("camera_x_m")), camera_y_m=float(self._p("camera_y_m")),
                antenna_x_m=float(self._p("antenna_x_m")),
                antenna_y_m=float(self._p("antenna_y_m"))),
        )

    def _prior_rules(self) -> PriorRules:
        return PriorRules(
            heading_source=str(self._p("heading_source")),
            max_fix_age_s=float(self._p("max_fix_age_s")),
            max_heading_age_s=float(self._p("max_heading_age_s")),
            track_window_s=float(self._p("track_window_s")),
            track_min_distance_m=float(self._p("track_min_distance_m")),
        )

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
        if loc is not None:
            loc.close()
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
        cov, usable = conv.fix_covariance_en(msg, float(self._p("default_fix_std_m")))
        fix = Fix(_stamp_ns(msg.header.stamp), float(msg.latitude), float(msg.longitude), cov,
                  msg)
        problem = self._priors.add_fix(fix, self.get_clock().now().nanoseconds)
        if problem is not None and problem.reason == "fix_future":
            self._problem(problem.reason, problem.message)
            return
        if not usable:
            self._problem("fix_bad_covariance", "fix covariance is not symmetric positive "
                                                "definite; default_fix_std_m used")
        if problem is not None:
            self._problem(problem.reason, problem.message)
        self._prior_arrived()

    def _prior_arrived(self) -> None:
        """Wake a frame waiting for its fix or heading."""
        with self._cond:
            self._cond.notify_all()

    def _add_heading(self, stamp: Any, q: Any, what: str) -> None:
        self.stats.count("received_headings")
        yaw = yaw_from_quaternion(q.x, q.y, q.z, q.w)
        if not math.isfinite(yaw):
            self._problem("bad_heading", f"{what} orientation is not a valid quaternion")
            return
        problem = self._priors.add_heading(_stamp_ns(stamp), yaw, what)
        if problem is not None:
            self._problem(problem.reason, problem.message)
        self._prior_arrived()

    def _on_imu(self, msg: Any) -> None:
        if msg.orientation_covariance[0] == -1.0:
            self._problem("bad_heading", "imu message carries no orientation")
            return
        self._add_heading(msg.header.stamp, msg.orientation, "imu")

    def _on_odom(self, msg: Any) -> None:
        self._add_heading(msg.header.stamp, msg.pose.pose.orientation, "odom")

    # -- pairing -------------------------------------------------------------------------
    def _wait_for_prior(self, t_ns: int, rules: PriorRules) -> None:
        """Wait up to ``fix_wait_s`` for the fix and heading at or after an image's stamp.

        Runs on the worker thread: GNSS receivers (and bag players) often deliver a frame's
        fix after its image, and a fix on each side lets the prior be interpolated. The
        executor keeps running the subscriptions meanwhile; they wake this wait.
        """
        wait_s = float(self._p("fix_wait_s"))
        if wait_s <= 0.0 or self._priors.covers(t_ns, rules):
            return
        deadline = time.monotonic() + wait_s
        self.stats.count("waited_for_prior")
        with self._cond:
            while self._running and not self._priors.covers(t_ns, rules):
                left = deadline - time.monotonic()
                if left <= 0.0:
                    return
                self._cond.wait(timeout=left)

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
                if release is not None:
                    release.close()

    def _process(self, msg: Any, arrival: float, generation: int) -> None:
        loc = self._localizer
        if loc is None:
            return
        t_ns = _stamp_ns(msg.header.stamp)
        problem = self._priors.note_image(t_ns)
        if problem is not None:
            self._problem(problem.reason, problem.message)
        with self._lock:
            camera = self._camera
        if camera is None:
            raise FrameError("no_camera_info", "no valid camera_info received yet")
        k, dist, w, h = camera
        # The size is checked before any pixel is converted or decoded.
        if hasattr(msg, "format"):
            image = conv.compressed_to_rgb(msg, (w, h))
        else:
            image = conv.image_to_rgb(msg, (w, h))
        rules = self._prior_rules()
        self._wait_for_prior(t_ns, rules)
        prior, fix = self._priors.prior_at(t_ns, rules)
        keep_debug = self._debug_pub is not None and \
            self._debug_pub.get_subscription_count() > 0
        t0 = time.monotonic()
        estimate = loc.localize(Frame(image, k, dist), prior, self._thresholds,
                                keep_debug=keep_debug)
        inference_ms = (time.monotonic() - t0) * 1000.0
        if keep_debug:
            self._debug_pub.publish(conv.rgb_to_image(debug_image(estimate, loc.geometry),
                                                      msg.header))
        estimate.raise_rejection()
        if generation != self._generation:
            self.stats.count("discarded_inactive")  # deactivated while this frame ran
            return
        self._publish(estimate, msg.header, fix.source)
        self._priors.remember_estimate(t_ns, estimate.heading_enu_rad)
        self.stats.published((time.monotonic() - arrival) * 1000.0, inference_ms,
                             estimate.coverage)

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
        if loc is not None:
            values.update(loc.status())
        self._diag_pub.publish(diagnostic_array(
            self.get_clock().now().to_msg(), f"{self.get_name()}: localizer",
            self.get_fully_qualified_name(), self._state, values, self.stats.health()))


def _pose_type() -> Any:
    from geometry_msgs.msg import PoseWithCovarianceStamped

    return PoseWithCovarianceStamped


def _diag_type() -> Any:
    from diagnostic_msgs.msg import DiagnosticArray

    return DiagnosticArray


def main(args: list[str] | None = None, model_factory: NetworkFactory | None = None) -> int:
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
