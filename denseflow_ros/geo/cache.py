# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Metric, heading-aligned satellite crops from a tile cache, with a bounded LRU of tiles.

A crop is made in one resampling pass: the exact source position of a 9 x 9 grid of crop
pixels is computed (crop pixel -> local offset -> geodesic lat/lon -> Web Mercator pixel), a
quadratic map is fitted to it (its fit error is checked on the cells' midpoints and the exact
map is used instead if it exceeds 0.02 px), and ``cv2.remap`` (or ``cv2.warpAffine`` when the
map is affine to 0.01 px) samples a mosaic of just the tiles the crop needs. When the tiles
are finer than the crop the mosaic is low-passed first (``cv2.pyrDown`` per octave, then a
Gaussian for the rest), so the crop is anti-aliased; otherwise sampling is bilinear. The
last (low-passed) mosaic, a heading-independent square with some metres to spare, is kept
for the next crop, which along a drive needs nearly the same pixels.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from denseflow_ros.geo.mercator import MAX_LATITUDE_DEG, lonlat_to_world, zoom_for_mpp
from denseflow_ros.geo.projection import GeodesicPlane
from denseflow_ros.geo.sources import (
    TileDecodeError,
    TileSource,
    TileSourceError,
    decode_tile,
    open_tile_source,
)

_LOG = logging.getLogger(__name__)

# A decoded tile: RGB uint8 and a validity mask (None when every pixel is valid).
Tile = tuple[np.ndarray, np.ndarray | None]
TileKey = tuple[int, int, int]
_NEGATIVE_ENTRY_BYTES = 64
_CONTROL_POINTS = 9
_AFFINE_TOLERANCE_PX = 0.01
_FIT_TOLERANCE_PX = 0.02
MAX_CROP_PX = 8192
# Source pixels kept beyond a crop's needs, so the next frame's crop reuses the mosaic.
_SPARE_PX = 48


class TileLRU:
    """A thread-safe LRU of decoded tiles bounded in bytes; absent or bad tiles cached as None.

    Concurrent requests for one tile decode it once: later callers wait for the first.
    """

    def __init__(self, source: TileSource, capacity_bytes: int) -> None:
        """Cache tiles of ``source`` up to ``capacity_bytes`` of decoded pixels."""
        self.source = source
        self.capacity_bytes = max(int(capacity_bytes), 0)
        self._entries: OrderedDict[TileKey, tuple[Tile | None, int]] = OrderedDict()
        self._pending: dict[TileKey, threading.Event] = {}
        self._lock = threading.Lock()
        self.size_bytes = 0
        self.hits = 0
        self.decodes = 0
        self.bad_tiles = 0
        self.transient_errors = 0
        self._warned: set[TileKey] = set()

    def __len__(self) -> int:
        """Return the number of cached entries (tiles and known-absent tiles)."""
        return len(self._entries)

    def get(self, key: TileKey) -> Tile | None:
        """Return the decoded tile, or None when the cache lacks it or it is unusable."""
        while True:
            with self._lock:
                entry = self._entries.get(key)
                if entry is not None:
                    self._entries.move_to_end(key)
                    self.hits += 1
                    return entry[0]
                event = self._pending.get(key)
                if event is None:
                    event = threading.Event()
                    self._pending[key] = event
                    break
            # Another thread is decoding this tile; use its result once it is stored.
            event.wait()
        tile: Tile | None = None
        lasting = False
        try:
            tile, lasting = self._load(key)
        finally:
            with self._lock:
                if lasting:
                    nbytes = _NEGATIVE_ENTRY_BYTES if tile is None else (
                        tile[0].nbytes + (0 if tile[1] is None else tile[1].nbytes))
                    self._entries[key] = (tile, nbytes)
                    self.size_bytes += nbytes
                    while self.size_bytes > self.capacity_bytes and self._entries:
                        _, (_, old_bytes) = self._entries.popitem(last=False)
                        self.size_bytes -= old_bytes
                del self._pending[key]
                event.set()
        return tile

    def _load(self, key: TileKey) -> tuple[Tile | None, bool]:
        """Read and decode a tile; also say whether the outcome lasts (may be cached)."""
        z, x, y = key
        try:
            data = self.source.read(z, x, y)
            if data is None:
                return None, True
            with self._lock:
                self.decodes += 1
            tile = decode_tile(data, max_side=self.source.tile_size)
            if tile[0].shape[:2] != (self.source.tile_size, self.source.tile_size):
                raise TileDecodeError(
                    f"tile is {tile[0].shape[1]} x {tile[0].shape[0]} px in a cache of "
                    f"{self.source.tile_size} px tiles")
            return tile, True
        except TileDecodeError as exc:
            self._report(key, exc)
            return None, True
        except (sqlite3.Error, OSError) as exc:
            # A busy database or a flaky disk may recover: try this tile again next time.
            with self._lock:
                self.transient_errors += 1
            self._report(key, exc)
            return None, False

    def _report(self, key: TileKey, exc: Exception) -> None:
        with self._lock:
            self.bad_tiles += 1
            warn = key not in self._warned and len(self._warned) < 1000
            self._warned.add(key)
        if warn:
            _LOG.warning("skipping tile %d/%d/%d of %s: %s", *key, self.source.path, exc)


