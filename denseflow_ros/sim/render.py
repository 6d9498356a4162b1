# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""A ground camera for the synthetic world: a pinhole ray-marcher over the height map.

Each image column is a vertical plane through the camera. The renderer steps along the
column's ray on the ground (depth ``z`` along the optical axis, finer near the camera), looks
up the height map and the material at each step, and projects each column's top edge
``v = cy + fy (h_cam - h) / z``. The running minimum of those rows over the steps is the
occlusion horizon: a pixel row shows the first step whose top reaches up to it (a building's
facade, a tree, a wall, a lamp post, a car), or else the ground plane or the sky; rays that
pass under a tree's canopy are traced again without canopies, so trees stand on trunks.
The ground is sampled per pixel from the world's *ground* texture (its own sun, shadows and
colour grade, not the orthophoto's), with mip levels against aliasing; facades get windows,
floors and sun shading; cars and pedestrians that the orthophoto does not show stand on the
road and sidewalks (placed from ``seed``); the sky has a gradient and clouds; distance haze,
exposure, vignetting and sensor noise vary with ``seed``.

Geometry is exact for the ground plane (every ground pixel is the ray's intersection with it)
and for vertical structure up to the step length (0.75 raster pixels near the camera, about
1 % of the distance beyond ~14 m).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from denseflow_ros.camera import scale_intrinsics
from denseflow_ros.sim.layout import (
    CAR_COLOURS,
    FACADE_COLOURS,
    MAT_BUILDING,
    MAT_CAR,
    MAT_PERSON,
    MAT_POLE,
    MAT_TREE,
    MAT_TRUNK,
    MAT_WALL,
    N_CAR_COLOURS,
    SURF_MARKING,
    SURF_ROAD,
    SURF_SIDEWALK,
)
from denseflow_ros.sim.world import World

_Z_NEAR_M = 0.3
_CANOPY_BASE = 0.4  # canopy underside, as a fraction of the canopy's height
_Z_FAR_M = 160.0
_HAZE_M = 450.0


def kitti_intrinsics(width: int = 1242, height: int = 375) -> np.ndarray:
    """Return KITTI's rectified left colour camera (P_rect_02) scaled to ``width`` x ``height``.

    Each axis scales on its own, with the rule every resize in the package follows
    (:func:`denseflow_ros.camera.scale_intrinsics`).
    """
    k = np.array([[721.5377, 0.0, 609.5593], [0.0, 721.5377, 172.854], [0.0, 0.0, 1.0]])
    return scale_intrinsics(k, (1242, 375), (height, width))


def _depth_steps(mpp: float) -> np.ndarray:
    """Return the ray's sample depths: steps of ~mpp near the camera, ~1 % of z far away."""
    rel = 0.011
    near_step = 0.75 * mpp
    z_switch = near_step / rel
    near = np.arange(_Z_NEAR_M, z_switch, near_step)
    far = z_switch * (1.0 + rel) ** np.arange(0, int(math.log(_Z_FAR_M / z_switch) / math.log(
        1.0 + rel)) + 1)
    return np.concatenate([near, far])


def _mips(world: World) -> list[np.ndarray]:
    """Return the ground texture at 1, 1/2 and 1/4 resolution (cached on the world)."""
    if "ground_mips" not in world._cache:
        import cv2

        levels = [world.ground]
        for _ in range(2):
            levels.append(cv2.pyrDown(levels[-1]))
        world._cache["ground_mips"] = levels
    return world._cache["ground_mips"]


def _height_levels(world: World) -> list[tuple[np.ndarray, np.ndarray]]:
    """Return (height, material) at 1, 1/2 and 1/4 resolution, max-pooled (cached)."""
    if "height_levels" not in world._cache:
        levels = [(world.height, world.material)]
        for _ in range(2):
            hgt, mat = levels[-1]
            r, c = hgt.shape[0] // 2, hgt.shape[1] // 2
            blocks = hgt[: 2 * r, : 2 * c].reshape(r, 2, c, 2).transpose(0, 2, 1, 3).reshape(
                r, c, 4)
            mats = mat[: 2 * r, : 2 * c].reshape(r, 2, c, 2).transpose(0, 2, 1, 3).reshape(
                r, c, 4)
            top = blocks.argmax(axis=2)[..., None]
            levels.append((np.take_along_axis(blocks, top, 2)[..., 0],
                           np.take_along_axis(mats, top, 2)[..., 0]))
        world._cache["height_levels"] = levels
    return world._cache["height_levels"]


def prepare(world: World) -> None:
    """Build the renderer's per-world caches now (e.g. before forking rendering workers)."""
    _mips(world)
    _height_levels(world)
    _sky_texture(world)


def _sky_texture(world: World) -> np.ndarray:
    """Return a cloud cover texture over azimuth (720 columns) x elevation 0..90 deg (90 rows)."""
    if "sky" not in world._cache:
        import cv2

        rng = np.random.default_rng([world.seed, 23])
        cover = np.zeros((90, 720), dtype=np.float32)
        for scale, amp in ((6, 1.0), (12, 0.5), (24, 0.25)):
            small = rng.standard_normal((max(90 // scale, 2), 720 // scale)).astype(np.float32)
            wrapped = np.concatenate([small, small[:, :1]], axis=1)
            big = cv2.resize(wrapped, (720 + scale, 90), interpolation=cv2.INTER_CUBIC)
            cover += amp * big[:, :720]
        amount = rng.uniform(-0.4, 0.8)
        world._cache["sky"] = np.clip((cover + amount) * 0.8, 0.0, 1.0)
    return world._cache["sky"]


def _place_objects(world: World, rng: np.random.Generator, east: float, north: float,
                   yaw: float) -> list[tuple[float, ...]]:
    """Return boxes (east, north, yaw, length, width, height, material) ahead of the camera.

    Cars stand on the carriageway outside the camera's own lane, pedestrians on sidewalks.
    """
    boxes: list[tuple[float, ...]] = []
    c, s = math.cos(yaw), math.sin(yaw)

    def surface_at(e: float, n: float) -> int:
        col, row = world.enu_to_pixel(e, n)
        r, q = int(round(float(row))), int(round(float(col)))
        rows, cols = world.shape
        if 0 <= r < rows and 0 <= q < cols and world.height[r, q] == 0:
            return int(world.material[r, q])
        return -1

    for _ in range(int(rng.integers(2, 9))):
        fwd = rng.uniform(7.0, 70.0)
        side = rng.uniform(2.6, 14.0) * rng.choice([-1.0, 1.0])
        e, n = east + fwd * c + side * s, north + fwd * s - side * c
        if surface_at(e, n) not in (SURF_ROAD, SURF_MARKING):
            continue
        van = rng.random() < 0.2
        # Left of the camera: oncoming traffic; right: cars going the same way or parked.
        heading = yaw + (math.pi if side < 0 else 0.0) + rng.normal(0.0, 0.05)
        colour = MAT_CAR + int(rng.integers(0, N_CAR_COLOURS))
        boxes.append((e, n, heading, 5.2 if van else 4.4, 2.0 if van else 1.8,
                      2.3 if van else 1.5, float(colour)))
    for _ in range(int(rng.integers(0, 6))):
        fwd = rng.uniform(5.0, 45.0)
        side = rng.uniform(3.0, 16.0) * rng.choice([-1.0, 1.0])
        e, n = east + fwd * c + side * s, north + fwd * s - side * c
        if surface_at(e, n) != SURF_SIDEWALK:
            continue
        boxes.append((e, n, rng.uniform(0, 2 * math.pi), 0.45, 0.45, rng.uniform(1.55, 1.9),
                      float(MAT_PERSON)))
    return boxes


@dataclass(frozen=True)
class _View:
    """A ground camera: pose (ENU, heading cos/sin), pinhole intrinsics and image size."""

    east: float
    north: float
    yaw: float
    c: float
    s: float
    fx: float
    fy: float
    cx: float
    cy: float
    hc: float
    width: int
    height: int
    tan_u: np.ndarray  # (width,) horizontal ray slope of each column, float32

    @classmethod
    def build(cls, K: np.ndarray, width: int, height: int, east_m: float, north_m: float,
              yaw_rad: float, camera_height_m: float) -> _View:
        """Check the camera and return its view."""
        K = np.asarray(K, dtype=np.float64)
        if K.shape != (3, 3) or K[0, 0] <= 0 or K[1, 1] <= 0:
            raise ValueError(
                f"K must be a 3x3 pinhole matrix with positive focal lengths, got {K}")
        if width < 2 or height < 2:
            raise ValueError(f"image size must be at least 2 x 2, got {width} x {height}")
        if not camera_height_m > 0:
            raise ValueError(f"camera_height_m must be positive, got {camera_height_m}")
        fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
        tan_u = ((np.arange(width) - cx) / fx).astype(np.float32)
        return cls(east_m, north_m, yaw_rad, math.cos(yaw_rad), math.sin(yaw_rad), fx, fy, cx,
                   cy, float(camera_height_m), width, height, tan_u)


@dataclass
class _Columns:
    """Samples along every column's ray: depth steps x columns.

    Per sample: ENU position, height and material of what stands there, and the height
    map's gradient (for facade normals).
    """

    z: np.ndarray  # (steps,) depth along the optical axis
    pe: np.ndarray
    pn: np.ndarray
    h: np.ndarray
    mat: np.ndarray
    ge: np.ndarray
    gn: np.ndarray

    def arrays(self) -> tuple[tuple[str, np.ndarray], ...]:
        """Return the per-sample arrays a pixel takes from its hit sample, by name."""
        return (("h", self.h), ("m", self.mat), ("pe", self.pe), ("pn", self.pn),
                ("ge", self.ge), ("gn", self.gn))


def _march_columns(world: World, view: _View) -> _Columns:
    """Sample the height map and materials along every column's ray."""
    rows_n, cols_n = world.shape
    mpp = world.mpp
    z = _depth_steps(mpp).astype(np.float32)
    n_steps = z.size
    fwd = z[:, None]
    right = z[:, None] * view.tan_u[None, :]
    pe = view.east + fwd * view.c + right * view.s
    pn = view.north + fwd * view.s - right * view.c
    col_f = pe / mpp + cols_n // 2
    row_f = rows_n // 2 - pn / mpp
    shape = (n_steps, view.width)
    cols = _Columns(z, pe, pn, np.zeros(shape, np.float32), np.zeros(shape, np.int32),
                    np.zeros(shape, np.float32), np.zeros(shape, np.float32))
    # Far steps are longer than a raster pixel: they read max-pooled heights (2x2, 4x4), so
    # thin walls and posts do not flicker in and out between frames.
    step = np.diff(z, append=z[-1] + (z[-1] - z[-2]))
    level = np.searchsorted(np.array([1.5, 3.0]) * mpp, step)
    for lev, (hl, ml) in enumerate(_height_levels(world)):
        ks = np.flatnonzero(level == lev)
        if ks.size == 0:
            continue
        ks = slice(ks[0], ks[-1] + 1)
        scale = 2 ** lev
        qi = np.rint((col_f[ks] + 0.5) / scale - 0.5).astype(np.int64)
        ri = np.rint((row_f[ks] + 0.5) / scale - 0.5).astype(np.int64)
        inside = (qi >= 1) & (qi < hl.shape[1] - 1) & (ri >= 1) & (ri < hl.shape[0] - 1)
        qi = np.where(inside, qi, 1)
        ri = np.where(inside, ri, 1)
        cols.h[ks] = np.where(inside, hl[ri, qi], 0.0)
        cols.mat[ks] = np.where(inside, ml[ri, qi], 0)
        # Facade normals from the height map's gradient (towards lower ground).
        cols.ge[ks] = hl[ri, qi + 1] - hl[ri, qi - 1]
        cols.gn[ks] = hl[ri - 1, qi] - hl[ri + 1, qi]
    return cols


def _add_objects(cols: _Columns, boxes: list[tuple[float, ...]]) -> None:
    """Stand the cars and pedestrians (oriented boxes) in the columns."""
    pe, pn = cols.pe, cols.pn
    for be, bn, byaw, length, bwidth, bheight, bmat in boxes:
        cb, sb = math.cos(byaw), math.sin(byaw)
        lx = (pe - be) * cb + (pn - bn) * sb
        ly = -(pe - be) * sb + (pn - bn) * cb
        inb = (np.abs(lx) < length / 2) & (np.abs(ly) < bwidth / 2)
        if not inb.any():
            continue
        if bmat == MAT_PERSON:
            top = np.full(lx.shape, bheight, dtype=np.float32)
        else:
            # A car's silhouette: bonnet and boot lower than the cabin.
            cabin = np.abs(lx + 0.1 * length) < 0.3 * length
            top = np.where(cabin, bheight, bheight * 0.68).astype(np.float32)
        upd = inb & (top > cols.h)
        cols.h = np.where(upd, top, cols.h)
        cols.mat = np.where(upd, int(bmat), cols.mat)
        cols.ge = np.where(upd, -(lx * cb - ly * sb), cols.ge)
        cols.gn = np.where(upd, -(lx * sb + ly * cb), cols.gn)


def _pixel_hits(cols: _Columns, view: _View) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Return, per pixel, its hit sample's values (h, m, pe, pn, ge, gn, z) and the hits."""
    height, width, cy, fy, hc = view.height, view.width, view.cy, view.fy, view.hc
    fwd = cols.z[:, None]
    n_steps = cols.z.size
    v = np.arange(height, dtype=np.float64)
    uu = np.broadcast_to(np.arange(width)[None, :], (height, width))
    k, hit = _first_hits(cols.h, fwd, cy, fy, hc, height, v[:, None], uu)
    kc = np.minimum(k, n_steps - 1)
    px = {name: arr[kc, uu] for name, arr in cols.arrays()}
    px["z"] = cols.z[kc]
    # Tree canopies float above their trunks: where a ray passes under a canopy (below 40 %
    # of its height) it goes on, meeting only trunks and everything else behind.
    vz = hc - (v[:, None] - cy) * px["z"] / fy
    under = hit & (px["m"] == MAT_TREE) & (vz < _CANOPY_BASE * px["h"])
    if under.any():
        h, mat = cols.h, cols.mat
        h2 = np.where(mat == MAT_TREE, 0.0, np.where(mat == MAT_TRUNK, _CANOPY_BASE * h, h))
        ru, rv = np.nonzero(under.T)  # column-major order keeps the queries cheap to sort
        k2, hit2 = _first_hits(h2.astype(np.float32), fwd, cy, fy, hc, height, v[rv], ru)
        k2c = np.minimum(k2, n_steps - 1)
        hit[rv, ru] = hit2
        for name, arr in (("h", h2), *cols.arrays()[1:]):
            px[name][rv, ru] = arr[k2c, ru]
        px["z"][rv, ru] = cols.z[k2c]
    return px, hit


def _sky(world: World, view: _View, rng: np.random.Generator
         ) -> tuple[np.ndarray, np.ndarray]:
    """Return the sky (height, width, 3 linear RGB) and its horizon colour (for the haze)."""
    import cv2

    height, width = view.height, view.width
    vv = np.arange(height, dtype=np.float64)[:, None]
    elev = np.arctan2(view.cy - vv, view.fy) * np.ones((1, width))
    azim = view.yaw - np.arctan(view.tan_u.astype(np.float64))[None, :] * np.ones((height, 1))
    sky_rows = np.clip(np.degrees(elev), 0.0, 89.0).astype(np.float32)
    sky_cols = (np.mod(np.degrees(azim), 360.0) * 2.0).astype(np.float32)
    cloud = cv2.remap(_sky_texture(world), sky_cols, sky_rows, cv2.INTER_LINEAR,
                      borderMode=cv2.BORDER_WRAP)
    t_el = np.clip(elev / 0.7, 0.0, 1.0)[..., None]
    horizon_col = np.array([0.78, 0.82, 0.86], dtype=np.float32) * rng.uniform(0.9, 1.05)
    zenith_col = np.array([0.30, 0.48, 0.78], dtype=np.float32) * rng.uniform(0.85, 1.1)
    sky = horizon_col * (1 - t_el) + zenith_col * t_el
    sky = sky * (1 - cloud[..., None] * 0.8) + np.float32(0.92) * cloud[..., None] * 0.8
    return sky, horizon_col


def _draw_ground(world: World, view: _View, horizon_col: np.ndarray, obj: np.ndarray,
                 image: np.ndarray, depth: np.ndarray) -> None:
    """Draw the ground plane below the horizon where no structure stands, with its depth."""
    import cv2

    rows_n, cols_n = world.shape
    mpp, fx, fy, hc, width = world.mpp, view.fx, view.fy, view.hc, view.width
    v = np.arange(view.height, dtype=np.float64)
    below = v > view.cy + 0.5
    gv = v[below]
    zg = fy * hc / (gv - view.cy)
    mips = _mips(world)
    footprint = np.sqrt((zg / fx) * (zg * zg / (fy * hc))) / mpp
    level = np.clip(np.floor(np.log2(np.maximum(footprint, 1e-6)) + 0.5), 0, len(mips) - 1)
    ground_rgb = np.zeros((gv.size, width, 3), dtype=np.float32)
    zgw = zg[:, None]
    tan_u = view.tan_u[None, :]
    gre = view.east + zgw * view.c + zgw * tan_u * view.s
    grn = view.north + zgw * view.s - zgw * tan_u * view.c
    field = np.array([92, 104, 70], dtype=np.float32)
    for lev in range(len(mips)):
        sel = level == lev
        if not sel.any():
            continue
        scale = 2 ** lev
        # Level pixel j covers full-resolution pixels scale*j .. scale*j + scale - 1.
        mcol = ((gre[sel] / mpp + cols_n // 2 + 0.5) / scale - 0.5).astype(np.float32)
        mrow = ((rows_n // 2 - grn[sel] / mpp + 0.5) / scale - 0.5).astype(np.float32)
        ground_rgb[sel] = cv2.remap(mips[lev], mcol, mrow, cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_CONSTANT,
                                    borderValue=tuple(float(f) for f in field))
    ground_lin = (ground_rgb / 255.0) ** 2.2
    haze_g = (1.0 - np.exp(-zgw / _HAZE_M))[..., None]
    ground_lin = ground_lin * (1 - haze_g) + horizon_col * haze_g
    image[below] = np.where(obj[below][..., None], image[below], ground_lin)
    depth[below] = np.broadcast_to(zgw, (gv.size, width))


def _draw_structure(world: World, view: _View, px: dict[str, np.ndarray], obj: np.ndarray,
                    horizon_col: np.ndarray, image: np.ndarray, depth: np.ndarray) -> None:
    """Draw the vertical structure the rays hit: coloured, sun-shaded and hazy."""
    ov, ou = np.nonzero(obj)
    zo = px["z"][ov, ou]
    pz = view.hc - (ov - view.cy) * zo / view.fy  # height of the surface point above ground
    m = px["m"][ov, ou]
    htop = px["h"][ov, ou]
    pe_o, pn_o = px["pe"][ov, ou], px["pn"][ov, ou]
    nx, ny = -px["ge"][ov, ou], -px["gn"][ov, ou]
    nn = np.sqrt(nx * nx + ny * ny)
    tan_u = view.tan_u[ou]
    ray_e, ray_n = view.c + tan_u * view.s, view.s - tan_u * view.c
    # Fall back to facing the camera where the gradient is flat (tops of columns).
    flat = nn < 1e-3
    nx = np.where(flat, -ray_e, nx)
    ny = np.where(flat, -ray_n, ny)
    nn = np.sqrt(nx * nx + ny * ny)
    nx, ny = nx / nn, ny / nn
    along = pe_o * -ny + pn_o * nx  # coordinate along the facade
    colour = _surface_colours(m, pz, htop, along, pe_o, pn_o)
    sun = world.ground_sun
    sv = sun.vector()
    lambert = np.clip(nx * sv[0] + ny * sv[1], 0.0, 1.0) * math.cos(sun.elevation_rad)
    light = lambert[:, None] * np.asarray(sun.direct, dtype=np.float32) + np.asarray(
        sun.ambient, dtype=np.float32) * 1.6
    lin = colour * light * 0.9
    haze_o = (1.0 - np.exp(-zo / _HAZE_M))[:, None]
    image[ov, ou] = lin * (1 - haze_o) + horizon_col * haze_o
    depth[ov, ou] = zo


def _expose(image: np.ndarray, view: _View, rng: np.random.Generator) -> np.ndarray:
    """Return the camera's uint8 RGB of linear ``image``: exposure, vignette, gamma, noise."""
    width, height = view.width, view.height
    exposure = rng.uniform(0.85, 1.2)
    wb = 1.0 + rng.uniform(-0.05, 0.05, 3)
    image = image * (exposure * wb).astype(np.float32)
    ru = (np.arange(width) - view.cx) / (0.75 * width)
    rv = (np.arange(height) - view.cy) / (0.75 * width)
    vignette = 1.0 - 0.25 * (rv[:, None] ** 2 + ru[None, :] ** 2)
    image = image * vignette[..., None].astype(np.float32)
    image = np.clip(image, 0.0, 1.0) ** (1 / 2.2)
    image = image + rng.normal(0.0, 0.012, image.shape).astype(np.float32)
    return np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)


def render_ground(world: World, K: np.ndarray, width: int, height: int, east_m: float,
                  north_m: float, yaw_rad: float, camera_height_m: float = 1.65,
                  seed: int = 0, return_depth: bool = False
                  ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Render the ground camera at (east_m, north_m, yaw_rad); return (height, width, 3) RGB.

    ``K`` is the 3x3 pinhole intrinsic matrix for the ``width`` x ``height`` image (OpenCV
    camera frame: x right, y down, z forward along the vehicle heading, optical axis
    horizontal at ``camera_height_m`` above the flat ground). ``seed`` places the cars and
    pedestrians and varies exposure and noise; the same arguments give the same image.
    With ``return_depth``, also return each pixel's depth along the optical axis (metres,
    float32, infinite for the sky).
    """
    view = _View.build(K, width, height, east_m, north_m, yaw_rad, camera_height_m)
    # One generator, drawn in a fixed order: objects, sky colours, then the camera.
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, world.seed & 0xFFFFFFFF, 5])
    cols = _march_columns(world, view)
    _add_objects(cols, _place_objects(world, rng, east_m, north_m, yaw_rad))
    px, hit = _pixel_hits(cols, view)
    obj = hit & (px["h"] > 0)
    image = np.zeros((height, width, 3), dtype=np.float32)
    depth = np.full((height, width), np.inf, dtype=np.float32)
    sky, horizon_col = _sky(world, view, rng)
    image[:] = sky
    _draw_ground(world, view, horizon_col, obj, image, depth)
    if obj.any():
        _draw_structure(world, view, px, obj, horizon_col, image, depth)
    rgb = _expose(image, view, rng)
    return (rgb, depth) if return_depth else rgb


def _first_hits(h: np.ndarray, fwd: np.ndarray, cy: float, fy: float, hc: float,
                height: int, rows: np.ndarray, cols: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """Return, for pixels (rows, cols), the first ray step that occludes them, and a hit flag.

    Column u's step k covers image rows from ``cy + fy (hc - h) / z_k`` down; the running
    minimum of those rows over k (the occlusion horizon) is non-increasing, so one
    ``searchsorted`` over all columns (each column's keys offset to keep all sorted) finds
    each pixel's first covering step. Steps ``>= K`` mean nothing is hit (sky or far ground).
    """
    n_steps, width = h.shape
    y_top = cy + fy * (hc - h) / fwd
    horizon = np.minimum.accumulate(np.clip(y_top, -2.0, height + 2.0), axis=0)
    span = height + 8.0
    keys = (-horizon.T + np.arange(width)[:, None] * span).ravel()
    queries = -rows + cols * span
    k = np.searchsorted(keys, np.ravel(queries), side="left").reshape(np.shape(queries))
    k = k - cols * n_steps
    return k, k < n_steps


def _hash01(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Return a cheap deterministic pseudo-random value in [0, 1) per (a, b) integer pair."""
    x = (a.astype(np.int64) * 73856093) ^ (b.astype(np.int64) * 19349663)
    return ((x * 2654435761) % 1000003) / 1000003.0


def _surface_colours(m: np.ndarray, pz: np.ndarray, htop: np.ndarray, along: np.ndarray,
                     pe: np.ndarray, pn: np.ndarray) -> np.ndarray:
    """Return linear albedo (N, 3) of facades, trees, walls, cars and people at hit points."""
    colour = np.empty(m.shape + (3,), dtype=np.float32)
    build = m >= MAT_BUILDING
    if build.any():
        fac = FACADE_COLOURS[(m[build] - MAT_BUILDING) % len(FACADE_COLOURS)]
        zb, ab, hb = pz[build], along[build], htop[build]
        floor_z = np.mod(zb, 3.0)
        bay = np.mod(ab, 2.8)
        ground_floor = zb < 3.0
        window = np.where(ground_floor, (zb > 0.5) & (zb < 2.6) & (bay > 0.3) & (bay < 2.5),
                          (floor_z > 0.9) & (floor_z < 2.3) & (bay > 0.8) & (bay < 2.0))
        window &= zb < hb - 1.2
        # Windows reflect the sky, brighter towards the top; some are lit, some have blinds.
        pane = np.array([0.10, 0.13, 0.18], dtype=np.float32) + (
            0.12 * np.clip(zb / 20.0, 0, 1))[:, None]
        blinds = _hash01(np.floor(ab / 2.8), np.floor(zb / 3.0)) < 0.2
        pane = np.where(blinds[:, None], fac * 0.6, pane)
        cornice = zb > hb - 0.35
        plinth = zb < 0.4
        col = np.where(window[:, None], pane, fac)
        col = np.where(cornice[:, None], fac * 0.55, col)
        col = np.where(plinth[:, None], fac * 0.7, col)
        colour[build] = col
    tree = m == MAT_TREE
    if tree.any():
        leaf = _hash01(np.floor(pe[tree] * 3.0) + np.floor(pz[tree] * 3.0) * 7,
                       np.floor(pn[tree] * 3.0))
        shade = 0.55 + 0.45 * np.clip(pz[tree] / np.maximum(htop[tree], 1.0), 0, 1)
        base = np.array([0.07, 0.16, 0.05], dtype=np.float32)
        colour[tree] = base * ((0.7 + 0.6 * leaf) * shade)[:, None]
    trunk = m == MAT_TRUNK
    colour[trunk] = np.array([0.20, 0.15, 0.11], dtype=np.float32)
    pole = m == MAT_POLE
    colour[pole] = np.where((pz[pole] > htop[pole] - 0.35)[:, None],
                            np.array([0.75, 0.74, 0.66], dtype=np.float32),
                            np.array([0.16, 0.17, 0.18], dtype=np.float32))
    wall = m == MAT_WALL
    if wall.any():
        course = np.mod(pz[wall], 0.25) < 0.025
        joint = np.mod(along[wall] + np.floor(pz[wall] / 0.25) * 0.12, 0.5) < 0.02
        col = np.where((course | joint)[:, None], np.float32(0.45), np.array(
            [0.55, 0.33, 0.25], dtype=np.float32))
        colour[wall] = col
    car = (m >= MAT_CAR) & (m < MAT_CAR + N_CAR_COLOURS)
    if car.any():
        body = CAR_COLOURS[m[car] - MAT_CAR]
        zc, hcar = pz[car], htop[car]
        glass = (zc > hcar * 0.68) & (zc < hcar - 0.08)
        wheel = zc < 0.35
        col = np.where(glass[:, None], np.array([0.06, 0.07, 0.09], dtype=np.float32), body)
        col = np.where(wheel[:, None], np.float32(0.03), col)
        colour[car] = col
    person = m == MAT_PERSON
    if person.any():
        zp, hp = pz[person], htop[person]
        shirt = CAR_COLOURS[(_hash01(np.floor(hp * 100), np.floor(hp * 37)) * N_CAR_COLOURS
                             ).astype(np.int64)]
        col = np.where((zp < 0.85 * hp / 1.75)[:, None],
                       np.array([0.08, 0.10, 0.18], dtype=np.float32), shirt)
        col = np.where((zp > hp - 0.25)[:, None], np.array([0.55, 0.40, 0.32],
                                                           dtype=np.float32), col)
        colour[person] = col
    other = ~(build | tree | trunk | pole | wall | car | person)
    colour[other] = 0.4
    return colour
