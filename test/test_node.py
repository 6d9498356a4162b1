# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The localizer node as users start it: a separate process over real DDS."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_node_support import (
    LAT0,
    LON0,
    Client,
    intrinsics,
    move,
    start_node,
    stop,
    write_params,
    write_tile_cache,
)

pytest.importorskip("rclpy")

W, H = 160, 48
NODE = "/localizer"


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from denseflow_ros.model import DenseFlow, get_preset, save_checkpoint

    root = tmp_path_factory.mktemp("node")
    model = root / "lite.pt"
    save_checkpoint(DenseFlow(get_preset("lite")).eval(), model)
    return {"model": model, "tiles": write_tile_cache(root / "xyz")}


def _params(tmp_path: Path, assets: dict[str, Path], **extra: object) -> Path:
    base = dict(model_path=str(assets["model"]), tile_cache=str(assets["tiles"]),
                datum=[LAT0, LON0], warmup_runs=1, diagnostics_period_s=0.2, gate_sigma=0.0,
                log_throttle_s=0.0)
    return write_params(tmp_path / "params.yaml", **{**base, **extra})


def _texture(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (H, W, 3), dtype=np.uint8)


def _frame(client: Client, t: float, heading: float | None = 0.3, image: np.ndarray | None = None,
           encoding: str = "rgb8", lat: float = LAT0, lon: float = LON0,
           camera_info: bool = True) -> None:
    client.send_prior(t, lat, lon, heading)
    if camera_info:
        client.send_camera_info(intrinsics(W, H), W, H)
    client.wait_inputs()
    client.send_image(t, _texture(int(abs(t))) if image is None else image, encoding)


def _expect_pose(client: Client, n: int) -> None:
    assert client.spin(30.0, lambda: len(client.poses) >= n), \
        f"expected {n} poses, got {len(client.poses)}; diagnostics {client.diag()}"


def _expect_rejected(client: Client, reason: str, n: int = 1) -> None:
    assert client.wait_diag(f"rejected_{reason}", n), \
        f"no rejection '{reason}' counted; diagnostics {client.diag()}"


