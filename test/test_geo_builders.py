# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Tile builders: KITTI and Ford satellite layouts, nearest-centre overlaps, bad sources."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import mercantile
import numpy as np
import pyproj
import pytest

from denseflow_ros.geo import SatelliteCache
from denseflow_ros.geo.builders import (
    build_from_geotiff,
    build_from_image,
    build_from_sources,
    ford_satmap_sources,
    kitti_satmap_sources,
)
from denseflow_ros.geo.mercator import nominal_mpp, world_to_lonlat
from denseflow_ros.geo.sources import decode_tile, open_tile_source

GEOD = pyproj.Geod(ellps="WGS84")
Z = 19
WORLD_PX = 256 << Z
KITTI_LAT, KITTI_LON = 49.011, 8.4236


def truth_world() -> tuple[np.ndarray, int, int]:
    """Return a texture indexed by zoom-19 global pixel, and its top-left global pixel."""
    tile = mercantile.tile(KITTI_LON, KITTI_LAT, Z)
    ox, oy = (tile.x - 3) * 256, (tile.y - 3) * 256
    rng = np.random.default_rng(5)
    noise = cv2.GaussianBlur(rng.standard_normal((7 * 256, 7 * 256, 3)).astype(np.float32),
                             (0, 0), 1.5)
    return np.clip(128 + 50 * noise / noise.std(), 0, 255).astype(np.uint8), ox, oy


def static_map(world: np.ndarray, ox: int, oy: int, gx: int, gy: int, size: int
               ) -> tuple[np.ndarray, float, float]:
    """Cut a Web Mercator image whose centre pixel (size // 2) is global pixel (gx, gy)."""
    lon, lat = world_to_lonlat((gx + 0.5) / WORLD_PX, (gy + 0.5) / WORLD_PX)
    c = size // 2
    return world[gy - oy - c:gy - oy - c + size, gx - ox - c:gx - ox - c + size], \
        float(lat), float(lon)


