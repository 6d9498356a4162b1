# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Drives through the synthetic town: a route on the street grid, a vehicle, GNSS and IMU.

Route: a random walk over the street grid's junctions (straight on, left or right; never
leaving the mapped area), in the right-hand lane (outer lane on arterials), corners rounded
to a turning radius. Vehicle: a speed profile from the street class (50 km/h arterials,
30 km/h minor streets), lateral-acceleration limits in curves, acceleration and braking
limits, and a slow lateral wander inside the lane. Truth is the camera's pose.

Sensors, each its own seeded random stream:

- GNSS (:class:`GnssModel`): a slowly drifting bias (first-order Gauss-Markov per axis),
  white noise, and multipath episodes (Poisson arrivals) that shift the fix by several metres
  for seconds. The reported covariance follows a slowly varying dilution of precision; it
  lies sometimes: only some multipath episodes are flagged by an inflated covariance, and in
  over-confident episodes the reported sigma drops well below the true error.
- IMU (:class:`ImuModel`): heading with a drifting bias (Gauss-Markov) and white noise, yaw
  rate with a gyro bias and noise, and accelerations with noise.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from denseflow_ros.sim.world import World

_SIM_HZ = 100.0
_TURN_RADIUS_M = 7.0
_MARGIN_M = 25.0


@dataclass
class GnssModel:
    """GNSS position error parameters (metres, seconds)."""

    bias_sigma_m: float = 2.5
    bias_tau_s: float = 90.0
    white_sigma_m: float = 0.7
    multipath_rate_hz: float = 1.0 / 45.0
    multipath_duration_s: float = 6.0
    multipath_jump_m: tuple[float, float] = (4.0, 12.0)
    multipath_flagged_fraction: float = 0.5
    overconfident_rate_hz: float = 1.0 / 120.0
    overconfident_duration_s: float = 10.0
    overconfident_factor: float = 0.3
    dop_sigma: float = 0.25
    dop_tau_s: float = 60.0

    @property
    def nominal_sigma_m(self) -> float:
        """Return the per-axis standard deviation of the error outside multipath episodes."""
        return math.hypot(self.bias_sigma_m, self.white_sigma_m)


@dataclass
class ImuModel:
    """IMU error parameters: heading (rad), yaw rate (rad/s), acceleration (m/s^2)."""

    yaw_bias_sigma_rad: float = math.radians(2.0)
    yaw_bias_tau_s: float = 300.0
    yaw_white_sigma_rad: float = math.radians(0.3)
    gyro_bias_sigma_rps: float = 0.002
    gyro_white_sigma_rps: float = 0.005
    accel_white_sigma_mps2: float = 0.05

    @property
    def yaw_sigma_rad(self) -> float:
        """Return the standard deviation of the heading error."""
        return math.hypot(self.yaw_bias_sigma_rad, self.yaw_white_sigma_rad)


@dataclass
class GnssErrors:
    """A GNSS error series: true east/north error (m), reported sigma (m), episode flags."""

    east_m: np.ndarray
    north_m: np.ndarray
    reported_sigma_m: np.ndarray
    multipath: np.ndarray
    overconfident: np.ndarray


