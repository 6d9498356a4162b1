# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``denseflow evaluate``: score published poses against a recording's ground truth.

The recording is a bag made by ``denseflow bag`` (or ``denseflow sim``): ground truth as
PoseStamped in a local ENU frame whose datum is in the bag's metadata, the GNSS fix and the
IMU. The poses come from a bag (``--poses BAG``, e.g. made by ``denseflow record``) or live
from a topic (``--poses /topic``), as PoseWithCovarianceStamped, PoseStamped or Odometry in
the localizer's map frame (``--map-projection enu`` at ``--datum``, by default the bag's
datum, or ``utm``).

Each pose is matched to the ground truth with the nearest stamp (within ``--max-dt-s``); its
prior is the one the node pairs with a frame of that stamp: the fixes and the IMU headings
on either side of the stamp are interpolated by :mod:`denseflow_ros.prior` (the nearest within
``--max-prior-dt-s`` when one side is missing), and the position is moved from the antenna to
``base_link`` by :func:`denseflow_ros.prior.base_link_latlon`. Map frames are the
localizer's :class:`denseflow_ros.geo.mapframe.MapFrame`. Prior and estimate are scored with
:mod:`denseflow_ros.metrics`, the code ``training/`` uses, and printed side by side.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from denseflow_ros.geo.mapframe import MapFrame
from denseflow_ros.geo.projection import offset_latlon
from denseflow_ros.localizer import CameraMount, FrameError
from denseflow_ros.prior import Fix, PriorBuffer, PriorRules, base_link_latlon, fix_problem
from denseflow_ros.tools import record as record_tool
from denseflow_ros.tools import replay_dds