def test_node_publishes_poses_and_survives_bad_input(
        tmp_path: Path, assets: dict[str, Path], ros_env: dict[str, str], ros_domain: int) -> None:
    from sensor_msgs.msg import CameraInfo, Image

    proc = start_node(_params(tmp_path, assets), ros_env)
    client = Client(ros_domain)
    try:
        client.wait_for_node(proc)
        _frame(client, 100.0)
        _expect_pose(client, 1)
        pose = client.poses[0]
        assert pose.header.frame_id == "map"
        assert (pose.header.stamp.sec, pose.header.stamp.nanosec) == (100, 0)
        cov = np.array(pose.pose.covariance).reshape(6, 6)
        assert np.all(np.isfinite(cov)) and np.all(np.diag(cov) > 0)
        assert cov[2, 2] == cov[3, 3] == cov[4, 4] == 1.0e6
        assert client.spin(5.0, lambda: len(client.fixes) >= 1)
        assert client.fixes[0].header.frame_id == "base_link"
        assert abs(client.fixes[0].latitude - LAT0) < 1e-3

        t = 101.0
        bad_images = []
        wrong_step = Image(height=H, width=W, encoding="rgb8", step=W)
        wrong_step.data = _texture(1).tobytes()
        bad_images.append(wrong_step)
        short = Image(height=H, width=W, encoding="rgb8", step=W * 3)
        short.data = _texture(1).tobytes()[:-7]
        bad_images.append(short)
        bad_images.append(Image(height=0, width=0, encoding="rgb8", step=0))
        yuv = Image(height=H, width=W, encoding="yuv422", step=W * 2)
        yuv.data = bytes(W * H * 2)
        bad_images.append(yuv)
        for i, msg in enumerate(bad_images):
            client.send_prior(t, LAT0, LON0, 0.3)
            client.wait_inputs()
            msg.header.stamp = client.stamp(t)
            client.publish("image", msg)
            _expect_rejected(client, "bad_image", i + 1)
            t += 1.0
        _frame(client, t)
        _expect_pose(client, 2)

        # A camera_info of zeros is rejected; the last good one stays in use.
        client.publish("camera_info", CameraInfo(width=W, height=H))
        _expect_rejected(client, "bad_camera_info")
        t += 1.0
        _frame(client, t, camera_info=False)
        _expect_pose(client, 3)

        # Fixes: NaN, NO_FIX, out of range: ignored, so the frame has no usable fix.
        t += 1.0
        client.send_prior(t, float("nan"), LON0, 0.3)
        client.send_prior(t, LAT0, LON0, 0.3, status=-1)
        client.send_prior(t, 123.0, LON0, 0.3)
        client.wait_inputs()
        client.send_image(t, _texture(3))
        _expect_rejected(client, "no_fix")
        # Each unusable fix message is counted by its own reason; the frame left without a
        # fix once, as a frame.
        assert client.counter("rejected_fix_nan") == 1
        assert client.counter("rejected_fix_no_fix") == 1
        assert client.counter("rejected_fix_out_of_range") == 1
        assert client.counter("rejected_no_fix") == 1
        # A fix far outside the tile cache.
        t += 1.0
        _frame(client, t, lat=move(LAT0, LON0, 0.0, 9000.0)[0])
        _expect_rejected(client, "low_coverage")
        # No heading within max_heading_age_s.
        t += 1.0
        client.send_prior(t, LAT0, LON0, None)
        client.wait_inputs()
        client.send_image(t, _texture(4))
        _expect_rejected(client, "no_heading")
        # The clock jumps back an hour: counted, then frames on the new clock work.
        t -= 3600.0
        _frame(client, t)
        _expect_rejected(client, "clock_jump")
        _expect_pose(client, 4)
        t += 1.0
        _frame(client, t)
        _expect_pose(client, 5)

        assert client.wait_diag("accepted", 5)

        # A burst faster than the network: only the newest waiting frame is processed. The
        # fixes lead the frames by seconds, which is no clock jump.
        burst = [t + 1.0 + i for i in range(5)]
        for tb in burst:
            client.send_prior(tb, LAT0, LON0, 0.3)
        client.wait_inputs()
        for tb in burst:
            client.send_image(tb, _texture(7))
        assert client.spin(30.0, lambda: client.poses[-1].header.stamp.sec == int(burst[-1])), \
            f"stamps {[p.header.stamp.sec for p in client.poses]}; {client.diag()}"
        client.wait_idle()
        accepted = client.counter("accepted")
        assert client.spin(10.0, lambda: len(client.poses) == accepted)
        assert 6 <= accepted < 5 + len(burst)
        assert client.counter("dropped_stale") == 5 + len(burst) - accepted
        diag = client.diag()
        assert diag["state"] == "active"
        assert diag["device"] == "cpu"
        assert client.wait_diag("accepted", accepted)
        assert int(client.diag()["accepted"]) == accepted
        assert float(diag["latency_ms_median"]) > 0
        assert proc.poll() is None
    finally:
        out = stop(proc)
        client.close()
    assert "skipped (bad_image)" in out


def test_image_before_its_fix_waits_for_it(
        tmp_path: Path, assets: dict[str, Path], ros_env: dict[str, str], ros_domain: int) -> None:
    # A long wait, so the test does not depend on how fast a loaded machine delivers the fix.
    proc = start_node(_params(tmp_path, assets, fix_wait_s=1.5), ros_env)
    client = Client(ros_domain)
    try:
        client.wait_for_node(proc)
        client.send_camera_info(intrinsics(W, H), W, H)
        client.wait_inputs()
        # No fix has ever arrived: the frame is rejected once the wait runs out.
        client.send_image(40.0, _texture(40))
        _expect_rejected(client, "no_fix")
        assert int(client.diag().get("waited_for_prior", "0")) == 1
        assert proc.poll() is None

        # Each image goes out before its fix and heading of the same stamp, and any earlier
        # fix is a second old (beyond max_fix_age_s): the frame waits for its own and pairs.
        for i, t in enumerate((41.0, 42.0)):
            client.send_image(t, _texture(int(t)))
            assert client.wait_diag("waited_for_prior", 2 + i)
            client.send_prior(t, LAT0, LON0, 0.3)
            _expect_pose(client, i + 1)
            assert (client.poses[i].header.stamp.sec, client.poses[i].header.stamp.nanosec) \
                == (int(t), 0)
        assert client.wait_diag("waited_for_prior", 3)
        assert int(client.diag().get("rejected_no_fix", "0")) == 1

        # While 43.0 waits, the queue of one behind it keeps only the newest image: 45.0
        # replaces 44.0. The fix stamped 45.0 ends the wait of 43.0 without pairing it (two
        # seconds away), and 45.0 is localized.
        client.send_image(43.0, _texture(43))
        assert client.wait_diag("waited_for_prior", 4)
        for t in (44.0, 45.0):
            client.send_image(t, _texture(int(t)))
            client.wait_inputs()
        client.send_prior(45.0, LAT0, LON0, 0.3)
        _expect_pose(client, 3)
        _expect_rejected(client, "no_fix", 2)
        client.wait_idle()
        assert client.spin(10.0, lambda: len(client.poses) == client.counter("accepted"))
        assert [p.header.stamp.sec for p in client.poses] == [41, 42, 45]
        diag = client.diag()
        assert int(diag["rejected_no_fix"]) == 2 and int(diag["dropped_stale"]) == 1
        assert int(diag["accepted"]) == 3
        assert proc.poll() is None
    finally:
        stop(proc)
        client.close()


