# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Crops from tile caches against crops computed directly from the source image with pyproj."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pyproj
import pytest

from denseflow_ros.geo import SatelliteCache
from denseflow_ros.geo import cache as cache_module
from denseflow_ros.geo.builders import build_from_image

GEOD = pyproj.Geod(ellps="WGS84")
IMAGE_MPP = 0.25
IMAGE_PX = 720
LATITUDES = (10.0, 45.0, 60.0)
LON = 7.3


def synthetic_image(seed: int, size: int = IMAGE_PX) -> np.ndarray:
    """Smooth random texture: detail at a few pixels, so sub-pixel shifts are measurable."""
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.standard_normal((size, size, 3)).astype(np.float32), (0, 0),
                             2.0)
    noise = (noise - noise.mean()) / noise.std()
    return np.clip(128 + 45 * noise, 0, 255).astype(np.uint8)


def reference_crop(image: np.ndarray, image_lat: float, image_lon: float, image_mpp: float,
                   lat: float, lon: float, heading_deg: float, size: int, mpp: float
                   ) -> np.ndarray:
    """Sample the source image at each crop pixel's ground point, from pyproj geodesics only."""
    c = size // 2
    u, v = np.meshgrid(np.arange(size, dtype=np.float64), np.arange(size, dtype=np.float64))
    forward, left = (u - c) * mpp, -(v - c) * mpp
    h = math.radians(heading_deg)
    east = forward * math.cos(h) - left * math.sin(h)
    north = forward * math.sin(h) + left * math.cos(h)
    n = east.size
    plon, plat, _ = GEOD.fwd(np.full(n, lon), np.full(n, lat),
                             np.degrees(np.arctan2(east, north)).ravel(),
                             np.hypot(east, north).ravel())
    az, _, dist = GEOD.inv(np.full(n, image_lon), np.full(n, image_lat), plon, plat)
    az = np.radians(az)
    col = image.shape[1] // 2 + dist * np.sin(az) / image_mpp
    row = image.shape[0] // 2 - dist * np.cos(az) / image_mpp
    scale = mpp / image_mpp
    source = image if scale <= 1.05 else cv2.GaussianBlur(
        image, (0, 0), 0.5 * math.sqrt(scale * scale - 1))
    return cv2.remap(source, col.reshape(size, size).astype(np.float32),
                     row.reshape(size, size).astype(np.float32), cv2.INTER_LINEAR)


def shift_px(a: np.ndarray, b: np.ndarray) -> float:
    """Return the magnitude of the sub-pixel translation between two crops."""
    ga = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY).astype(np.float64)
    gb = cv2.cvtColor(b, cv2.COLOR_RGB2GRAY).astype(np.float64)
    window = cv2.createHanningWindow(ga.shape[::-1], cv2.CV_64F)
    (dx, dy), _ = cv2.phaseCorrelate(ga, gb, window)
    return math.hypot(dx, dy)


def quadrant_shifts(a: np.ndarray, b: np.ndarray) -> list[float]:
    """Shifts of the four quadrants: a scale or rotation error moves them apart."""
    h = a.shape[0] // 2
    return [shift_px(a[r:r + h, q:q + h], b[r:r + h, q:q + h]) for r in (0, h) for q in (0, h)]


@pytest.fixture(scope="module", params=LATITUDES, ids=lambda lat: f"lat{lat:g}")
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> tuple[float, np.ndarray, Path]:
    lat = request.param
    image = synthetic_image(int(lat))
    out = tmp_path_factory.mktemp(f"lat{lat:g}") / "xyz"
    build_from_image(image, lat, LON, IMAGE_MPP, out, progress=False)
    return lat, image, out


@pytest.mark.parametrize("heading,mpp,size", [(0.0, 0.25, 256), (37.0, 0.3, 256),
                                              (90.0, 0.2, 256), (-151.0, 0.5, 160)])
def test_crop_matches_direct_pyproj_crop(world: tuple[float, np.ndarray, Path], heading: float,
                                         mpp: float, size: int) -> None:
    lat0, image, path = world
    # Centre the crop off the image centre so offsets, not just rotation, are exercised.
    lon, lat, _ = GEOD.fwd(LON, lat0, 63.0, 14.2)
    with SatelliteCache(path, cache_mb=16) as cache:
        crop = cache.crop(lat, lon, heading, size, mpp)
    expected = reference_crop(image, lat0, LON, IMAGE_MPP, lat, lon, heading, size, mpp)
    assert crop.coverage == 1.0 and crop.mask.all()
    assert crop.image.shape == (size, size, 3) and crop.image.dtype == np.uint8
    assert shift_px(crop.image, expected) < 0.1
    assert max(quadrant_shifts(crop.image, expected)) < 0.2
    difference = np.abs(crop.image.astype(np.int16) - expected.astype(np.int16))
    assert difference.mean() < 4.0  # of a texture with a grey-level spread of 45