LOG = logging.getLogger("denseflow.evaluate")
POSE_TYPES = (
    "geometry_msgs/msg/PoseWithCovarianceStamped",
    "geometry_msgs/msg/PoseStamped",
    "nav_msgs/msg/Odometry",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``denseflow evaluate`` options."""
    parser.add_argument("--bag", type=Path, required=True,
                        help="the recording with ground truth, fix and IMU")
    parser.add_argument("--poses", required=True,
                        help="a bag holding the poses, or a topic to record them from live")
    parser.add_argument("--poses-topic", default=None,
                        help="pose topic inside the poses bag (default: its only pose topic)")
    parser.add_argument("--save-poses", type=Path, default=None,
                        help="with a live topic: also write the received poses to this bag")
    parser.add_argument("--json", type=Path, default=None, help="write the results document")
    parser.add_argument("--plot", type=Path, default=None, help="write a trajectory plot (PNG)")
    parser.add_argument("--csv", type=Path, default=None,
                        help="write per-frame poses and errors (ENU metres, degrees)")
    parser.add_argument("--ground-truth-topic", default=None,
                        help="default: the bag's ground_truth_topic metadata")
    parser.add_argument("--fix-topic", default=None, help="default: the bag's fix_topic")
    parser.add_argument("--imu-topic", default=None, help="default: the bag's imu_topic")
    parser.add_argument("--map-projection", choices=("enu", "utm"), default="enu",
                        help="the poses' map frame (the localizer's map_projection)")
    parser.add_argument("--datum", default=None, metavar="LAT,LON",
                        help="the poses' ENU datum (default: the bag's ground-truth datum)")
    parser.add_argument("--utm-zone", type=int, default=0,
                        help="UTM zone of the poses (0: from the datum, as the localizer); "
                             "the hemisphere is the datum's")
    parser.add_argument("--max-dt-s", type=float, default=0.05,
                        help="largest stamp difference between a pose and its ground truth")
    parser.add_argument("--max-prior-dt-s", type=float, default=0.5,
                        help="largest stamp difference between a pose and the fixes and IMU "
                             "samples its prior is interpolated from (the node's "
                             "max_fix_age_s and max_heading_age_s)")
    parser.add_argument("--antenna-x-m", type=float, default=0.0,
                        help="GNSS antenna position in base_link, forward (as the localizer)")
    parser.add_argument("--antenna-y-m", type=float, default=0.0,
                        help="GNSS antenna position in base_link, left")
    record_tool.add_stop_arguments(parser)
    parser.set_defaults(idle_timeout=LIVE_IDLE_TIMEOUT_S)
    replay_dds.add_dds_arguments(parser)


# A live pose topic is recorded until no pose arrived for this long (``--idle-timeout``).
LIVE_IDLE_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class EvaluateOptions:
    """How poses are read and matched; the fields follow ``denseflow evaluate``'s options.

    Topics left None come from the recording's metadata; ``datum`` None is the recording's
    ground-truth datum. ``live`` ends the recording of a live pose topic; ``dds`` and
    ``domain_id`` set up DDS for it.
    """

    poses_topic: str | None = None
    save_poses: Path | None = None
    ground_truth_topic: str | None = None
    fix_topic: str | None = None
    imu_topic: str | None = None
    map_projection: str = "enu"
    datum: tuple[float, float] | None = None
    utm_zone: int = 0
    max_dt_s: float = 0.05
    max_prior_dt_s: float = 0.5
    antenna_x_m: float = 0.0
    antenna_y_m: float = 0.0
    live: record_tool.StopRules = field(
        default_factory=lambda: record_tool.StopRules(idle_timeout_s=LIVE_IDLE_TIMEOUT_S))
    dds: str = "auto"
    domain_id: int | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> EvaluateOptions:
        """Return the options of a ``denseflow evaluate`` command line."""
        from denseflow_ros.tools.bag_common import latlon_arg

        return cls(
            poses_topic=args.poses_topic, save_poses=args.save_poses,
            ground_truth_topic=args.ground_truth_topic, fix_topic=args.fix_topic,
            imu_topic=args.imu_topic, map_projection=args.map_projection,
            datum=latlon_arg(args.datum) if args.datum else None, utm_zone=args.utm_zone,
            max_dt_s=args.max_dt_s, max_prior_dt_s=args.max_prior_dt_s,
            antenna_x_m=args.antenna_x_m, antenna_y_m=args.antenna_y_m,
            live=record_tool.StopRules.from_args(args), dds=args.dds, domain_id=args.domain_id)


@dataclass
class Counts:
    """How many poses were read, matched, and why the others were not."""

    poses: int
    without_ground_truth: int = 0
    without_prior: int = 0
    ground_truth_frames: int = 0
    matched: int = 0


# (lateral m, longitudinal m, yaw deg) per matched pose, as metrics.pose_errors returns them.
Errors = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass
class Evaluation:
    """The results document and, per matched pose, the poses compared and their errors.

    ``truth``, ``estimate`` and ``prior`` are (N, 3) east, north (m), yaw (rad) in the
    recording's ENU frame; ``covariance`` (N, 3, 3) of (x, y, yaw) when every pose has one.
    """

    doc: dict[str, Any]
    counts: Counts
    stamps: list[int]
    truth: np.ndarray
    estimate: np.ndarray
    prior: np.ndarray
    prior_errors: Errors
    estimate_errors: Errors
    ground_truth_track: np.ndarray  # (M, 2) east, north of every ground-truth sample
    covariance: np.ndarray | None


@dataclass
class Track:
    """Time-sorted planar poses: stamps (ns), east/north (m), yaw (rad; NaN when unknown)."""

    stamps: np.ndarray
    east: np.ndarray
    north: np.ndarray
    yaw: np.ndarray

    @classmethod
    def build(cls, rows: list[tuple[int, float, float, float, Any]]) -> Track:
        """Build from (stamp_ns, east, north, yaw) rows in any order."""
        rows = sorted(rows)
        arr = np.array([r[1:] for r in rows], dtype=np.float64).reshape(-1, 3)
        return cls(np.array([r[0] for r in rows], dtype=np.int64), arr[:, 0], arr[:, 1],
                   arr[:, 2])

    def nearest(self, stamp_ns: int, max_dt_s: float) -> int | None:
        """Return the index of the sample nearest ``stamp_ns`` within ``max_dt_s``, or None."""
        if self.stamps.size == 0:
            return None
        i = int(np.searchsorted(self.stamps, stamp_ns))
        best = min((j for j in (i - 1, i) if 0 <= j < self.stamps.size),
                   key=lambda j: abs(int(self.stamps[j]) - stamp_ns))
        return best if abs(int(self.stamps[best]) - stamp_ns) <= max_dt_s * 1e9 else None


_TOPIC = re.compile(r"^(/[A-Za-z_~][A-Za-z0-9_]*)+$")


def is_topic(text: str) -> bool:
    """Return whether ``text`` names a topic rather than a bag.

    An existing path, or one under an existing top-level folder (``/home/me/poses``), is a
    bag; any other absolute ROS name is a topic.
    """
    if Path(text).exists() or not _TOPIC.match(text):
        return False
    parts = text.strip("/").split("/")
    return len(parts) == 1 or not Path("/", parts[0]).is_dir()


def _custom_data(bag: Path) -> dict[str, str]:
    import yaml

    meta_path = bag / "metadata.yaml"
    if not meta_path.is_file():
        return {}
    info = yaml.safe_load(meta_path.read_text()) or {}
    return dict(info.get("rosbag2_bagfile_information", {}).get("custom_data") or {})


def _pose_fields(msg: Any) -> tuple[Any, Any]:
    """Return (position, orientation) of a PoseStamped, PoseWithCovarianceStamped or Odometry."""
    pose = msg.pose
    if hasattr(pose, "pose"):
        pose = pose.pose
    return pose.position, pose.orientation


def _pose_covariance(msg: Any) -> np.ndarray | None:
    """Return the (3, 3) covariance of (x, y, yaw) of a pose message, or None without one."""
    pose = msg.pose
    if not hasattr(pose, "covariance"):
        return None
    c = np.asarray(pose.covariance, dtype=np.float64).reshape(6, 6)
    return c[np.ix_([0, 1, 5], [0, 1, 5])]


def _yaw(q: Any) -> float:
    from denseflow_ros.bagio import yaw_from_quaternion

    return yaw_from_quaternion(q.x, q.y, q.z, q.w)


def _bag_pose(bag: MapFrame, lat: float, lon: float, yaw_enu: float
              ) -> tuple[float, float, float]:
    """Return (east, north, yaw) in the bag frame of a pose at (lat, lon) with an ENU yaw."""
    # The yaw is carried over numerically: a 1 m step along it, projected.
    lat1, lon1 = offset_latlon(lat, lon, math.cos(yaw_enu), math.sin(yaw_enu))
    e, n = bag.forward(lat, lon)
    e1, n1 = bag.forward(lat1, lon1)
    return e, n, math.atan2(n1 - n, e1 - e)


def _map_to_bag(frame: MapFrame, bag: MapFrame, x: float, y: float, yaw: float
                ) -> tuple[float, float, float]:
    """Return (east, north, yaw) in the bag frame of a pose in the map frame."""
    if frame.kind == "enu" and frame.datum == bag.datum:
        return x, y, yaw
    # The yaw is carried over numerically: a 1 m step along it, in both frames.
    lat, lon = frame.inverse(x, y)
    lat1, lon1 = frame.inverse(x + math.cos(yaw), y + math.sin(yaw))
    e, n = bag.forward(lat, lon)
    e1, n1 = bag.forward(lat1, lon1)
    return e, n, math.atan2(n1 - n, e1 - e)


@dataclass
class _PriorInputs:
    """A recording's fixes and IMU headings (stamp ns, ENU rad) the node would keep, by stamp."""

    fixes: list[Fix]
    headings: list[tuple[int, float]]


def _fix_is_usable(msg: Any) -> bool:
    """Return whether the node keeps a NavSatFix: not NO_FIX, finite and within tile range."""
    return fix_problem(msg.status.status, msg.latitude, msg.longitude) is None


def _read_reference(bag: Path, options: EvaluateOptions, custom: dict[str, str]
                    ) -> tuple[Track, _PriorInputs, tuple[float, float]]:
    """Read ground truth, the fixes and the IMU headings from the bag, and its datum."""
    from denseflow_ros import bagio

    try:
        bag_datum = (float(custom["datum_lat"]), float(custom["datum_lon"]))
    except (KeyError, ValueError):
        raise ValueError(f"{bag} has no datum_lat/datum_lon metadata; it was not made by "
                         "denseflow bag or denseflow sim") from None
    gt_topic = options.ground_truth_topic or custom.get("ground_truth_topic")
    fix_topic = options.fix_topic or custom.get("fix_topic")
    imu_topic = options.imu_topic or custom.get("imu_topic")
    if not gt_topic or not fix_topic:
        raise ValueError("give --ground-truth-topic and --fix-topic (the bag's metadata "
                         "does not name them)")
    gt_rows, fixes, headings = [], [], []
    wanted = [t for t in (gt_topic, fix_topic, imu_topic) if t]
    for item in bagio.iter_messages(bag, wanted):
        msg = item.msg
        stamp = bagio.stamp_to_ns(msg.header.stamp)
        if item.topic == gt_topic:
            position, orientation = _pose_fields(msg)
            gt_rows.append((stamp, position.x, position.y, _yaw(orientation)))
        elif item.topic == fix_topic:
            if _fix_is_usable(msg):
                # The covariance rides along; the score does not use it.
                cov = np.asarray(msg.position_covariance, dtype=np.float64).reshape(3, 3)
                fixes.append(Fix(stamp, float(msg.latitude), float(msg.longitude),
                                 cov[:2, :2]))
        elif msg.orientation_covariance[0] != -1.0:
            yaw = _yaw(msg.orientation)
            if math.isfinite(yaw):
                headings.append((stamp, yaw))
    if not gt_rows:
        raise ValueError(f"{bag} has no ground truth on {gt_topic}")
    inputs = _PriorInputs(sorted(fixes, key=lambda f: f.t_ns), sorted(headings))
    return Track.build(gt_rows), inputs, bag_datum


def _priors(stamps: list[int], inputs: _PriorInputs, options: EvaluateOptions, bag: MapFrame
            ) -> list[tuple[float, float, float] | None]:
    """Return the prior of ``base_link`` at each stamp (ascending) in the bag frame.

    Each is the node's: its :class:`PriorBuffer` is fed the inputs up to ``max_prior_dt_s``
    past the stamp (those the node waits for) and asked for the IMU-heading prior, which is
    then moved off the antenna. None where the node would have no fix or heading.
    """
    rules = PriorRules(heading_source="imu", max_fix_age_s=options.max_prior_dt_s,
                       max_heading_age_s=options.max_prior_dt_s,
                       track_window_s=0.0, track_min_distance_m=0.0)
    mount = CameraMount(antenna_x_m=options.antenna_x_m, antenna_y_m=options.antenna_y_m)
    lead_ns = int(options.max_prior_dt_s * 1e9)
    buffer = PriorBuffer()
    fixes, headings = inputs.fixes, inputs.headings
    f = h = 0
    out: list[tuple[float, float, float] | None] = []
    for stamp in stamps:
        buffer.note_image(stamp)
        while f < len(fixes) and fixes[f].t_ns <= stamp + lead_ns:
            buffer.add_fix(fixes[f])
            f += 1
        while h < len(headings) and headings[h][0] <= stamp + lead_ns:
            buffer.add_heading(*headings[h], "imu")
            h += 1
        try:
            prior, _ = buffer.prior_at(stamp, rules)
        except FrameError:
            out.append(None)
            continue
        assert prior.heading_rad is not None  # an imu heading, or FrameError
        out.append(_bag_pose(bag, *base_link_latlon(prior, mount), prior.heading_rad))
    return out


def _choose_pose_topic(path: Path, requested: str | None) -> str:
    from denseflow_ros import bagio

    topics = bagio.bag_topics(path)
    if requested:
        if requested not in topics:
            raise ValueError(f"{path} has no topic {requested}")
        return requested
    candidates = [t for t, (typ, _) in topics.items() if typ in POSE_TYPES]
    if len(candidates) != 1:
        raise ValueError(f"{path} has {len(candidates)} pose topics ({', '.join(candidates)}); "
                         "choose one with --poses-topic")
    return candidates[0]


def _read_poses_bag(path: Path, topic: str) -> list[tuple[int, float, float, float, Any]]:
    from denseflow_ros import bagio

    rows = []
    for item in bagio.iter_messages(path, [topic]):
        position, orientation = _pose_fields(item.msg)
        rows.append((bagio.stamp_to_ns(item.msg.header.stamp), position.x, position.y,
                     _yaw(orientation), _pose_covariance(item.msg)))
    return rows


def _record_poses(topic: str, options: EvaluateOptions, stop: threading.Event
                  ) -> list[tuple[int, float, float, float, Any]]:
    """Record the pose topic live (until ``stop`` or a stop rule) and return its poses."""
    from denseflow_ros import bagio
    from denseflow_ros.bagio import BagWriter

    LOG.info("DDS: %s", replay_dds.apply_env(options.dds, options.domain_id))
    store = bagio.typestore("humble")
    received: list[tuple[str, bytes]] = []
    writer = None
    try:
        if options.save_poses is not None:
            writer = BagWriter(options.save_poses, "mcap",
                               metadata={"recorded_by": "denseflow evaluate"})
            writer.open()

        def on_message(topic: str, msg_type: str, receive_ns: int, data: bytes) -> None:
            received.append((msg_type, data))
            if writer is not None:
                writer.write(topic, msg_type, receive_ns, data)

        summary = record_tool.record([topic], on_message, options.live, stop)
        if writer is not None:
            writer.close()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    LOG.info("received %d poses on %s", summary.received[topic], topic)
    rows = []
    for msg_type, data in received:
        if msg_type not in POSE_TYPES:
            raise ValueError(f"{topic} carries {msg_type}, not a pose type")
        msg = store.deserialize_cdr(data, msg_type)
        position, orientation = _pose_fields(msg)
        rows.append((bagio.stamp_to_ns(msg.header.stamp), position.x, position.y,
                     _yaw(orientation), _pose_covariance(msg)))
    return rows


def _read_poses(poses: str | Path, options: EvaluateOptions, stop: threading.Event
                ) -> list[tuple[int, float, float, float, Any]]:
    """Return (stamp, x, y, yaw, covariance) rows from a poses bag or a live topic."""
    if is_topic(str(poses)):
        return _record_poses(str(poses), options, stop)
    path = Path(poses)
    if not path.exists():
        raise ValueError(f"poses bag {poses} does not exist")
    return _read_poses_bag(path, _choose_pose_topic(path, options.poses_topic))


def evaluate(bag: Path, poses: str | Path, options: EvaluateOptions,
             stop: threading.Event | None = None) -> Evaluation:
    """Score ``poses`` (a bag, or a topic recorded live until ``stop``) against ``bag``."""
    from denseflow_ros import metrics

    bag = Path(bag)
    custom = _custom_data(bag)
    truth, inputs, bag_datum = _read_reference(bag, options, custom)
    rows = sorted(_read_poses(poses, options, stop or threading.Event()), key=lambda r: r[:4])
    bag_frame = MapFrame("enu", bag_datum)
    map_frame = MapFrame(options.map_projection, options.datum or bag_datum, options.utm_zone)
    prior_of = _priors([r[0] for r in rows], inputs, options, bag_frame)

    est, pri, tru, covs, matched_stamps = [], [], [], [], []
    counts = Counts(poses=len(rows))
    for (stamp, x, y, yaw, cov), prior in zip(rows, prior_of, strict=True):
        g = truth.nearest(stamp, options.max_dt_s)
        if g is None:
            counts.without_ground_truth += 1
            continue
        if prior is None:
            counts.without_prior += 1
            continue
        pri.append(prior)
        est.append(_map_to_bag(map_frame, bag_frame, x, y, yaw))
        if cov is not None:
            # The map frame may be turned against the bag's (UTM grid convergence).
            turn = est[-1][2] - yaw
            c, s = math.cos(turn), math.sin(turn)
            r = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
            covs.append(r @ cov @ r.T)
        tru.append((truth.east[g], truth.north[g], truth.yaw[g]))
        matched_stamps.append(stamp)
    if not est:
        raise ValueError(
            f"none of the {len(rows)} poses matched ground truth within {options.max_dt_s} s "
            f"and a prior within {options.max_prior_dt_s} s")
    e, p, t = (np.array(v, dtype=np.float64) for v in (est, pri, tru))
    prior_errors = metrics.pose_errors(p[:, 0], p[:, 1], p[:, 2], t[:, 0], t[:, 1], t[:, 2])
    estimate_errors = metrics.pose_errors(e[:, 0], e[:, 1], e[:, 2], t[:, 0], t[:, 1],
                                          t[:, 2])
    doc = metrics.evaluate_errors(prior_errors, estimate_errors)
    if len(covs) == len(est):
        cov = np.array(covs)
        dyaw = (e[:, 2] - t[:, 2] + math.pi) % (2 * math.pi) - math.pi
        doc["consistency"] = metrics.consistency(e[:, :2] - t[:, :2], cov[:, :2, :2], dyaw,
                                                 cov[:, 2, 2])
    counts.ground_truth_frames = int(truth.stamps.size)
    counts.matched = int(e.shape[0])
    return Evaluation(doc, counts, matched_stamps, t, e, p, prior_errors, estimate_errors,
                      np.stack([truth.east, truth.north], axis=1),
                      np.array(covs) if len(covs) == len(est) else None)


def write_csv(result: Evaluation, path: Path) -> None:
    """Write one row per matched pose: stamp, truth, estimate, prior and their errors."""
    import csv

    columns = ["stamp_ns", "true_east_m", "true_north_m", "true_yaw_deg", "est_east_m",
               "est_north_m", "est_yaw_deg", "prior_east_m", "prior_north_m", "prior_yaw_deg",
               "est_lateral_m", "est_longitudinal_m", "est_yaw_err_deg", "prior_lateral_m",
               "prior_longitudinal_m", "prior_yaw_err_deg"]
    with path.open("w", newline="") as stream:
        out = csv.writer(stream)
        out.writerow(columns)
        for k, stamp in enumerate(result.stamps):
            row: list[float] = []
            for track in (result.truth, result.estimate, result.prior):
                row += [track[k, 0], track[k, 1], math.degrees(track[k, 2])]
            for errors in (result.estimate_errors, result.prior_errors):
                row += [float(errors[0][k]), float(errors[1][k]), float(errors[2][k])]
            out.writerow([stamp, *(f"{v:.6f}" for v in row)])


def main(args: argparse.Namespace) -> int:
    """Evaluate, print the metrics table and write the JSON and plot when asked."""
    from denseflow_ros import metrics
    from denseflow_ros.bagio import BagError

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # Ctrl-C ends a live recording and scores what arrived; over a bag it interrupts.
    stop, restore = (record_tool.install_stop_handlers() if is_topic(args.poses)
                     else (threading.Event(), lambda: None))
    try:
        result = evaluate(args.bag, args.poses, EvaluateOptions.from_args(args), stop)
    except (ValueError, argparse.ArgumentTypeError, BagError, OSError) as err:
        print(f"denseflow evaluate: {err}", file=sys.stderr)
        return 1
    finally:
        restore()
    doc, counts = result.doc, result.counts
    print(metrics.format_table(doc))
    print(f"matched {counts.matched} of {counts.poses} poses "
          f"({counts.without_ground_truth} without ground truth, "
          f"{counts.without_prior} without a prior); "
          f"{counts.ground_truth_frames} ground-truth frames")
    if args.json is not None:
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    if args.csv is not None:
        write_csv(result, args.csv)
    if args.plot is not None:
        from denseflow_ros.plots import plot_trajectory

        plot_trajectory(result.ground_truth_track, result.prior, result.estimate, args.plot,
                        f"{Path(args.bag).name}: "
                        f"{doc['estimate']['distance_median_m']:.2f} m median error")
    return 0