def test_runtime_parameters_apply_and_ranges_are_enforced(
        tmp_path: Path, assets: dict[str, Path], ros_env: dict[str, str], ros_domain: int) -> None:
    proc = start_node(_params(tmp_path, assets), ros_env)
    client = Client(ros_domain)
    try:
        client.wait_for_node(proc)
        _frame(client, 10.0)
        _expect_pose(client, 1)

        # A threshold no estimate meets: the next frame is rejected, not published.
        (ok,) = client.set_parameters(NODE, min_confidence=1.0)
        assert ok.successful
        _frame(client, 11.0)
        _expect_rejected(client, "low_confidence")
        assert len(client.poses) == 1
        results = client.set_parameters(NODE, min_confidence=0.0, iterations=2,
                                        precision="bf16", fine_stage=False)
        assert [r.successful for r in results] == [True] * 4
        _frame(client, 12.0)
        _expect_pose(client, 2)

        (bad,) = client.set_parameters(NODE, min_confidence=1.5)
        assert not bad.successful and "out of range" in bad.reason
        (bad,) = client.set_parameters(NODE, precision="fp64")
        assert not bad.successful and "precision" in bad.reason
        (bad,) = client.set_parameters(NODE, model_path="/tmp/other.pt")
        assert not bad.successful and "read-only" in bad.reason
        (bad,) = client.set_parameters(NODE, iterations=-1)
        assert not bad.successful
        assert client.wait_diag("accepted", 2)
        assert client.diag()["precision"] == "bf16"

        # The debug view is drawn only while someone subscribes to it.
        from sensor_msgs.msg import Image

        debug: list = []
        sub = client.node.create_subscription(Image, f"{NODE}/debug/image", debug.append, 10)
        assert client.spin(20.0, lambda: sub.get_publisher_count() > 0)
        _frame(client, 13.0)
        _expect_pose(client, 3)
        assert client.spin(10.0, lambda: len(debug) >= 1)
        from denseflow_ros.model import get_preset

        crop = get_preset("lite").satellite_size
        assert (debug[0].width, debug[0].height, debug[0].encoding) == (crop, crop, "rgb8")
        assert (debug[0].header.stamp.sec, debug[0].header.stamp.nanosec) == (13, 0)
        assert client.diag()["iterations"] == "2"
        # The test network has no fine stage: the switch reads off either way.
        assert client.diag()["fine_stage"] == "off"
    finally:
        stop(proc)
        client.close()


