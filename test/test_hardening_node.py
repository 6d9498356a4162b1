# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Hostile and odd input against the node process over DDS: it costs nothing and shows up.

Each test runs the node as its own process (the oracle launcher of test_node_support.py, so
frames say which pose they are at), feeds it the bad input, and checks that the right counter
moves, that /diagnostics changes level, that memory stays bounded and that the next valid
frame is still localized.
"""

from __future__ import annotations

import math
import struct
import subprocess
import time
import zlib
from pathlib import Path

import pytest
from test_node_support import (
    LAT0,
    LON0,
    Client,
    Oracle,
    frame_image,
    intrinsics,
    pose_xyyaw,
    save_faults,
    save_table,
    start_node,
    stop,
    wrap,
    write_params,
    write_tile_cache,
)

pytest.importorskip("rclpy")

W, H = 96, 32
OK, WARN, ERROR = 0, 1, 2
GOOD, FAR, FAILS, SLOW = 1, 2, 9, 5  # frame ids: at the prior, 42 m ahead, raises, slow
NODE = "/localizer"


@pytest.fixture(scope="module")
def tiles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tile_cache(tmp_path_factory.mktemp("tiles") / "xyz")


def _start(tmp_path: Path, tiles: Path, env: dict[str, str], faults: Path | None = None,
           **params: object) -> subprocess.Popen:
    table = save_table(tmp_path / "table.json", {GOOD: (0.0, 0.0, 0.0), FAR: (42.0, 0.0, 0.0),
                                                 FAILS: (0.0, 0.0, 0.0), SLOW: (0.0, 0.0, 0.0)})
    base = dict(preset="lite", tile_cache=str(tiles), datum=[LAT0, LON0], warmup_runs=1,
                diagnostics_period_s=0.2, gate_sigma=3.0, log_throttle_s=0.0)
    path = write_params(tmp_path / "params.yaml", **{**base, **params})
    return start_node(path, env, oracle_table=table, oracle_faults=faults)


def _frame(client: Client, t: float, frame_id: int = GOOD, heading: float | None = 0.3,
           camera_info: bool = True) -> None:
    client.send_prior(t, LAT0, LON0, heading)
    if camera_info:
        client.send_camera_info(intrinsics(W, H), W, H)
    client.wait_inputs()
    client.send_image(t, frame_image(frame_id, W, H))


def _status(client: Client) -> str:
    for msg in reversed(client.diagnostics):
        for status in msg.status:
            if "localizer" in status.name:
                return status.message
    return ""


def _wait_level(client: Client, level: int, seconds: float = 20.0) -> None:
    assert client.spin(seconds, lambda: client.level() == level), \
        f"level {client.level()} ({_status(client)}), expected {level}; {client.diag()}"


def _wait_poses(client: Client, n: int) -> None:
    assert client.spin(60.0, lambda: len(client.poses) >= n), \
        f"expected {n} poses, got {len(client.poses)}; diagnostics {client.diag()}"


def _wait_counter(client: Client, key: str, n: int) -> None:
    assert client.wait_diag(key, n, 30.0), f"{key} did not reach {n}; {client.diag()}"


def _peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc")


def _png_1bit(width: int, height: int) -> bytes:
    """Return a black 1-bit PNG: a few KB that decode to width x height x 3 bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + \
            struct.pack(">I", zlib.crc32(kind + data))

    row = bytes(1 + (width + 7) // 8)
    z = zlib.compressobj(9)
    body = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height,
                                                                1, 0, 0, 0, 0))
            + chunk(b"IDAT", body) + chunk(b"IEND", b""))


