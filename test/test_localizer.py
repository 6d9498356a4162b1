# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The localizer without ROS: conventions end to end, covariance, gating, yaw search, open()."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from test_node_support import (
    LAT0,
    LON0,
    Oracle,
    frame_image,
    intrinsics,
    make_case,
    map_yaw,
    move,
    write_tile_cache,
)

from denseflow_ros.debug_view import debug_image
from denseflow_ros.geo import LocalEnu, SatelliteCache
from denseflow_ros.localizer import (
    CameraMount,
    Frame,
    FrameError,
    InputGeometry,
    Localizer,
    LocalizerSettings,
    MapFrame,
    Prior,
    SettingsError,
    Thresholds,
    prepare_ground,
)
from denseflow_ros.model import get_preset

MOUNT = dict(camera_x_m=1.3, camera_y_m=-0.4, antenna_x_m=-0.6, antenna_y_m=0.25)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> SatelliteCache:
    return SatelliteCache(write_tile_cache(tmp_path_factory.mktemp("tiles") / "xyz",
                                           ramp=True))


def _localizer(model: object, cache: SatelliteCache, map_frame: MapFrame,
               mount: dict[str, float] | None = None) -> Localizer:
    geometry = InputGeometry.from_preset(get_preset("lite"))
    return Localizer(model, cache, geometry, map_frame, CameraMount(**(mount or {})))


@pytest.mark.parametrize("projection", ["enu", "utm"])
def test_oracle_poses_land_on_the_truth_all_round_the_compass(
        cache: SatelliteCache, projection: str) -> None:
    from pyproj import Transformer

    rng = np.random.default_rng(7 if projection == "enu" else 8)
    cases = [make_case(rng, math.radians(a + rng.uniform(-10, 10)), MOUNT)
             for a in range(-180, 180, 30)]
    oracle = Oracle({i: (c["shift_u"], c["shift_v"], c["yaw_deg"]) for i, c in
                     enumerate(cases)})
    datum = move(LAT0, LON0, 35.0, -20.0)
    loc = _localizer(oracle, cache, MapFrame(projection, datum), MOUNT)
    if projection == "enu":
        enu = LocalEnu(*datum)

        def project(lat: float, lon: float) -> tuple[float, float]:
            return enu.forward(lat, lon)
    else:
        utm = Transformer.from_crs("EPSG:4326", "EPSG:32632", always_xy=True)

        def project(lat: float, lon: float) -> tuple[float, float]:
            return utm.transform(lon, lat)
    for i, c in enumerate(cases):
        frame = Frame(frame_image(i), intrinsics())
        est = loc.localize(frame, Prior(c["prior_lat"], c["prior_lon"], c["prior_heading"],
                                        np.eye(2) * 15.0 ** 2))
        assert est.rejection is None
        x, y = project(c["lat"], c["lon"])
        yaw = map_yaw(project, c["lat"], c["lon"], c["yaw"])
        assert math.hypot(est.x - x, est.y - y) < 0.05, (i, est.x - x, est.y - y)
        assert abs(math.degrees(math.remainder(est.yaw - yaw, 2 * math.pi))) < 0.05
        assert math.hypot(*((np.array(move(c["lat"], c["lon"], 0, 0))
                             - [est.lat, est.lon]) * [111e3, 73e3])) < 0.05
    if projection == "utm":
        assert loc.map_frame.utm_zone == 32


class FixedOutput:
    """A model that returns one fixed pose and covariance for every crop."""

    def __init__(self, su: float, sv: float, yaw_deg: float, cov: np.ndarray,
                 confidence: float = 0.9) -> None:
        self.out = (su, sv, yaw_deg, cov, confidence)
        self.config = get_preset("lite")

    def __call__(self, ground, satellite, intrinsics, satellite_mpp=None, camera_height_m=None):
        b, s = satellite.shape[0], satellite.shape[-1]
        su, sv, yaw, cov, conf = self.out
        return SimpleNamespace(
            shift_u_m=torch.full((b,), su), shift_v_m=torch.full((b,), sv),
            yaw_deg=torch.full((b,), yaw),
            covariance=torch.as_tensor(cov, dtype=torch.float32).expand(b, 3, 3),
            confidence=torch.full((b, 1, s, s), conf), mask=torch.ones(b, 1, s, s, dtype=bool))


