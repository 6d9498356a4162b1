# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""A seeded, georeferenced synthetic town: aerial orthophoto, ground texture and height map.

The town is laid out in a *design* plane: a grid of streets (arterials and minor streets with
lane markings, stop lines, kerbs, sidewalks with street lamps and trees, zebra crossings)
whose blocks hold buildings (rectangular or L-shaped, flat or gable roofs) on lots with
gardens and garden walls, parks with paths, parking lots with parked cars, and plazas. The
design plane is rotated and smoothly warped into the world's local ENU plane, so streets curve
gently and run at every heading. Everything is rasterised with vectorised numpy in row strips
(bounded memory, two threads), from tables drawn once from ``numpy.random.default_rng(seed)``:
the same seed gives byte-identical arrays. The design and its classification live in
:mod:`denseflow_ros.sim.layout`; this module warps, shades and colours it.

Two colourings share one albedo: the orthophoto (tops of roofs and canopies, an aerial sun
with cast shadows, an aerial colour grade and a slight sensor blur) and the ground texture
(the ground under roofs and canopies, another sun, another grade) that the ground renderer
textures its road surface with, so the two views differ in lighting and colour as real aerial
and car imagery do.

Raster convention (the geo builders' and crops'): row 0 is the northern edge, integer
coordinates at pixel centres, pixel (col, row) at ``east = (col - W // 2) * mpp``,
``north = (H // 2 - row) * mpp``; the world's centre, pixel (W // 2, H // 2), is
``(center_lat, center_lon)``, the datum of :attr:`World.enu`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from denseflow_ros.sim.layout import (
    CAR_COLOURS,
    MAT_BUILDING,
    MAT_CAR,
    MAT_POLE,
    MAT_TREE,
    MAT_TRUNK,
    MAT_WALL,
    N_CAR_COLOURS,
    ROOF_COLOURS,
    SURF_GARDEN,
    SURF_GRASS,
    SURF_KERB,
    SURF_MARKING,
    SURF_PARKING,
    SURF_PATH,
    SURF_PLAZA,
    SURF_ROAD,
    SURF_SIDEWALK,
    Layout,
    base_layer,
    make_layout,
    tree_layer,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from denseflow_ros.geo.projection import LocalEnu


_STRIP_ROWS = 256
_WARP_GRID_M = 2.0
_NOISE_GRID_M = (0.8, 4.0, 24.0)
_SHADOW_CELL_M = 0.8

# sRGB-ish linear albedos of the surfaces (R, G, B).
_ASPHALT = (0.22, 0.22, 0.23)
_PAINT = (0.86, 0.86, 0.84)
_KERB = (0.62, 0.61, 0.58)
_SIDEWALK = (0.50, 0.48, 0.45)
_GRASS = (0.20, 0.33, 0.10)
_GARDEN = (0.26, 0.32, 0.14)
_PATH = (0.55, 0.50, 0.40)
_PARKING = (0.27, 0.27, 0.27)
_PLAZA = (0.55, 0.45, 0.38)
_CANOPY = (0.11, 0.22, 0.07)
_WALL_TOP = (0.55, 0.52, 0.48)

@dataclass
class Sun:
    """A light: azimuth (ENU, CCW from east), elevation, colour of direct and ambient light."""

    azimuth_rad: float
    elevation_rad: float
    direct: tuple[float, float, float]
    ambient: tuple[float, float, float]

    def vector(self) -> np.ndarray:
        """Return the unit vector towards the sun (east, north, up)."""
        ce = math.cos(self.elevation_rad)
        return np.array(
            [ce * math.cos(self.azimuth_rad), ce * math.sin(self.azimuth_rad),
             math.sin(self.elevation_rad)]
        )


@dataclass
class World:
    """A generated town: rasters in a north-up grid centred on ``(center_lat, center_lon)``."""

    seed: int
    size_m: float
    mpp: float
    center_lat: float
    center_lon: float
    ortho: np.ndarray  # (H, W, 3) uint8 RGB, the aerial view
    ground: np.ndarray  # (H, W, 3) uint8 RGB, the ground surface as the car camera sees it
    height: np.ndarray  # (H, W) float32, metres above the ground
    material: np.ndarray  # (H, W) uint8, SURF_* / MAT_* codes
    layout: Layout
    aerial_sun: Sun
    ground_sun: Sun
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def shape(self) -> tuple[int, int]:
        """Return the raster's (rows, cols)."""
        return self.ortho.shape[:2]

    @property
    def enu(self) -> LocalEnu:
        """Return the local ENU plane at the world's centre."""
        if "enu" not in self._cache:
            from denseflow_ros.geo.projection import LocalEnu

            self._cache["enu"] = LocalEnu(self.center_lat, self.center_lon)
        return self._cache["enu"]

    def enu_to_pixel(self, east: np.ndarray, north: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
        """Return continuous (col, row) raster coordinates, integers at pixel centres."""
        rows, cols = self.shape
        col = np.asarray(east) / self.mpp + cols // 2
        row = rows // 2 - np.asarray(north) / self.mpp
        return col, row

    def pixel_to_enu(self, col: np.ndarray, row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return (east, north) in metres of continuous raster coordinates."""
        rows, cols = self.shape
        east = (np.asarray(col) - cols // 2) * self.mpp
        north = (rows // 2 - np.asarray(row)) * self.mpp
        return east, north

    def save(self, path: str | Path) -> None:
        """Write the world to one ``.npz`` file (uncompressed: saving stays fast)."""
        arrays = {
            "ortho": self.ortho, "ground": self.ground, "height": self.height,
            "material": self.material,
        }
        for f in dataclasses.fields(Layout):
            value = getattr(self.layout, f.name)
            if isinstance(value, np.ndarray):
                arrays[f"layout.{f.name}"] = value
        meta = {
            "format": "denseflow_ros.sim.world/1",
            "seed": self.seed, "size_m": self.size_m, "mpp": self.mpp,
            "center_lat": self.center_lat, "center_lon": self.center_lon,
            "theta_rad": self.layout.theta_rad,
            "aerial_sun": dataclasses.asdict(self.aerial_sun),
            "ground_sun": dataclasses.asdict(self.ground_sun),
        }
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> World:
        """Read a world written by :meth:`save`."""
        try:
            data = np.load(path, allow_pickle=False)
            meta = json.loads(bytes(data["meta"]).decode())
        except (OSError, ValueError, KeyError) as exc:
            raise ValueError(f"{path} is not a saved synthetic world ({exc})") from exc
        if meta.get("format") != "denseflow_ros.sim.world/1":
            raise ValueError(f"{path} is not a saved synthetic world ({meta.get('format')})")
        layout_kwargs = {"theta_rad": meta["theta_rad"]}
        for f in dataclasses.fields(Layout):
            if f.name != "theta_rad":
                layout_kwargs[f.name] = data[f"layout.{f.name}"]
        return cls(
            seed=meta["seed"], size_m=meta["size_m"], mpp=meta["mpp"],
            center_lat=meta["center_lat"], center_lon=meta["center_lon"],
            ortho=data["ortho"], ground=data["ground"], height=data["height"],
            material=data["material"], layout=Layout(**layout_kwargs),
            aerial_sun=_sun_from(meta["aerial_sun"]), ground_sun=_sun_from(meta["ground_sun"]),
        )


def _sun_from(d: dict) -> Sun:
    return Sun(d["azimuth_rad"], d["elevation_rad"], tuple(d["direct"]), tuple(d["ambient"]))


def _sample_grid(grid: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Bilinearly sample ``grid`` (Gr, Gc[, ...]) at the outer product of rows x cols."""
    r0 = np.clip(np.floor(rows).astype(np.int64), 0, grid.shape[0] - 2)
    c0 = np.clip(np.floor(cols).astype(np.int64), 0, grid.shape[1] - 2)
    wr = np.clip(rows - r0, 0.0, 1.0).astype(np.float32)
    wc = np.clip(cols - c0, 0.0, 1.0).astype(np.float32)
    extra = (1,) * (grid.ndim - 2)
    top = grid[r0] * (1 - wr).reshape(-1, 1, *extra) + grid[r0 + 1] * wr.reshape(-1, 1, *extra)
    return top[:, c0] * (1 - wc).reshape(1, -1, *extra) + top[:, c0 + 1] * wc.reshape(
        1, -1, *extra)


def _shadow(coarse: np.ndarray, step_m: float, sun: Sun) -> np.ndarray:
    """Return the lit fraction (0 shadowed .. 1 lit) of a height grid, by height-field marching."""
    hr, hc = coarse.shape
    tan_el = math.tan(sun.elevation_rad)
    max_dist = float(coarse.max()) / max(tan_el, 1e-3)
    n_steps = int(min(max_dist / step_m, 400)) + 1
    de, dn = math.cos(sun.azimuth_rad), math.sin(sun.azimuth_rad)
    occluder = np.full_like(coarse, -1e3)
    for i in range(1, n_steps + 1):
        oc = int(round(i * de))
        orow = int(round(-i * dn))
        if abs(oc) >= hc or abs(orow) >= hr:
            break
        dist = math.hypot(oc, orow) * step_m
        src = coarse[max(orow, 0): hr + min(orow, 0), max(oc, 0): hc + min(oc, 0)]
        dst = occluder[max(-orow, 0): hr + min(-orow, 0), max(-oc, 0): hc + min(-oc, 0)]
        np.maximum(dst, src - dist * tan_el, out=dst)
    # A cell is in shadow when a ray towards the sun passes below some occluder's top.
    return np.clip(1.0 - (occluder - coarse - 0.3) / 0.6, 0.0, 1.0).astype(np.float32)


_GRADE_LEVELS = 4096


def _grade_lut(gamma: float, lift: float) -> np.ndarray:
    """Return the tone curve from linear [0, 1] (in _GRADE_LEVELS steps) to uint8."""
    x = np.linspace(0.0, 1.0, _GRADE_LEVELS)
    return np.clip((lift + (1.0 - lift) * x ** (1.0 / gamma)) * 255.0 + 0.5, 0, 255).astype(
        np.uint8)


def _grade(linear: np.ndarray, gain: np.ndarray, saturation: float, lut: np.ndarray
           ) -> np.ndarray:
    """Colour-grade a linear image into uint8 with a white balance, saturation and tone LUT."""
    img = linear * gain
    grey = img.sum(axis=-1, keepdims=True) * np.float32(1.0 / 3.0)
    img = grey + (img - grey) * np.float32(saturation)
    idx = np.clip(img * np.float32(_GRADE_LEVELS - 1) + np.float32(0.5), 0, _GRADE_LEVELS - 1)
    return lut[idx.astype(np.int32)]


def _parallel(fn: Callable[[int], None], count: int) -> None:
    """Run ``fn(0..count-1)`` on a few threads (numpy releases the GIL in array work)."""
    from concurrent.futures import ThreadPoolExecutor

    workers = max(1, min(4, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in pool.map(fn, range(count)):
            pass


def _random_sun(rng: np.random.Generator, aerial: bool) -> Sun:
    az = float(rng.uniform(0.0, 2 * math.pi))
    el = float(np.radians(rng.uniform(30.0, 62.0) if aerial else rng.uniform(18.0, 55.0)))
    warm = float(rng.uniform(-0.08, 0.10))
    direct = (1.0 + warm, 1.0, 1.0 - warm)
    sky = float(rng.uniform(0.30, 0.45))
    ambient = (sky * (1.0 - warm * 0.5), sky, sky * (1.08 + warm * 0.3))
    return Sun(az, el, direct, ambient)


@dataclass(frozen=True)
class _DesignWarp:
    """ENU -> design coordinates of raster points: the rotation plus a gridded residual."""

    residual: np.ndarray  # (ng, ng, 2) design minus rotated ENU on a coarse grid
    c: float
    s: float
    half: float

    @classmethod
    def of(cls, layout: Layout, half: float) -> _DesignWarp:
        """Sample the layout's warp on a grid over the raster's square of ``half`` metres."""
        ng = int(math.ceil(2 * half / _WARP_GRID_M)) + 2
        ge = -half + _WARP_GRID_M * (np.arange(ng) - 0.5)
        gn = half - _WARP_GRID_M * (np.arange(ng) - 0.5)
        gE, gN = np.meshgrid(ge, gn)
        dxg, dyg = layout.enu_to_design(gE, gN)
        c, s = math.cos(layout.theta_rad), math.sin(layout.theta_rad)
        residual = np.stack([dxg - (c * gE + s * gN), dyg - (-s * gE + c * gN)],
                            axis=-1).astype(np.float32)
        return cls(residual, c, s, half)

    def design(self, north: np.ndarray, east: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return design (x, y) of the grid ``north`` (rows) x ``east`` (columns)."""
        res = _sample_grid(self.residual, (self.half - north) / _WARP_GRID_M + 0.5,
                           (east + self.half) / _WARP_GRID_M + 0.5)
        e2, n2 = east[None, :], north[:, None]
        c, s = self.c, self.s
        x = (c * e2 + s * n2 + res[..., 0]).astype(np.float32)
        y = (-s * e2 + c * n2 + res[..., 1]).astype(np.float32)
        return x, y


def _coarse_heights(layout: Layout, warp: _DesignWarp, n: int, mpp: float, cell: int
                    ) -> np.ndarray:
    """Return the town's heights (trees included) on cells of ``cell`` x ``cell`` pixels."""
    nc = (n + cell - 1) // cell
    coarse_east = (((np.arange(nc) + 0.5) * cell - 0.5 - n // 2) * mpp).astype(np.float32)
    coarse = np.zeros((nc, nc), dtype=np.float32)

    def coarse_strip(strip: int) -> None:
        rows = np.arange(strip * _STRIP_ROWS, min((strip + 1) * _STRIP_ROWS, nc))
        north = ((n // 2 - ((rows + 0.5) * cell - 0.5)) * mpp).astype(np.float32)
        x, y = warp.design(north, coarse_east)
        base = base_layer(layout, x, y, mpp)
        coarse[rows] = np.maximum(base["height"], tree_layer(layout, x, y, base)[0])

    _parallel(coarse_strip, (nc + _STRIP_ROWS - 1) // _STRIP_ROWS)
    return coarse


def _colour_grades(seed: int) -> tuple[tuple[np.ndarray, float, np.ndarray], ...]:
    """Return the aerial and the ground colour grade: (gain, saturation, tone LUT) each."""
    grade_rng = np.random.default_rng([seed, 11])
    a_gain = np.float32(grade_rng.uniform(0.95, 1.15)) + grade_rng.uniform(
        -0.06, 0.06, 3).astype(np.float32)
    g_gain = np.float32(grade_rng.uniform(0.9, 1.2)) + grade_rng.uniform(
        -0.08, 0.08, 3).astype(np.float32)
    a_lut = _grade_lut(grade_rng.uniform(2.0, 2.4), 0.05)
    g_lut = _grade_lut(grade_rng.uniform(1.9, 2.3), 0.0)
    a_sat, g_sat = grade_rng.uniform(0.7, 0.95), grade_rng.uniform(0.9, 1.15)
    return (a_gain, a_sat, a_lut), (g_gain, g_sat, g_lut)


class _Rasteriser:
    """Rasterises the town in row strips into height, material, orthophoto and ground."""

    def __init__(self, seed: int, layout: Layout, warp: _DesignWarp, n: int, mpp: float,
                 cell: int, octaves: list[tuple[float, np.ndarray]], views: tuple) -> None:
        self.seed, self.layout, self.warp, self.n, self.mpp = seed, layout, warp, n, mpp
        self.cell, self.octaves, self.views = cell, octaves, views
        self.cols = np.arange(n)
        self.east = ((self.cols - n // 2) * mpp).astype(np.float32)
        self.height = np.zeros((n, n), dtype=np.float32)
        self.material = np.zeros((n, n), dtype=np.uint8)
        self.ortho = np.zeros((n, n, 3), dtype=np.uint8)
        self.ground = np.zeros((n, n, 3), dtype=np.uint8)

    def strip(self, strip: int) -> None:
        """Rasterise rows [strip * _STRIP_ROWS, (strip + 1) * _STRIP_ROWS)."""
        n, mpp, east, half = self.n, self.mpp, self.east, self.warp.half
        r0, r1 = strip * _STRIP_ROWS, min((strip + 1) * _STRIP_ROWS, n)
        rows = np.arange(r0 - 1, r1 + 1)  # one row either side for the height gradient
        north = ((n // 2 - rows) * mpp).astype(np.float32)
        x, y = self.warp.design(north, east)
        base = base_layer(self.layout, x, y, mpp)
        canopy, canopy_shade, trunk = tree_layer(self.layout, x, y, base)
        noise = [
            _sample_grid(g, (half - north) / cell_m + 1.0, (east + half) / cell_m + 1.0)
            for cell_m, g in self.octaves
        ]
        noise = [noise[0][..., 0], noise[1][..., 0], noise[2]]
        grain = np.random.default_rng([self.seed, 7, strip]).standard_normal(
            (len(rows), n), dtype=np.float32)
        albedos = _albedo(base, canopy, canopy_shade, noise, grain, x, y)
        hgt = np.maximum(base["height"], canopy)
        inner = slice(1, len(rows) - 1)
        self.height[r0:r1] = hgt[inner]
        self.material[r0:r1] = np.where(canopy > base["height"],
                                        np.where(trunk, MAT_TRUNK, MAT_TREE),
                                        base["material"])[inner]
        # Slope of roofs and canopies (central differences; the strip's edge columns one-sided).
        gx = np.gradient(hgt, axis=1)[inner] / mpp
        gy = (hgt[:-2] - hgt[2:]) / (2.0 * mpp)
        inner_rows = np.arange(r0, r1)
        cell = self.cell
        for (sun, lit, gain, sat, lut), albedo, out, slopes in zip(
                self.views, albedos[::-1], (self.ortho, self.ground), (True, False)):
            sv = sun.vector().astype(np.float32)
            lit_s = _sample_grid(lit[..., None], (inner_rows + 0.5) / cell - 0.5,
                                 (self.cols + 0.5) / cell - 0.5)[..., 0]
            if slopes:
                norm = np.sqrt(gx * gx + gy * gy + 1.0)
                cos_i = np.clip((-gx * sv[0] - gy * sv[1] + sv[2]) / norm, 0.0, 1.0)
                direct = lit_s * cos_i * np.float32(1.0 / max(float(sv[2]), 0.2))
            else:
                direct = lit_s
            light = direct[..., None] * np.asarray(sun.direct, dtype=np.float32) + np.asarray(
                sun.ambient, dtype=np.float32)
            out[r0:r1] = _grade(albedo[inner] * light * np.float32(0.72), gain, sat, lut)


def generate_world(seed: int, size_m: float = 1000.0, mpp: float = 0.2, lat: float = 49.0,
                   lon: float = 8.4) -> World:
    """Generate the town of ``seed``: ``size_m`` square, ``mpp`` metres per pixel, at lat/lon.

    The same arguments always give byte-identical arrays.
    """
    if not (size_m > 0 and mpp > 0 and size_m / mpp >= 16):
        raise ValueError(f"size_m / mpp must be at least 16 pixels, got {size_m} / {mpp}")
    if not (-80.0 < lat < 80.0 and -180.0 <= lon <= 180.0):
        raise ValueError(f"lat/lon must be within +-80 / +-180 degrees, got {lat}, {lon}")
    import cv2

    rng = np.random.default_rng(seed)
    layout = make_layout(rng, size_m)
    aerial_sun = _random_sun(rng, aerial=True)
    ground_sun = _random_sun(rng, aerial=False)
    n = int(round(size_m / mpp))
    warp = _DesignWarp.of(layout, n * mpp / 2.0)
    # Noise octaves on coarse grids (continuous across strips), fine grain per strip.
    octaves = []
    for cell_m in _NOISE_GRID_M:
        m = int(math.ceil(n * mpp / cell_m)) + 3
        channels = 3 if cell_m == _NOISE_GRID_M[-1] else 1
        octaves.append((cell_m, rng.standard_normal((m, m, channels)).astype(np.float32)))
    # Shadows from a coarse height map (cells of ~0.8 m), one march per sun.
    cell = max(1, int(round(_SHADOW_CELL_M / mpp)))
    coarse = _coarse_heights(layout, warp, n, mpp, cell)
    suns = (aerial_sun, ground_sun)
    views = tuple((sun, _shadow(coarse, cell * mpp, sun), *grade)
                  for sun, grade in zip(suns, _colour_grades(seed)))
    raster = _Rasteriser(seed, layout, warp, n, mpp, cell, octaves, views)
    _parallel(raster.strip, (n + _STRIP_ROWS - 1) // _STRIP_ROWS)
    # The aerial camera's optics: a slight blur.
    ortho = cv2.GaussianBlur(raster.ortho, (0, 0), 0.6)
    return World(
        seed=int(seed), size_m=float(n * mpp), mpp=float(mpp), center_lat=float(lat),
        center_lon=float(lon), ortho=ortho, ground=raster.ground, height=raster.height,
        material=raster.material, layout=layout, aerial_sun=aerial_sun, ground_sun=ground_sun,
    )


def _surface_luts() -> tuple[np.ndarray, ...]:
    """Per-material albedo and texture amplitudes (colour, rough, patches, grain, fine)."""
    colour = np.tile(np.array(_GRASS, dtype=np.float32), (256, 1))
    amps = np.zeros((256, 4), dtype=np.float32)
    amps[:] = (0.18, 0.25, 0.25, 0.35)
    table = {
        SURF_ROAD: (_ASPHALT, (0.06, 0.10, 0.10, 0.0)),
        SURF_MARKING: (_ASPHALT, (0.06, 0.10, 0.10, 0.0)),
        SURF_KERB: (_KERB, (0.03, 0.05, 0.05, 0.0)),
        SURF_SIDEWALK: (_SIDEWALK, (0.05, 0.08, 0.06, 0.0)),
        SURF_GRASS: (_GRASS, (0.18, 0.25, 0.25, 0.35)),
        SURF_GARDEN: (_GARDEN, (0.20, 0.30, 0.25, 0.2)),
        SURF_PATH: (_PATH, (0.08, 0.10, 0.20, 0.0)),
        SURF_PARKING: (_PARKING, (0.05, 0.12, 0.10, 0.0)),
        SURF_PLAZA: (_PLAZA, (0.10, 0.10, 0.08, 0.0)),
    }
    for code, (col, amp) in table.items():
        colour[code] = col
        amps[code] = amp
    # What lies under raised objects: gardens under buildings and walls, asphalt under cars.
    under = np.arange(256, dtype=np.uint8)
    under[MAT_TREE:] = SURF_GARDEN
    under[MAT_POLE] = SURF_SIDEWALK
    under[MAT_CAR: MAT_CAR + N_CAR_COLOURS] = SURF_PARKING
    return colour, amps, under


_LUT_COLOUR, _LUT_AMPS, _LUT_UNDER = _surface_luts()


def _albedo(base: dict, canopy: np.ndarray, canopy_shade: np.ndarray, noise: list,
            grain: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (ground albedo, top albedo) as (R, C, 3) float32 for one strip."""
    mat = base["material"]
    fine, mid, low = noise
    gm = _LUT_UNDER[mat]
    amps = _LUT_AMPS[gm]
    lum = 1.0 + amps[..., 0] * mid + amps[..., 1] * low[..., 0] + amps[..., 2] * grain + (
        amps[..., 3] * fine)
    road = base["road"]
    lum = np.where(road, lum * (1.0 + 0.08 * base["tone"]), lum)
    # Paving joints on sidewalks (0.6 m slabs) and plazas (1.2 m slabs).
    slab = np.where(gm == SURF_PLAZA, 1.2, 0.6)
    joint = (np.mod(x, slab) < 0.05) | (np.mod(y, slab) < 0.05)
    lum = np.where(joint & ((gm == SURF_SIDEWALK) | (gm == SURF_PLAZA)), lum * 0.78, lum)
    tint = 1.0 + 0.05 * (low - low.mean(axis=-1, keepdims=True))
    albedo = _LUT_COLOUR[gm] * (lum[..., None] * tint)
    # Markings: paint blended by coverage, worn in places.
    paint = base["paint"]
    worn = np.clip(0.85 + 0.15 * mid + 0.1 * grain, 0.5, 1.0)
    p = (paint * worn)[..., None]
    albedo = albedo * (1 - p) + np.array(_PAINT, dtype=np.float32) * p
    top = albedo.copy()
    build = mat >= MAT_BUILDING
    roof_lum = 1.0 + 0.05 * mid + 0.04 * grain + 0.08 * low[..., 1]
    top[build] = ROOF_COLOURS[np.clip(base["roof"][build], 0, len(ROOF_COLOURS) - 1)] * (
        roof_lum[build][:, None])
    top[mat == MAT_WALL] = _WALL_TOP
    top[mat == MAT_POLE] = (0.12, 0.12, 0.13)
    cars = (mat >= MAT_CAR) & (mat < MAT_CAR + N_CAR_COLOURS)
    top[cars] = CAR_COLOURS[mat[cars].astype(np.int64) - MAT_CAR]
    trees = canopy > base["height"]
    leaf_lum = (1.0 + 0.35 * grain + 0.3 * fine + 0.2 * low[..., 0]) * (
        1.0 + 0.25 * canopy_shade)
    top[trees] = np.array(_CANOPY, dtype=np.float32) * (leaf_lum[trees][:, None] * tint[trees])
    return np.clip(albedo, 0.0, 1.2), np.clip(top, 0.0, 1.2)