@dataclass(frozen=True)
class CropGeometry:
    """Where a crop lies: pixel <-> local east/north offset (m) <-> lat/lon.

    Pixel coordinates have integer values at pixel centres; the crop centre (lat, lon) is at
    pixel (centre_px, centre_px), centre_px = size_px // 2. Offsets are east/north metres in
    the local tangent plane at the crop centre (geodesic azimuth and distance from it). The
    heading (ENU yaw, degrees, counter-clockwise from east) points along +u; v grows downward.
    """

    lat: float
    lon: float
    heading_deg: float
    size_px: int
    mpp: float
    centre_px: float = field(init=False)

    def __post_init__(self) -> None:
        """Derive the centre pixel from the size."""
        object.__setattr__(self, "centre_px", float(self.size_px // 2))

    @functools.cached_property
    def _plane(self) -> GeodesicPlane:
        return GeodesicPlane(self.lat, self.lon)

    def pixel_to_offset(self, u: np.ndarray | float, v: np.ndarray | float
                        ) -> tuple[np.ndarray | float, np.ndarray | float]:
        """Return (east_m, north_m) of crop pixel coordinates."""
        h = math.radians(self.heading_deg)
        forward = (np.asarray(u, dtype=np.float64) - self.centre_px) * self.mpp
        left = -(np.asarray(v, dtype=np.float64) - self.centre_px) * self.mpp
        east = forward * math.cos(h) - left * math.sin(h)
        north = forward * math.sin(h) + left * math.cos(h)
        if np.ndim(u) == 0 and np.ndim(v) == 0:
            return float(east), float(north)
        return east, north

    def offset_to_pixel(self, east_m: np.ndarray | float, north_m: np.ndarray | float
                        ) -> tuple[np.ndarray | float, np.ndarray | float]:
        """Return crop pixel coordinates (u, v) of local offsets (metres)."""
        h = math.radians(self.heading_deg)
        east = np.asarray(east_m, dtype=np.float64)
        north = np.asarray(north_m, dtype=np.float64)
        forward = east * math.cos(h) + north * math.sin(h)
        left = -east * math.sin(h) + north * math.cos(h)
        u = self.centre_px + forward / self.mpp
        v = self.centre_px - left / self.mpp
        if np.ndim(east_m) == 0 and np.ndim(north_m) == 0:
            return float(u), float(v)
        return u, v

    def offset_to_latlon(self, east_m: np.ndarray | float, north_m: np.ndarray | float
                         ) -> tuple[np.ndarray | float, np.ndarray | float]:
        """Return (lat, lon) of local offsets from the crop centre."""
        return self._plane.inverse(east_m, north_m)

    def latlon_to_offset(self, lat: np.ndarray | float, lon: np.ndarray | float
                         ) -> tuple[np.ndarray | float, np.ndarray | float]:
        """Return local (east_m, north_m) offsets of latitudes/longitudes."""
        return self._plane.forward(lat, lon)

    def pixel_to_latlon(self, u: np.ndarray | float, v: np.ndarray | float
                        ) -> tuple[np.ndarray | float, np.ndarray | float]:
        """Return (lat, lon) of crop pixel coordinates."""
        return self.offset_to_latlon(*self.pixel_to_offset(u, v))

    def latlon_to_pixel(self, lat: np.ndarray | float, lon: np.ndarray | float
                        ) -> tuple[np.ndarray | float, np.ndarray | float]:
        """Return crop pixel coordinates (u, v) of latitudes/longitudes."""
        return self.offset_to_pixel(*self.latlon_to_offset(lat, lon))


@dataclass
class Crop:
    """A satellite crop: RGB image, valid-pixel mask, covered fraction and its geometry."""

    image: np.ndarray
    mask: np.ndarray
    coverage: float
    geometry: CropGeometry
    zoom: int = -1


@functools.lru_cache(maxsize=4)
def _basis(size_px: int) -> tuple[np.ndarray, ...]:
    # Normalised pixel coordinates and their products, reused by every crop of this size.
    half = size_px / 2.0
    axis = ((np.arange(size_px, dtype=np.float64) - size_px // 2) / half).astype(np.float32)
    u, v = np.meshgrid(axis, axis)
    basis = (u, v, u * u, u * v, v * v)
    for array in basis:
        array.setflags(write=False)
    return basis


def _design(un: np.ndarray, vn: np.ndarray) -> np.ndarray:
    return np.stack([np.ones_like(un), un, vn, un * un, un * vn, vn * vn], axis=-1)


def _crop_geometry(lat: float, lon: float, heading_deg: float, size_px: int, mpp: float
                   ) -> CropGeometry:
    """Check a crop request; return its geometry with the longitude wrapped to [-180, 180)."""
    for name, value in (("lat", lat), ("lon", lon), ("heading_deg", heading_deg),
                        ("mpp", mpp)):
        if not isinstance(value, int | float | np.floating | np.integer) \
                or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
    if abs(lat) > MAX_LATITUDE_DEG:
        raise ValueError(f"latitude {lat} is outside Web Mercator's +-85.05 degrees")
    if mpp <= 0:
        raise ValueError(f"mpp must be positive, got {mpp}")
    if int(size_px) != size_px or not 1 <= size_px <= MAX_CROP_PX:
        raise ValueError(f"size_px must be an integer in 1..{MAX_CROP_PX}, got {size_px}")
    lon = (float(lon) + 180.0) % 360.0 - 180.0
    return CropGeometry(float(lat), lon, float(heading_deg), int(size_px), float(mpp))


@dataclass(frozen=True)
class Mosaic:
    """The source pixels of a global pixel ``box`` (x0, y0, x1, y1) at ``zoom``, low-passed.

    ``image`` is RGB, ``valid`` its 0/255 mask (None: all valid); after ``levels`` halvings
    and a Gaussian of ``sigma`` one mosaic pixel spans ``factor`` source pixels.
    """

    zoom: int
    levels: int
    sigma: float
    box: tuple[int, int, int, int]
    image: np.ndarray
    valid: np.ndarray | None
    factor: float

    def holds(self, zoom: int, levels: int, sigma: float, box: tuple[int, int, int, int]
              ) -> bool:
        """Return whether this mosaic serves a crop needing ``box`` with this filtering."""
        x0, y0, x1, y1 = self.box
        return ((self.zoom, self.levels, self.sigma) == (zoom, levels, sigma)
                and x0 <= box[0] and y0 <= box[1] and box[2] <= x1 and box[3] <= y1)


def _global_px(geometry: CropGeometry, world_px: float, u: np.ndarray, v: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """Return global source pixels (integer at pixel centres) of crop pixels, exactly."""
    la, lo = geometry.pixel_to_latlon(u, v)
    # Unwrapped about the centre: a crop across the antimeridian stays contiguous
    # (the part beyond +-180 degrees is reported invalid, not fetched).
    lo = geometry.lon + (np.asarray(lo) - geometry.lon + 180.0) % 360.0 - 180.0
    wx, wy = lonlat_to_world(lo, la)
    return wx * world_px - 0.5, wy * world_px - 0.5


@dataclass(frozen=True)
class _SourceMap:
    """Crop pixel -> global source pixel at one zoom: exact, and as a fitted quadratic.

    The quadratic is in pixel offsets from the crop centre normalised by half the size, its
    values relative to ``origin`` (absolute global pixels reach 2^38).
    """

    geometry: CropGeometry
    world_px: float
    origin: tuple[float, float]
    coef_x: np.ndarray
    coef_y: np.ndarray
    fit_error: float
    curvature: float
    reach: float

    @classmethod
    def fit(cls, geometry: CropGeometry, world_px: float) -> _SourceMap:
        """Fit the map on a grid of control points; check it on the cells' midpoints."""
        size_px, centre, half = geometry.size_px, geometry.centre_px, geometry.size_px / 2.0
        grid = np.linspace(0.0, size_px - 1.0, _CONTROL_POINTS)
        gu, gv = np.meshgrid(grid, grid)
        gx, gy = _global_px(geometry, world_px, gu, gv)
        ox, oy = float(np.floor(gx.mean())), float(np.floor(gy.mean()))
        design = _design(((gu - centre) / half).ravel(), ((gv - centre) / half).ravel())
        coef_x = np.linalg.lstsq(design, (gx - ox).ravel(), rcond=None)[0]
        coef_y = np.linalg.lstsq(design, (gy - oy).ravel(), rcond=None)[0]
        mid = (grid[:-1] + grid[1:]) / 2.0
        mu, mv = np.meshgrid(mid, mid)
        mx, my = _global_px(geometry, world_px, mu, mv)
        check = _design(((mu - centre) / half).ravel(), ((mv - centre) / half).ravel())
        fit_error = max(np.abs(check @ coef_x - (mx - ox).ravel()).max(),
                        np.abs(check @ coef_y - (my - oy).ravel()).max())
        curvature = max(np.abs(design[:, 3:] @ coef_x[3:]).max(),
                        np.abs(design[:, 3:] @ coef_y[3:]).max())
        # How far the crop reaches from its centre, in source pixels, at any heading.
        reach = float(np.hypot(gx - (ox + coef_x[0]), gy - (oy + coef_y[0])).max())
        return cls(geometry, world_px, (ox, oy), coef_x, coef_y, float(fit_error),
                   float(curvature), reach)

    def low_pass(self) -> tuple[int, float, float]:
        """Return the anti-aliasing: pyrDown levels, Gaussian sigma, margin in source px."""
        # Source pixels per crop pixel, from the map's Jacobian at the centre.
        half = self.geometry.size_px / 2.0
        cx, cy = self.coef_x, self.coef_y
        scale = math.sqrt(abs(cx[1] * cy[2] - cx[2] * cy[1])) / half
        levels = 0
        while scale >= 2.0 and levels < 8:
            scale /= 2.0
            levels += 1
        # Rounded, so that successive crops agree on it and can share a low-passed mosaic.
        sigma = round(10.0 * math.sqrt(scale * scale - 1.0)) / 20.0 if scale > 1.05 else 0.0
        return levels, sigma, 2.0 + 3.0 * sigma * (1 << levels) + (1 << (levels + 2))

    def source_box(self, margin: float) -> tuple[tuple[int, int, int, int], bool]:
        """Return the global pixel box to read and whether it is whole inside the map.

        The box is a square around the centre that holds the crop at any heading, so that
        the next frame's crop, turned or not, can reuse its mosaic.
        """
        centre_x, centre_y = self.origin[0] + self.coef_x[0], self.origin[1] + self.coef_y[0]
        reach = self.reach + margin
        end = int(self.world_px)
        box = (min(max(int(math.floor(centre_x - reach)), 0), end),
               min(max(int(math.floor(centre_y - reach)), 0), end),
               min(max(int(math.ceil(centre_x + reach)) + 1, 0), end),
               min(max(int(math.ceil(centre_y + reach)) + 1, 0), end))
        inside = (box[0] <= centre_x - reach and box[1] <= centre_y - reach
                  and centre_x + reach < box[2] and centre_y + reach < box[3])
        return box, inside

    def sampler(self, mosaic: Mosaic) -> Callable[[np.ndarray], np.ndarray]:
        """Return a function resampling a mosaic-sized array into the crop."""
        import cv2

        size_px, centre, half = self.geometry.size_px, self.geometry.centre_px, \
            self.geometry.size_px / 2.0
        px0, py0 = mosaic.box[:2]
        factor = mosaic.factor
        # Mosaic coordinates of the fitted map: shift from the fit origin to the mosaic corner.
        shift_x, shift_y = self.origin[0] - px0, self.origin[1] - py0
        if self.fit_error <= _FIT_TOLERANCE_PX and self.curvature < _AFFINE_TOLERANCE_PX:
            # The curvature over the whole crop is under 0.01 px: one affine warp is exact.
            cx = np.array([self.coef_x[1], self.coef_x[2], self.coef_x[0] + shift_x]) / factor
            cy = np.array([self.coef_y[1], self.coef_y[2], self.coef_y[0] + shift_y]) / factor
            affine = np.array([[cx[0] / half, cx[1] / half,
                                cx[2] - (cx[0] + cx[1]) * centre / half],
                               [cy[0] / half, cy[1] / half,
                                cy[2] - (cy[0] + cy[1]) * centre / half]])
            return lambda array: cv2.warpAffine(
                array, affine, (size_px, size_px), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        if self.fit_error > _FIT_TOLERANCE_PX:
            # Very large crops: the quadratic is not enough, use the exact map per pixel.
            axis = np.arange(size_px, dtype=np.float64)
            ex, ey = _global_px(self.geometry, self.world_px, *np.meshgrid(axis, axis))
            map_x = ((ex - px0) / factor).astype(np.float32)
            map_y = ((ey - py0) / factor).astype(np.float32)
        else:
            basis = _basis(size_px)
            map_x = _evaluate(self.coef_x, shift_x, factor, basis)
            map_y = _evaluate(self.coef_y, shift_y, factor, basis)
        return lambda array: cv2.remap(array, map_x, map_y, cv2.INTER_LINEAR,
                                       borderMode=cv2.BORDER_CONSTANT, borderValue=0)


class SatelliteCache:
    """Metric, heading-aligned crops from an XYZ folder or an MBTiles file.

    ``cache_mb`` bounds the decoded tiles kept in memory. Safe to call from several threads.
    """

    def __init__(self, path: str | os.PathLike | TileSource, cache_mb: float = 256.0,
                 max_tiles_per_crop: int = 400) -> None:
        """Open the tile cache; raise TileSourceError with the reason when it is unusable."""
        if not (math.isfinite(cache_mb) and cache_mb >= 0):
            raise ValueError(f"cache_mb must be a non-negative number, got {cache_mb}")
        self.source = path if isinstance(path, TileSource) else open_tile_source(path)
        self.tiles = TileLRU(self.source, int(cache_mb * (1 << 20)))
        self.max_tiles_per_crop = int(max_tiles_per_crop)
        self._prepared_lock = threading.Lock()
        self._prepared: Mosaic | None = None

    def __enter__(self) -> SatelliteCache:
        """Return the cache itself."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the tile source."""
        self.close()

    def close(self) -> None:
        """Release the tile source."""
        self.source.close()

    def choose_zoom(self, mpp: float, lat: float) -> int:
        """Return the zoom to crop from: the coarsest one at least as fine as ``mpp``."""
        zoom = zoom_for_mpp(mpp, lat, self.source.tile_size)
        return min(max(zoom, self.source.minzoom), self.source.maxzoom)

    def crop(self, lat: float, lon: float, heading_deg: float, size_px: int, mpp: float,
             zoom: int | None = None) -> Crop:
        """Return a size_px x size_px crop at ``mpp`` m/px centred on (lat, lon), heading along +u.

        Pixels outside the cache's tiles are black and False in the mask; ``coverage`` is the
        mask's mean. ``zoom`` overrides the zoom chosen from ``mpp``.
        """
        geometry = _crop_geometry(lat, lon, heading_deg, size_px, mpp)
        size_px = geometry.size_px
        if zoom is None:
            zoom = self.choose_zoom(mpp, lat)
        elif zoom not in self.source.zooms:
            raise ValueError(f"zoom {zoom} is not in the cache (zooms {self.source.zooms})")
        fit = _SourceMap.fit(geometry, float(self.source.tile_size * (1 << zoom)))
        levels, sigma, margin = fit.low_pass()
        box, full_inside = fit.source_box(margin)
        count = _tile_count(box, self.source.tile_size)
        if count == 0:
            empty = np.zeros((size_px, size_px), dtype=bool)
            return Crop(image=np.zeros((size_px, size_px, 3), np.uint8), mask=empty,
                        coverage=0.0, geometry=geometry, zoom=zoom)
        if count > self.max_tiles_per_crop:
            raise ValueError(
                f"a {size_px} px crop at {mpp} m/px needs {count} tiles at zoom {zoom}, over "
                f"the limit of {self.max_tiles_per_crop}; the cache lacks coarser zooms")
        mosaic = self._prepared_mosaic(zoom, box, levels, sigma)
        sample = fit.sampler(mosaic)
        image = sample(mosaic.image)
        if mosaic.valid is None and full_inside:
            return Crop(image=image, mask=np.ones((size_px, size_px), dtype=bool),
                        coverage=1.0, geometry=geometry, zoom=zoom)
        valid = mosaic.valid
        if valid is None:
            valid = np.full(mosaic.image.shape[:2], 255, dtype=np.uint8)
        # Bilinear weights are multiples of 1/32: any invalid neighbour pulls 255 below 248.
        mask = sample(valid) > 250
        image[~mask] = 0
        return Crop(image=image, mask=mask, coverage=float(mask.mean()), geometry=geometry,
                    zoom=zoom)

    def _prepared_mosaic(self, zoom: int, box: tuple[int, int, int, int], levels: int,
                         sigma: float) -> Mosaic:
        """Return the (low-passed) mosaic holding a global pixel box at ``zoom``.

        Successive crops along a drive need nearly the same pixels, so the last mosaic is kept
        (one mosaic, outside ``cache_mb``, with a few metres to spare) and reused while it
        holds the next crop's box.
        """
        with self._prepared_lock:
            last = self._prepared
        if last is not None and last.holds(zoom, levels, sigma, box):
            return last
        spare = _SPARE_PX << levels
        end = self.source.tile_size << zoom
        grown = (max(box[0] - spare, 0), max(box[1] - spare, 0), min(box[2] + spare, end),
                 min(box[3] + spare, end))
        if _tile_count(grown, self.source.tile_size) <= self.max_tiles_per_crop:
            box = grown
        failures = self.tiles.transient_errors
        image, valid = self._mosaic(zoom, box)
        image, valid, factor = _low_pass(image, valid, levels, sigma)
        mosaic = Mosaic(zoom, levels, sigma, box, image, valid, factor)
        # A tile that failed to read may read next time: keep only mosaics read cleanly.
        if self.tiles.transient_errors == failures:
            for array in (image, valid):
                if array is not None:
                    array.setflags(write=False)
            with self._prepared_lock:
                self._prepared = mosaic
        return mosaic

    def _mosaic(self, zoom: int, box: tuple[int, int, int, int]
                ) -> tuple[np.ndarray, np.ndarray | None]:
        """Assemble global pixels [x0, x1) x [y0, y1) at a zoom; mask None if all valid."""
        tile_px = self.source.tile_size
        x0, y0, x1, y1 = box
        mosaic = np.zeros((y1 - y0, x1 - x0, 3), np.uint8)
        valid: np.ndarray | None = None
        for ty in range(y0 // tile_px, (y1 - 1) // tile_px + 1):
            for tx in range(x0 // tile_px, (x1 - 1) // tile_px + 1):
                tile = self.tiles.get((zoom, tx, ty))
                # The part of this tile inside the box, in tile and in mosaic coordinates.
                gx0, gx1 = max(x0, tx * tile_px), min(x1, (tx + 1) * tile_px)
                gy0, gy1 = max(y0, ty * tile_px), min(y1, (ty + 1) * tile_px)
                inner = (slice(gy0 - ty * tile_px, gy1 - ty * tile_px),
                         slice(gx0 - tx * tile_px, gx1 - tx * tile_px))
                outer = (slice(gy0 - y0, gy1 - y0), slice(gx0 - x0, gx1 - x0))
                if tile is not None:
                    mosaic[outer] = tile[0][inner]
                if tile is None or tile[1] is not None:
                    if valid is None:
                        valid = np.full(mosaic.shape[:2], 255, dtype=np.uint8)
                    valid[outer] = 0 if tile is None else tile[1][inner].astype(np.uint8) * 255
        return mosaic, valid

    def info(self) -> dict:
        """Return the cache's format, zooms, bounds, tile size and tile counts per zoom."""
        counts = {z: sum(1 for _ in self.source.tiles(z)) for z in self.source.zooms}
        return {"path": str(self.source.path), "kind": self.source.kind,
                "format": self.source.format, "tile_size": self.source.tile_size,
                "zooms": list(self.source.zooms), "bounds": self.source.bounds,
                "tile_counts": counts}


def _tile_count(box: tuple[int, int, int, int], tile_px: int) -> int:
    x0, y0, x1, y1 = box
    if x1 <= x0 or y1 <= y0:
        return 0
    return ((x1 - 1) // tile_px - x0 // tile_px + 1) * ((y1 - 1) // tile_px - y0 // tile_px + 1)


def _evaluate(coef: np.ndarray, shift: float, factor: float,
              basis: tuple[np.ndarray, ...]) -> np.ndarray:
    out = np.full(basis[0].shape, (coef[0] + shift) / factor, dtype=np.float32)
    for weight, array in zip(coef[1:], basis, strict=True):
        if weight != 0.0:
            out += np.float32(weight / factor) * array
    return out


def _low_pass(mosaic: np.ndarray, valid: np.ndarray | None, levels: int, sigma: float
              ) -> tuple[np.ndarray, np.ndarray | None, float]:
    """Low-pass the mosaic for a downsampling crop; return it, its mask and the size factor."""
    if levels == 0 and sigma == 0.0:
        return mosaic, valid, 1.0
    import cv2

    for _ in range(levels):
        # pyrDown centres output pixel j on input pixel 2j, so coordinates simply halve.
        mosaic = cv2.pyrDown(mosaic)
        if valid is not None:
            valid = cv2.pyrDown(valid)
    if sigma > 0.0:
        # Taps beyond 2.5 sigma weigh under 0.2 % of the centre tap; drop them (OpenCV's
        # default kernel for uint8 reaches 3 sigma, which is 5 taps instead of 3 at 0.45).
        ksize = 2 * max(int(2.5 * sigma), 1) + 1
        mosaic = cv2.GaussianBlur(mosaic, (ksize, ksize), sigma)
        if valid is not None:
            valid = cv2.GaussianBlur(valid, (ksize, ksize), sigma)
    if valid is not None:
        # Any invalid pixel under the filter makes the result invalid.
        valid = np.where(valid >= 255, 255, 0).astype(np.uint8)
    return mosaic, valid, float(1 << levels)


__all__ = ["Crop", "CropGeometry", "SatelliteCache", "TileLRU", "TileSourceError"]
