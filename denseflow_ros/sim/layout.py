# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The synthetic town's design: material codes, the street and lot tables, and their rasters.

:func:`make_layout` draws the town's tables from a generator; :func:`base_layer` and
:func:`tree_layer` classify any design-plane points (surfaces, buildings, walls, lamps,
parked cars, then trees) with vectorised numpy, evaluating each feature only where it can
lie. :mod:`denseflow_ros.sim.world` warps the design plane into ENU and colours the rasters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

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

_TREE_GRID_M = 9.0
_TRUNK_RADIUS_M = 0.22
_LAMP_SPACING_M = 25.0
_LAMP_HEIGHT_M = 6.5
_LOT_TABLE = 8

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


def make_layout(rng: np.random.Generator, size_m: float) -> Layout:
    """Draw the design of a town covering a ``size_m`` square at any rotation."""
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
    base = base_layer(layout, cx.astype(np.float32), cy.astype(np.float32))
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


@dataclass
class _Streets:
    """Design points against their nearest street line of each direction.

    ``ix``/``iy`` index the lines, ``dx``/``dy`` are signed offsets from them and
    ``hx``/``hy`` their half carriageway widths; ``on_x`` is on the carriageway of a street
    along design y, ``walk_x`` within its sidewalk's outer edge.
    """

    x: np.ndarray
    y: np.ndarray
    ix: np.ndarray
    iy: np.ndarray
    dx: np.ndarray
    dy: np.ndarray
    hx: np.ndarray
    hy: np.ndarray
    on_x: np.ndarray
    on_y: np.ndarray
    walk_x: np.ndarray
    walk_y: np.ndarray

    @classmethod
    def locate(cls, layout: Layout, x: np.ndarray, y: np.ndarray) -> _Streets:
        """Find each (flat) point's nearest street lines."""
        ix = _nearest_line(layout.xs, x)
        iy = _nearest_line(layout.ys, y)
        dx = x - layout.xs[ix]
        dy = y - layout.ys[iy]
        hx = layout.xw[ix] / 2.0
        hy = layout.yw[iy] / 2.0
        adx, ady = np.abs(dx), np.abs(dy)
        return cls(x, y, ix, iy, dx, dy, hx, hy, adx < hx, ady < hy,
                   adx < hx + layout.xsw[ix], ady < hy + layout.ysw[iy])

    @property
    def road(self) -> np.ndarray:
        """Return whether each point is on a carriageway."""
        return self.on_x | self.on_y

    @property
    def sidewalk(self) -> np.ndarray:
        """Return whether each point is on a sidewalk (kerb included)."""
        return (self.walk_x | self.walk_y) & ~self.road


