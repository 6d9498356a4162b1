# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Drives: on the road, physically plausible, and priors whose errors match their models."""

from __future__ import annotations

import math

import numpy as np
import pytest

from denseflow_ros.sim import (
    Drive,
    GnssModel,
    ImuModel,
    World,
    generate_world,
    gnss_errors,
    imu_yaw_errors,
    simulate_drive,
)
from denseflow_ros.sim.drive import gauss_markov
from denseflow_ros.sim.layout import SURF_MARKING, SURF_ROAD


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(11, size_m=500.0, mpp=0.25)


@pytest.fixture(scope="module")
def drive(world: World) -> Drive:
    return simulate_drive(world, seed=4, n_frames=900)


def test_drive_stays_on_the_carriageway(world: World, drive: Drive) -> None:
    col, row = world.enu_to_pixel(drive.east, drive.north)
    m = world.material[np.rint(row).astype(int), np.rint(col).astype(int)]
    assert np.isin(m, (SURF_ROAD, SURF_MARKING)).mean() > 0.98
    assert np.all(world.height[np.rint(row).astype(int), np.rint(col).astype(int)] == 0)


def test_vehicle_motion_is_plausible(drive: Drive) -> None:
    assert len(drive) == 900
    np.testing.assert_allclose(np.diff(drive.t_s), 0.1)
    assert 1.0 <= drive.speed_mps.min() and drive.speed_mps.max() < 15.0
    assert np.abs(drive.accel_mps2).max() < 3.5
    assert np.abs(drive.speed_mps * drive.yaw_rate_rps).max() < 3.0  # lateral acceleration
    # The heading is the direction of travel.
    de, dn = np.diff(drive.east), np.diff(drive.north)
    course = np.arctan2(dn, de)
    mid_yaw = drive.yaw_rad[:-1] + 0.5 * np.angle(np.exp(1j * np.diff(drive.yaw_rad)))
    err = np.degrees(np.abs(np.angle(np.exp(1j * (course - mid_yaw)))))
    assert np.percentile(err, 99) < 1.0
    # Distance travelled matches the speed.
    dist = np.hypot(de, dn)
    np.testing.assert_allclose(dist, 0.05 * (drive.speed_mps[1:] + drive.speed_mps[:-1]),
                               atol=0.05)
    # The route turns at junctions.
    assert np.ptp(np.unwrap(drive.yaw_rad)) > math.radians(60)


def test_truth_latlon_matches_enu(world: World, drive: Drive) -> None:
    e, n = world.enu.forward(drive.lat, drive.lon)
    assert np.abs(e - drive.east).max() < 1e-6 and np.abs(n - drive.north).max() < 1e-6
    ge, gn = world.enu.forward(drive.gnss_lat, drive.gnss_lon)
    assert np.abs(ge - drive.gnss_east).max() < 1e-6


def test_same_seed_same_drive(world: World, drive: Drive) -> None:
    again = simulate_drive(world, seed=4, n_frames=900)
    for name in ("east", "north", "yaw_rad", "gnss_east", "imu_yaw_rad", "gnss_cov"):
        assert getattr(again, name).tobytes() == getattr(drive, name).tobytes()
    other = simulate_drive(world, seed=5, n_frames=900)
    assert np.abs(other.east - drive.east).max() > 5.0


def test_drive_save_load(drive: Drive, tmp_path) -> None:
    drive.save(tmp_path / "d.npz")
    back = Drive.load(tmp_path / "d.npz")
    assert back.seed == drive.seed and back.rate_hz == drive.rate_hz
    assert back.gnss_model == drive.gnss_model and back.imu_model == drive.imu_model
    np.testing.assert_array_equal(back.gnss_cov, drive.gnss_cov)


def test_gauss_markov_statistics() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(200_000) * 0.5
    x = gauss_markov(rng, t, sigma=2.0, tau_s=30.0)[:, 0]
    assert x.std() == pytest.approx(2.0, rel=0.05)
    lag = 60  # 30 s
    corr = np.corrcoef(x[:-lag], x[lag:])[0, 1]
    assert corr == pytest.approx(math.exp(-1.0), abs=0.03)


def test_gnss_error_statistics_match_the_model() -> None:
    model = GnssModel(bias_sigma_m=1.5, bias_tau_s=60.0, white_sigma_m=0.5,
                      multipath_rate_hz=0.0, overconfident_rate_hz=0.0)
    t = np.arange(100_000) * 1.0
    g = gnss_errors(np.random.default_rng(1), t, model)
    for axis in (g.east_m, g.north_m):
        assert axis.std() == pytest.approx(model.nominal_sigma_m, rel=0.06)
        assert abs(axis.mean()) < 0.1
        # Steps between fixes: white noise twice, plus the bias' small increment.
        phi = math.exp(-1.0 / 60.0)
        step_var = 2 * 0.5 ** 2 + 2 * 1.5 ** 2 * (1 - phi)
        assert np.diff(axis).var() == pytest.approx(step_var, rel=0.05)
    assert not g.multipath.any() and not g.overconfident.any()
    # Without multipath the reported sigma is the nominal one, scaled by a slow DOP.
    assert np.median(g.reported_sigma_m) == pytest.approx(model.nominal_sigma_m, rel=0.1)