@dataclass
class Drive:
    """One drive: per-frame truth (camera pose), GNSS and IMU priors, all arrays of length n."""

    seed: int
    rate_hz: float
    t_s: np.ndarray
    east: np.ndarray
    north: np.ndarray
    yaw_rad: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    speed_mps: np.ndarray
    yaw_rate_rps: np.ndarray
    accel_mps2: np.ndarray
    gnss_east: np.ndarray
    gnss_north: np.ndarray
    gnss_lat: np.ndarray
    gnss_lon: np.ndarray
    gnss_cov: np.ndarray  # (n, 3, 3) reported ENU covariance (m^2)
    gnss_status: np.ndarray  # sensor_msgs/NavSatStatus status codes
    gnss_multipath: np.ndarray
    imu_yaw_rad: np.ndarray
    imu_yaw_var_rad2: np.ndarray
    imu_gyro_rps: np.ndarray  # (n, 3)
    imu_accel_mps2: np.ndarray  # (n, 3), vehicle frame x forward, y left, z up
    gnss_model: GnssModel = field(default_factory=GnssModel)
    imu_model: ImuModel = field(default_factory=ImuModel)

    def __len__(self) -> int:
        return int(self.t_s.size)

    def save(self, path: str | Path) -> None:
        """Write the drive to one ``.npz`` file."""
        arrays = {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self)
            if isinstance(getattr(self, f.name), np.ndarray)
        }
        meta = {
            "format": "denseflow_ros.sim.drive/1", "seed": self.seed, "rate_hz": self.rate_hz,
            "gnss_model": dataclasses.asdict(self.gnss_model),
            "imu_model": dataclasses.asdict(self.imu_model),
        }
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> Drive:
        """Read a drive written by :meth:`save`."""
        try:
            data = np.load(path, allow_pickle=False)
            meta = json.loads(bytes(data["meta"]).decode())
        except (OSError, ValueError, KeyError) as exc:
            raise ValueError(f"{path} is not a saved synthetic drive ({exc})") from exc
        if meta.get("format") != "denseflow_ros.sim.drive/1":
            raise ValueError(f"{path} is not a saved synthetic drive")
        gm = meta["gnss_model"]
        gm["multipath_jump_m"] = tuple(gm["multipath_jump_m"])
        kwargs = {
            f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data.files
        }
        return cls(seed=meta["seed"], rate_hz=meta["rate_hz"], gnss_model=GnssModel(**gm),
                   imu_model=ImuModel(**meta["imu_model"]), **kwargs)


# -- error models -------------------------------------------------------------------------


def gauss_markov(rng: np.random.Generator, t_s: np.ndarray, sigma: float, tau_s: float,
                 dims: int = 1) -> np.ndarray:
    """Return a stationary first-order Gauss-Markov process sampled at ``t_s``: (n, dims)."""
    t_s = np.asarray(t_s, dtype=np.float64)
    n = t_s.size
    out = np.zeros((n, dims))
    if n == 0:
        return out
    shocks = rng.standard_normal((n, dims))
    phi = np.exp(-np.diff(t_s) / tau_s)
    scale = sigma * np.sqrt(1.0 - phi * phi)
    # The recursion on Python floats: several times faster than on numpy scalars.
    phi_l, scale_l = phi.tolist(), scale.tolist()
    for d in range(dims):
        x = shocks[:, d].tolist()
        prev = sigma * x[0]
        values = [prev]
        for i in range(1, n):
            prev = phi_l[i - 1] * prev + scale_l[i - 1] * x[i]
            values.append(prev)
        out[:, d] = values
    return out


def _episodes(rng: np.random.Generator, t_s: np.ndarray, rate_hz: float, mean_duration_s: float
              ) -> list[tuple[float, float]]:
    """Return (start, end) times of Poisson-arriving episodes with exponential durations."""
    if rate_hz <= 0 or t_s.size == 0:
        return []
    t0, t1 = float(t_s[0]), float(t_s[-1])
    out = []
    t = t0 + rng.exponential(1.0 / rate_hz)
    while t <= t1:
        out.append((t, t + rng.exponential(mean_duration_s)))
        t += rng.exponential(1.0 / rate_hz)
    return out


def gnss_errors(rng: np.random.Generator, t_s: np.ndarray, model: GnssModel) -> GnssErrors:
    """Draw a GNSS error series at times ``t_s`` (seconds)."""
    t_s = np.asarray(t_s, dtype=np.float64)
    n = t_s.size
    bias = gauss_markov(rng, t_s, model.bias_sigma_m, model.bias_tau_s, dims=2)
    white = rng.standard_normal((n, 2)) * model.white_sigma_m
    err = bias + white
    sigma = model.nominal_sigma_m * np.exp(
        gauss_markov(rng, t_s, model.dop_sigma, model.dop_tau_s)[:, 0])
    multipath = np.zeros(n, dtype=bool)
    for start, end in _episodes(rng, t_s, model.multipath_rate_hz, model.multipath_duration_s):
        on = (t_s >= start) & (t_s < end)
        angle = rng.uniform(0.0, 2 * math.pi)
        jump = rng.uniform(*model.multipath_jump_m)
        err[on] += jump * np.array([math.cos(angle), math.sin(angle)])
        multipath |= on
        if rng.random() < model.multipath_flagged_fraction:
            sigma[on] = np.maximum(sigma[on], jump)
    overconfident = np.zeros(n, dtype=bool)
    for start, end in _episodes(rng, t_s, model.overconfident_rate_hz,
                                model.overconfident_duration_s):
        overconfident |= (t_s >= start) & (t_s < end)
    sigma = np.where(overconfident, sigma * model.overconfident_factor, sigma)
    return GnssErrors(err[:, 0], err[:, 1], sigma, multipath, overconfident)


