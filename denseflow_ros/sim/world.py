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
the same seed gives byte-identical arrays.

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

if TYPE_CHECKING:
    from collections.abc import Callable

    from denseflow_ros.geo.projection import LocalEnu

# Material codes in World.material: below 32 a flat ground surface, from 32 a raised object.
SURF_ROAD = 1
SURF_MARKING = 2
SURF_KERB = 4
SURF_SIDEWALK = 5
SURF_GRASS = 6
SURF_PARKING = 7
SURF_PLAZA = 8
SURF_PATH = 9
SURF_GARDEN = 10
MAT_TREE = 32
MAT_WALL = 33
MAT_PERSON = 34  # only in rendered frames: pedestrians the orthophoto does not show
MAT_TRUNK = 35
MAT_POLE = 36
MAT_CAR = 40  # 40..47: car colours
MAT_BUILDING = 64  # 64 + facade colour index
N_CAR_COLOURS = 8

BLOCK_BUILDINGS, BLOCK_PARK, BLOCK_PARKING, BLOCK_PLAZA = 0, 1, 2, 3

_STRIP_ROWS = 256
_WARP_GRID_M = 2.0
_NOISE_GRID_M = (0.8, 4.0, 24.0)
_TREE_GRID_M = 9.0
_TRUNK_RADIUS_M = 0.22
_LAMP_SPACING_M = 25.0
_LAMP_HEIGHT_M = 6.5
_LOT_TABLE = 8
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

