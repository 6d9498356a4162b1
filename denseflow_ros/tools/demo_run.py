# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The demo's run: ``localizer_node`` and ``denseflow replay`` as processes, a DDS listener.

The node runs with ``--ros-args --params-file CONFIG`` plus the scenario's model, tile cache
and datum; the player publishes the drive once the node is active; this process records
``/pose`` into a bag, keeps the node's newest ``/diagnostics`` counters and times each frame
from its publication to its pose's arrival.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from denseflow_ros.tools.demo_scenario import DemoError, ScenarioFiles, progress_enabled

NODE_START_TIMEOUT_S = 300.0
DRAIN_TIMEOUT_S = 60.0
INPUTS = ("camera_info", "fix", "imu", "image")


@dataclass
class DriveRun:
    """What a run of the drive left: the node's last counters, timings, latencies (ms)."""

    counters: dict[str, str]
    timings: dict[str, float]
    latencies_ms: list[float]


def node_command(config: Path, model: Path, files: ScenarioFiles) -> list[str]:
    """Return the ``localizer_node`` command line for the scenario."""
    exe = Path(sys.executable).with_name("localizer_node")
    cmd = [str(exe)] if exe.is_file() else [sys.executable, "-m", "denseflow_ros.ros.node"]
    lat, lon = files.datum
    cmd += ["--ros-args", "--params-file", str(config),
            "-p", f"model_path:={model}", "-p", f"tile_cache:={files.tiles}",
            "-p", f"datum:=[{lat!r}, {lon!r}]"]
    for key in INPUTS:
        cmd += ["-r", f"{key}:={files.topics[key]}"]
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


def last_error(log: Path) -> str:
    """Return a log's last line naming an error, else its last line."""
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
        """Prepare the poses bag; nothing is opened or subscribed before :meth:`start`."""
        from denseflow_ros import bagio

        self._store = bagio.typestore("humble")
        self._writer = bagio.BagWriter(poses_bag, "mcap", overwrite=True,
                                       metadata={"recorded_by": "denseflow demo"})
        self._lock = threading.Lock()
        self.stop = threading.Event()
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
        from denseflow_ros.tools.record import StopRules, record

        try:
            record(["/pose", "/diagnostics", self.frame_topic], self._on_message,
                   StopRules(discovery_timeout_s=NODE_START_TIMEOUT_S), self.stop)
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
        self.stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10.0)
        with self._lock:
            self._writer.close()


def _handled(diag: dict[str, str]) -> int:
    """Return how many received images the node has finished with (any outcome)."""
    return sum(int(diag.get(k, "0")) for k in ("accepted", "dropped_stale", "rejected"))