def test_agreement_measure_detects_a_small_scale_error(world: tuple[float, np.ndarray, Path]
                                                       ) -> None:
    # A 0.5 % scale error (Web Mercator's north-south anisotropy is up to 0.34 %) must show.
    lat, image, path = world
    with SatelliteCache(path, cache_mb=16) as cache:
        crop = cache.crop(lat, LON, 20.0, 256, 0.25)
    wrong = reference_crop(image, lat, LON, IMAGE_MPP, lat, LON, 20.0, 256, 0.25 * 1.005)
    assert max(quadrant_shifts(crop.image, wrong)) > 0.25


def test_partial_coverage_matches_the_image_footprint(world: tuple[float, np.ndarray, Path]
                                                      ) -> None:
    lat0, image, path = world
    half_m = IMAGE_PX // 2 * IMAGE_MPP
    # Centre the crop on the image's east edge: the western half is covered.
    lon, lat, _ = GEOD.fwd(LON, lat0, 90.0, half_m)
    with SatelliteCache(path, cache_mb=16) as cache:
        crop = cache.crop(lat, lon, 0.0, 200, 0.25)
    assert 0.45 < crop.coverage < 0.55
    assert crop.mask[:, :95].all() and not crop.mask[:, 105:].any()
    assert (crop.image[~crop.mask] == 0).all()
    assert crop.coverage == pytest.approx(crop.mask.mean())
    with SatelliteCache(path, cache_mb=16) as cache:
        far = cache.crop(lat0 + 1.0, LON, 0.0, 64, 0.25)
    assert far.coverage == 0.0 and not far.mask.any() and not far.image.any()


@pytest.fixture(scope="module")
def large_world(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, Path]:
    # 1.6 km at 1 m/px and 60 deg north: the crop's map into the tiles is visibly curved.
    image = synthetic_image(60, size=1600)
    out = tmp_path_factory.mktemp("large") / "xyz"
    build_from_image(image, 60.0, LON, 1.0, out, progress=False, min_zoom=16)
    return image, out


@pytest.mark.parametrize("path", ["quadratic", "exact"])
def test_large_crop_matches_reference(large_world: tuple[np.ndarray, Path], path: str,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    image, tiles = large_world
    if path == "exact":
        monkeypatch.setattr(cache_module, "_FIT_TOLERANCE_PX", -1.0)
    lon, lat, _ = GEOD.fwd(LON, 60.0, 200.0, 40.0)
    with SatelliteCache(tiles, cache_mb=64) as cache:
        crop = cache.crop(lat, lon, 37.0, 768, 1.5)
    expected = reference_crop(image, 60.0, LON, 1.0, lat, lon, 37.0, 768, 1.5)
    window = (slice(128, 640), slice(128, 640))
    assert crop.mask[window].all()
    assert shift_px(crop.image[window], expected[window]) < 0.1
    assert max(quadrant_shifts(crop.image[window], expected[window])) < 0.2


def test_affine_and_remap_paths_agree(world: tuple[float, np.ndarray, Path],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    lat, _, path = world
    with SatelliteCache(path, cache_mb=16) as cache:
        fast = cache.crop(lat, LON, 21.0, 200, 0.27)
        monkeypatch.setattr(cache_module, "_AFFINE_TOLERANCE_PX", -1.0)
        remapped = cache.crop(lat, LON, 21.0, 200, 0.27)
    assert np.abs(fast.image.astype(int) - remapped.image).max() <= 2


def test_downsampling_crops_are_anti_aliased(tmp_path: Path) -> None:
    # Two-pixel stripes at the tiles' resolution: sampled 3.5x coarser without a low-pass they
    # alias into full-contrast moire; a low-passed crop is close to flat grey.
    stripes = np.zeros((500, 500, 3), np.uint8)
    stripes[:, ::2] = 255
    build_from_image(stripes, 49.0, LON, 0.2, tmp_path / "s", progress=False, min_zoom=19)
    with SatelliteCache(tmp_path / "s") as cache:
        crop = cache.crop(49.0, LON, 10.0, 64, 0.7)
        assert crop.zoom == 19
        fine = cache.crop(49.0, LON, 0.0, 64, 0.196)
    assert crop.image.std() < 12.0 and abs(crop.image.mean() - 127.5) < 8.0
    assert fine.image.std() > 25.0  # at the tiles' own resolution the stripes stay


def test_reused_low_passed_mosaic_gives_the_same_crop(world: tuple[float, np.ndarray, Path]
                                                      ) -> None:
    lat0, _, path = world
    lon1, lat1, _ = GEOD.fwd(LON, lat0, 45.0, 3.0)
    with SatelliteCache(path, cache_mb=16) as shared:
        shared.crop(lat0, LON, 10.0, 192, 0.33)
        reused = shared.crop(lat1, lon1, 14.0, 192, 0.33)
        assert shared._prepared is not None
    with SatelliteCache(path, cache_mb=16) as fresh:
        alone = fresh.crop(lat1, lon1, 14.0, 192, 0.33)
    assert reused.coverage == alone.coverage == 1.0
    assert np.abs(reused.image.astype(int) - alone.image).max() <= 1