def test_decompression_bombs_are_refused_from_their_header(
        tmp_path: Path, tiles: Path, ros_env: dict[str, str], ros_domain: int) -> None:
    import cv2
    from sensor_msgs.msg import CompressedImage

    proc = _start(tmp_path, tiles, ros_env, image_transport="compressed")
    client = Client(ros_domain)

    def send(t: float, data: bytes, fmt: str = "png") -> None:
        client.send_prior(t, LAT0, LON0, 0.3)
        client.send_camera_info(intrinsics(W, H), W, H)
        client.wait_inputs()
        msg = CompressedImage(format=fmt, data=data)
        msg.header.stamp = client.stamp(t)
        client.publish("compressed", msg)

    good = cv2.imencode(".png", frame_image(GOOD, W, H)[:, :, ::-1])[1].tobytes()
    bombs = [_png_1bit(8000, 8000), _png_1bit(30000, 30000)]
    assert len(bombs[0]) < 10_000 and len(bombs[1]) < 150_000
    try:
        client.wait_for_node(proc)
        send(1.0, good)
        _wait_poses(client, 1)
        _wait_level(client, OK)
        peak = _peak_kib(proc.pid)
        for i, bomb in enumerate(bombs):
            send(2.0 + i, bomb)
            _wait_counter(client, "rejected_bad_image", i + 1)
        # A format string that tries to forge log lines is escaped and cut short.
        send(4.0, b"garbage", fmt="png\n[ERROR] forged\x1b[2J" * 200)
        _wait_counter(client, "rejected_bad_image", 3)
        grown_kib = _peak_kib(proc.pid) - peak
        # Decoded, the bombs would be 192 MB and 2.7 GB.
        assert grown_kib < 20 * 1024, f"peak memory grew {grown_kib} KiB"
        assert client.counter("rejected_internal_error") == 0
        problem = client.diag()["last_problem"]
        assert "\n" not in problem and "\x1b" not in problem and len(problem) <= 200
        _wait_level(client, WARN)  # three of the last four frames rejected
        assert "bad_image" in _status(client)
        for t in (5.0, 6.0, 7.0):
            send(t, good)
        _wait_poses(client, 4)
        _wait_level(client, OK)
        assert proc.poll() is None
    finally:
        out = stop(proc)
        client.close()
    assert "forged" in out and "\x1b" not in out and "\n[ERROR] forged" not in out


def test_failures_show_on_diagnostics_and_the_node_keeps_localizing(
        tmp_path: Path, tiles: Path, ros_env: dict[str, str], ros_domain: int) -> None:
    from sensor_msgs.msg import CameraInfo, NavSatFix

    faults = save_faults(tmp_path / "faults.json", raise_={FAILS: "injected failure"})
    proc = _start(tmp_path, tiles, ros_env, faults)
    client = Client(ros_domain)

    def fix(t: float, cov: list[float], lat: float = LAT0) -> None:
        msg = NavSatFix(latitude=lat, longitude=LON0, altitude=110.0)
        msg.header.stamp = client.stamp(t)
        msg.position_covariance = cov
        msg.position_covariance_type = NavSatFix.COVARIANCE_TYPE_KNOWN
        client.publish("fix", msg)

    try:
        client.wait_for_node(proc)
        _frame(client, 1.0)
        _wait_poses(client, 1)
        _wait_level(client, OK)

        # Internal errors after an accepted frame: the level goes to ERROR.
        for i in range(4):
            _frame(client, 2.0 + i, FAILS)
            _wait_counter(client, "rejected_internal_error", i + 1)
        _wait_level(client, ERROR)
        assert "internal error" in _status(client)
        _frame(client, 10.0)
        _wait_poses(client, 2)

        # A fix covariance that is not positive definite does not open the gate: the frame
        # 42 m ahead of a 10 m (default) fix is outside 3 sigma. Singular with no floor too.
        t = 11.0
        for cov, floor in (([1.0, 10, 0, 10, 1.0, 0, 0, 0, 1], 2.0),
                           ([4.0, 4, 0, 4, 4.0, 0, 0, 0, 1], 0.0)):
            (result,) = client.set_parameters(NODE, gate_floor_m=floor)
            assert result.successful
            fix(t, cov)
            client.send_heading(t, 0.3)
            client.wait_inputs()
            client.send_image(t, frame_image(FAR, W, H))
            t += 1.0
        _wait_counter(client, "rejected_outside_gate", 2)
        assert client.counter("rejected_fix_bad_covariance") == 2
        assert client.counter("rejected_internal_error") == 4

        # Above Web Mercator's 85.05 deg there are no tiles: the fix is out of range.
        fix(t, [4.0, 0, 0, 0, 4.0, 0, 0, 0, 1], lat=86.0)
        _wait_counter(client, "rejected_fix_out_of_range", 1)

        # A distortion vector of the wrong length is refused once; the last good camera_info
        # stays in use.
        info = CameraInfo(width=W, height=H, distortion_model="plumb_bob", d=[-0.2, 0.1, 0.0])
        info.k = [float(v) for v in intrinsics(W, H).reshape(-1)]
        client.publish("camera_info", info)
        _wait_counter(client, "rejected_bad_camera_info", 1)
        _frame(client, t + 1.0, camera_info=False)
        _wait_poses(client, 3)

        # A fix stamped an hour ahead is dropped: no trimmed history, no clock jump after it.
        fix(t + 3600.0, [4.0, 0, 0, 0, 4.0, 0, 0, 0, 1])
        _wait_counter(client, "rejected_fix_future", 1)
        _frame(client, t + 2.0)
        _wait_poses(client, 4)
        client.wait_idle()
        diag = client.diag()
        assert int(diag.get("rejected_clock_jump", "0")) == 0
        assert int(diag["rejected_internal_error"]) == 4 and int(diag["accepted"]) == 4
        assert len(client.poses) == 4
        assert proc.poll() is None
    finally:
        stop(proc)
        client.close()