def test_compressed_images_and_garbage_data(
        tmp_path: Path, assets: dict[str, Path], ros_env: dict[str, str], ros_domain: int) -> None:
    import cv2
    from sensor_msgs.msg import CompressedImage

    proc = start_node(_params(tmp_path, assets, image_transport="compressed"), ros_env)
    client = Client(ros_domain)

    def send(t: float, data: bytes) -> None:
        client.send_prior(t, LAT0, LON0, 0.3)
        client.wait_inputs()
        msg = CompressedImage(format="png", data=data)
        msg.header.stamp = client.stamp(t)
        client.publish("compressed", msg)

    try:
        client.wait_for_node(proc)
        assert client.pub_image.get_subscription_count() == 0
        client.send_camera_info(intrinsics(W, H), W, H)
        client.wait_inputs()
        png = cv2.imencode(".png", _texture(5))[1].tobytes()
        send(20.0, png)
        _expect_pose(client, 1)
        send(21.0, b"\x89PNG garbage" * 10)
        _expect_rejected(client, "bad_image")
        send(22.0, png[: len(png) // 3])
        _expect_rejected(client, "bad_image", 2)
        send(23.0, png)
        _expect_pose(client, 2)
    finally:
        stop(proc)
        client.close()


def test_lifecycle_transitions_without_autostart(
        tmp_path: Path, assets: dict[str, Path], ros_env: dict[str, str], ros_domain: int) -> None:
    from lifecycle_msgs.msg import State, Transition
    from lifecycle_msgs.srv import ChangeState, GetState

    proc = start_node(_params(tmp_path, assets, autostart=False), ros_env)
    client = Client(ros_domain)
    try:
        get = client.node.create_client(GetState, f"{NODE}/get_state")
        change = client.node.create_client(ChangeState, f"{NODE}/change_state")
        assert client.spin(30.0, lambda: get.service_is_ready() and change.service_is_ready())

        def call(cli: object, req: object) -> object:
            future = cli.call_async(req)
            assert client.spin(60.0, future.done)
            return future.result()

        assert call(get, GetState.Request()).current_state.id == State.PRIMARY_STATE_UNCONFIGURED
        assert client.pub_image.get_subscription_count() == 0
        for tid in (Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE):
            assert call(change, ChangeState.Request(transition=Transition(id=tid))).success
        assert call(get, GetState.Request()).current_state.id == State.PRIMARY_STATE_ACTIVE
        client.wait_for_node(proc)
        _frame(client, 30.0)
        _expect_pose(client, 1)
        assert call(change, ChangeState.Request(
            transition=Transition(id=Transition.TRANSITION_DEACTIVATE))).success
        assert client.spin(10.0, lambda: client.pub_image.get_subscription_count() == 0)
    finally:
        stop(proc)
        client.close()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model_path:=''", "parameter 'model_path': not set"),
        ("model_path:=/nonexistent/model.pt", "parameter 'model_path': no such file"),
        ("tile_cache:=/nonexistent/tiles.mbtiles", "parameter 'tile_cache': no such file"),
        ("preset:=kitty", "parameter 'preset' must be one of"),
        ("device:=tpu", "parameter 'device': must be"),
        ("max_fix_age_s:=-1.0", "parameter 'max_fix_age_s'"),
    ],
)
def test_startup_errors_name_the_parameter(
        tmp_path: Path, assets: dict[str, Path], ros_env: dict[str, str], override: str,
        message: str) -> None:
    params = _params(tmp_path, assets)
    exe = str(Path(sys.executable).with_name("localizer_node"))
    result = subprocess.run([exe, "--ros-args", "--params-file", str(params), "-p", override],
                            env=ros_env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    errors = [line for line in (result.stdout + result.stderr).splitlines() if "ERROR" in line]
    assert len(errors) == 1 and message in errors[0], result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_empty_tile_cache_is_a_startup_error(
        tmp_path: Path, assets: dict[str, Path], ros_env: dict[str, str]) -> None:
    empty = tmp_path / "empty_tiles"
    empty.mkdir()
    params = _params(tmp_path, assets, tile_cache=str(empty))
    exe = str(Path(sys.executable).with_name("localizer_node"))
    result = subprocess.run([exe, "--ros-args", "--params-file", str(params)], env=ros_env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "parameter 'tile_cache'" in result.stdout + result.stderr


def test_shipped_configs_match_the_declared_parameters() -> None:
    import yaml

    from denseflow_ros.ros.parameters import SPECS

    root = Path(__file__).resolve().parents[1] / "config"
    defaults = yaml.safe_load((root / "localize.yaml").read_text())["/**"]["ros__parameters"]
    assert defaults == {name: spec.default for name, spec in SPECS.items()}
    for name in ("kitti.yaml", "ford.yaml"):
        values = yaml.safe_load((root / name).read_text())["/**"]["ros__parameters"]
        assert set(values) <= set(SPECS), name
        assert values["preset"] in ("kitti", "ford")
        for key, value in values.items():
            spec = SPECS[key]
            if spec.low is not None:
                assert spec.low <= value <= spec.high, (name, key)
            assert not spec.choices or value in spec.choices
    assert math.isclose(
        yaml.safe_load((root / "kitti.yaml").read_text())["/**"]["ros__parameters"][
            "camera_height_m"], 1.65)
