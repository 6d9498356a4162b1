# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Pieces shared by the dataset converters: GNSS degradation, satellite mosaics, stamps."""

from __future__ import annotations

import argparse
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

LOG = logging.getLogger("denseflow.bag")

# Web Mercator ground resolution at zoom 0 for 256 px tiles, metres per pixel at the equator.
_MERCATOR_MPP_Z0 = 156543.03392


def satmap_mpp(lat: float, zoom: int, scale: int) -> float:
    """Return the true metres per pixel of a Web Mercator image at ``zoom`` and ``scale``."""
    return _MERCATOR_MPP_Z0 * math.cos(math.radians(lat)) / (2**zoom) / scale


def parse_kitti_time(text: str) -> int:
    """Return integer UTC nanoseconds of a KITTI stamp ``2011-09-26 13:02:25.964389445``."""
    text = text.strip()
    whole, _, frac = text.partition(".")
    try:
        base = datetime.strptime(whole, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)
    except ValueError:
        raise ValueError(f"time stamp {text!r} is not 'YYYY-MM-DD HH:MM:SS.fffffffff'") from None
    if frac and not frac.isdigit():
        raise ValueError(f"time stamp {text!r} has a non-numeric fraction")
    nanos = int((frac + "000000000")[:9]) if frac else 0
    return int(base.timestamp()) * 1_000_000_000 + nanos


def stamp_from_name(name: str) -> int | None:
    """Return nanoseconds from a file stem that is a Unix time in s, ms, us or ns, else None."""
    stem = Path(name).stem
    if not stem.isdigit():
        return None
    digits = len(stem)
    scale = {10: 1_000_000_000, 13: 1_000_000, 16: 1_000, 19: 1}.get(digits)
    return int(stem) * scale if scale else None


# -- synthetic GNSS degradation -------------------------------------------------------------


@dataclass
class GnssDegradation:
    """Make a GNSS fix worse than the recording's, reproducibly.

    The horizontal error is ``bias + noise``: ``noise`` is white with ``noise_m`` standard
    deviation per axis; ``bias`` is a first-order Gauss-Markov process (steady-state standard
    deviation ``bias_m`` per axis, correlation time ``bias_tau_s``) that also takes steps of
    ``jump_m`` in a random direction at a mean rate of ``jump_rate_hz``; a step decays with the
    bias. The published covariance adds ``noise_m**2 + bias_m**2`` per axis to the source's;
    the steps are deliberately left out of it, as real multipath jumps are.
    """

    noise_m: float = 0.0
    bias_m: float = 0.0
    bias_tau_s: float = 60.0
    jump_rate_hz: float = 0.0
    jump_m: float = 0.0
    yaw_noise_deg: float = 0.0
    seed: int = 0
    _rng: np.random.Generator = field(init=False, repr=False)
    _bias: np.ndarray = field(init=False, repr=False)
    _last_t: float | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        """Check the parameters and draw the initial bias."""
        for name in ("noise_m", "bias_m", "jump_rate_hz", "jump_m", "yaw_noise_deg"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"GNSS degradation {name} must be >= 0, got {value}")
        if not self.bias_tau_s > 0.0:
            raise ValueError(f"GNSS bias correlation time must be > 0 s, got {self.bias_tau_s}")
        self._rng = np.random.default_rng(self.seed)
        self._bias = self._rng.normal(0.0, self.bias_m, 2) if self.bias_m > 0 else np.zeros(2)

    @property
    def active(self) -> bool:
        """Return whether any degradation is configured."""
        return any(
            v > 0 for v in (self.noise_m, self.bias_m, self.jump_rate_hz * self.jump_m,
                            self.yaw_noise_deg)
        )

    @property
    def added_variance_m2(self) -> float:
        """Return the per-axis variance the degradation adds to the published covariance."""
        return self.noise_m**2 + self.bias_m**2

    def offset(self, t_s: float) -> tuple[float, float]:
        """Return the (east, north) error in metres to add to the fix at time ``t_s``."""
        dt = 0.0 if self._last_t is None else max(0.0, t_s - self._last_t)
        self._last_t = t_s
        if dt > 0.0:
            phi = math.exp(-dt / self.bias_tau_s)
            self._bias = self._bias * phi
            if self.bias_m > 0:
                self._bias += self._rng.normal(0.0, self.bias_m * math.sqrt(1 - phi * phi), 2)
            if self.jump_rate_hz > 0 and self.jump_m > 0:
                for _ in range(self._rng.poisson(self.jump_rate_hz * dt)):
                    angle = self._rng.uniform(0.0, 2.0 * math.pi)
                    self._bias += self.jump_m * np.array([math.cos(angle), math.sin(angle)])
        noise = self._rng.normal(0.0, self.noise_m, 2) if self.noise_m > 0 else np.zeros(2)
        total = self._bias + noise
        return float(total[0]), float(total[1])

    def yaw_error_rad(self) -> float:
        """Return a heading error in radians for one orientation sample."""
        if self.yaw_noise_deg <= 0:
            return 0.0
        return math.radians(float(self._rng.normal(0.0, self.yaw_noise_deg)))

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> GnssDegradation:
        """Build from the ``--gnss-*`` command-line options."""
        return cls(
            noise_m=args.gnss_noise_m,
            bias_m=args.gnss_bias_m,
            bias_tau_s=args.gnss_bias_tau_s,
            jump_rate_hz=args.gnss_jump_rate_hz,
            jump_m=args.gnss_jump_m,
            yaw_noise_deg=args.yaw_noise_deg,
            seed=args.seed,
        )