def write_kitti_drive(root: Path, world: np.ndarray, ox: int, oy: int,
                      centres: list[tuple[int, int]], size: int) -> tuple[Path, Path]:
    satmap = root / "satmap" / "2011_09_26" / "2011_09_26_drive_0001_sync"
    oxts = root / "raw" / "2011_09_26" / "2011_09_26_drive_0001_sync" / "oxts" / "data"
    satmap.mkdir(parents=True)
    oxts.mkdir(parents=True)
    for frame, (gx, gy) in enumerate(centres):
        image, lat, lon = static_map(world, ox, oy, gx, gy, size)
        cv2.imwrite(str(satmap / f"{frame:010d}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        rest = " ".join(["0.0"] * 28)
        (oxts / f"{frame:010d}.txt").write_text(f"{lat:.12f} {lon:.12f} 110.0 {rest}\n")
    return satmap, oxts


def test_kitti_drive_reproduces_the_mercator_truth_exactly(tmp_path: Path) -> None:
    world, ox, oy = truth_world()
    centre = mercantile.tile(KITTI_LON, KITTI_LAT, Z)
    gx, gy = centre.x * 256 + 100, centre.y * 256 + 77
    centres = [(gx + 60 * k, gy + 25 * k) for k in range(4)]
    satmap, oxts = write_kitti_drive(tmp_path, world, ox, oy, centres, 300)
    sources = kitti_satmap_sources(satmap, oxts)
    assert len(sources) == 4 and sources[0][3] == pytest.approx(0.1958)
    out = tmp_path / "kitti.mbtiles"
    result = build_from_sources(sources, out, projection="mercator", progress=False)
    assert result.zoom == 19
    source = open_tile_source(out)
    compared = 0
    for x, y in source.tiles(19):
        rgb, mask = decode_tile(source.read(19, x, y))
        expected = world[y * 256 - oy:(y + 1) * 256 - oy, x * 256 - ox:(x + 1) * 256 - ox]
        valid = np.ones((256, 256), bool) if mask is None else mask
        assert valid.any()
        # Tile pixels fall on the images' pixels: the build is lossless.
        assert np.array_equal(rgb[valid], expected[valid])
        compared += int(valid.sum())
    assert compared > 2 * 256 * 256  # four overlapping 300 px images
    source.close()


def test_overlaps_go_to_the_nearest_source_centre(tmp_path: Path) -> None:
    lat0, lon0 = 42.3, -83.2
    mpp = 0.2
    offsets = [(-30.0, 0.0), (25.0, 10.0), (0.0, -35.0)]
    sources = []
    for k, (east, north) in enumerate(offsets):
        lon, lat, _ = GEOD.fwd(lon0, lat0, np.degrees(np.arctan2(east, north)),
                               np.hypot(east, north))
        colour = np.zeros((500, 500, 3), np.uint8)
        colour[:] = (60 * (k + 1), 255 - 60 * k, 30)
        sources.append((colour, lat, lon, mpp))
    out = tmp_path / "voronoi"
    build_from_sources(sources, out, projection="local", progress=False, min_zoom=19)
    with SatelliteCache(out) as cache:
        crop = cache.crop(lat0, lon0, 0.0, 200, 0.25)
    assert crop.coverage == 1.0
    rng = np.random.default_rng(1)
    for u, v in rng.uniform(5, 195, (60, 2)):
        plat, plon = crop.geometry.pixel_to_latlon(u, v)
        distances = [GEOD.inv(s[2], s[1], plon, plat)[2] for s in sources]
        order = np.argsort(distances)
        if distances[order[1]] - distances[order[0]] < 1.0:
            continue  # too close to a Voronoi edge to call at this resolution
        colour = crop.image[int(round(v)), int(round(u))]
        assert tuple(colour) == tuple(sources[order[0]][0][0, 0])


def test_ford_layout(tmp_path: Path) -> None:
    folder = tmp_path / "SatelliteMaps_18"
    folder.mkdir()
    world, ox, oy = truth_world()
    centre = mercantile.tile(KITTI_LON, KITTI_LAT, Z)
    image, lat, lon = static_map(world, ox, oy, centre.x * 256 + 128, centre.y * 256 + 128,
                                 256)
    cv2.imwrite(str(folder / f"{lat:.9f}_{lon:.9f}.png"), cv2.cvtColor(image,
                                                                      cv2.COLOR_RGB2BGR))
    (folder / "notes_abc.png").write_bytes(b"")
    (folder / "readme.txt").write_text("x")
    sources = ford_satmap_sources(folder)
    assert len(sources) == 1
    assert sources[0][3] == pytest.approx(nominal_mpp(lat, 19))
    out = tmp_path / "ford"
    build_from_sources(sources, out, progress=False, min_zoom=19)
    rgb, mask = decode_tile((out / "19" / str(centre.x) / f"{centre.y}.png").read_bytes())
    expected = world[centre.y * 256 - oy:(centre.y + 1) * 256 - oy,
                     centre.x * 256 - ox:(centre.x + 1) * 256 - ox]
    assert mask is None and np.array_equal(rgb, expected)
    with pytest.raises(ValueError, match="no <lat>_<lon>.png"):
        ford_satmap_sources(tmp_path)


def test_bad_builder_inputs(tmp_path: Path) -> None:
    image = np.zeros((64, 64, 3), np.uint8)
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "file").write_text("x")
    with pytest.raises(FileExistsError, match="not an empty folder"):
        build_from_image(image, 49.0, 8.4, 0.2, tmp_path / "used", progress=False)
    with pytest.raises(ValueError, match="uint8 RGB"):
        build_from_image(np.zeros((64, 64), np.float32), 49.0, 8.4, 0.2, tmp_path / "a",
                         progress=False)
    with pytest.raises(ValueError, match="mpp > 0"):
        build_from_image(image, 49.0, 8.4, -1.0, tmp_path / "b", progress=False)
    with pytest.raises(ValueError, match="must be finite"):
        build_from_image(image, float("nan"), 8.4, 0.2, tmp_path / "c", progress=False)
    with pytest.raises(ValueError, match="no source images"):
        build_from_sources([], tmp_path / "d", progress=False)
    with pytest.raises(ValueError, match="projection"):
        build_from_sources([(image, 49.0, 8.4, 0.2)], tmp_path / "e", projection="utm")
    satmap = tmp_path / "satmap"
    satmap.mkdir()
    with pytest.raises(ValueError, match="no <frame>.png"):
        kitti_satmap_sources(satmap, tmp_path)
    cv2.imwrite(str(satmap / "0000000000.png"), image)
    with pytest.raises(ValueError, match="no OXTS record"):
        kitti_satmap_sources(satmap, tmp_path)
    (tmp_path / "0000000000.txt").write_text("garbage")
    with pytest.raises(ValueError, match="not a KITTI OXTS record"):
        kitti_satmap_sources(satmap, tmp_path)
    (satmap / "0000000001.png").write_bytes(b"\x89PNG broken")
    (tmp_path / "0000000001.txt").write_text("49.0 8.4 100")
    (tmp_path / "0000000000.txt").write_text("49.0 8.4 100")
    with pytest.raises(ValueError, match="not a readable image"):
        build_from_sources(kitti_satmap_sources(satmap, tmp_path), tmp_path / "f",
                           progress=False)


def test_overviews_average_the_finer_zoom(tmp_path: Path) -> None:
    image = np.zeros((600, 600, 3), np.uint8)
    image[:, :300] = (200, 40, 10)
    image[:, 300:] = (10, 40, 200)
    result = build_from_image(image, 55.0, 12.5, 0.2, tmp_path / "o", progress=False)
    assert result.zoom == 19 and result.min_zoom == 17
    assert set(result.tiles_per_zoom) == {17, 18, 19}
    with SatelliteCache(tmp_path / "o") as cache:
        fine = cache.crop(55.0, 12.5, 0.0, 100, 0.2)
        coarse = cache.crop(55.0, 12.5, 0.0, 50, 0.8)
    assert fine.zoom == 19 and coarse.zoom == 17
    # Same ground, same colours, west half red and east half blue in both.
    assert tuple(coarse.image[25, 5]) == pytest.approx((200, 40, 10), abs=2)
    assert tuple(coarse.image[25, 45]) == pytest.approx((10, 40, 200), abs=2)
    assert tuple(fine.image[50, 10]) == (200, 40, 10)


def test_geotiff_without_rasterio_says_what_to_install(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rasterio", None)  # an import of it raises ImportError
    with pytest.raises(RuntimeError, match="needs rasterio"):
        build_from_geotiff(tmp_path / "x.tif", tmp_path / "out")


def test_geotiff_in_utm_matches_a_pyproj_reference(tmp_path: Path) -> None:
    rasterio = pytest.importorskip("rasterio")

    rng = np.random.default_rng(9)
    noise = cv2.GaussianBlur(rng.standard_normal((500, 600, 3)).astype(np.float32), (0, 0), 2.0)
    image = np.clip(128 + 45 * noise / noise.std(), 0, 255).astype(np.uint8)
    west, north, pixel_m = 455000.0, 5430000.0, 0.3
    path = tmp_path / "ortho.tif"
    transform = rasterio.Affine(pixel_m, 0.0, west, 0.0, -pixel_m, north)
    with rasterio.open(path, "w", driver="GTiff", width=600, height=500, count=3,
                       dtype="uint8", crs="EPSG:32632", transform=transform) as dataset:
        dataset.write(np.transpose(image, (2, 0, 1)))
    result = build_from_geotiff(path, tmp_path / "tiles", progress=False, min_zoom=19)
    to_lonlat = pyproj.Transformer.from_crs(32632, 4326, always_xy=True)
    lon, lat = to_lonlat.transform(west + 300 * pixel_m, north - 250 * pixel_m)
    with SatelliteCache(result.path) as cache:
        crop = cache.crop(lat, lon, 25.0, 128, 0.35)
    # Reference: crop pixel -> geodesic lat/lon -> UTM -> GeoTIFF pixel, with pyproj only.
    c = 64
    u, v = np.meshgrid(np.arange(128.0), np.arange(128.0))
    forward, left = (u - c) * 0.35, -(v - c) * 0.35
    h = np.radians(25.0)
    east = forward * np.cos(h) - left * np.sin(h)
    north_m = forward * np.sin(h) + left * np.cos(h)
    plon, plat, _ = GEOD.fwd(np.full(u.size, lon), np.full(u.size, lat),
                             np.degrees(np.arctan2(east, north_m)).ravel(),
                             np.hypot(east, north_m).ravel())
    ux, uy = pyproj.Transformer.from_crs(4326, 32632, always_xy=True).transform(plon, plat)
    col = ((ux - west) / pixel_m - 0.5).reshape(128, 128).astype(np.float32)
    row = ((north - uy) / pixel_m - 0.5).reshape(128, 128).astype(np.float32)
    expected = cv2.remap(image, col, row, cv2.INTER_LINEAR)
    assert crop.coverage == 1.0
    gray = [cv2.cvtColor(a, cv2.COLOR_RGB2GRAY).astype(np.float64) for a in (crop.image,
                                                                             expected)]
    (dx, dy), _ = cv2.phaseCorrelate(*gray, cv2.createHanningWindow((128, 128), cv2.CV_64F))
    assert np.hypot(dx, dy) < 0.15
    assert np.abs(crop.image.astype(int) - expected).mean() < 6.0


def test_geotiff_nodata_pixels_become_invalid(tmp_path: Path) -> None:
    rasterio = pytest.importorskip("rasterio")
    image = np.full((3, 300, 400), 120, np.uint8)
    image[:, :, :180] = 0  # no data west of column 180, 6 m west of the centre (200)
    west, north, pixel_m = 455000.0, 5430000.0, 0.3
    transform = rasterio.Affine(pixel_m, 0.0, west, 0.0, -pixel_m, north)
    path = tmp_path / "nodata.tif"
    with rasterio.open(path, "w", driver="GTiff", width=400, height=300, count=3,
                       dtype="uint8", crs="EPSG:32632", transform=transform,
                       nodata=0) as dataset:
        dataset.write(image)
    result = build_from_geotiff(path, tmp_path / "tiles", progress=False, min_zoom=19)
    lon, lat = pyproj.Transformer.from_crs(32632, 4326, always_xy=True).transform(
        west + 200.5 * pixel_m, north - 150.5 * pixel_m)
    with SatelliteCache(result.path) as cache:
        crop = cache.crop(lat, lon, 0.0, 64, 0.3)
    # The data edge runs 20 crop pixels west of the centre (32).
    assert not crop.mask[:, :10].any() and crop.mask[:, 14:].all()
    assert (crop.image[crop.mask] == 120).all()