@pytest.mark.parametrize("heading_deg", [0.0, 30.0, 135.0, -100.0])
def test_covariance_is_rotated_into_the_map_frame(cache: SatelliteCache,
                                                  heading_deg: float) -> None:
    cov_uvy = np.diag([4.0, 0.25, 1e-4])
    cov_uvy[0, 2] = cov_uvy[2, 0] = 0.01
    loc = _localizer(FixedOutput(0.0, 0.0, 0.0, cov_uvy), cache, MapFrame("enu", (LAT0, LON0)))
    h = math.radians(heading_deg)
    est = loc.localize(Frame(frame_image(0), intrinsics()), Prior(LAT0, LON0, h))
    r = np.array([[math.cos(h), -math.sin(h)], [math.sin(h), math.cos(h)]])
    expected = r @ np.diag([4.0, 0.25]) @ r.T
    assert np.allclose(est.covariance[:2, :2], expected, atol=1e-3)
    assert est.covariance[2, 2] == pytest.approx(1e-4, rel=1e-3)
    # Along-track/yaw correlation ends up along the heading direction in the map.
    assert np.allclose(est.covariance[:2, 2], r @ [0.01, 0.0], atol=1e-4)
    assert np.all(np.linalg.eigvalsh(est.covariance) > 0)


def test_camera_offset_turns_yaw_uncertainty_into_position_uncertainty(
        cache: SatelliteCache) -> None:
    cov_uvy = np.diag([0.01, 0.01, 0.01])
    loc = _localizer(FixedOutput(0.0, 0.0, 0.0, cov_uvy), cache, MapFrame("enu", (LAT0, LON0)),
                     dict(camera_x_m=2.0))
    est = loc.localize(Frame(frame_image(0), intrinsics()), Prior(LAT0, LON0, 0.0))
    # Heading east, camera 2 m ahead: a yaw error swings base_link sideways (north).
    assert est.covariance[1, 1] == pytest.approx(0.01 + 4.0 * 0.01, rel=1e-3)
    assert est.covariance[0, 0] == pytest.approx(0.01, rel=1e-3)


def test_gate_and_confidence_reject(cache: SatelliteCache) -> None:
    frame = Frame(frame_image(0), intrinsics())
    far = _localizer(FixedOutput(30.0, 0.0, 0.0, np.eye(3) * 0.01), cache,
                     MapFrame("enu", (LAT0, LON0)))
    prior = Prior(LAT0, LON0, 0.0, np.eye(2) * 5.0 ** 2)
    assert far.localize(frame, prior, Thresholds(gate_sigma=3.0)).rejection == "outside_gate"
    assert far.localize(frame, prior, Thresholds(gate_sigma=0.0)).rejection is None
    wide = Prior(LAT0, LON0, 0.0, np.eye(2) * 15.0 ** 2)
    assert far.localize(frame, wide, Thresholds(gate_sigma=3.0)).rejection is None
    # An estimate that says it is uncertain is gated against its own covariance too: 30 m
    # from a 5 m fix is consistent with a 20 m estimate std (30 / sqrt(25 + 400 + 4) < 3).
    unsure = _localizer(FixedOutput(30.0, 0.0, 0.0, np.diag([400.0, 400.0, 0.01])), cache,
                        MapFrame("enu", (LAT0, LON0)))
    assert unsure.localize(frame, prior, Thresholds(gate_sigma=3.0)).rejection is None
    est = unsure.localize(frame, prior, Thresholds(gate_sigma=3.0))
    assert est.gate_distance == pytest.approx(30.0 / math.sqrt(25.0 + 400.0 + 4.0), rel=1e-3)
    low = _localizer(FixedOutput(0.0, 0.0, 0.0, np.eye(3) * 0.01, confidence=0.2), cache,
                     MapFrame("enu", (LAT0, LON0)))
    assert low.localize(frame, prior, Thresholds(min_confidence=0.5)).rejection == \
        "low_confidence"
    turned = _localizer(FixedOutput(0.0, 0.0, 12.0, np.eye(3) * 0.01), cache,
                        MapFrame("enu", (LAT0, LON0)))
    assert turned.localize(frame, prior, Thresholds(max_yaw_correction_deg=10.0)).rejection \
        == "outside_gate"