ROOF_COLOURS = np.array(
    [
        [0.55, 0.24, 0.16], [0.48, 0.20, 0.15], [0.62, 0.32, 0.20], [0.30, 0.30, 0.32],
        [0.22, 0.22, 0.25], [0.58, 0.58, 0.56], [0.68, 0.67, 0.64], [0.42, 0.36, 0.30],
        [0.36, 0.42, 0.38], [0.50, 0.47, 0.44], [0.74, 0.72, 0.70], [0.40, 0.26, 0.22],
    ],
    dtype=np.float32,
)
FACADE_COLOURS = np.array(
    [
        [0.78, 0.74, 0.66], [0.70, 0.62, 0.50], [0.62, 0.34, 0.26], [0.84, 0.82, 0.78],
        [0.56, 0.56, 0.58], [0.74, 0.66, 0.46], [0.52, 0.40, 0.34], [0.80, 0.70, 0.62],
        [0.66, 0.70, 0.72], [0.46, 0.44, 0.42], [0.88, 0.84, 0.72], [0.58, 0.48, 0.40],
    ],
    dtype=np.float32,
)
CAR_COLOURS = np.array(
    [
        [0.85, 0.85, 0.85], [0.08, 0.08, 0.09], [0.45, 0.46, 0.48], [0.60, 0.08, 0.07],
        [0.10, 0.18, 0.45], [0.70, 0.70, 0.72], [0.25, 0.28, 0.22], [0.80, 0.70, 0.20],
    ],
    dtype=np.float32,
)


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
class Layout:
    """The town's design: street lines, block and lot tables, trees, and the warp to ENU."""

    theta_rad: float
    xs: np.ndarray  # design x of the north-south-ish street centrelines
    xw: np.ndarray  # carriageway widths (m)
    xsw: np.ndarray  # sidewalk widths (m)
    xmain: np.ndarray  # 1 for arterials (four lanes), 0 for minor streets
    ys: np.ndarray
    yw: np.ndarray
    ysw: np.ndarray
    ymain: np.ndarray
    warp_amp: np.ndarray  # (M, 2) displacement amplitude vectors (m)
    warp_k: np.ndarray  # (M, 2) wave vectors (rad/m)
    warp_phase: np.ndarray  # (M,)
    block_type: np.ndarray  # (nx - 1, ny - 1)
    lot_size: np.ndarray  # (nx - 1, ny - 1, 2) target lot size (m)
    lot: np.ndarray  # (nx - 1, ny - 1, T, T, 10) lot parameters, fields _LOT_*
    crossing: np.ndarray  # (nx, ny) zebra crossings at the intersection
    street_tree_x: np.ndarray  # (nx, 3): presence per side (2), spacing (m)
    street_tree_y: np.ndarray
    tree_origin: np.ndarray  # (2,) design coordinate of tree cell (0, 0)
    tree: np.ndarray  # (tx, ty, 5): dx, dy, radius, height, present

    def design_to_enu(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Map design-plane points to local ENU (rotation plus the smooth warp)."""
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        c, s = math.cos(self.theta_rad), math.sin(self.theta_rad)
        east = c * x - s * y
        north = s * x + c * y
        for amp, k, ph in zip(self.warp_amp, self.warp_k, self.warp_phase):
            wave = np.sin(k[0] * x + k[1] * y + ph)
            east = east + amp[0] * wave
            north = north + amp[1] * wave
        return east, north

    def enu_to_design(self, east: np.ndarray, north: np.ndarray, iterations: int = 8
                      ) -> tuple[np.ndarray, np.ndarray]:
        """Invert :meth:`design_to_enu` by fixed-point iteration (the warp is a contraction)."""
        east = np.asarray(east, dtype=np.float64)
        north = np.asarray(north, dtype=np.float64)
        c, s = math.cos(self.theta_rad), math.sin(self.theta_rad)
        x = c * east + s * north
        y = -s * east + c * north
        for _ in range(iterations):
            de = np.zeros_like(east)
            dn = np.zeros_like(north)
            for amp, k, ph in zip(self.warp_amp, self.warp_k, self.warp_phase):
                wave = np.sin(k[0] * x + k[1] * y + ph)
                de = de + amp[0] * wave
                dn = dn + amp[1] * wave
            e0, n0 = east - de, north - dn
            x = c * e0 + s * n0
            y = -s * e0 + c * n0
        return x, y


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


# -- layout -----------------------------------------------------------------------------------


def _street_lines(rng: np.random.Generator, half_extent: float) -> tuple[np.ndarray, ...]:
    """Draw street centrelines covering [-half_extent, half_extent] with their widths."""
    positions = [-half_extent - rng.uniform(20.0, 80.0)]
    while positions[-1] < half_extent + 60.0:
        positions.append(positions[-1] + rng.uniform(70.0, 145.0))
    pos = np.array(positions)
    n = len(pos)
    main = (rng.random(n) < 0.25).astype(np.uint8)
    width = np.where(main == 1, rng.uniform(13.0, 16.0, n), rng.uniform(6.5, 9.0, n))
    sidewalk = np.where(main == 1, rng.uniform(3.0, 5.0, n), rng.uniform(2.0, 3.5, n))
    f32 = np.float32
    return pos.astype(f32), width.astype(f32), sidewalk.astype(f32), main


# Lot parameter fields (last axis of Layout.lot).
(_LOT_KIND, _LOT_SET_A, _LOT_SET_B, _LOT_SET_C, _LOT_SET_D, _LOT_HEIGHT, _LOT_STYLE, _LOT_WALL,
 _LOT_CUT, _LOT_CUT_FRAC) = range(10)


def _make_layout(rng: np.random.Generator, size_m: float) -> Layout:
    half = size_m / 2.0 * math.sqrt(2.0) + 60.0
    xs, xw, xsw, xmain = _street_lines(rng, half)
    ys, yw, ysw, ymain = _street_lines(rng, half)
    nbx, nby = len(xs) - 1, len(ys) - 1
    block_type = rng.choice(
        [BLOCK_BUILDINGS, BLOCK_PARK, BLOCK_PARKING, BLOCK_PLAZA], size=(nbx, nby),
        p=[0.72, 0.12, 0.10, 0.06],
    ).astype(np.uint8)
    lot_size = np.stack(
        [rng.uniform(16.0, 34.0, (nbx, nby)), rng.uniform(16.0, 34.0, (nbx, nby))], axis=-1
    ).astype(np.float32)
    t = _LOT_TABLE
    lot = np.zeros((nbx, nby, t, t, 10), dtype=np.float32)
    lot[..., _LOT_KIND] = rng.random((nbx, nby, t, t)) < 0.82  # 1 = building, 0 = yard
    for i in (_LOT_SET_A, _LOT_SET_B, _LOT_SET_C, _LOT_SET_D):
        lot[..., i] = rng.choice([0.0, 0.0, 1.0, 2.5, 4.0], size=(nbx, nby, t, t)) + rng.uniform(
            0.0, 0.8, (nbx, nby, t, t))
    heights = rng.choice([4.5, 7.5, 10.5, 13.5, 16.5, 22.0], size=(nbx, nby, t, t),
                         p=[0.08, 0.22, 0.28, 0.22, 0.14, 0.06])
    tower = rng.random((nbx, nby, t, t)) < 0.02
    lot[..., _LOT_HEIGHT] = np.where(tower, rng.uniform(30.0, 45.0, (nbx, nby, t, t)),
                                     heights + rng.uniform(-0.5, 1.2, (nbx, nby, t, t)))
    # style: integer part = roof colour index, fraction > 0.5 = gable roof (ridge along the
    # footprint's longer side); the facade colour is derived from the lot's indices.
    roof_idx = rng.integers(0, len(ROOF_COLOURS), (nbx, nby, t, t))
    gable = rng.random((nbx, nby, t, t)) < 0.45
    lot[..., _LOT_STYLE] = roof_idx + np.where(gable, 0.75, 0.25)
    lot[..., _LOT_WALL] = rng.random((nbx, nby, t, t)) < 0.2
    # L-shaped footprints: a corner (1..4) of the rectangle cut away, 0 for none.
    lot[..., _LOT_CUT] = np.where(rng.random((nbx, nby, t, t)) < 0.35,
                                  rng.integers(1, 5, (nbx, nby, t, t)), 0)
    lot[..., _LOT_CUT_FRAC] = rng.uniform(0.35, 0.6, (nbx, nby, t, t))

    crossing = (rng.random((len(xs), len(ys))) < 0.4).astype(np.uint8)

    def street_trees(n: int) -> np.ndarray:
        out = np.zeros((n, 3), dtype=np.float32)
        out[:, 0] = rng.random(n) < 0.5
        out[:, 1] = rng.random(n) < 0.5
        out[:, 2] = rng.uniform(8.0, 13.0, n)
        return out

    street_tree_x = street_trees(len(xs))
    street_tree_y = street_trees(len(ys))

    ntx = int(math.ceil(2 * half / _TREE_GRID_M)) + 2
    tree = np.zeros((ntx, ntx, 5), dtype=np.float32)
    radius = rng.uniform(1.8, 3.8, (ntx, ntx))
    jitter = np.maximum(_TREE_GRID_M / 2.0 - radius - 0.3, 0.0)
    tree[..., 0] = rng.uniform(-1.0, 1.0, (ntx, ntx)) * jitter
    tree[..., 1] = rng.uniform(-1.0, 1.0, (ntx, ntx)) * jitter
    tree[..., 2] = radius
    tree[..., 3] = rng.uniform(5.5, 13.0, (ntx, ntx))
    tree[..., 4] = rng.random((ntx, ntx))  # compared with a per-land-use probability

    n_modes = 3
    wavelength = rng.uniform(450.0, 1100.0, n_modes)
    direction = rng.uniform(0.0, 2 * math.pi, n_modes)
    warp_k = np.stack([np.cos(direction), np.sin(direction)], axis=1) * (
        2 * math.pi / wavelength)[:, None]
    amp_dir = rng.uniform(0.0, 2 * math.pi, n_modes)
    # Amplitude keeps the warp's slope below ~0.15 per mode: roads bend by up to ~9 degrees.
    amp = rng.uniform(0.5, 1.0, n_modes) * 0.15 * wavelength / (2 * math.pi)
    warp_amp = np.stack([np.cos(amp_dir), np.sin(amp_dir)], axis=1) * amp[:, None]

    layout = Layout(
        theta_rad=float(rng.uniform(0.0, math.pi / 2)),
        xs=xs, xw=xw, xsw=xsw, xmain=xmain, ys=ys, yw=yw, ysw=ysw, ymain=ymain,
        warp_amp=warp_amp, warp_k=warp_k, warp_phase=rng.uniform(0.0, 2 * math.pi, n_modes),
        block_type=block_type, lot_size=lot_size, lot=lot, crossing=crossing,
        street_tree_x=street_tree_x, street_tree_y=street_tree_y,
        tree_origin=np.array([-half - _TREE_GRID_M, -half - _TREE_GRID_M]), tree=tree,
    )
    _settle_trees(layout)
    return layout


def _settle_trees(layout: Layout) -> None:
    """Keep the trees whose centre stands on land that grows trees (parks, yards, plazas)."""
    tree = layout.tree
    ntx, nty = tree.shape[:2]
    gx, gy = np.meshgrid(np.arange(ntx), np.arange(nty), indexing="ij")
    cx = layout.tree_origin[0] + (gx + 0.5) * _TREE_GRID_M + tree[..., 0]
    cy = layout.tree_origin[1] + (gy + 0.5) * _TREE_GRID_M + tree[..., 1]
    base = _base_layer(layout, cx.astype(np.float32), cy.astype(np.float32))
    surf = base["material"]
    prob = np.zeros(surf.shape, dtype=np.float32)
    park = (base["block_type"] == BLOCK_PARK) & (surf == SURF_GRASS)
    prob[park] = 0.55
    prob[(base["block_type"] == BLOCK_BUILDINGS) & (surf == SURF_GARDEN)] = 0.45
    prob[(base["block_type"] == BLOCK_PLAZA) & (surf == SURF_PLAZA)] = 0.12
    # Keep canopies off roofs: a tree must stand clear of the footprint edge by its radius.
    clear = base["building_clearance"] > tree[..., 2] * 0.7
    tree[..., 4] = ((tree[..., 4] < prob) & clear).astype(np.float32)


# -- rasterisation -----------------------------------------------------------------------------


def _nearest_line(pos: np.ndarray, v: np.ndarray) -> np.ndarray:
    mids = ((pos[:-1] + pos[1:]) / 2.0).astype(np.float32)
    return np.searchsorted(mids, v)


def _coverage(dist: np.ndarray, half_width: float, mpp: float) -> np.ndarray:
    """Return the anti-aliased coverage of a band of ``half_width`` at distance ``dist``."""
    return np.clip((half_width - np.abs(dist)) / mpp + 0.5, 0.0, 1.0)


def _base_layer(layout: Layout, x: np.ndarray, y: np.ndarray, mpp: float = 0.2) -> dict:
    """Classify design points: surfaces, buildings, walls and parked cars (no trees).

    Returns arrays shaped like ``x``: ``material``, ``height``, ``paint`` (marking coverage
    0..1), ``roof`` (roof colour index), ``block_type`` (255 on streets),
    ``building_clearance`` (metres from the lot's building footprint, negative inside),
    ``tone`` (a per-lot or per-street colour jitter -1..1), ``road``, and the nearest street
    lines ``ix``/``iy`` with the signed offsets ``dx``/``dy`` from them.
    Each feature is evaluated only on the points it can cover, which keeps this cheap.
    """
    shape = x.shape
    x = x.reshape(-1)
    y = y.reshape(-1)
    n = x.size
    material = np.full(n, SURF_GRASS, dtype=np.uint8)
    height = np.zeros(n, dtype=np.float32)
    paint = np.zeros(n, dtype=np.float32)
    roof = np.zeros(n, dtype=np.int16)
    tone = np.zeros(n, dtype=np.float32)
    clearance = np.full(n, 1e3, dtype=np.float32)
    btype_out = np.full(n, 255, dtype=np.uint8)

    ix = _nearest_line(layout.xs, x)
    iy = _nearest_line(layout.ys, y)
    dx = x - layout.xs[ix]
    dy = y - layout.ys[iy]
    hx = layout.xw[ix] / 2.0
    hy = layout.yw[iy] / 2.0
    adx, ady = np.abs(dx), np.abs(dy)
    on_x = adx < hx  # carriageway of a street along design y
    on_y = ady < hy
    road = on_x | on_y
    walk_x = adx < hx + layout.xsw[ix]
    walk_y = ady < hy + layout.ysw[iy]
    sidewalk = (walk_x | walk_y) & ~road

    # Markings, on carriageway points only; ``right`` > 0 on the lane that approaches the
    # junction ahead (right-hand traffic).
    for on_this, on_other, d_all, h_all, along_all, main_tbl, i_this, near_all, hnear_all, sgn in (
        (on_x, on_y, dx, hx, y, layout.xmain, ix, ady, hy, -1.0),
        (on_y, on_x, dy, hy, x, layout.ymain, iy, adx, hx, 1.0),
    ):
        k = np.flatnonzero(on_this & ~on_other)
        d, h, along = d_all[k], h_all[k], along_all[k]
        other = (dy if sgn < 0 else dx)[k]
        m = main_tbl[i_this[k]].astype(bool)
        dash = (np.mod(along, 9.0) < 3.0).astype(np.float32)
        # Minor: dashed centre line; main: double solid centre line and dashed lane lines.
        centre = np.where(m, np.maximum(_coverage(d - 0.2, 0.06, mpp),
                                        _coverage(d + 0.2, 0.06, mpp)),
                          _coverage(d, 0.06, mpp) * dash)
        lanes = np.where(m, _coverage(np.abs(d) - h / 2.0, 0.06, mpp) * dash, 0.0)
        edge = _coverage(np.abs(d) - (h - 0.35), 0.07, mpp)
        gap = near_all[k] - hnear_all[k]  # distance from the crossing street's kerb line
        crossing = layout.crossing[ix[k], iy[k]] == 1
        zebra = crossing & (gap > 1.0) & (gap < 4.5) & (np.abs(d) < h - 0.5) & (
            np.mod(d + 20.0, 1.0) < 0.5)
        right = sgn * d * other
        stop = _coverage(gap - 5.3, 0.2, mpp) * ((right > 0) & (np.abs(d) < h - 0.4) & ~crossing)
        marks = np.where(gap < 5.6, 0.0, np.maximum(np.maximum(centre, lanes), edge))
        paint[k] = np.maximum(np.maximum(marks, zebra.astype(np.float32)), stop)

    kr = np.flatnonzero(road)
    tone[kr] = np.sin(np.where(on_x[kr], layout.xw[ix[kr]], layout.yw[iy[kr]]) * 7.3)
    material[kr] = np.where(paint[kr] > 0.5, SURF_MARKING, SURF_ROAD)
    material[sidewalk] = SURF_SIDEWALK
    kerb = sidewalk & (
        ((adx >= hx) & (adx < hx + 0.3)) | ((ady >= hy) & (ady < hy + 0.3))
    )
    material[kerb] = SURF_KERB
    # Street lamps: 0.4 m posts 0.6 m behind the kerb every 25 m, clear of junctions.
    for walk_this, walk_other, a_this, h_this, along_all, i_this in (
        (walk_x, walk_y, adx, hx, y, ix), (walk_y, walk_x, ady, hy, x, iy),
    ):
        k = np.flatnonzero(sidewalk & walk_this & ~walk_other
                           & (np.abs(a_this - h_this - 0.6) < 0.2))
        phase = np.mod(i_this[k] * 7.7, _LAMP_SPACING_M)
        gap = np.mod(along_all[k] - phase + _LAMP_SPACING_M / 2, _LAMP_SPACING_M)
        lamp = k[np.abs(gap - _LAMP_SPACING_M / 2) < 0.2]
        material[lamp] = MAT_POLE
        height[lamp] = _LAMP_HEIGHT_M

    # Blocks: everything off the streets.
    ki = np.flatnonzero(~(road | sidewalk))
    xi, yi = x[ki], y[ki]
    nbx, nby = layout.block_type.shape
    bx = np.clip(np.searchsorted(layout.xs, xi) - 1, 0, nbx - 1)
    by = np.clip(np.searchsorted(layout.ys, yi) - 1, 0, nby - 1)
    x0 = layout.xs[bx] + layout.xw[bx] / 2 + layout.xsw[bx]
    x1 = layout.xs[bx + 1] - layout.xw[bx + 1] / 2 - layout.xsw[bx + 1]
    y0 = layout.ys[by] + layout.yw[by] / 2 + layout.ysw[by]
    y1 = layout.ys[by + 1] - layout.yw[by + 1] / 2 - layout.ysw[by + 1]
    u, v = xi - x0, yi - y0
    bw, bh = np.maximum(x1 - x0, 1.0), np.maximum(y1 - y0, 1.0)
    btype = layout.block_type[bx, by]
    btype_out[ki] = btype

    # Building blocks: lots, each a building (with setbacks) or a yard (garden, maybe walled).
    sel = np.flatnonzero(btype == BLOCK_BUILDINGS)
    kb = ki[sel]
    bxs, bys, us, vs, bws, bhs = bx[sel], by[sel], u[sel], v[sel], bw[sel], bh[sel]
    ls = layout.lot_size[bxs, bys]
    nlx = np.maximum(np.round(bws / ls[:, 0]), 1.0)
    nly = np.maximum(np.round(bhs / ls[:, 1]), 1.0)
    lw, lh = bws / nlx, bhs / nly
    lx = np.clip(np.floor(us / lw), 0, nlx - 1).astype(np.int64)
    ly = np.clip(np.floor(vs / lh), 0, nly - 1).astype(np.int64)
    lu, lv = us - lx * lw, vs - ly * lh
    lot = layout.lot[bxs, bys, lx % _LOT_TABLE, ly % _LOT_TABLE]
    fu0, fu1 = lot[:, _LOT_SET_A], lw - lot[:, _LOT_SET_B]
    fv0, fv1 = lot[:, _LOT_SET_C], lh - lot[:, _LOT_SET_D]
    has_building = (lot[:, _LOT_KIND] > 0.5) & (fu1 - fu0 > 4.0) & (fv1 - fv0 > 4.0)
    edge_dist = np.minimum(np.minimum(lu - fu0, fu1 - lu), np.minimum(lv - fv0, fv1 - lv))
    # Position in the footprint (0..1 each way) and the cut-away corner of L-shaped ones.
    a = (lu - fu0) / np.maximum(fu1 - fu0, 1e-3)
    b = (lv - fv0) / np.maximum(fv1 - fv0, 1e-3)
    frac = lot[:, _LOT_CUT_FRAC]
    cut = lot[:, _LOT_CUT]
    hi_a, lo_a, hi_b, lo_b = a > 1 - frac, a < frac, b > 1 - frac, b < frac
    cut_away = (((cut == 1) & hi_a & hi_b) | ((cut == 2) & lo_a & hi_b)
                | ((cut == 3) & lo_a & lo_b) | ((cut == 4) & hi_a & lo_b))
    is_building = has_building & (edge_dist > 0) & ~cut_away
    clearance[kb] = np.where(has_building, -edge_dist, 1e3)
    tone[kb] = np.sin(lot[:, _LOT_HEIGHT] * 5.1)
    style = lot[:, _LOT_STYLE]
    is_gable = np.mod(style, 1.0) > 0.5
    ridge_x = (fu1 - fu0) >= (fv1 - fv0)
    half_span = np.where(ridge_x, fv1 - fv0, fu1 - fu0) / 2
    across = np.where(ridge_x, lv - (fv0 + fv1) / 2, lu - (fu0 + fu1) / 2) / np.maximum(
        half_span, 1e-3)
    ridge_h = np.minimum(half_span * 0.6, 5.0)
    bheight = lot[:, _LOT_HEIGHT] + np.where(is_gable, ridge_h * (1.0 - np.abs(across)), 0.0)
    facade = (np.floor(style).astype(np.int64) * 7 + lx * 3 + ly * 5 + bxs * 11 + bys * 13) % (
        len(FACADE_COLOURS))
    border = np.minimum(np.minimum(lu, lw - lu), np.minimum(lv, lh - lv))
    wall = ~is_building & (lot[:, _LOT_WALL] > 0.5) & (border < 0.35)
    material[kb] = np.where(is_building, MAT_BUILDING + facade,
                            np.where(wall, MAT_WALL, SURF_GARDEN))
    height[kb] = np.where(is_building, bheight, np.where(wall, 1.9, 0.0))
    roof[kb] = np.where(is_building, np.floor(style), 0)

    # Parks: grass and a diagonal gravel path.
    sel = np.flatnonzero(btype == BLOCK_PARK)
    path_d = np.abs(u[sel] / bw[sel] - v[sel] / bh[sel]) * np.minimum(bw[sel], bh[sel])
    material[ki[sel]] = np.where(path_d < 1.4, SURF_PATH, SURF_GRASS)

    # Parking: stall rows (5 m) either side of 6 m aisles, parked cars in most stalls.
    sel = np.flatnonzero(btype == BLOCK_PARKING)
    kp = ki[sel]
    up, vp, bwp, bhp = u[sel], v[sel], bw[sel], bh[sel]
    period = 16.0
    pv = np.mod(vp - 1.0, period)
    row_i = np.floor((vp - 1.0) / period) * 2 + (pv >= 5.0)
    in_row = (pv < 10.0) & (vp > 1.0) & (vp < bhp - 1.0) & (up > 1.0) & (up < bwp - 1.0)
    su = np.mod(up - 1.0, 2.6)
    stall_line = in_row & (_coverage(su - 0.06, 0.06, mpp) > 0.5)
    stall_id = (np.floor((up - 1.0) / 2.6) * 131 + row_i * 17 + bx[sel] * 7 + by[sel] * 3
                ).astype(np.int64)
    occupied = np.mod(stall_id * 2654435761, 1000) < 640
    sv = np.mod(pv, 5.0)
    car = in_row & occupied & (su > 0.4) & (su < 2.2) & (sv > 0.3) & (sv < 4.7)
    car_colour = np.mod(stall_id * 40503, N_CAR_COLOURS)
    car_edge = np.minimum(np.minimum(su - 0.4, 2.2 - su), np.minimum(sv - 0.3, 4.7 - sv))
    material[kp] = np.where(car, MAT_CAR + car_colour,
                            np.where(stall_line, SURF_MARKING, SURF_PARKING))
    paint[kp] = np.where(stall_line & ~car, 1.0, 0.0)
    height[kp] = np.where(car, np.minimum(1.45, 0.9 + car_edge * 1.5), 0.0)
    # Plazas: paved.
    material[ki[btype == BLOCK_PLAZA]] = SURF_PLAZA

    out = {
        "material": material, "height": height, "paint": paint, "roof": roof,
        "block_type": btype_out, "building_clearance": clearance, "tone": tone, "road": road,
        "ix": ix, "iy": iy, "dx": dx, "dy": dy,
    }
    return {key: value.reshape(shape) for key, value in out.items()}


def _tree_layer(layout: Layout, x: np.ndarray, y: np.ndarray, base: dict
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (canopy height, canopy shade -1..1, trunk) of garden, park and street trees."""
    shape = x.shape
    x, y = x.reshape(-1), y.reshape(-1)
    canopy = np.zeros(x.size, dtype=np.float32)
    shade = np.zeros(x.size, dtype=np.float32)
    trunk = np.zeros(x.size, dtype=bool)
    # Grid trees, only where land can hold them (not on streets).
    k = np.flatnonzero(base["block_type"].reshape(-1) != 255)
    tree = layout.tree
    xk, yk = x[k], y[k]
    gx = np.clip(np.floor((xk - layout.tree_origin[0]) / _TREE_GRID_M).astype(np.int64), 0,
                 tree.shape[0] - 1)
    gy = np.clip(np.floor((yk - layout.tree_origin[1]) / _TREE_GRID_M).astype(np.int64), 0,
                 tree.shape[1] - 1)
    t = tree[gx, gy]
    rx = xk - (layout.tree_origin[0] + (gx + 0.5) * _TREE_GRID_M + t[:, 0])
    ry = yk - (layout.tree_origin[1] + (gy + 0.5) * _TREE_GRID_M + t[:, 1])
    r = t[:, 2]
    q = (rx * rx + ry * ry) / (r * r)
    hit = (t[:, 4] > 0.5) & (q < 1.0)
    kk = k[hit]
    canopy[kk] = t[hit, 3] * (0.6 + 0.4 * np.sqrt(1.0 - q[hit]))
    trunk[kk] = q[hit] * r[hit] ** 2 < _TRUNK_RADIUS_M ** 2
    shade[kk] = (rx[hit] - ry[hit]) / r[hit]

    # Street trees on the sidewalk's middle line, spaced along the street; their canopies
    # reach over the carriageway and the front gardens.
    ix, iy = base["ix"].reshape(-1), base["iy"].reshape(-1)
    dx, dy = base["dx"].reshape(-1), base["dy"].reshape(-1)
    rr = 2.4
    for d_all, along_all, i_this, i_other, o_all, tbl, w_this, sw_this, w_other, sw_other in (
        (dx, y, ix, iy, dy, layout.street_tree_x, layout.xw, layout.xsw, layout.yw, layout.ysw),
        (dy, x, iy, ix, dx, layout.street_tree_y, layout.yw, layout.ysw, layout.xw, layout.xsw),
    ):
        offset_all = w_this[i_this] / 2 + sw_this[i_this] * 0.5
        k = np.flatnonzero(np.abs(np.abs(d_all) - offset_all) < rr)
        d, along, i = d_all[k], along_all[k], i_this[k]
        st = tbl[i]
        present = np.where(d >= 0, st[:, 0], st[:, 1]) > 0.5
        spacing = st[:, 2]
        across = np.abs(d) - offset_all[k]
        n_along = np.round(along / spacing)
        ca = along - n_along * spacing
        io = i_other[k]
        clear_of_junction = np.abs(o_all[k]) > w_other[io] / 2 + sw_other[io] + 3.0 + np.abs(ca)
        ok = present & clear_of_junction & (np.mod(n_along * 7 + (d >= 0) * 3, 5) != 0)
        q = (across * across + ca * ca) / (rr * rr)
        h = np.where(ok & (q < 1.0), 7.5 * (0.6 + 0.4 * np.sqrt(np.clip(1.0 - q, 0.0, 1.0))),
                     0.0)
        taller = h > canopy[k]
        shade[k] = np.where(taller, (across - ca) / rr, shade[k])
        trunk[k] = np.where(taller, q * rr * rr < _TRUNK_RADIUS_M ** 2, trunk[k])
        canopy[k] = np.maximum(canopy[k], h)
    # Canopies stop at the kerb: the renderer draws trees as solid columns down to the ground,
    # and the carriageway must stay clear for the car that drives on it.
    canopy[base["road"].reshape(-1)] = 0.0
    return (canopy.reshape(shape), np.clip(shade, -1.0, 1.0).reshape(shape),
            trunk.reshape(shape))


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
    layout = _make_layout(rng, size_m)
    aerial_sun = _random_sun(rng, aerial=True)
    ground_sun = _random_sun(rng, aerial=False)
    n = int(round(size_m / mpp))
    half = n * mpp / 2.0

    # Warp residual (design minus rotated ENU) on a coarse grid, sampled per strip.
    ng = int(math.ceil(n * mpp / _WARP_GRID_M)) + 2
    ge = -half + _WARP_GRID_M * (np.arange(ng) - 0.5)
    gn = half - _WARP_GRID_M * (np.arange(ng) - 0.5)
    gE, gN = np.meshgrid(ge, gn)
    dxg, dyg = layout.enu_to_design(gE, gN)
    c, s = math.cos(layout.theta_rad), math.sin(layout.theta_rad)
    residual = np.stack([dxg - (c * gE + s * gN), dyg - (-s * gE + c * gN)], axis=-1).astype(
        np.float32)

    # Noise octaves on coarse grids (continuous across strips), fine grain per strip.
    octaves = []
    for cell in _NOISE_GRID_M:
        m = int(math.ceil(n * mpp / cell)) + 3
        channels = 3 if cell == _NOISE_GRID_M[-1] else 1
        octaves.append((cell, rng.standard_normal((m, m, channels)).astype(np.float32)))

    cols = np.arange(n)
    east = ((cols - n // 2) * mpp).astype(np.float32)

    def design_coords(north: np.ndarray, east: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        res = _sample_grid(residual, (half - north) / _WARP_GRID_M + 0.5,
                           (east + half) / _WARP_GRID_M + 0.5)
        e2, n2 = east[None, :], north[:, None]
        x = (c * e2 + s * n2 + res[..., 0]).astype(np.float32)
        y = (-s * e2 + c * n2 + res[..., 1]).astype(np.float32)
        return x, y

    # Shadows from a coarse height map (cells of ~0.8 m), one march per sun.
    cell = max(1, int(round(_SHADOW_CELL_M / mpp)))
    nc = (n + cell - 1) // cell
    coarse_east = (((np.arange(nc) + 0.5) * cell - 0.5 - n // 2) * mpp).astype(np.float32)
    coarse = np.zeros((nc, nc), dtype=np.float32)

    def coarse_strip(strip: int) -> None:
        rows = np.arange(strip * _STRIP_ROWS, min((strip + 1) * _STRIP_ROWS, nc))
        north = ((n // 2 - ((rows + 0.5) * cell - 0.5)) * mpp).astype(np.float32)
        x, y = design_coords(north, coarse_east)
        base = _base_layer(layout, x, y, mpp)
        coarse[rows] = np.maximum(base["height"], _tree_layer(layout, x, y, base)[0])

    _parallel(coarse_strip, (nc + _STRIP_ROWS - 1) // _STRIP_ROWS)
    lit_maps = [_shadow(coarse, cell * mpp, sun) for sun in (aerial_sun, ground_sun)]

    grade_rng = np.random.default_rng([seed, 11])
    a_gain = np.float32(grade_rng.uniform(0.95, 1.15)) + grade_rng.uniform(
        -0.06, 0.06, 3).astype(np.float32)
    g_gain = np.float32(grade_rng.uniform(0.9, 1.2)) + grade_rng.uniform(
        -0.08, 0.08, 3).astype(np.float32)
    a_lut = _grade_lut(grade_rng.uniform(2.0, 2.4), 0.05)
    g_lut = _grade_lut(grade_rng.uniform(1.9, 2.3), 0.0)
    a_sat, g_sat = grade_rng.uniform(0.7, 0.95), grade_rng.uniform(0.9, 1.15)
    views = (
        (aerial_sun, lit_maps[0], a_gain, a_sat, a_lut),
        (ground_sun, lit_maps[1], g_gain, g_sat, g_lut),
    )

    height = np.zeros((n, n), dtype=np.float32)
    material = np.zeros((n, n), dtype=np.uint8)
    ortho = np.zeros((n, n, 3), dtype=np.uint8)
    ground = np.zeros((n, n, 3), dtype=np.uint8)

    def raster_strip(strip: int) -> None:
        r0, r1 = strip * _STRIP_ROWS, min((strip + 1) * _STRIP_ROWS, n)
        rows = np.arange(r0 - 1, r1 + 1)  # one row either side for the height gradient
        north = ((n // 2 - rows) * mpp).astype(np.float32)
        x, y = design_coords(north, east)
        base = _base_layer(layout, x, y, mpp)
        canopy, canopy_shade, trunk = _tree_layer(layout, x, y, base)
        noise = [
            _sample_grid(g, (half - north) / cell_m + 1.0, (east + half) / cell_m + 1.0)
            for cell_m, g in octaves
        ]
        noise = [noise[0][..., 0], noise[1][..., 0], noise[2]]
        grain = np.random.default_rng([seed, 7, strip]).standard_normal(
            (len(rows), n), dtype=np.float32)
        albedos = _albedo(base, canopy, canopy_shade, noise, grain, x, y)
        hgt = np.maximum(base["height"], canopy)
        inner = slice(1, len(rows) - 1)
        height[r0:r1] = hgt[inner]
        material[r0:r1] = np.where(canopy > base["height"], np.where(trunk, MAT_TRUNK, MAT_TREE),
                                   base["material"])[inner]
        # Slope of roofs and canopies (central differences; the strip's edge columns one-sided).
        gx = np.gradient(hgt, axis=1)[inner] / mpp
        gy = (hgt[:-2] - hgt[2:]) / (2.0 * mpp)
        inner_rows = np.arange(r0, r1)
        for (sun, lit, gain, sat, lut), albedo, out, slopes in zip(
                views, albedos[::-1], (ortho, ground), (True, False)):
            sv = sun.vector().astype(np.float32)
            lit_s = _sample_grid(lit[..., None], (inner_rows + 0.5) / cell - 0.5,
                                 (cols + 0.5) / cell - 0.5)[..., 0]
            if slopes:
                norm = np.sqrt(gx * gx + gy * gy + 1.0)
                cos_i = np.clip((-gx * sv[0] - gy * sv[1] + sv[2]) / norm, 0.0, 1.0)
                direct = lit_s * cos_i * np.float32(1.0 / max(float(sv[2]), 0.2))
            else:
                direct = lit_s
            light = direct[..., None] * np.asarray(sun.direct, dtype=np.float32) + np.asarray(
                sun.ambient, dtype=np.float32)
            out[r0:r1] = _grade(albedo[inner] * light * np.float32(0.72), gain, sat, lut)

    _parallel(raster_strip, (n + _STRIP_ROWS - 1) // _STRIP_ROWS)
    # The aerial camera's optics: a slight blur.
    ortho = cv2.GaussianBlur(ortho, (0, 0), 0.6)
    return World(
        seed=int(seed), size_m=float(n * mpp), mpp=float(mpp), center_lat=float(lat),
        center_lon=float(lon), ortho=ortho, ground=ground, height=height, material=material,
        layout=layout, aerial_sun=aerial_sun, ground_sun=ground_sun,
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