def imu_yaw_errors(rng: np.random.Generator, t_s: np.ndarray, model: ImuModel) -> np.ndarray:
    """Draw heading errors (rad) at times ``t_s``: drifting bias plus white noise."""
    t_s = np.asarray(t_s, dtype=np.float64)
    bias = gauss_markov(rng, t_s, model.yaw_bias_sigma_rad, model.yaw_bias_tau_s)[:, 0]
    return bias + rng.standard_normal(t_s.size) * model.yaw_white_sigma_rad


# -- route and vehicle --------------------------------------------------------------------


def _route_design(world: World, rng: np.random.Generator, length_m: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Return a corner polyline in the design plane (lane-offset) and cruise speed per vertex."""
    lay = world.layout
    nx, ny = len(lay.xs), len(lay.ys)
    gi, gj = np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij")
    ne, nn = lay.design_to_enu(lay.xs[gi].astype(np.float64), lay.ys[gj].astype(np.float64))
    limit = world.size_m / 2.0 - _MARGIN_M
    inside = (np.abs(ne) < limit) & (np.abs(nn) < limit)

    def ok(i: int, j: int) -> bool:
        return 0 <= i < nx and 0 <= j < ny and bool(inside[i, j])

    starts = [(i, j, di, dj) for i in range(nx) for j in range(ny) if inside[i, j]
              for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)) if ok(i + di, j + dj)]
    if not starts:
        raise ValueError(
            f"the world is too small for a route: no two street junctions lie {_MARGIN_M} m "
            f"inside its {world.size_m:.0f} m square")
    i, j, di, dj = starts[int(rng.integers(len(starts)))]
    nodes = [(i, j)]
    dirs = [(di, dj)]
    travelled = 0.0
    while travelled < length_m:
        i, j = i + di, j + dj
        travelled += abs(lay.xs[i] - lay.xs[i - di]) + abs(lay.ys[j] - lay.ys[j - dj])
        nodes.append((i, j))
        # Straight on, left, right (right-hand rule in the design plane: right = (dj, -di)).
        options = [((di, dj), 0.5), ((-dj, di), 0.25), ((dj, -di), 0.25)]
        options = [(d, w) for d, w in options if ok(i + d[0], j + d[1])]
        if not options:
            options = [((-di, -dj), 1.0)]
        weights = np.array([w for _, w in options])
        di, dj = options[int(rng.choice(len(options), p=weights / weights.sum()))][0]
        dirs.append((di, dj))

    def lane_offset(d: tuple[int, int], node: tuple[int, int]) -> tuple[float, float]:
        # Offset of the right-hand lane centre from the street centreline, and cruise speed.
        if d[0] == 0:  # travelling along design y: on street x-line i
            w, main = lay.xw[node[0]], lay.xmain[node[0]]
        else:
            w, main = lay.yw[node[1]], lay.ymain[node[1]]
        return (3.0 * w / 8.0, 13.5) if main else (w / 4.0, 8.5)

    points, speeds = [], []
    for k, node in enumerate(nodes):
        p = np.array([lay.xs[node[0]], lay.ys[node[1]]], dtype=np.float64)
        d_in = dirs[k - 1] if k > 0 else dirs[0]
        d_out = dirs[k] if k < len(dirs) else d_in
        r_in = np.array([d_in[1], -d_in[0]], dtype=np.float64)
        r_out = np.array([d_out[1], -d_out[0]], dtype=np.float64)
        o_in, v_in = lane_offset(d_in, nodes[k - 1] if k > 0 else node)
        o_out, v_out = lane_offset(d_out, node)
        if d_in == d_out:
            points.append(p + o_in * r_in)
        elif d_in == (-d_out[0], -d_out[1]):  # dead end: turn around across the street
            points.append(p + o_in * r_in)
            points.append(p + o_out * r_out)
            speeds.append(min(v_in, v_out))
        else:
            points.append(p + o_in * r_in + o_out * r_out)
        speeds.append(min(v_in, v_out) if k > 0 else v_out)
    return np.array(points), np.array(speeds)


def _smooth_path(points: np.ndarray, speeds: np.ndarray, spacing: float = 0.1
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Resample a corner polyline densely and round its corners (two moving averages)."""
    seg = np.diff(points, axis=0)
    seg_len = np.hypot(seg[:, 0], seg[:, 1])
    s = np.concatenate([[0.0], np.cumsum(seg_len)])
    grid = np.arange(0.0, s[-1], spacing)
    px = np.interp(grid, s, points[:, 0])
    py = np.interp(grid, s, points[:, 1])
    seg_idx = np.clip(np.searchsorted(s, grid, side="right") - 1, 0, len(speeds) - 2)
    cruise = np.minimum(speeds[seg_idx], speeds[seg_idx + 1])
    half = int(round(0.6 * _TURN_RADIUS_M / spacing))
    kernel = np.ones(2 * half + 1) / (2 * half + 1)
    for _ in range(2):
        # Point-reflected padding keeps the ends straight.
        pad_x = np.concatenate([2 * px[0] - px[half:0:-1], px, 2 * px[-1] - px[-2:-half - 2:-1]])
        pad_y = np.concatenate([2 * py[0] - py[half:0:-1], py, 2 * py[-1] - py[-2:-half - 2:-1]])
        px = np.convolve(pad_x, kernel, mode="valid")
        py = np.convolve(pad_y, kernel, mode="valid")
    return np.stack([px, py], axis=1), cruise


def simulate_drive(world: World, seed: int, n_frames: int, rate_hz: float = 10.0,
                   gnss: GnssModel | None = None, imu: ImuModel | None = None) -> Drive:
    """Drive ``n_frames`` camera frames at ``rate_hz`` through ``world`` on a seeded route."""
    if n_frames < 1 or not rate_hz > 0:
        raise ValueError(f"need n_frames >= 1 and rate_hz > 0, got {n_frames}, {rate_hz}")
    gnss = gnss or GnssModel()
    imu = imu or ImuModel()
    rng = np.random.default_rng([int(seed), 101])
    duration = (n_frames - 1) / rate_hz
    corners, speeds = _route_design(world, rng, duration * 14.0 + 80.0)
    design, cruise = _smooth_path(corners, speeds)
    pe, pn = world.layout.design_to_enu(design[:, 0], design[:, 1])
    ds = np.hypot(np.diff(pe), np.diff(pn))
    s = np.concatenate([[0.0], np.cumsum(ds)])
    heading = np.unwrap(np.arctan2(np.gradient(pn), np.gradient(pe)))
    curvature = np.abs(np.gradient(heading) / np.maximum(np.gradient(s), 1e-6))
    v = np.minimum(cruise, np.sqrt(2.0 / np.maximum(curvature, 1e-6)))  # 2 m/s^2 lateral
    for i in range(1, v.size):  # accelerate at most 1.5 m/s^2
        v[i] = min(v[i], math.sqrt(v[i - 1] ** 2 + 2 * 1.5 * ds[i - 1]))
    for i in range(v.size - 2, -1, -1):  # brake at most 2.5 m/s^2
        v[i] = min(v[i], math.sqrt(v[i + 1] ** 2 + 2 * 2.5 * ds[i]))
    v = np.maximum(v, 1.0)

    # Integrate the vehicle at 100 Hz, with a slow lateral wander inside the lane.
    dt = 1.0 / _SIM_HZ
    n_sim = int(round(duration * _SIM_HZ)) + 3
    t_sim = np.arange(n_sim) * dt - dt
    s_sim = np.zeros(n_sim)
    for i in range(1, n_sim):
        s_sim[i] = s_sim[i - 1] + float(np.interp(s_sim[i - 1], s, v)) * dt
    if s_sim[-1] > s[-1]:
        raise ValueError("the route is shorter than the drive; ask for fewer frames")
    # Smooth lane wander: a few slow sinusoids (~0.12 m rms), differentiable unlike noise.
    freq = rng.uniform(0.02, 0.12, 4)
    phase = rng.uniform(0.0, 2 * math.pi, 4)
    wander = 0.085 * np.sin(2 * math.pi * freq[None, :] * t_sim[:, None] + phase).sum(axis=1)
    ce, cn = np.interp(s_sim, s, pe), np.interp(s_sim, s, pn)
    hdg = np.interp(s_sim, s, heading)
    east = ce + wander * np.sin(hdg)
    north = cn - wander * np.cos(hdg)
    box = np.ones(11) / 11.0  # 0.1 s: removes the dense polyline's tiny kinks
    yaw_u = np.unwrap(np.arctan2(np.gradient(north), np.gradient(east)))
    yaw_u = np.convolve(np.pad(yaw_u, 5, mode="edge"), box, mode="valid")
    speed = np.hypot(np.gradient(east), np.gradient(north)) / dt
    yaw_rate = np.gradient(yaw_u) / dt
    accel = np.gradient(speed) / dt
    idx = 1 + np.round(np.arange(n_frames) * _SIM_HZ / rate_hz).astype(np.int64)
    t = np.arange(n_frames) / rate_hz
    east, north, yaw_u = east[idx], north[idx], yaw_u[idx]
    speed, yaw_rate, accel = speed[idx], yaw_rate[idx], accel[idx]
    yaw = np.mod(yaw_u + math.pi, 2 * math.pi) - math.pi
    lat, lon = world.enu.inverse(east, north)

    g_rng = np.random.default_rng([int(seed), 202])
    g = gnss_errors(g_rng, t, gnss)
    g_east, g_north = east + g.east_m, north + g.north_m
    g_lat, g_lon = world.enu.inverse(g_east, g_north)
    cov = np.zeros((n_frames, 3, 3))
    cov[:, 0, 0] = cov[:, 1, 1] = g.reported_sigma_m ** 2
    cov[:, 2, 2] = (2.0 * g.reported_sigma_m) ** 2
    i_rng = np.random.default_rng([int(seed), 303])
    yaw_err = imu_yaw_errors(i_rng, t, imu)
    imu_yaw = np.mod(yaw + yaw_err + math.pi, 2 * math.pi) - math.pi
    gyro_bias = i_rng.standard_normal() * imu.gyro_bias_sigma_rps
    gyro = np.zeros((n_frames, 3))
    gyro[:, :2] = i_rng.standard_normal((n_frames, 2)) * imu.gyro_white_sigma_rps
    gyro[:, 2] = yaw_rate + gyro_bias + i_rng.standard_normal(n_frames) * imu.gyro_white_sigma_rps
    acc = i_rng.standard_normal((n_frames, 3)) * imu.accel_white_sigma_mps2
    acc[:, 0] += accel
    acc[:, 1] += speed * yaw_rate
    acc[:, 2] += 9.80665
    return Drive(
        seed=int(seed), rate_hz=float(rate_hz), t_s=t, east=east, north=north, yaw_rad=yaw,
        lat=np.asarray(lat), lon=np.asarray(lon), speed_mps=speed, yaw_rate_rps=yaw_rate,
        accel_mps2=accel, gnss_east=g_east, gnss_north=g_north, gnss_lat=np.asarray(g_lat),
        gnss_lon=np.asarray(g_lon), gnss_cov=cov, gnss_status=np.zeros(n_frames, dtype=np.int8),
        gnss_multipath=g.multipath, imu_yaw_rad=imu_yaw,
        imu_yaw_var_rad2=np.full(n_frames, imu.yaw_sigma_rad ** 2), imu_gyro_rps=gyro,
        imu_accel_mps2=acc, gnss_model=gnss, imu_model=imu,
    )