def test_prior_outside_the_tile_cache_is_a_frame_error(cache: SatelliteCache) -> None:
    loc = _localizer(FixedOutput(0.0, 0.0, 0.0, np.eye(3)), cache, MapFrame("enu"))
    far = move(LAT0, LON0, 5000.0, 0.0)
    with pytest.raises(FrameError) as err:
        loc.localize(Frame(frame_image(0), intrinsics()), Prior(*far, 0.0))
    assert err.value.reason == "low_coverage"
    with pytest.raises(FrameError) as err:
        loc.localize(Frame(frame_image(0), intrinsics()), Prior(float("nan"), LON0, 0.0))
    assert err.value.reason == "bad_fix"
    assert not loc.map_frame.ready


class HeadingReader:
    """A model that reads the crop's heading from the east-going red ramp of the tiles."""

    def __init__(self, true_heading: float) -> None:
        self.true_heading = true_heading
        self.config = get_preset("lite")

    def __call__(self, ground, satellite, intrinsics, satellite_mpp=None, camera_height_m=None):
        b, s = satellite.shape[0], satellite.shape[-1]
        red = satellite[:, 0].double()
        gu = (red[:, :, 1:] - red[:, :, :-1]).mean((1, 2))
        gv = (red[:, 1:, :] - red[:, :-1, :]).mean((1, 2))
        crop_heading = torch.atan2(gv, gu)
        dyaw = torch.remainder(self.true_heading - crop_heading + math.pi, 2 * math.pi) - math.pi
        conf = (1 + torch.cos(dyaw)) / 2
        return SimpleNamespace(
            shift_u_m=torch.zeros(b), shift_v_m=torch.zeros(b), yaw_deg=torch.rad2deg(dyaw),
            covariance=torch.eye(3).expand(b, 3, 3) * 0.01,
            confidence=conf[:, None, None, None].expand(b, 1, s, s).float(),
            mask=torch.ones(b, 1, s, s, dtype=bool))


def test_unknown_heading_searches_hypotheses_and_keeps_the_most_confident(
        cache: SatelliteCache) -> None:
    truth = math.radians(-127.0)
    loc = _localizer(HeadingReader(truth), cache, MapFrame("enu", (LAT0, LON0)))
    loc.yaw_hypotheses = 12
    est = loc.localize(Frame(frame_image(0), intrinsics()), Prior(LAT0, LON0, None))
    assert abs(math.degrees(math.remainder(est.heading_enu_rad - truth, 2 * math.pi))) < 0.5
    # The search's winner is the hypothesis nearest the truth, less than 15 deg away.
    assert est.confidence > (1 + math.cos(math.radians(15.0))) / 2


def test_prepare_ground_resizes_and_rescales_intrinsics() -> None:
    image = np.zeros((375, 1242, 3), np.uint8)
    image[100:110, 600:610] = 255
    k = np.array([[718.0, 0.0, 607.0], [0.0, 718.0, 185.0], [0.0, 0.0, 1.0]])
    out, k2 = prepare_ground(Frame(image, k), (128, 512))
    assert out.shape == (128, 512, 3)
    # The bright patch's centre, mapped through both intrinsics, is the same ray.
    ys, xs = np.nonzero(out[..., 0] > 60)
    ray = np.linalg.solve(k, [604.5, 104.5, 1.0])
    ray2 = np.linalg.solve(k2, [xs.mean(), ys.mean(), 1.0])
    assert np.allclose(ray, ray2, atol=0.01)
    with pytest.raises(FrameError):
        prepare_ground(Frame(image, np.zeros((3, 3))), (128, 512))