def test_multipath_jumps_and_lying_covariance() -> None:
    model = GnssModel(bias_sigma_m=0.0, white_sigma_m=0.0, multipath_rate_hz=1 / 60.0,
                      multipath_duration_s=5.0, multipath_jump_m=(4.0, 10.0),
                      multipath_flagged_fraction=0.5, overconfident_rate_hz=1 / 100.0,
                      overconfident_duration_s=8.0, overconfident_factor=0.3, dop_sigma=0.0)
    t = np.arange(400_000) * 0.5
    g = gnss_errors(np.random.default_rng(2), t, model)
    err = np.hypot(g.east_m, g.north_m)
    assert np.all(err[~g.multipath] == 0.0)
    # Poisson arrivals with exponential durations: on for 1 - exp(-rate * duration).
    assert g.multipath.mean() == pytest.approx(1 - math.exp(-5.0 / 60.0), rel=0.15)
    starts = np.flatnonzero(np.diff(g.multipath.astype(int)) == 1) + 1
    # Episodes that overlap merge, and some are too short to cover a sample: a few less.
    assert 0.8 * t[-1] / 60.0 < len(starts) < t[-1] / 60.0
    single = err[starts]  # the first sample of an episode holds one jump
    assert single.min() >= 4.0 - 1e-9 and np.percentile(single, 95) <= 10.0 + 1e-9
    # Only some episodes are flagged by the reported covariance: the rest lie.
    flagged = g.reported_sigma_m[starts] >= single - 1e-9
    assert 0.35 < flagged.mean() < 0.65
    # Over-confident episodes report a fraction of the usual sigma.
    nominal = model.nominal_sigma_m
    quiet = ~g.multipath
    assert np.allclose(g.reported_sigma_m[quiet & g.overconfident], 0.3 * nominal)
    assert g.overconfident.mean() == pytest.approx(1 - math.exp(-8.0 / 100.0), rel=0.2)


def test_imu_heading_error_statistics() -> None:
    model = ImuModel(yaw_bias_sigma_rad=math.radians(2.0), yaw_bias_tau_s=100.0,
                     yaw_white_sigma_rad=math.radians(0.4))
    t = np.arange(200_000) * 0.5
    err = imu_yaw_errors(np.random.default_rng(3), t, model)
    assert err.std() == pytest.approx(model.yaw_sigma_rad, rel=0.06)
    phi = math.exp(-0.5 / 100.0)
    step_var = 2 * math.radians(0.4) ** 2 + 2 * math.radians(2.0) ** 2 * (1 - phi)
    assert np.diff(err).var() == pytest.approx(step_var, rel=0.05)


def test_drive_priors_follow_their_models(world: World, drive: Drive) -> None:
    ge = drive.gnss_east - drive.east
    gn = drive.gnss_north - drive.north
    quiet = ~drive.gnss_multipath
    # One 90 s drive holds about one bias correlation time: loose bounds only.
    assert np.hypot(ge, gn)[quiet].max() < 6 * drive.gnss_model.nominal_sigma_m
    assert np.all(drive.gnss_cov[:, 0, 0] > 0) and np.all(drive.gnss_cov[:, 0, 1] == 0)
    yaw_err = np.angle(np.exp(1j * (drive.imu_yaw_rad - drive.yaw_rad)))
    assert np.abs(yaw_err).max() < 5 * drive.imu_model.yaw_sigma_rad
    np.testing.assert_allclose(drive.imu_yaw_var_rad2, drive.imu_model.yaw_sigma_rad ** 2)
    gyro_err = drive.imu_gyro_rps[:, 2] - drive.yaw_rate_rps
    assert np.abs(gyro_err - gyro_err.mean()).std() < 2 * drive.imu_model.gyro_white_sigma_rps
    assert np.median(drive.imu_accel_mps2[:, 2]) == pytest.approx(9.80665, abs=0.05)


def test_too_small_world_is_refused() -> None:
    tiny = generate_world(1, size_m=40.0, mpp=0.5)
    with pytest.raises(ValueError, match="too small for a route"):
        simulate_drive(tiny, seed=0, n_frames=10)
    with pytest.raises(ValueError, match="n_frames"):
        simulate_drive(tiny, seed=0, n_frames=0)