def add_degradation_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``--gnss-*`` options of :class:`GnssDegradation`."""
    group = parser.add_argument_group(
        "synthetic GNSS degradation (off by default; ground truth is never degraded)"
    )
    group.add_argument("--gnss-noise-m", type=float, default=0.0,
                       help="white noise per fix and axis, standard deviation (m)")
    group.add_argument("--gnss-bias-m", type=float, default=0.0,
                       help="slowly drifting bias, steady-state standard deviation (m)")
    group.add_argument("--gnss-bias-tau-s", type=float, default=60.0,
                       help="correlation time of the drifting bias (s)")
    group.add_argument("--gnss-jump-rate-hz", type=float, default=0.0,
                       help="mean rate of sudden position jumps (1/s)")
    group.add_argument("--gnss-jump-m", type=float, default=0.0,
                       help="size of each jump (m); it decays with the bias")
    group.add_argument("--yaw-noise-deg", type=float, default=0.0,
                       help="white noise on the IMU heading (deg)")
    group.add_argument("--seed", type=int, default=0, help="random seed of the degradation")


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options every converter shares: output bag, storage, tiles, overwrite."""
    parser.add_argument("--out", required=True, type=Path, help="output rosbag2 directory")
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap",
                        help="rosbag2 storage: mcap (Iron and newer) or sqlite3 (Humble)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    parser.add_argument("--map-frame", default="map",
                        help="frame id of the ground-truth poses (local ENU at the datum)")
    parser.add_argument("--datum", type=latlon_arg, default=None, metavar="LAT,LON",
                        help="origin of the ground-truth ENU frame (default: first pose)")


def add_tiles_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of the satellite tile cache built from a dataset's satellite images."""
    parser.add_argument("--tiles", type=Path, default=None,
                        help="tile cache to build from the satellite images (.mbtiles file or "
                             "XYZ folder; default: <out>.mbtiles beside the bag)")
    parser.add_argument("--no-tiles", action="store_true",
                        help="do not build a tile cache")


def latlon_arg(text: str) -> tuple[float, float]:
    """Parse ``LAT,LON`` (degrees) for argparse."""
    try:
        lat, lon = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LAT,LON, got {text!r}") from None
    if not (-90.0 < lat < 90.0 and -180.0 <= lon <= 180.0):
        raise argparse.ArgumentTypeError(f"{text!r} is not a valid latitude,longitude")
    return lat, lon


@dataclass(frozen=True)
class Topics:
    """The topics a converter writes."""

    image: str
    camera_info: str
    fix: str
    imu: str
    ground_truth: str

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Topics:
        """Build from the ``--*-topic`` command-line options."""
        return cls(args.image_topic, args.camera_info_topic, args.fix_topic, args.imu_topic,
                   args.ground_truth_topic)