def test_prepare_ground_undistorts_with_opencv() -> None:
    import cv2

    k = np.array([[200.0, 0.0, 159.5], [0.0, 200.0, 119.5], [0.0, 0.0, 1.0]])
    d = np.array([-0.3, 0.1, 0.0, 0.0, 0.0])
    # A point at a known undistorted pixel, drawn where the lens puts it.
    ideal = np.array([[[280.0, 200.0]]])
    norm = np.linalg.solve(k, [280.0, 200.0, 1.0])
    distorted, _ = cv2.projectPoints(np.array([[norm]]), np.zeros(3), np.zeros(3), k, d)
    image = np.zeros((240, 320, 3), np.uint8)
    u, v = np.round(distorted.reshape(2)).astype(int)
    image[v - 2:v + 3, u - 2:u + 3] = 255
    out, _ = prepare_ground(Frame(image, k, d), (240, 320))
    ys, xs = np.nonzero(out[..., 0] > 100)
    assert abs(xs.mean() - ideal[0, 0, 0]) < 1.5 and abs(ys.mean() - ideal[0, 0, 1]) < 1.5


def test_debug_image_draws_over_the_crop(cache: SatelliteCache) -> None:
    loc = _localizer(FixedOutput(8.0, -4.0, 5.0, np.eye(3) * 0.01), cache,
                     MapFrame("enu", (LAT0, LON0)))
    ground = np.full((32, 96, 3), 250, np.uint8)
    est = loc.localize(Frame(ground, intrinsics()), Prior(LAT0, LON0, 0.3), keep_debug=True)
    img = debug_image(est, loc.geometry)
    s = loc.geometry.satellite_size
    assert img.shape == (s, s, 3) and img.dtype == np.uint8
    assert not np.array_equal(img, est.debug["satellite"])
    # The estimate marker sits at the shifted camera position (8 m ahead, 4 m left).
    c, mpp = s // 2, loc.geometry.satellite_mpp
    u, v = int(round(c + 8.0 / mpp)), int(round(c - 4.0 / mpp))
    assert tuple(img[v, u]) == (0, 96, 255)


def test_warm_up_runs_the_model(cache: SatelliteCache, tmp_path: Path) -> None:
    calls = []

    def model(ground, satellite, intrinsics, satellite_mpp=None, camera_height_m=None):
        calls.append((tuple(ground.shape), tuple(satellite.shape)))
        return FixedOutput(0, 0, 0, np.eye(3))(ground, satellite, intrinsics)

    _localizer(model, cache, MapFrame("enu")).warm_up(3)
    s = get_preset("lite").satellite_size
    assert calls == [((1, 3, 128, 512), (1, 3, s, s))] * 3


def _settings(tiles: Path | str, **kw: object) -> LocalizerSettings:
    values: dict[str, object] = dict(
        model_path="", preset="lite", device="cpu", precision="fp32", tile_cache=str(tiles),
        tile_cache_mb=64, map_projection="enu", yaw_hypotheses=18)
    values.update(kw)
    return LocalizerSettings(**values)


@pytest.fixture(scope="module")
def tiles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tile_cache(tmp_path_factory.mktemp("open") / "xyz", radius_m=60.0)


def test_open_builds_the_pipeline_from_settings(tiles: Path) -> None:
    made: list[tuple[str, str]] = []

    def factory(preset: str, device: str) -> Oracle:
        made.append((preset, device))
        return Oracle({}, preset)

    mount = CameraMount(**MOUNT)
    loc = Localizer.open(_settings(tiles, device="auto", iterations=3, camera_height_m=1.9,
                                   datum=(LAT0, LON0), map_projection="utm", mount=mount,
                                   yaw_hypotheses=7), factory)
    preset = get_preset("lite")
    assert made == [("lite", loc.device)] and loc.device in ("cpu", "cuda")
    assert loc.geometry == InputGeometry.from_preset(preset, 1.9)
    assert loc.mount == mount and loc.yaw_hypotheses == 7
    assert loc.map_frame.ready and loc.map_frame.utm_zone == 32
    assert loc.iterations == 3 and loc.model.iterations == 3
    assert loc.status() == {"device": loc.device, "precision": "fp32", "iterations": "3",
                            "fine_stage": "off"}  # the oracle has none
    loc.iterations = 0  # 0 = the preset's
    assert loc.iterations == preset.iterations
    loc.close()
    assert loc.model is None and loc.cache is None


