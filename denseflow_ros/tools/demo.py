# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``denseflow demo``: the localizer end to end on the synthetic demo drive.

1. The scenario of ``config/demo.yaml`` (section ``denseflow_demo``): a town and a drive
   through it, held out from the demo network's training, exported as a tile cache and a
   rosbag2. Cached under ``--work-dir`` (default ``.cache/demo``); later runs reuse it.
2. ``localizer_node`` as its own process with ``--ros-args --params-file config/demo.yaml``
   plus the scenario's model, tile cache and datum, on loopback DDS
   (:func:`denseflow_ros.dds.loopback_env`, the environment's ``ROS_DOMAIN_ID`` or 43).
3. ``denseflow replay`` publishes the drive; this process records ``/pose`` and
   ``/diagnostics`` (:func:`denseflow_ros.tools.record.record`) and scores the poses with
   :func:`denseflow_ros.tools.evaluate.evaluate`, prior beside estimate.

Writes to ``--output`` (default ``demo-output``): ``summary.json`` (the results document of
:mod:`denseflow_ros.metrics` plus ``accepted_fraction``: poses published per frame replayed,
and ``latency_ms_median``: per frame, from its publication by the player to its pose's
arrival, over DDS on this host), ``trajectory.png``, ``errors.png``, ``frames.csv``,
``run.json`` (scenario, model, node counters, latencies, timings), the recorded ``poses`` bag
and the node's and player's logs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

DEFAULT_DOMAIN = 43
NODE_START_TIMEOUT_S = 300.0
DRAIN_TIMEOUT_S = 60.0
SCENARIO_SECTION = "denseflow_demo"
SCENARIO_DEFAULTS: dict[str, Any] = {
    "world_seed": 0, "world_size_m": 600.0, "drive_seed": 0, "frames": 240, "rate_hz": 1.0,
    "image_size": [1242, 375], "replay_rate": 2.0,
}
INPUTS = ("camera_info", "fix", "imu", "image")
# How export_bag logs a frame's messages (all at the frame's stamp); part of the drive cache.
BAG_ORDER = "fix,imu,camera_info,image,ground_truth"


class DemoError(Exception):
    """A reason the demo cannot go on, in one sentence."""


def _default_config() -> Path:
    here = Path(__file__).resolve().parents[2] / "config" / "demo.yaml"
    if here.is_file():
        return here
    return Path(sys.prefix) / "share" / "denseflow_ros" / "config" / "demo.yaml"


def _default_model() -> Path:
    from importlib import resources

    return Path(str(resources.files("denseflow_ros").joinpath("resources", "demo_lite.pt")))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``denseflow demo`` options."""
    parser.add_argument("--frames", type=int, default=None,
                        help="replay only the drive's first N frames (a short run)")
    parser.add_argument("--output", type=Path, default=Path("demo-output"),
                        help="folder for summary.json, the plots and logs (default %(default)s)")
    parser.add_argument("--work-dir", type=Path, default=Path(".cache/demo"),
                        help="scenario cache (default %(default)s)")
    parser.add_argument("--model", type=Path, default=None,
                        help="DenseFlow checkpoint (default: the bundled demo_lite.pt)")
    parser.add_argument("--config", type=Path, default=None,
                        help="node parameters and scenario (default: config/demo.yaml)")
    parser.add_argument("--world-size-m", type=float, default=None,
                        help="side of the town (default: the config's; smaller is faster)")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the classical NCC column (about 0.25 s per frame)")


# -- scenario ------------------------------------------------------------------------------


def read_scenario(config: Path) -> dict[str, Any]:
    """Return the config's ``denseflow_demo`` settings over the defaults."""
    import yaml

    try:
        doc = yaml.safe_load(config.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise DemoError(f"cannot read the demo config {config}: {exc}") from None
    section = (doc.get(SCENARIO_SECTION) or {}).get("ros__parameters") or {}
    unknown = sorted(set(section) - set(SCENARIO_DEFAULTS))
    if unknown:
        raise DemoError(f"{config}: unknown {SCENARIO_SECTION} settings {', '.join(unknown)}")
    return {**SCENARIO_DEFAULTS, **section}


def _progress_enabled() -> bool:
    return sys.stderr.isatty()


def _first_frames(drive: Any, n: int) -> Any:
    """Return the drive cut to its first ``n`` frames (the same route and priors)."""
    import numpy as np

    arrays = {f.name: getattr(drive, f.name)[:n] for f in dataclasses.fields(drive)
              if isinstance(getattr(drive, f.name), np.ndarray)}
    return dataclasses.replace(drive, **arrays)


def _bag_order(drive_info: Path) -> str | None:
    """Return the message order a cached drive's bag was logged in (None: none, or unknown)."""
    try:
        return json.loads(drive_info.read_text()).get("bag_order")
    except (OSError, ValueError, AttributeError):
        return None


def prepare_scenario(scenario: dict[str, Any], frames: int, work_dir: Path) -> dict[str, Any]:
    """Generate (or reuse) the town's tile cache and the drive's bag; return their paths.

    The town (tile cache, orthophoto) is cached per seed and size, the bag per drive and
    frame count; a ``scenario.json`` written last marks each as complete (a drive's also
    records the bag's message order, :data:`BAG_ORDER`: a bag logged in another order is
    exported again).
    """
    from denseflow_ros.sim import export_bag, export_tiles, generate_world, simulate_drive

    seed, size_m = int(scenario["world_seed"]), float(scenario["world_size_m"])
    width, height = (int(v) for v in scenario["image_size"])
    town_dir = work_dir / f"town{seed}-{size_m:g}m"
    drive_dir = town_dir / (f"drive{int(scenario['drive_seed'])}-{frames}of"
                            f"{int(scenario['frames'])}-{float(scenario['rate_hz']):g}hz-"
                            f"{width}x{height}")
    town_info, drive_info = town_dir / "scenario.json", drive_dir / "scenario.json"
    world = None
    if not town_info.is_file():
        print(f"demo: generating town {seed} ({size_m:g} m square)", file=sys.stderr,
              flush=True)
        import cv2

        world = generate_world(seed, size_m=size_m)
        town_dir.mkdir(parents=True, exist_ok=True)
        (town_dir / "tiles.mbtiles").unlink(missing_ok=True)  # an interrupted export
        export_tiles(world, town_dir / "tiles.mbtiles", progress=_progress_enabled())
        if not cv2.imwrite(str(town_dir / "ortho.jpg"), world.ortho[:, :, ::-1],
                           [cv2.IMWRITE_JPEG_QUALITY, 90]):
            raise DemoError(f"cannot write {town_dir / 'ortho.jpg'}")
        town_info.write_text(json.dumps({
            "world_seed": seed, "world_size_m": size_m, "mpp": world.mpp,
            "datum": [world.center_lat, world.center_lon], "shape": list(world.shape)}) + "\n")
    if _bag_order(drive_info) != BAG_ORDER:
        if world is None:
            print(f"demo: regenerating town {seed} to render its drive", file=sys.stderr,
                  flush=True)
            world = generate_world(seed, size_m=size_m)
        try:
            drive = simulate_drive(world, int(scenario["drive_seed"]), int(scenario["frames"]),
                                   rate_hz=float(scenario["rate_hz"]))
        except ValueError as exc:
            raise DemoError(f"cannot drive {scenario['frames']} frames through town {seed} "
                            f"of {size_m:g} m: {exc}") from None
        drive = _first_frames(drive, frames)
        drive_dir.mkdir(parents=True, exist_ok=True)
        drive.save(drive_dir / "drive.npz")
        drive_info.unlink(missing_ok=True)
        if (drive_dir / "bag").exists():
            import shutil

            shutil.rmtree(drive_dir / "bag")  # an interrupted export, or an older order
        print(f"demo: rendering the drive ({frames} frames at {width}x{height})",
              file=sys.stderr, flush=True)
        summary = export_bag(world, drive, drive_dir / "bag", width=width, height=height,
                             progress=_progress_enabled())
        drive_info.write_text(json.dumps({"frames": frames, "topics": summary["topics"],
                                          "bag_order": BAG_ORDER}) + "\n")
    town = json.loads(town_info.read_text())
    drive_doc = json.loads(drive_info.read_text())
    return {"tiles": town_dir / "tiles.mbtiles", "ortho": town_dir / "ortho.jpg",
            "bag": drive_dir / "bag", "drive": drive_dir / "drive.npz", "datum": town["datum"],
            "mpp": town["mpp"], "shape": town["shape"], "topics": drive_doc["topics"],
            "frames": drive_doc["frames"]}


# -- processes -----------------------------------------------------------------------------


def node_command(config: Path, model: Path, files: dict[str, Any]) -> list[str]:
    """Return the ``localizer_node`` command line for the scenario."""
    exe = Path(sys.executable).with_name("localizer_node")
    cmd = [str(exe)] if exe.is_file() else [sys.executable, "-m", "denseflow_ros.ros.node"]
    lat, lon = files["datum"]
    cmd += ["--ros-args", "--params-file", str(config),
            "-p", f"model_path:={model}", "-p", f"tile_cache:={files['tiles']}",
            "-p", f"datum:=[{lat!r}, {lon!r}]"]
    for key in INPUTS:
        cmd += ["-r", f"{key}:={files['topics'][key]}"]
    return cmd


def _stop_process(proc: subprocess.Popen | None, timeout_s: float = 20.0) -> int | None:
    """Interrupt a child (SIGINT, as Ctrl-C would), kill it if it lingers; return its status."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def _last_error(log: Path) -> str:
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    errors = [ln for ln in lines if "ERROR" in ln or "Error" in ln]
    return (errors or lines or [""])[-1]


class Listener:
    """Records the node's ``/pose`` (into a bag) and ``/diagnostics`` on a thread.

    It also subscribes to the camera_info, which the player sends just before each image,
    to time each frame from its publication to its pose's arrival without being a second
    subscriber to the large image messages.
    """

    def __init__(self, poses_bag: Path, frame_topic: str) -> None:
        from denseflow_ros import bagio

        self._store = bagio.typestore("humble")
        self._writer = bagio.BagWriter(poses_bag, "mcap", overwrite=True,
                                       metadata={"recorded_by": "denseflow demo"})
        self._lock = threading.Lock()
        self.stop = [False]
        self.frame_topic = frame_topic
        self.pose_received: dict[int, int] = {}
        self.frame_received: dict[int, int] = {}
        self.diagnostics: dict[str, str] = {}
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="demo-listener", daemon=True)

    def start(self) -> None:
        """Open the poses bag and start listening."""
        self._writer.open()
        self._thread.start()

    def _run(self) -> None:
        from denseflow_ros.tools import record as record_tool

        parser = argparse.ArgumentParser()
        record_tool.add_stop_arguments(parser)
        args = parser.parse_args(["--discovery-timeout", str(NODE_START_TIMEOUT_S)])
        try:
            record_tool.record(["/pose", "/diagnostics", self.frame_topic], self._on_message,
                               args, self.stop)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            self.error = exc

    def _on_message(self, topic: str, msg_type: str, receive_ns: int, data: bytes) -> None:
        from denseflow_ros import bagio

        msg = self._store.deserialize_cdr(data, msg_type)
        with self._lock:
            if topic == "/pose":
                self._writer.write(topic, msg_type, receive_ns, data)
                self.pose_received[bagio.stamp_to_ns(msg.header.stamp)] = receive_ns
            elif topic == self.frame_topic:
                self.frame_received[bagio.stamp_to_ns(msg.header.stamp)] = receive_ns
            elif msg.status:
                self.diagnostics = {kv.key: kv.value for kv in msg.status[0].values}

    def snapshot(self) -> tuple[int, dict[str, str]]:
        """Return (poses received, the newest diagnostics key/values)."""
        with self._lock:
            return len(self.pose_received), dict(self.diagnostics)

    def latencies_ms(self) -> list[float]:
        """Return, per frame with a pose, the time from its publication to its pose's arrival."""
        with self._lock:
            return [(t - self.frame_received[s]) * 1e-6
                    for s, t in self.pose_received.items() if s in self.frame_received]

    def close(self) -> None:
        """Stop listening and finish the poses bag."""
        self.stop[0] = True
        if self._thread.is_alive():
            self._thread.join(timeout=10.0)
        with self._lock:
            self._writer.close()


def _handled(diag: dict[str, str]) -> int:
    """Return how many received images the node has finished with (any outcome)."""
    return sum(int(diag.get(k, "0")) for k in ("accepted", "dropped_stale", "rejected"))


def _wait_until(cond: Any, timeout_s: float, alive: Any, bar: Any = None,
                listener: Listener | None = None) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if listener is not None and listener.error is not None:
            raise DemoError(f"listening to the node failed: {listener.error}")
        if bar is not None and listener is not None:
            _, diag = listener.snapshot()
            bar.n = min(bar.total, _handled(diag))
            bar.refresh()
        if cond():
            return True
        alive()
        time.sleep(0.2)
    return False


def run_drive(config: Path, model: Path, files: dict[str, Any], replay_rate: float,
              out: Path, domain: int) -> tuple[dict[str, str], dict[str, float], list[float]]:
    """Start the node, replay the drive into it and record its poses.

    Returns the node's last diagnostics counters, timings and the per-frame latencies (ms).
    """
    from tqdm import tqdm

    from denseflow_ros.dds import apply_loopback_env, loopback_env

    env = loopback_env(domain)
    env["PYTHONUNBUFFERED"] = "1"
    apply_loopback_env(domain)
    timings: dict[str, float] = {}
    node = player = None
    listener = Listener(out / "poses", files["topics"]["camera_info"])
    node_log = (out / "node.log").open("w")
    player_log = (out / "replay.log").open("w")
    try:
        t0 = time.monotonic()
        node = subprocess.Popen(node_command(config, model, files), env=env, stdout=node_log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        listener.start()

        def node_alive() -> None:
            if node.poll() is not None:
                raise DemoError(f"localizer_node exited with status {node.returncode}: "
                                f"{_last_error(out / 'node.log')}")

        print(f"demo: starting localizer_node (pid {node.pid}; loading the network)",
              file=sys.stderr, flush=True)
        if not _wait_until(lambda: listener.snapshot()[1].get("state") == "active",
                           NODE_START_TIMEOUT_S, node_alive, listener=listener):
            raise DemoError(f"localizer_node did not become active within "
                            f"{NODE_START_TIMEOUT_S:g} s (see {out / 'node.log'})")
        timings["node_start_s"] = time.monotonic() - t0
        topics = [files["topics"][k] for k in INPUTS]
        player = subprocess.Popen(
            [sys.executable, "-m", "denseflow_ros.cli", "replay", str(files["bag"]),
             # The player waits for the node's subscriptions; the extra delay lets this
             # process's camera_info subscription (latency timing) match as well.
             "--topics", *topics, "--rate", f"{replay_rate:g}", "--delay", "3.0",
             "--wait-for-subscribers", "60"],
            env=env, stdout=subprocess.PIPE, stderr=player_log, stdin=subprocess.DEVNULL,
            text=True)
        t1 = time.monotonic()
        frames = int(files["frames"])
        with tqdm(total=frames, desc="localize", unit="frame",
                  disable=not _progress_enabled()) as bar:
            _wait_until(lambda: player.poll() is not None, 24 * 3600.0, node_alive, bar,
                        listener)
            stdout = player.stdout.read() if player.stdout else ""
            if player.returncode != 0:
                raise DemoError(f"denseflow replay failed with status {player.returncode}: "
                                f"{_last_error(out / 'replay.log')}")
            published = json.loads(stdout)["published"].get(files["topics"]["image"], 0)

            def drained() -> bool:
                diag = listener.snapshot()[1]
                received = int(diag.get("received_images", "0"))
                return received >= published and _handled(diag) >= received

            # A last diagnostics message reports the final frame's outcome.
            if _wait_until(drained, DRAIN_TIMEOUT_S, node_alive, bar, listener):
                time.sleep(1.2)
        timings["replay_s"] = time.monotonic() - t1
        counters = listener.snapshot()[1]
        counters["images_published"] = str(published)
    except KeyboardInterrupt:
        # A terminal's Ctrl-C reaches the children too; a second SIGINT during their own
        # shutdown would kill them, so give them a moment first.
        for proc in (player, node):
            if proc is not None:
                try:
                    proc.wait(timeout=5.0)
                except subprocess.TimeoutExpired:
                    pass
        raise
    finally:
        _stop_process(player, 10.0)
        status = _stop_process(node)
        listener.close()
        node_log.close()
        player_log.close()
        if status not in (None, 0):
            print(f"demo: localizer_node exited with status {status} (see {out / 'node.log'})",
                  file=sys.stderr)
    counters["exit_status"] = str(status)
    return counters, timings, listener.latencies_ms()


# -- results -------------------------------------------------------------------------------


def score(files: dict[str, Any], poses_bag: Path) -> tuple[dict, dict]:
    """Score the recorded poses against the drive's ground truth and GNSS/IMU prior."""
    from denseflow_ros.tools import evaluate

    parser = argparse.ArgumentParser()
    evaluate.add_arguments(parser)
    args = parser.parse_args(["--bag", str(files["bag"]), "--poses", str(poses_bag)])
    return evaluate.evaluate(args)


def _frame_times(files: dict[str, Any], details: dict) -> tuple[Any, Any, Any]:
    """Return (seconds of every frame, seconds of each scored pose, frames with no pose)."""
    import numpy as np

    from denseflow_ros import bagio

    stamps = sorted(bagio.stamp_to_ns(m.msg.header.stamp) for m in bagio.iter_messages(
        files["bag"], [files["topics"]["ground_truth"]]))
    t0 = stamps[0]
    scored = np.array([(s - t0) * 1e-9 for s in details["stamps"]])
    missing = sorted(set(stamps) - set(details["stamps"]))
    return (np.array([(s - t0) * 1e-9 for s in stamps]), scored,
            np.array([(s - t0) * 1e-9 for s in missing]))


def plot_trajectory(files: dict[str, Any], details: dict, doc: dict, path: Path) -> None:
    """Draw truth, prior and estimate over the orthophoto around the drive."""
    import cv2
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib import patheffects

    truth, prior, est = details["ground_truth_track"], details["prior"], details["estimate"]
    pts = np.concatenate([truth[:, :2], prior[:, :2], est[:, :2]])
    margin = 25.0
    lo, hi = pts.min(axis=0) - margin, pts.max(axis=0) + margin
    side = float(max(hi - lo))  # a square view keeps the map undistorted
    mid = (lo + hi) / 2
    lo, hi = mid - side / 2, mid + side / 2
    ortho = cv2.imread(str(files["ortho"]), cv2.IMREAD_COLOR)
    if ortho is None:
        raise DemoError(f"cannot read the orthophoto {files['ortho']}")
    rows, cols = ortho.shape[:2]
    mpp = float(files["mpp"])
    # Raster (col, row) of an ENU point: east / mpp + cols // 2, rows // 2 - north / mpp.
    c0 = int(np.clip(np.floor(lo[0] / mpp + cols // 2), 0, cols - 1))
    c1 = int(np.clip(np.ceil(hi[0] / mpp + cols // 2), c0 + 1, cols))
    r0 = int(np.clip(np.floor(rows // 2 - hi[1] / mpp), 0, rows - 1))
    r1 = int(np.clip(np.ceil(rows // 2 - lo[1] / mpp), r0 + 1, rows))
    view = ortho[r0:r1, c0:c1, ::-1]
    extent = ((c0 - cols // 2 - 0.5) * mpp, (c1 - cols // 2 - 0.5) * mpp,
              (rows // 2 - r1 + 0.5) * mpp, (rows // 2 - r0 + 0.5) * mpp)

    fig, ax = plt.subplots(figsize=(9, 9.6))
    ax.imshow(view, extent=extent, interpolation="bilinear")
    outline = [patheffects.Stroke(linewidth=4.0, foreground="black", alpha=0.7),
               patheffects.Normal()]
    ax.plot(truth[:, 0], truth[:, 1], "-", color="white", lw=2.2, label="ground truth",
            path_effects=outline)
    for k in range(est.shape[0]):
        ax.plot([prior[k, 0], est[k, 0]], [prior[k, 1], est[k, 1]], "-", color="yellow",
                lw=0.6, alpha=0.6)
    ax.plot(prior[:, 0], prior[:, 1], "o", color="tab:orange", ms=4, mec="black", mew=0.4,
            label=f"GNSS prior (median {doc['prior']['distance_median_m']:.2f} m)")
    ax.plot(est[:, 0], est[:, 1], "o", color="deepskyblue", ms=4, mec="black", mew=0.4,
            label=f"DenseFlow estimate (median {doc['estimate']['distance_median_m']:.2f} m)")
    ax.plot(truth[0, 0], truth[0, 1], "s", color="white", mec="black", ms=8, label="start")
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_xlabel("east (m)")
    ax.set_ylabel("north (m)")
    ax.set_title(f"demo drive: {doc['samples']} poses; yellow: prior -> estimate")
    # Below the map: inside, it would hide part of the route.
    fig.legend(loc="lower center", ncol=2, frameon=False)
    fig.tight_layout(rect=(0.0, 0.06, 1.0, 1.0))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_errors(files: dict[str, Any], details: dict, path: Path) -> None:
    """Draw position and yaw error of prior and estimate over the drive's time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    _, t, missing = _frame_times(files, details)
    pl, pg, py = details["prior_errors"]
    el, eg, ey = details["estimate_errors"]
    fig, (ax_pos, ax_yaw) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True)
    ax_pos.plot(t, np.hypot(pl, pg), ".-", color="tab:orange", lw=1, ms=4, label="GNSS prior")
    ax_pos.plot(t, np.hypot(el, eg), ".-", color="tab:blue", lw=1, ms=4,
                label="DenseFlow estimate")
    ax_yaw.plot(t, py, ".-", color="tab:orange", lw=1, ms=4, label="IMU prior")
    ax_yaw.plot(t, ey, ".-", color="tab:blue", lw=1, ms=4, label="DenseFlow estimate")
    if missing.size:
        for ax in (ax_pos, ax_yaw):
            ax.plot(missing, np.zeros_like(missing), "x", color="tab:red", ms=6,
                    label="no pose (rejected or dropped)" if ax is ax_pos else None)
    ax_pos.set_ylabel("position error (m)")
    ax_yaw.set_ylabel("yaw error (deg)")
    ax_yaw.set_xlabel("drive time (s)")
    for ax in (ax_pos, ax_yaw):
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best", framealpha=0.85)
    ax_pos.set_title("error along the demo drive")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def outcomes(counters: dict[str, str]) -> str:
    """Return one line on what the node did with the images: accepted, dropped, rejected."""
    reasons = ", ".join(f"{k[len('rejected_'):]} {v}" for k, v in sorted(counters.items())
                        if k.startswith("rejected_"))
    return (f"node: {counters.get('received_images', '0')} of "
            f"{counters.get('images_published', '?')} images received, "
            f"{counters.get('accepted', '0')} accepted, "
            f"{counters.get('dropped_stale', '0')} dropped while busy, "
            f"{counters.get('rejected', '0')} rejected" + (f" ({reasons})" if reasons else ""))


def report(doc: dict, accepted: float, latency_ms: float) -> str:
    """Return the metrics table with accepted fraction, latency and the demo's targets."""
    from denseflow_ros import metrics

    table = metrics.format_table(doc).splitlines()
    columns = [c for c in ("prior", "estimate", "baseline") if c in doc]
    width = len(table[1]) - 11 * len(columns)
    lat = f"{latency_ms:8.1f}" if latency_ms == latency_ms else "     nan"
    table += [f"{'accepted fraction':<{width}}  {'100.00 %':>9}  {100 * accepted:6.2f} %",
              f"{'latency median (ms)':<{width}}  {'-':>9}  {lat:>9}"]
    p, e = doc["prior"], doc["estimate"]
    checks = [
        (e["distance_median_m"] <= p["distance_median_m"] / 3.0,
         f"median position error {e['distance_median_m']:.2f} m <= a third of the prior's "
         f"{p['distance_median_m']:.2f} m"),
        (e["longitudinal_median_m"] <= p["longitudinal_median_m"] / 2.0,
         f"median along-road error {e['longitudinal_median_m']:.2f} m <= half the prior's "
         f"{p['longitudinal_median_m']:.2f} m"),
        (e["lateral_median_m"] < p["lateral_median_m"],
         f"median cross-road error {e['lateral_median_m']:.2f} m < the prior's "
         f"{p['lateral_median_m']:.2f} m"),
        (e["yaw_median_deg"] < 1.0, f"median yaw error {e['yaw_median_deg']:.2f} deg < 1 deg"),
        (accepted >= 0.9, f"accepted {100 * accepted:.1f} % of frames >= 90 %"),
    ]
    if "baseline" in doc:
        b = doc["baseline"]
        checks.insert(1, (e["distance_median_m"] <= b["distance_median_m"],
                          f"median position error {e['distance_median_m']:.2f} m <= the NCC "
                          f"baseline's {b['distance_median_m']:.2f} m"))
    table += ["", "targets:"] + [f"  [{'met' if ok else 'MISSED'}] {text}"
                                 for ok, text in checks]
    return "\n".join(table)


# -- entry point ---------------------------------------------------------------------------


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> dict:
    """Run the whole demo; return the summary document."""
    t_start = time.monotonic()
    config = (args.config or _default_config()).resolve()
    if not config.is_file():
        raise DemoError(f"demo config {config} not found; pass --config")
    model = (args.model or _default_model()).resolve()
    if not model.is_file():
        raise DemoError(f"no demo checkpoint at {model}: run `make demo-weights` or pass "
                        "--model PATH")
    scenario = read_scenario(config)
    if args.world_size_m is not None:
        scenario["world_size_m"] = args.world_size_m
    total = int(scenario["frames"])
    frames = total if args.frames is None else args.frames
    if not 2 <= frames <= total:
        raise DemoError(f"--frames must be between 2 and the drive's {total}, got {frames}")
    if not float(scenario["replay_rate"]) > 0:
        raise DemoError(f"{config}: replay_rate must be > 0")
    domain_text = os.environ.get("ROS_DOMAIN_ID", "").strip() or str(DEFAULT_DOMAIN)
    try:
        domain = int(domain_text)
        if not 0 <= domain <= 101:
            raise ValueError
    except ValueError:
        raise DemoError(f"ROS_DOMAIN_ID must be an integer in [0, 101], got {domain_text!r}"
                        ) from None
    out = args.output.resolve()
    out.mkdir(parents=True, exist_ok=True)
    try:
        files = prepare_scenario(scenario, frames, args.work_dir.resolve())
    except OSError as exc:
        raise DemoError(f"cannot write the scenario under {args.work_dir}: {exc}") from None
    t_ready = time.monotonic()
    counters, timings, latencies = run_drive(config, model, files,
                                             float(scenario["replay_rate"]), out, domain)
    try:
        doc, details = score(files, out / "poses")
    except ValueError:
        raise DemoError(f"the node published no usable pose for the {frames} frames "
                        f"(see {out / 'node.log'})") from None

    from denseflow_ros import metrics
    from denseflow_ros.tools.evaluate import write_csv

    if not args.no_baseline:
        from denseflow_ros.localizer import InputGeometry
        from denseflow_ros.model import load_model
        from denseflow_ros.tools.demo_baseline import localize_drive

        geometry = InputGeometry.from_preset(load_model(model).config)
        doc["baseline"] = localize_drive(files, geometry, progress=_progress_enabled())
    metrics.validate_results(doc)
    accepted = doc["samples"] / frames
    import numpy as np

    latency = float(np.median(latencies)) if latencies else float("nan")
    summary = {**doc, "accepted_fraction": accepted, "latency_ms_median": latency}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    write_csv(details, out / "frames.csv")
    plot_trajectory(files, details, doc, out / "trajectory.png")
    plot_errors(files, details, out / "errors.png")
    if details.get("covariance") is not None:
        from denseflow_ros.plots import plot_consistency

        plot_consistency(details["estimate"][:, :2] - details["truth"][:, :2],
                         details["covariance"][:, :2, :2], out / "consistency.png",
                         "demo drive: published covariance against the errors")
    timings.update(setup_s=t_ready - t_start, total_s=time.monotonic() - t_start)
    run_doc = {
        "scenario": {**scenario, "frames_replayed": frames}, "model": str(model),
        "config": str(config), "ros_domain_id": domain, "node": counters,
        "latency_ms": {"frames": len(latencies), "median": latency,
                       "p90": float(np.percentile(latencies, 90)) if latencies else None},
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
    }
    (out / "run.json").write_text(json.dumps(run_doc, indent=2) + "\n")
    print(report(doc, accepted, latency))
    print(outcomes(counters))
    print(f"\nwrote {out / 'summary.json'}, trajectory.png, errors.png and consistency.png "
          f"({timings['total_s']:.0f} s, of which {timings['setup_s']:.0f} s scenario set-up)")
    return summary


def main(args: argparse.Namespace) -> int:
    """Run the demo; print the results or one sentence saying why it could not."""
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        run(args)
    except (DemoError, OSError) as exc:
        print(f"denseflow demo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("denseflow demo: interrupted; the processes it started have stopped",
              file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0