class _Session:
    """The node, the player and the listener of one run, and the checks between them."""

    def __init__(self, out: Path, files: ScenarioFiles, env: dict[str, str]) -> None:
        self.out, self.files, self.env = out, files, env
        self.node: subprocess.Popen | None = None
        self.player: subprocess.Popen | None = None
        self.listener = Listener(out / "poses", files.topics["camera_info"])
        self.node_log: IO[str] = (out / "node.log").open("w")
        self.player_log: IO[str] = (out / "replay.log").open("w")

    def node_alive(self) -> None:
        """Raise DemoError when the node has exited."""
        if self.node is not None and self.node.poll() is not None:
            raise DemoError(f"localizer_node exited with status {self.node.returncode}: "
                            f"{last_error(self.out / 'node.log')}")

    def wait_until(self, cond: Callable[[], bool], timeout_s: float, bar: Any = None) -> bool:
        """Poll ``cond`` until true or ``timeout_s``; fail fast when the node or listener did."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.listener.error is not None:
                raise DemoError(f"listening to the node failed: {self.listener.error}")
            if bar is not None:
                bar.n = min(bar.total, _handled(self.listener.snapshot()[1]))
                bar.refresh()
            if cond():
                return True
            self.node_alive()
            time.sleep(0.2)
        return False

    def start_node(self, config: Path, model: Path) -> None:
        """Start the node and the listener; wait until the node reports itself active."""
        self.node = subprocess.Popen(node_command(config, model, self.files), env=self.env,
                                     stdout=self.node_log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        self.listener.start()
        print(f"demo: starting localizer_node (pid {self.node.pid}; loading the network)",
              file=sys.stderr, flush=True)
        if not self.wait_until(lambda: self.listener.snapshot()[1].get("state") == "active",
                               NODE_START_TIMEOUT_S):
            raise DemoError(f"localizer_node did not become active within "
                            f"{NODE_START_TIMEOUT_S:g} s (see {self.out / 'node.log'})")

    def replay(self, replay_rate: float) -> int:
        """Play the drive into the node, wait until it handled it; return images published."""
        from tqdm import tqdm

        topics = [self.files.topics[k] for k in INPUTS]
        self.player = player = subprocess.Popen(
            [sys.executable, "-m", "denseflow_ros.cli", "replay", str(self.files.bag),
             # The player waits for the node's subscriptions; the extra delay lets this
             # process's camera_info subscription (latency timing) match as well.
             "--topics", *topics, "--rate", f"{replay_rate:g}", "--delay", "3.0",
             "--wait-for-subscribers", "60"],
            env=self.env, stdout=subprocess.PIPE, stderr=self.player_log,
            stdin=subprocess.DEVNULL, text=True)
        with tqdm(total=int(self.files.frames), desc="localize", unit="frame",
                  disable=not progress_enabled()) as bar:
            self.wait_until(lambda: player.poll() is not None, 24 * 3600.0, bar)
            stdout = player.stdout.read() if player.stdout else ""
            if player.returncode != 0:
                raise DemoError(f"denseflow replay failed with status {player.returncode}: "
                                f"{last_error(self.out / 'replay.log')}")
            published = json.loads(stdout)["published"].get(self.files.topics["image"], 0)

            def drained() -> bool:
                diag = self.listener.snapshot()[1]
                received = int(diag.get("received_images", "0"))
                return received >= published and _handled(diag) >= received

            # A last diagnostics message reports the final frame's outcome.
            if self.wait_until(drained, DRAIN_TIMEOUT_S, bar):
                time.sleep(1.2)
        return published

    def let_children_finish(self) -> None:
        """Give the children a moment after a terminal's Ctrl-C, which reached them too.

        A second SIGINT during their own shutdown would kill them.
        """
        for proc in (self.player, self.node):
            if proc is not None:
                try:
                    proc.wait(timeout=5.0)
                except subprocess.TimeoutExpired:
                    pass

    def close(self) -> int | None:
        """Stop the player, the node and the listener; return the node's exit status."""
        _stop_process(self.player, 10.0)
        status = _stop_process(self.node)
        self.listener.close()
        self.node_log.close()
        self.player_log.close()
        if status not in (None, 0):
            print(f"demo: localizer_node exited with status {status} "
                  f"(see {self.out / 'node.log'})", file=sys.stderr)
        return status


def run_drive(config: Path, model: Path, files: ScenarioFiles, replay_rate: float,
              out: Path, domain: int) -> DriveRun:
    """Start the node, replay the drive into it and record its poses into ``out/poses``."""
    from denseflow_ros.dds import apply_loopback_env, loopback_env

    env = loopback_env(domain)
    env["PYTHONUNBUFFERED"] = "1"
    apply_loopback_env(domain)
    timings: dict[str, float] = {}
    session = _Session(out, files, env)
    try:
        t0 = time.monotonic()
        session.start_node(config, model)
        timings["node_start_s"] = time.monotonic() - t0
        t1 = time.monotonic()
        published = session.replay(replay_rate)
        timings["replay_s"] = time.monotonic() - t1
        counters = session.listener.snapshot()[1]
        counters["images_published"] = str(published)
    except KeyboardInterrupt:
        session.let_children_finish()
        raise
    finally:
        status = session.close()
    counters["exit_status"] = str(status)
    return DriveRun(counters, timings, session.listener.latencies_ms())