def test_failed_warm_up_stops_with_one_error_line(
        tmp_path: Path, tiles: Path, ros_env: dict[str, str]) -> None:
    oom = "CUDA out of memory. Tried to allocate 2.00 GiB"
    faults = save_faults(tmp_path / "faults.json", raise_={Oracle.WARMUP_ID: oom})
    proc = _start(tmp_path, tiles, ros_env, faults)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1, out
    errors = [line for line in out.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and oom in errors[0] and "warm-up" in errors[0], out
    assert "Traceback" not in out


def test_high_rate_imu_is_kept_by_time_and_interpolated(
        tmp_path: Path, tiles: Path, ros_env: dict[str, str], ros_domain: int) -> None:
    proc = _start(tmp_path, tiles, ros_env)
    client = Client(ros_domain)
    try:
        client.wait_for_node(proc)
        t0 = 200.0
        client.send_prior(t0, LAT0, LON0, 0.3)
        client.send_camera_info(intrinsics(W, H), W, H)
        client.wait_inputs()
        # Two seconds of a 400 Hz IMU, all of it over max_heading_age_s after t0, arrive
        # before the frame of t0 is taken: more samples than a 1 s buffer at that rate.
        for k in range(800):
            client.send_heading(t0 + 0.6 + k / 400.0, 0.5)
            time.sleep(1.0 / 400.0)  # the sensor's rate, not an ordering
        assert client.wait_diag("received_headings", 1 + 420, 60.0), client.diag()
        client.settle("imu", "received_headings")
        client.send_image(t0, frame_image(GOOD, W, H))
        _wait_poses(client, 1)
        assert pose_xyyaw(client.poses[0])[2] == pytest.approx(0.3, abs=1e-3)

        # Samples either side of the frame, across +-180 deg: the heading is interpolated
        # the short way round.
        t1 = t0 + 5.0
        client.send_prior(t1, LAT0, LON0, None)
        client.send_heading(t1 - 0.2, math.pi - 0.02)
        client.send_heading(t1 + 0.2, -math.pi + 0.02)
        client.wait_inputs()
        client.send_image(t1, frame_image(GOOD, W, H))
        _wait_poses(client, 2)
        assert abs(wrap(pose_xyyaw(client.poses[1])[2] - math.pi)) < 1e-3
        assert client.counter("rejected_no_heading") == 0
    finally:
        stop(proc)
        client.close()


def test_deactivate_during_a_long_inference(
        tmp_path: Path, tiles: Path, ros_env: dict[str, str], ros_domain: int) -> None:
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState

    inference_s = 8.0
    faults = save_faults(tmp_path / "faults.json", sleep={SLOW: inference_s})
    proc = _start(tmp_path, tiles, ros_env, faults)
    client = Client(ros_domain)
    change = client.node.create_client(ChangeState, f"{NODE}/change_state")

    def transition(tid: int) -> float:
        start = time.monotonic()
        future = change.call_async(ChangeState.Request(transition=Transition(id=tid)))
        assert client.spin(60.0, future.done)
        assert future.result().success
        return time.monotonic() - start

    try:
        client.wait_for_node(proc)
        assert client.spin(30.0, change.service_is_ready)
        _frame(client, 60.0)
        _wait_poses(client, 1)
        _frame(client, 61.0, SLOW)  # runs for inference_s
        _frame(client, 62.0)  # waits in the queue behind it
        client.wait_inputs()
        took = transition(Transition.TRANSITION_DEACTIVATE)
        assert took < inference_s / 2, f"deactivate took {took:.1f} s"
        transition(Transition.TRANSITION_ACTIVATE)
        client.wait_for_node(proc)
        client.wait_idle(inference_s + 30.0)
        # Neither the frame in flight nor the one queued is published after deactivation.
        assert client.counter("discarded_inactive") == 1
        assert client.counter("dropped_inactive") == 1
        assert client.counter("processed_frames") == 2
        _frame(client, 63.0)
        _wait_poses(client, 2)
        client.wait_idle()
        assert [p.header.stamp.sec for p in client.poses] == [60, 63]
        assert client.counter("accepted") == 2
        assert proc.poll() is None
    finally:
        stop(proc)
        client.close()