@dataclass(frozen=True)
class OutputOptions:
    """How a converter writes its bag: storage, overwrite, map frame, datum, tile cache.

    ``datum`` None: the first pose; ``tiles`` None: ``<out>.mbtiles`` beside the bag, unless
    ``build_tiles`` is off.
    """

    storage: str = "mcap"
    overwrite: bool = False
    map_frame: str = "map"
    datum: tuple[float, float] | None = None
    tiles: Path | None = None
    build_tiles: bool = True

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> OutputOptions:
        """Build from the output and tile-cache command-line options."""
        return cls(args.storage, args.overwrite, args.map_frame, args.datum, args.tiles,
                   not args.no_tiles)

    def tiles_path(self, out: Path) -> Path | None:
        """Return where to build the tile cache of the bag ``out``, or None when disabled."""
        if not self.build_tiles:
            return None
        if self.tiles is not None:
            return Path(self.tiles)
        out = Path(out)
        return out.with_name(out.name + ".mbtiles")


@dataclass(frozen=True)
class FrameRange:
    """The frames a converter keeps: ``start`` up to ``end`` (None: all), every ``step``-th."""

    start: int = 0
    end: int | None = None
    step: int = 1

    def __post_init__(self) -> None:
        if self.step < 1:
            raise ValueError(f"--step must be >= 1, got {self.step}")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> FrameRange:
        """Build from ``--start``, ``--end`` and ``--step``."""
        return cls(args.start, args.end, args.step)

    def select(self, count: int) -> list[int]:
        """Return the kept indices of ``count`` frames; raise ValueError when there are none."""
        indices = list(range(count))[self.start:self.end:self.step]
        if not indices:
            raise ValueError("the frame range selects no frames")
        return indices

    def keeps(self, index: int) -> bool:
        """Return whether the ``index``-th frame of a stream is kept."""
        return (index >= self.start and (self.end is None or index < self.end)
                and (index - self.start) % self.step == 0)


def summary_dict(summary: object) -> dict[str, Any]:
    """Return a converter's summary as printed; a ``tiles`` of None is left out."""
    out = asdict(summary)  # type: ignore[call-overload]
    if "tiles" in out and out["tiles"] is None:
        del out["tiles"]
    return out


# -- satellite mosaic -----------------------------------------------------------------------


@dataclass
class Satmap:
    """A north-up satellite image centred at (lat, lon), ``mpp`` true metres per pixel."""

    path: Path
    lat: float
    lon: float
    mpp: float


def spread_out(satmaps: Sequence[Satmap], min_spacing_m: float) -> list[Satmap]:
    """Keep satellite images at least ``min_spacing_m`` from every kept one.

    A drive has one image per frame and neighbours overlap almost entirely; the tile cache
    needs only enough of them to cover the route.
    """
    from denseflow_ros.geo import LocalEnu

    if not satmaps:
        return []
    enu = LocalEnu(satmaps[0].lat, satmaps[0].lon)
    kept: list[tuple[Satmap, float, float]] = []
    for sat in satmaps:
        east, north = enu.forward(sat.lat, sat.lon)
        if all(math.hypot(east - e, north - n) >= min_spacing_m for _, e, n in kept):
            kept.append((sat, float(east), float(north)))
    return [sat for sat, _, _ in kept]


def build_tile_cache(satmaps: Sequence[Satmap], out_path: Path) -> dict[str, float]:
    """Build a tile cache at ``out_path`` from Web Mercator satellite images; return facts.

    Images closer than a quarter of their side to an already used one are skipped; where
    images overlap the tile builder takes the one whose centre is nearest.
    """
    import cv2

    from denseflow_ros.geo.builders import build_from_sources

    if not satmaps:
        raise ValueError("no satellite images to build a tile cache from")
    first = cv2.imread(str(satmaps[0].path), cv2.IMREAD_COLOR)
    if first is None:
        raise ValueError(f"satellite image {satmaps[0].path} cannot be read")
    used = spread_out(satmaps, min(first.shape[:2]) * satmaps[0].mpp / 4.0)
    result = build_from_sources([(s.path, s.lat, s.lon, s.mpp) for s in used], out_path,
                                projection="mercator", progress=False)
    return {"tiles_zoom": float(result.zoom), "tiles_images": float(len(used))}
