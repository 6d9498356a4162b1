# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Build XYZ folders or MBTiles files from georeferenced images.

Sources:

- one north-up image whose pixels are ``mpp`` true metres in the local tangent plane at its
  centre (:func:`build_from_image`);
- many overlapping images, each centred on a lat/lon (:func:`build_from_sources`): KITTI
  ``satmap/<date>/<drive>/<frame>.png`` images over a drive (:func:`kitti_satmap_sources`)
  and Ford multi-AV ``SatelliteMaps_18/<lat>_<lon>.png`` images (:func:`ford_satmap_sources`)
  are Google Static Maps: Web Mercator images, modelled as such ("mercator" projection);
- a GeoTIFF in any projected or geographic CRS (:func:`build_from_geotiff`, needs rasterio);
  its nodata/alpha/mask pixels become transparent.

Where sources overlap, the source whose centre is nearest wins, pixel by pixel (a Voronoi
partition by geodesic distance; no blending, so no ghosting where images disagree). Each
source-to-tile map is computed exactly on a 9 x 9 grid and fitted with a quadratic (checked
to 0.02 px), then each tile is sampled in one bilinear pass, after a Gaussian low-pass when
the tiles are coarser than the source. An image's footprint reaches half a pixel beyond
its outer pixel centres; tiles store transparent (alpha 0) pixels outside every footprint,
and crops report them as invalid. Overview zooms are 2 x 2 area averages of the finer zoom.
"""

from __future__ import annotations

import math
import os
import re
import sqlite3
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from denseflow_ros.geo.mercator import (
    EQUATOR_M,
    MAX_ZOOM,
    lonlat_to_world,
    nominal_mpp,
    tile_bounds,
    world_to_lonlat,
    zoom_for_mpp,
)
from denseflow_ros.geo.projection import GeodesicPlane
from denseflow_ros.geo.sources import decode_tile, image_size

TILE_PX = 256
KITTI_SATMAP_MPP = 0.1958  # Google Static Maps zoom 18 at scale 2 (zoom 19's pixel size)
KITTI_LATITUDE_DEG = 49.015
_CONTROL_POINTS = 9
_FIT_TOLERANCE_PX = 0.02
MAX_SOURCE_SIDE = 32768

SourceSpec = tuple[str | os.PathLike | np.ndarray, float, float, float]


@dataclass
class BuildResult:
    """What a build wrote: the output path, its zooms and the number of tiles per zoom."""

    path: Path
    zoom: int
    min_zoom: int
    tiles_per_zoom: dict[int, int]


class _Raster:
    """A georeferenced source image; ``pixel_of`` maps lat/lon to (col, row)."""

    def __init__(self, image: str | os.PathLike | np.ndarray, lat: float, lon: float,
                 mpp: float) -> None:
        for name, value in (("lat", lat), ("lon", lon), ("mpp", mpp)):
            if not math.isfinite(value):
                raise ValueError(f"source {name} must be finite, got {value}")
        if mpp <= 0 or abs(lat) >= 85.0:
            raise ValueError(f"source needs mpp > 0 and |lat| < 85, got {mpp}, {lat}")
        self.lat, self.lon, self.mpp = float(lat), float(lon), float(mpp)
        if isinstance(image, np.ndarray):
            self._array: np.ndarray | None = _as_rgb(image)
            self.path: Path | None = None
            self.height, self.width = self._array.shape[:2]
        else:
            self._array = None
            self.path = Path(image)
            self.width, self.height = _file_image_size(self.path)
        if not (0 < self.width <= MAX_SOURCE_SIDE and 0 < self.height <= MAX_SOURCE_SIDE):
            raise ValueError(f"source image is {self.width} x {self.height} px")
        self.centre_col, self.centre_row = float(self.width // 2), float(self.height // 2)
        # uint8, nonzero where bilinear sampling at floor(col), floor(row) reads only pixels
        # with data (None: every pixel has data).
        self.valid: np.ndarray | None = None

    def load(self) -> np.ndarray:
        """Return the image as RGB uint8."""
        if self._array is not None:
            return self._array
        import cv2

        image = cv2.imread(str(self.path), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"{self.path} is not a readable image")
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    def default_zoom(self) -> int:
        """Return the coarsest zoom at least as fine as this image (1 % tolerance)."""
        return zoom_for_mpp(self.mpp * 1.01, self.lat, TILE_PX)

    def pixel_of(self, lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return (col, row) of latitudes/longitudes; integer values at pixel centres."""
        raise NotImplementedError

    def world_box(self) -> tuple[float, float, float, float]:
        """Return the footprint's world-coordinate box (x_min, y_min, x_max, y_max)."""
        raise NotImplementedError