def test_open_loads_a_checkpoint_and_warns_of_fp16_on_the_cpu(tiles: Path, tmp_path: Path
                                                             ) -> None:
    from denseflow_ros.model import DenseFlow, save_checkpoint

    path = tmp_path / "lite.pt"
    config = get_preset("lite")
    config.fine_channels = 4
    save_checkpoint(DenseFlow(config).eval(), path)
    loc = Localizer.open(_settings(tiles, model_path=str(path), preset="", precision="fp16",
                                   fine_stage=False))
    assert isinstance(loc.model, DenseFlow) and loc.runs_fp32_for_fp16
    assert loc.iterations == get_preset("lite").iterations and not loc.map_frame.ready
    assert not loc.fine_stage and not loc.model.run_fine_stage
    loc.fine_stage = True
    assert loc.model.run_fine_stage and loc.status()["fine_stage"] == "on"
    loc.close()


@pytest.mark.parametrize(("change", "param", "text"), [
    (dict(model_path=""), "model_path", "not set"),
    (dict(model_path="/nonexistent/model.pt"), "model_path", "no such file"),
    (dict(model_path="EXISTING", preset="kitty"), "preset", "unknown preset 'kitty'"),
    (dict(model_path="EXISTING"), "model_path", "cannot load"),
    (dict(device="tpu"), "device", "must be auto, cpu, cuda or cuda:N"),
    (dict(precision="fp8"), "precision", "must be one of"),
    (dict(tile_cache=""), "tile_cache", "not set"),
    (dict(tile_cache="/nonexistent/tiles.mbtiles"), "tile_cache", "no such file or folder"),
    (dict(tile_cache="EMPTY"), "tile_cache", ""),
    (dict(datum=(LAT0,)), "datum", "must be [lat, lon] in degrees"),
    (dict(datum=(91.0, 0.0)), "datum", "must be [lat, lon] in degrees"),
    (dict(datum=(89.0, 0.0), map_projection="utm"), "datum", "UTM covers latitudes"),
    (dict(map_projection="lambert"), "map_projection", "must be one of"),
])
def test_open_names_the_setting_that_fails(tiles: Path, tmp_path: Path, change: dict,
                                           param: str, text: str) -> None:
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    (tmp_path / "empty").mkdir()
    swap = {"EXISTING": str(garbage), "EMPTY": str(tmp_path / "empty")}
    change = {k: swap.get(v, v) if isinstance(v, str) else v for k, v in change.items()}
    factory = None if "model_path" in change else (lambda preset, device: Oracle({}, preset))
    with pytest.raises(SettingsError) as err:
        Localizer.open(_settings(tiles, **change), factory)
    assert err.value.param == param and text in err.value.text
    assert str(err.value).startswith(f"{param}: ")


def test_rejection_is_raised_as_a_frame_error(cache: SatelliteCache) -> None:
    frame = Frame(frame_image(0), intrinsics())
    prior = Prior(LAT0, LON0, 0.0, np.eye(2) * 5.0 ** 2)
    far = _localizer(FixedOutput(30.0, 0.0, 0.0, np.eye(3) * 0.01), cache,
                     MapFrame("enu", (LAT0, LON0)))
    est = far.localize(frame, prior, Thresholds(gate_sigma=3.0))
    with pytest.raises(FrameError, match=r"estimate moved 30\.0 m .* outside the gate") as err:
        est.raise_rejection()
    assert err.value.reason == "outside_gate"
    low = _localizer(FixedOutput(0.0, 0.0, 0.0, np.eye(3) * 0.01, confidence=0.2), cache,
                     MapFrame("enu", (LAT0, LON0)))
    with pytest.raises(FrameError, match="mean confidence 0.200 is below") as err:
        low.localize(frame, prior, Thresholds(min_confidence=0.5)).raise_rejection()
    assert err.value.reason == "low_confidence"
    far.localize(frame, prior, Thresholds(gate_sigma=0.0)).raise_rejection()  # accepted