def _markings(layout: Layout, st: _Streets, mpp: float) -> np.ndarray:
    """Return the paint coverage (0..1) of lane lines, zebras and stop lines on carriageways.

    ``right`` > 0 on the lane that approaches the junction ahead (right-hand traffic).
    """
    paint = np.zeros(st.x.size, dtype=np.float32)
    ix, iy, dx, dy = st.ix, st.iy, st.dx, st.dy
    adx, ady = np.abs(dx), np.abs(dy)
    for on_this, on_other, d_all, h_all, along_all, main_tbl, i_this, near_all, hnear_all, sgn in (
        (st.on_x, st.on_y, dx, st.hx, st.y, layout.xmain, ix, ady, st.hy, -1.0),
        (st.on_y, st.on_x, dy, st.hy, st.x, layout.ymain, iy, adx, st.hx, 1.0),
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
    return paint


def _street_surfaces(layout: Layout, st: _Streets, out: dict[str, np.ndarray]) -> None:
    """Set carriageways, markings, sidewalks, kerbs and street lamps."""
    material, height, road, sidewalk = out["material"], out["height"], st.road, st.sidewalk
    ix, iy, on_x = st.ix, st.iy, st.on_x
    adx, ady, hx, hy = np.abs(st.dx), np.abs(st.dy), st.hx, st.hy
    kr = np.flatnonzero(road)
    out["tone"][kr] = np.sin(np.where(on_x[kr], layout.xw[ix[kr]], layout.yw[iy[kr]]) * 7.3)
    material[kr] = np.where(out["paint"][kr] > 0.5, SURF_MARKING, SURF_ROAD)
    material[sidewalk] = SURF_SIDEWALK
    kerb = sidewalk & (
        ((adx >= hx) & (adx < hx + 0.3)) | ((ady >= hy) & (ady < hy + 0.3))
    )
    material[kerb] = SURF_KERB
    # Street lamps: 0.4 m posts 0.6 m behind the kerb every 25 m, clear of junctions.
    for walk_this, walk_other, a_this, h_this, along_all, i_this in (
        (st.walk_x, st.walk_y, adx, hx, st.y, ix), (st.walk_y, st.walk_x, ady, hy, st.x, iy),
    ):
        k = np.flatnonzero(sidewalk & walk_this & ~walk_other
                           & (np.abs(a_this - h_this - 0.6) < 0.2))
        phase = np.mod(i_this[k] * 7.7, _LAMP_SPACING_M)
        gap = np.mod(along_all[k] - phase + _LAMP_SPACING_M / 2, _LAMP_SPACING_M)
        lamp = k[np.abs(gap - _LAMP_SPACING_M / 2) < 0.2]
        material[lamp] = MAT_POLE
        height[lamp] = _LAMP_HEIGHT_M


@dataclass
class _BlockPoints:
    """Points off the streets, with their block.

    ``k`` indexes the flat arrays; (bx, by) is the block, (u, v) the position from its corner
    and (bw, bh) its size.
    """

    k: np.ndarray
    bx: np.ndarray
    by: np.ndarray
    u: np.ndarray
    v: np.ndarray
    bw: np.ndarray
    bh: np.ndarray

    def select(self, sel: np.ndarray) -> _BlockPoints:
        """Return the points ``sel`` picks."""
        return _BlockPoints(*(getattr(self, f)[sel] for f in
                              ("k", "bx", "by", "u", "v", "bw", "bh")))


def _buildings(layout: Layout, p: _BlockPoints, out: dict[str, np.ndarray]) -> None:
    """Set a building block's lots: each a building (with setbacks) or a garden (walled)."""
    ls = layout.lot_size[p.bx, p.by]
    nlx = np.maximum(np.round(p.bw / ls[:, 0]), 1.0)
    nly = np.maximum(np.round(p.bh / ls[:, 1]), 1.0)
    lw, lh = p.bw / nlx, p.bh / nly
    lx = np.clip(np.floor(p.u / lw), 0, nlx - 1).astype(np.int64)
    ly = np.clip(np.floor(p.v / lh), 0, nly - 1).astype(np.int64)
    lu, lv = p.u - lx * lw, p.v - ly * lh
    lot = layout.lot[p.bx, p.by, lx % _LOT_TABLE, ly % _LOT_TABLE]
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
    kb = p.k
    out["building_clearance"][kb] = np.where(has_building, -edge_dist, 1e3)
    out["tone"][kb] = np.sin(lot[:, _LOT_HEIGHT] * 5.1)
    style = lot[:, _LOT_STYLE]
    is_gable = np.mod(style, 1.0) > 0.5
    ridge_x = (fu1 - fu0) >= (fv1 - fv0)
    half_span = np.where(ridge_x, fv1 - fv0, fu1 - fu0) / 2
    across = np.where(ridge_x, lv - (fv0 + fv1) / 2, lu - (fu0 + fu1) / 2) / np.maximum(
        half_span, 1e-3)
    ridge_h = np.minimum(half_span * 0.6, 5.0)
    bheight = lot[:, _LOT_HEIGHT] + np.where(is_gable, ridge_h * (1.0 - np.abs(across)), 0.0)
    facade = (np.floor(style).astype(np.int64) * 7 + lx * 3 + ly * 5 + p.bx * 11
              + p.by * 13) % len(FACADE_COLOURS)
    border = np.minimum(np.minimum(lu, lw - lu), np.minimum(lv, lh - lv))
    wall = ~is_building & (lot[:, _LOT_WALL] > 0.5) & (border < 0.35)
    out["material"][kb] = np.where(is_building, MAT_BUILDING + facade,
                                   np.where(wall, MAT_WALL, SURF_GARDEN))
    out["height"][kb] = np.where(is_building, bheight, np.where(wall, 1.9, 0.0))
    out["roof"][kb] = np.where(is_building, np.floor(style), 0)


def _parking(p: _BlockPoints, out: dict[str, np.ndarray], mpp: float) -> None:
    """Set a parking block: stall rows (5 m) either side of 6 m aisles, cars in most stalls."""
    up, vp, bwp, bhp = p.u, p.v, p.bw, p.bh
    period = 16.0
    pv = np.mod(vp - 1.0, period)
    row_i = np.floor((vp - 1.0) / period) * 2 + (pv >= 5.0)
    in_row = (pv < 10.0) & (vp > 1.0) & (vp < bhp - 1.0) & (up > 1.0) & (up < bwp - 1.0)
    su = np.mod(up - 1.0, 2.6)
    stall_line = in_row & (_coverage(su - 0.06, 0.06, mpp) > 0.5)
    stall_id = (np.floor((up - 1.0) / 2.6) * 131 + row_i * 17 + p.bx * 7 + p.by * 3
                ).astype(np.int64)
    occupied = np.mod(stall_id * 2654435761, 1000) < 640
    sv = np.mod(pv, 5.0)
    car = in_row & occupied & (su > 0.4) & (su < 2.2) & (sv > 0.3) & (sv < 4.7)
    car_colour = np.mod(stall_id * 40503, N_CAR_COLOURS)
    car_edge = np.minimum(np.minimum(su - 0.4, 2.2 - su), np.minimum(sv - 0.3, 4.7 - sv))
    out["material"][p.k] = np.where(car, MAT_CAR + car_colour,
                                    np.where(stall_line, SURF_MARKING, SURF_PARKING))
    out["paint"][p.k] = np.where(stall_line & ~car, 1.0, 0.0)
    out["height"][p.k] = np.where(car, np.minimum(1.45, 0.9 + car_edge * 1.5), 0.0)


def _blocks(layout: Layout, st: _Streets, out: dict[str, np.ndarray], mpp: float) -> None:
    """Set everything off the streets: building lots, parks, parking lots and plazas."""
    ki = np.flatnonzero(~(st.road | st.sidewalk))
    xi, yi = st.x[ki], st.y[ki]
    nbx, nby = layout.block_type.shape
    bx = np.clip(np.searchsorted(layout.xs, xi) - 1, 0, nbx - 1)
    by = np.clip(np.searchsorted(layout.ys, yi) - 1, 0, nby - 1)
    x0 = layout.xs[bx] + layout.xw[bx] / 2 + layout.xsw[bx]
    x1 = layout.xs[bx + 1] - layout.xw[bx + 1] / 2 - layout.xsw[bx + 1]
    y0 = layout.ys[by] + layout.yw[by] / 2 + layout.ysw[by]
    y1 = layout.ys[by + 1] - layout.yw[by + 1] / 2 - layout.ysw[by + 1]
    points = _BlockPoints(ki, bx, by, xi - x0, yi - y0, np.maximum(x1 - x0, 1.0),
                          np.maximum(y1 - y0, 1.0))
    btype = layout.block_type[bx, by]
    out["block_type"][ki] = btype
    _buildings(layout, points.select(np.flatnonzero(btype == BLOCK_BUILDINGS)), out)
    # Parks: grass and a diagonal gravel path.
    park = points.select(np.flatnonzero(btype == BLOCK_PARK))
    path_d = np.abs(park.u / park.bw - park.v / park.bh) * np.minimum(park.bw, park.bh)
    out["material"][park.k] = np.where(path_d < 1.4, SURF_PATH, SURF_GRASS)
    _parking(points.select(np.flatnonzero(btype == BLOCK_PARKING)), out, mpp)
    # Plazas: paved.
    out["material"][ki[btype == BLOCK_PLAZA]] = SURF_PLAZA


def base_layer(layout: Layout, x: np.ndarray, y: np.ndarray, mpp: float = 0.2) -> dict:
    """Classify design points: surfaces, buildings, walls and parked cars (no trees).

    Returns arrays shaped like ``x``: ``material``, ``height``, ``paint`` (marking coverage
    0..1), ``roof`` (roof colour index), ``block_type`` (255 on streets),
    ``building_clearance`` (metres from the lot's building footprint, negative inside),
    ``tone`` (a per-lot or per-street colour jitter -1..1), ``road``, and the nearest street
    lines ``ix``/``iy`` with the signed offsets ``dx``/``dy`` from them.
    Each feature is evaluated only on the points it can cover, which keeps this cheap.
    """
    shape = x.shape
    st = _Streets.locate(layout, x.reshape(-1), y.reshape(-1))
    n = st.x.size
    out = {
        "material": np.full(n, SURF_GRASS, dtype=np.uint8),
        "height": np.zeros(n, dtype=np.float32),
        "paint": _markings(layout, st, mpp),
        "roof": np.zeros(n, dtype=np.int16),
        "block_type": np.full(n, 255, dtype=np.uint8),
        "building_clearance": np.full(n, 1e3, dtype=np.float32),
        "tone": np.zeros(n, dtype=np.float32),
    }
    _street_surfaces(layout, st, out)
    _blocks(layout, st, out, mpp)
    out.update(road=st.road, ix=st.ix, iy=st.iy, dx=st.dx, dy=st.dy)
    return {key: value.reshape(shape) for key, value in out.items()}


def tree_layer(layout: Layout, x: np.ndarray, y: np.ndarray, base: dict
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