class _LocalImage(_Raster):
    """North-up image, pixels ``mpp`` true metres in the tangent plane at its centre."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self._plane = GeodesicPlane(self.lat, self.lon)

    def pixel_of(self, lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return (col, row) of latitudes/longitudes."""
        east, north = self._plane.forward(lat, lon)
        return self.centre_col + east / self.mpp, self.centre_row - north / self.mpp

    def world_box(self) -> tuple[float, float, float, float]:
        """Return the footprint's world-coordinate box."""
        cols = np.array([-0.5, self.width - 0.5, -0.5, self.width - 0.5])
        rows = np.array([-0.5, -0.5, self.height - 0.5, self.height - 0.5])
        lat, lon = self._plane.inverse((cols - self.centre_col) * self.mpp,
                                       (self.centre_row - rows) * self.mpp)
        x, y = lonlat_to_world(lon, lat)
        return float(x.min()), float(y.min()), float(x.max()), float(y.max())


class _MercatorImage(_Raster):
    """A Web Mercator image (e.g. Google Static Maps) centred on (lat, lon).

    ``mpp`` is the customary pixel size at the centre, 156543.03392 cos(lat) / 2^z; z is
    snapped to the nearest integer within 0.01 (one static-maps zoom/scale pair, whatever
    latitude the caller's constant mpp was quoted for).
    """

    def __init__(self, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        zoom = math.log2(EQUATOR_M * math.cos(math.radians(self.lat)) / (TILE_PX * self.mpp))
        if abs(zoom - round(zoom)) < 0.01:
            zoom = float(round(zoom))
        self.zoom = zoom
        self.world_px = TILE_PX * 2.0 ** zoom
        cx, cy = lonlat_to_world(self.lon, self.lat)
        self._cx, self._cy = float(cx) * self.world_px, float(cy) * self.world_px

    def default_zoom(self) -> int:
        """Return the image's own zoom when it has one: its pixels then fall on tile pixels."""
        if self.zoom == round(self.zoom) and 0 <= self.zoom <= MAX_ZOOM:
            return int(self.zoom)
        return super().default_zoom()

    def pixel_of(self, lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return (col, row) of latitudes/longitudes."""
        x, y = lonlat_to_world(lon, lat)
        return (self.centre_col + x * self.world_px - self._cx,
                self.centre_row + y * self.world_px - self._cy)

    def world_box(self) -> tuple[float, float, float, float]:
        """Return the footprint's world-coordinate box."""
        return ((self._cx - self.centre_col - 0.5) / self.world_px,
                (self._cy - self.centre_row - 0.5) / self.world_px,
                (self._cx + self.width - self.centre_col - 0.5) / self.world_px,
                (self._cy + self.height - self.centre_row - 0.5) / self.world_px)


def _as_rgb(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"image must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
    return np.ascontiguousarray(image[:, :, :3])


def _file_image_size(path: Path) -> tuple[int, int]:
    try:
        with open(path, "rb") as handle:
            head = handle.read(1 << 18)
    except OSError as exc:
        raise ValueError(f"cannot read source image {path}: {exc.strerror}") from exc
    try:
        return image_size(head)
    except ValueError:
        import cv2

        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"{path} is not a readable image") from None
        return image.shape[1], image.shape[0]


class _Writer:
    """Tile output: an XYZ folder or an MBTiles file (chosen by the .mbtiles suffix)."""

    def __init__(self, path: Path, name: str) -> None:
        self.path = path
        self.is_mbtiles = path.suffix.lower() == ".mbtiles"
        if self.is_mbtiles:
            if path.exists():
                raise FileExistsError(f"{path} already exists; choose a new output path")
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path))
            self._db.executescript(
                "CREATE TABLE metadata (name TEXT, value TEXT);"
                "CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, "
                "tile_row INTEGER, tile_data BLOB);"
                "CREATE UNIQUE INDEX tile_index ON tiles (zoom_level, tile_column, tile_row);")
        else:
            if path.exists() and (not path.is_dir() or any(path.iterdir())):
                raise FileExistsError(f"{path} already exists and is not an empty folder")
            path.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.count: dict[int, int] = {}
        self.box = [math.inf, math.inf, -math.inf, -math.inf]  # west, south, east, north

    def write(self, z: int, x: int, y: int, rgb: np.ndarray, valid: np.ndarray) -> None:
        """Encode one tile as PNG (RGBA where part of it is outside the sources) and store it."""
        import cv2

        if valid.all():
            data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()
        else:
            bgra = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGRA)
            bgra[:, :, 3] = np.where(valid, 255, 0).astype(np.uint8)
            data = cv2.imencode(".png", bgra)[1].tobytes()
        if self.is_mbtiles:
            self._db.execute("INSERT OR REPLACE INTO tiles VALUES (?, ?, ?, ?)",
                             (z, x, (1 << z) - 1 - y, sqlite3.Binary(data)))
        else:
            folder = self.path / str(z) / str(x)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{y}.png").write_bytes(data)
        self.count[z] = self.count.get(z, 0) + 1
        west, south, east, north = tile_bounds(z, x, y)
        self.box = [min(self.box[0], west), min(self.box[1], south),
                    max(self.box[2], east), max(self.box[3], north)]

    def read(self, z: int, x: int, y: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Return a written tile as (RGB, valid mask), or None."""
        if self.is_mbtiles:
            row = self._db.execute(
                "SELECT tile_data FROM tiles WHERE zoom_level=? AND tile_column=? AND "
                "tile_row=?", (z, x, (1 << z) - 1 - y)).fetchone()
            data = None if row is None else bytes(row[0])
        else:
            name = self.path / str(z) / str(x) / f"{y}.png"
            data = name.read_bytes() if name.is_file() else None
        if data is None:
            return None
        rgb, mask = decode_tile(data)
        return rgb, (np.ones(rgb.shape[:2], bool) if mask is None else mask)

    def close(self, min_zoom: int, max_zoom: int) -> None:
        """Write the MBTiles metadata and commit."""
        if not self.is_mbtiles:
            return
        west, south, east, north = self.box
        metadata = {
            "name": self.name, "format": "png", "type": "baselayer", "version": "1.0",
            "description": "satellite imagery tiles built by denseflow_ros",
            "minzoom": str(min_zoom), "maxzoom": str(max_zoom),
            "bounds": f"{west:.7f},{south:.7f},{east:.7f},{north:.7f}",
            "center": f"{(west + east) / 2:.7f},{(south + north) / 2:.7f},{max_zoom}",
        }
        self._db.executemany("INSERT INTO metadata VALUES (?, ?)", metadata.items())
        self._db.commit()
        self._db.close()


def _fit(design: np.ndarray, values: np.ndarray) -> np.ndarray:
    return np.linalg.lstsq(design, values, rcond=None)[0]


def _quadratic_terms(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.stack([np.ones_like(u), u, v, u * u, u * v, v * v], axis=-1)


_TILE_AXIS = (np.arange(TILE_PX, dtype=np.float64) - TILE_PX / 2 + 0.5) / (TILE_PX / 2)
_TILE_U, _TILE_V = np.meshgrid(_TILE_AXIS, _TILE_AXIS)
_TILE_TERMS = _quadratic_terms(_TILE_U, _TILE_V)


def _tile_map(raster: _Raster, z: int, x: int, y: int) -> tuple[np.ndarray, np.ndarray]:
    """Return float32 (col, row) maps from every pixel of tile (z, x, y) into a source."""
    n = float(TILE_PX << z)
    grid = np.linspace(-1.0, 1.0, _CONTROL_POINTS) * (1.0 - 1.0 / TILE_PX)
    gu, gv = np.meshgrid(grid, grid)

    def exact(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # Tile pixel centre -> world -> lat/lon -> source pixel.
        lon, lat = world_to_lonlat((x * TILE_PX + (u + 1.0) * TILE_PX / 2) / n,
                                   (y * TILE_PX + (v + 1.0) * TILE_PX / 2) / n)
        return raster.pixel_of(lat, lon)

    cols, rows = exact(gu, gv)
    terms = _quadratic_terms(gu.ravel(), gv.ravel())
    coef_c, coef_r = _fit(terms, cols.ravel()), _fit(terms, rows.ravel())
    mid = (grid[:-1] + grid[1:]) / 2
    mu, mv = np.meshgrid(mid, mid)
    check_c, check_r = exact(mu, mv)
    check = _quadratic_terms(mu.ravel(), mv.ravel())
    error = max(np.abs(check @ coef_c - check_c.ravel()).max(),
                np.abs(check @ coef_r - check_r.ravel()).max())
    if error > _FIT_TOLERANCE_PX:
        map_c, map_r = exact(_TILE_U, _TILE_V)
    else:
        map_c, map_r = _TILE_TERMS @ coef_c, _TILE_TERMS @ coef_r
    return map_c.astype(np.float32), map_r.astype(np.float32)


class _DecodedSources:
    """Source images decoded on demand (and low-passed for coarser tiles), a few kept."""

    def __init__(self, tile_mpp: Callable[[_Raster], float], budget_bytes: int) -> None:
        self._images: OrderedDict[int, np.ndarray] = OrderedDict()
        self._tile_mpp = tile_mpp
        self._budget = budget_bytes
        self._bytes = 0

    def get(self, index: int, raster: _Raster) -> np.ndarray:
        """Return source ``index``'s pixels, ready to sample at the tile resolution."""
        if index in self._images:
            self._images.move_to_end(index)
            return self._images[index]
        import cv2

        image = raster.load()
        scale = self._tile_mpp(raster) / raster.mpp
        if scale > 1.05:
            image = cv2.GaussianBlur(image, (0, 0), 0.5 * math.sqrt(scale * scale - 1.0))
        self._images[index] = image
        self._bytes += image.nbytes
        # Keep at least the tile's own winners (a handful) even over the budget.
        while self._bytes > self._budget and len(self._images) > 16:
            self._bytes -= self._images.popitem(last=False)[1].nbytes
        return image


def _render_tile(rasters: Sequence[_Raster], candidates: list[int], z: int, x: int, y: int,
                 decoded: _DecodedSources) -> tuple[np.ndarray, np.ndarray] | None:
    """Render one tile from its candidate sources, nearest source centre winning per pixel."""
    import cv2

    n = float(1 << z)
    tile_lon, tile_lat = world_to_lonlat((x + 0.5) / n, (y + 0.5) / n)
    half_diag_m = nominal_mpp(float(tile_lat), z, TILE_PX) * TILE_PX / math.sqrt(2.0)
    plane = GeodesicPlane(float(tile_lat), float(tile_lon))
    centre_dist = []
    for k in candidates:
        east, north = plane.forward(rasters[k].lat, rasters[k].lon)
        centre_dist.append(math.hypot(east, north))
    order = [candidates[i] for i in np.argsort(centre_dist)]
    ordered_dist = np.sort(np.asarray(centre_dist))
    best = np.full((TILE_PX, TILE_PX), np.inf)
    winner = np.full((TILE_PX, TILE_PX), -1, dtype=np.int64)
    maps: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for k, dist_to_tile in zip(order, ordered_dist, strict=True):
        # No pixel of the tile can be nearer to this source than the best so far.
        if np.isfinite(best).all() and dist_to_tile - half_diag_m > best.max():
            break
        raster = rasters[k]
        map_c, map_r = _tile_map(raster, z, x, y)
        # A source pixel covers the ground half a pixel either side of its centre.
        inside = ((map_c >= -0.5) & (map_c < raster.width - 0.5)
                  & (map_r >= -0.5) & (map_r < raster.height - 0.5))
        if raster.valid is not None:
            inside &= cv2.remap(raster.valid, np.floor(map_c), np.floor(map_r),
                                cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE) > 0
        if not inside.any():
            continue
        dist = np.hypot(map_c - raster.centre_col, map_r - raster.centre_row) * raster.mpp
        wins = inside & (dist < best)
        if wins.any():
            best[wins] = dist[wins]
            winner[wins] = k
            maps[k] = (map_c, map_r)
    valid = winner >= 0
    if not valid.any():
        return None
    rgb = np.zeros((TILE_PX, TILE_PX, 3), dtype=np.uint8)
    for k in np.unique(winner[valid]):
        map_c, map_r = maps[int(k)]
        sampled = cv2.remap(decoded.get(int(k), rasters[int(k)]), map_c, map_r,
                            cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        chosen = winner == k
        rgb[chosen] = sampled[chosen]
    return rgb, valid


def _build(rasters: Sequence[_Raster], out_path: str | os.PathLike, zoom: int | None,
           min_zoom: int | None, progress: bool, name: str,
           memory_mb: float = 1024.0) -> BuildResult:
    from tqdm import tqdm

    if not rasters:
        raise ValueError("no source images to build tiles from")
    if zoom is None:
        zoom = max(r.default_zoom() for r in rasters)
    if not 0 <= zoom <= MAX_ZOOM:
        raise ValueError(f"zoom must be in 0..{MAX_ZOOM}, got {zoom}")
    min_zoom = max(zoom - 2, 0) if min_zoom is None else min_zoom
    if not 0 <= min_zoom <= zoom:
        raise ValueError(f"min_zoom must be in 0..{zoom}, got {min_zoom}")
    n = 1 << zoom
    boxes = [r.world_box() for r in rasters]
    tile_boxes = [(max(int(b[0] * n), 0), max(int(b[1] * n), 0), min(int(b[2] * n), n - 1),
                   min(int(b[3] * n), n - 1)) for b in boxes]
    tile_candidates: dict[tuple[int, int], list[int]] = {}
    for k, (x0, y0, x1, y1) in enumerate(tile_boxes):
        if (x1 - x0 + 1) * (y1 - y0 + 1) > 1 << 22:
            raise ValueError(f"source {k} covers over 4 million tiles at zoom {zoom}")
        for tx in range(x0, x1 + 1):
            for ty in range(y0, y1 + 1):
                tile_candidates.setdefault((tx, ty), []).append(k)
    writer = _Writer(Path(out_path), name)
    try:
        decoded = _DecodedSources(lambda r: nominal_mpp(r.lat, zoom, TILE_PX),
                                  int(memory_mb * (1 << 20)))
        for (tx, ty) in tqdm(sorted(tile_candidates), desc=f"zoom {zoom}", unit="tile",
                             disable=not progress):
            tile = _render_tile(rasters, tile_candidates[(tx, ty)], zoom, tx, ty, decoded)
            if tile is not None:
                writer.write(zoom, tx, ty, *tile)
        parents = {(tx, ty) for (tx, ty) in tile_candidates}
        for z in range(zoom - 1, min_zoom - 1, -1):
            parents = {(tx >> 1, ty >> 1) for (tx, ty) in parents}
            for (px, py) in tqdm(sorted(parents), desc=f"zoom {z}", unit="tile",
                                 disable=not progress):
                tile = _overview_tile(writer, z, px, py)
                if tile is not None:
                    writer.write(z, px, py, *tile)
    except BaseException:
        writer.close(min_zoom, zoom)
        raise
    writer.close(min_zoom, zoom)
    return BuildResult(Path(out_path), zoom, min_zoom, dict(sorted(writer.count.items())))


def _overview_tile(writer: _Writer, z: int, x: int, y: int
                   ) -> tuple[np.ndarray, np.ndarray] | None:
    import cv2

    rgb = np.zeros((2 * TILE_PX, 2 * TILE_PX, 3), dtype=np.float32)
    weight = np.zeros((2 * TILE_PX, 2 * TILE_PX), dtype=np.float32)
    found = False
    for dy in (0, 1):
        for dx in (0, 1):
            child = writer.read(z + 1, 2 * x + dx, 2 * y + dy)
            if child is None:
                continue
            found = True
            rows = slice(dy * TILE_PX, (dy + 1) * TILE_PX)
            cols = slice(dx * TILE_PX, (dx + 1) * TILE_PX)
            rgb[rows, cols] = child[0] * child[1][:, :, None]
            weight[rows, cols] = child[1]
    if not found:
        return None
    # Average only valid children pixels; a parent pixel is valid if any child pixel is.
    rgb = cv2.resize(rgb, (TILE_PX, TILE_PX), interpolation=cv2.INTER_AREA)
    weight = cv2.resize(weight, (TILE_PX, TILE_PX), interpolation=cv2.INTER_AREA)
    valid = weight > 0.0
    out = np.where(valid[:, :, None], rgb / np.maximum(weight, 1e-6)[:, :, None], 0.0)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), valid


def build_from_image(image_rgb: np.ndarray, center_lat: float, center_lon: float, mpp: float,
                     out_path: str | os.PathLike, zoom: int | None = None,
                     progress: bool = True, min_zoom: int | None = None) -> BuildResult:
    """Write tiles from one north-up image of ``mpp`` metres/pixel centred on a lat/lon.

    The image's pixels are ``mpp`` true metres in the local tangent plane at its centre,
    pixel (W // 2, H // 2) (integer coordinates at pixel centres), the same convention as
    crops. ``out_path`` ending in ``.mbtiles`` writes MBTiles, anything else an XYZ folder.
    ``zoom`` defaults to the coarsest zoom at least as fine as ``mpp``; overviews are written
    down to ``min_zoom`` (default ``zoom - 2``).
    """
    raster = _LocalImage(image_rgb, center_lat, center_lon, mpp)
    return _build([raster], out_path, zoom, min_zoom, progress, "georeferenced image")


def build_from_sources(sources: Iterable[SourceSpec], out_path: str | os.PathLike,
                       projection: str = "mercator", zoom: int | None = None,
                       progress: bool = True, min_zoom: int | None = None) -> BuildResult:
    """Write tiles from many overlapping images, each (image path or RGB array, lat, lon, mpp).

    ``projection`` is "mercator" for Web Mercator images such as Google Static Maps (KITTI
    and Ford satellite images) or "local" for tangent-plane images. The nearest source centre
    wins where sources overlap.
    """
    kinds = {"mercator": _MercatorImage, "local": _LocalImage}
    if projection not in kinds:
        raise ValueError(f"projection must be 'mercator' or 'local', got {projection!r}")
    rasters = [kinds[projection](image, lat, lon, mpp) for image, lat, lon, mpp in sources]
    return _build(rasters, out_path, zoom, min_zoom, progress, f"{len(rasters)} images")


def _read_oxts_latlon(path: Path) -> tuple[float, float]:
    try:
        fields = path.read_text(encoding="ascii", errors="replace").split()
        lat, lon = float(fields[0]), float(fields[1])
    except (OSError, ValueError, IndexError) as exc:
        raise ValueError(f"{path} is not a KITTI OXTS record with lat and lon") from exc
    if not (abs(lat) <= 90 and abs(lon) <= 180):
        raise ValueError(f"{path} has lat/lon out of range: {lat}, {lon}")
    return lat, lon


def kitti_satmap_sources(satmap_drive_dir: str | os.PathLike, oxts_data_dir: str | os.PathLike,
                         mpp: float = KITTI_SATMAP_MPP) -> list[SourceSpec]:
    """List a KITTI drive's satellite images with the OXTS lat/lon of their frames.

    ``satmap_drive_dir`` is ``satmap/<date>/<drive>`` (``<frame>.png``) and ``oxts_data_dir``
    the raw drive's ``oxts/data`` (``<frame>.txt``). A frame without an OXTS record is an
    error, so a mismatched pair of folders is caught.
    """
    satmap_dir, oxts_dir = Path(satmap_drive_dir), Path(oxts_data_dir)
    frames = sorted(satmap_dir.glob("*.png"))
    if not frames:
        raise ValueError(f"{satmap_dir} holds no <frame>.png satellite images")
    sources: list[SourceSpec] = []
    for frame in frames:
        oxts = oxts_dir / f"{frame.stem}.txt"
        if not oxts.is_file():
            raise ValueError(f"no OXTS record {oxts} for satellite image {frame}")
        lat, lon = _read_oxts_latlon(oxts)
        sources.append((frame, lat, lon, mpp))
    return sources


_FORD_NAME = re.compile(r"^(-?\d+(?:\.\d+)?)_(-?\d+(?:\.\d+)?)$")


def ford_satmap_sources(folder: str | os.PathLike, mpp: float | None = None
                        ) -> list[SourceSpec]:
    """List Ford multi-AV ``SatelliteMaps_18/<lat>_<lon>.png`` images.

    ``mpp`` defaults to Google Static Maps zoom 18 at scale 2 at each image's latitude.
    """
    folder = Path(folder)
    sources: list[SourceSpec] = []
    for path in sorted(folder.glob("*.png")):
        match = _FORD_NAME.match(path.stem)
        if match is None:
            continue
        lat, lon = float(match.group(1)), float(match.group(2))
        if not (abs(lat) < 85 and abs(lon) <= 180):
            continue
        sources.append((path, lat, lon, mpp or nominal_mpp(lat, 19, TILE_PX)))
    if not sources:
        raise ValueError(f"{folder} holds no <lat>_<lon>.png satellite images")
    return sources


def _apply_affine(affine: object, x: np.ndarray, y: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    a, b, c, d, e, f = (getattr(affine, name) for name in "abcdef")
    return a * x + b * y + c, d * x + e * y + f


class _GeoTiff(_Raster):
    """A GeoTIFF read with rasterio; lat/lon -> its CRS (pyproj) -> its affine transform."""

    def __init__(self, path: Path) -> None:
        import pyproj
        import rasterio

        with rasterio.open(path) as dataset:
            if dataset.crs is None:
                raise ValueError(f"{path} has no coordinate reference system")
            if dataset.count not in (1,) and dataset.count < 3:
                raise ValueError(f"{path} has {dataset.count} bands; need 1 (grey) or 3+ (RGB)")
            data = dataset.read([1, 2, 3] if dataset.count >= 3 else [1, 1, 1])
            # GDAL's validity mask (nodata values, alpha band or internal mask); 0 = no data.
            mask = dataset.dataset_mask() > 0
            self._forward = dataset.transform
            crs = pyproj.CRS.from_wkt(dataset.crs.to_wkt())
        if data.dtype != np.uint8:
            high = float(np.percentile(data, 99.5)) or 1.0
            data = np.clip(data.astype(np.float64) * (255.0 / high), 0, 255)
        image = np.ascontiguousarray(np.transpose(data, (1, 2, 0)).astype(np.uint8))
        self._inverse = ~self._forward
        self._to_crs = pyproj.Transformer.from_crs("EPSG:4326", crs, always_xy=True)
        self._to_lonlat = pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
        h, w = image.shape[:2]
        # Centre pixel and its east neighbour (pixel centres are at +0.5 in rasterio).
        xs, ys = _apply_affine(self._forward, np.array([w // 2 + 0.5, w // 2 + 1.5]),
                               np.array([h // 2 + 0.5, h // 2 + 0.5]))
        lon, lat = self._to_lonlat.transform(xs, ys)
        _, _, mpp = pyproj.Geod(ellps="WGS84").inv(lon[0], lat[0], lon[1], lat[1])
        super().__init__(image, float(lat[0]), float(lon[0]), float(mpp))
        if not mask.all():
            import cv2

            # Bilinear sampling at (c, r) reads pixels floor(c)..floor(c) + 1 (and rows
            # alike): mark a pixel usable when it and its right/lower neighbours hold data.
            self.valid = cv2.erode(mask.astype(np.uint8), np.ones((2, 2), np.uint8),
                                   anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)

    def pixel_of(self, lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return (col, row) of latitudes/longitudes."""
        xs, ys = self._to_crs.transform(np.asarray(lon), np.asarray(lat))
        cols, rows = _apply_affine(self._inverse, xs, ys)
        # rasterio's affine maps to pixel edges; subtract 0.5 for pixel-centre coordinates.
        return cols - 0.5, rows - 0.5

    def world_box(self) -> tuple[float, float, float, float]:
        """Return the footprint's world-coordinate box (edges sampled densely)."""
        t = np.linspace(0.0, 1.0, 33)
        cols = np.concatenate([t * self.width, t * self.width, np.zeros(33),
                               np.full(33, self.width)])
        rows = np.concatenate([np.zeros(33), np.full(33, self.height), t * self.height,
                               t * self.height])
        xs, ys = _apply_affine(self._forward, cols, rows)
        lon, lat = self._to_lonlat.transform(xs, ys)
        x, y = lonlat_to_world(lon, lat)
        return float(x.min()), float(y.min()), float(x.max()), float(y.max())


def build_from_geotiff(path: str | os.PathLike, out_path: str | os.PathLike,
                       zoom: int | None = None, progress: bool = True,
                       min_zoom: int | None = None) -> BuildResult:
    """Write tiles from a GeoTIFF (any CRS rasterio and pyproj know); needs rasterio."""
    try:
        import rasterio  # noqa: F401
    except ImportError:
        raise RuntimeError("GeoTIFF input needs rasterio: pip install "
                           "'denseflow_ros[geotiff]' (or pip install rasterio)") from None
    raster = _GeoTiff(Path(path))
    return _build([raster], out_path, zoom, min_zoom, progress, Path(path).stem)
