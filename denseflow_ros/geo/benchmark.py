# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Crop benchmark for ``make bench``: warm 512 x 512 crop time against same-run baselines.

A synthetic 2000 x 2000 px image (0.2 m/px) is turned into a tile cache in a temporary
folder, at the KITTI latitude and at 60 deg N (where crops low-pass the finer tiles).
Reported as medians: the warm crop (tiles already decoded, mosaic built afresh), the crop
along a drive with frames 1 m apart (the mosaic reused between rebuilds), the cold crop (a
fresh cache, so every tile is read and decoded), and a naive path that rotates the whole tile
mosaic and then resizes it (two resampling passes), run on the same warm tiles.
"""

from __future__ import annotations

import math
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from denseflow_ros.geo.builders import build_from_image
from denseflow_ros.geo.cache import SatelliteCache
from denseflow_ros.geo.mercator import lonlat_to_world
from denseflow_ros.geo.projection import GeodesicPlane

SIZE_PX = 512
MPP = 0.2
LAT, LON = 49.015, 8.43


def _median_ms(function: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def _naive_crop(cache: SatelliteCache, lat: float, lon: float, heading_deg: float) -> np.ndarray:
    """Mosaic -> rotate about the centre -> resize -> cut out: the path crops avoid."""
    import cv2

    zoom = cache.choose_zoom(MPP, lat)
    tile_px = cache.source.tile_size
    wx, wy = lonlat_to_world(lon, lat)
    cx, cy = float(wx) * tile_px * (1 << zoom), float(wy) * tile_px * (1 << zoom)
    source_mpp = 2 * math.pi * 6378137.0 * math.cos(math.radians(lat)) / (tile_px << zoom)
    reach = SIZE_PX * MPP / source_mpp * math.sqrt(0.5) + 2
    tx0, tx1 = int((cx - reach) // tile_px), int((cx + reach) // tile_px)
    ty0, ty1 = int((cy - reach) // tile_px), int((cy + reach) // tile_px)
    mosaic, _ = cache._mosaic(zoom, (tx0 * tile_px, ty0 * tile_px, (tx1 + 1) * tile_px,
                                     (ty1 + 1) * tile_px))
    centre = (cx - tx0 * tile_px - 0.5, cy - ty0 * tile_px - 0.5)
    rotation = cv2.getRotationMatrix2D(centre, -heading_deg, 1.0)
    rotated = cv2.warpAffine(mosaic, rotation, mosaic.shape[1::-1], flags=cv2.INTER_LINEAR)
    scale = source_mpp / MPP
    resized = cv2.resize(rotated, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    u0 = int(round(centre[0] * scale)) - SIZE_PX // 2
    v0 = int(round(centre[1] * scale)) - SIZE_PX // 2
    return resized[v0:v0 + SIZE_PX, u0:u0 + SIZE_PX]


def run(report: Callable[[str], None]) -> None:
    """Measure crop times and report them with ratios against same-run baselines."""
    for lat, note in ((LAT, "KITTI latitude: tiles 2 % finer, bilinear"),
                      (60.0, "60 deg N: tiles 34 % finer, low-pass first")):
        _run_at(lat, note, report)


def _run_at(lat0: float, note: str, report: Callable[[str], None]) -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (2000, 2000, 3), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "tiles"
        build_from_image(image, lat0, LON, MPP, path, progress=False, min_zoom=19)
        headings = [float(h) for h in rng.uniform(-180.0, 180.0, 64)]
        positions = [(lat0 + float(d), LON + float(e)) for d, e in
                     zip(rng.uniform(-1e-4, 1e-4, 64), rng.uniform(-1e-4, 1e-4, 64), strict=True)]
        # Crops 120 m apart never share a mosaic; a drive's frames 1 m apart mostly do.
        far = [_offset(lat0, LON, 60.0 * (-1) ** i, 0.0) for i in range(64)]
        drive = [(*_offset(lat0, LON, (i - 60) * math.cos(0.5), (i - 60) * math.sin(0.5)),
                  math.degrees(0.5) + float(rng.normal(0.0, 2.0))) for i in range(120)]

        def cold() -> None:
            with SatelliteCache(path, cache_mb=64) as fresh:
                fresh.crop(*positions[0], headings[0], SIZE_PX, MPP)

        cold_ms = _median_ms(cold, 7)
        with SatelliteCache(path, cache_mb=256) as cache:
            # Decode every tile once: the rest is warm.
            for (lat, lon), heading in zip(positions + far, headings + headings, strict=True):
                cache.crop(lat, lon, heading, SIZE_PX, MPP)
            for lat, lon, heading in drive:
                cache.crop(lat, lon, heading, SIZE_PX, MPP)
            index = iter(range(10**9))

            def warm() -> None:
                i = next(index) % len(headings)
                cache.crop(*far[i], headings[i], SIZE_PX, MPP)

            def naive() -> None:
                i = next(index) % len(headings)
                _naive_crop(cache, *positions[i], headings[i])

            warm_ms = _median_ms(warm, 40)
            frames = iter(drive)
            drive_ms = _median_ms(lambda: cache.crop(*next(frames), SIZE_PX, MPP), len(drive))
            naive_ms = _median_ms(naive, 30)
    report(f"crop {SIZE_PX}x{SIZE_PX} at {MPP} m/px ({note}), warm tiles, new mosaic: "
           f"median {warm_ms:.2f} ms (target < 10 ms)")
    report(f"  along a drive, 1 m between frames (mosaic reused, rebuilt every few metres): "
           f"median {drive_ms:.2f} ms = {drive_ms / warm_ms:.2f}x")
    report(f"  cold crop (fresh cache, decode tiles): {cold_ms:.2f} ms = "
           f"{cold_ms / warm_ms:.1f}x")
    report(f"  naive mosaic -> rotate -> resize on warm tiles: {naive_ms:.2f} ms = "
           f"{naive_ms / warm_ms:.1f}x")


def _offset(lat: float, lon: float, east_m: float, north_m: float) -> tuple[float, float]:
    offset_lat, offset_lon = GeodesicPlane(lat, lon).inverse(east_m, north_m)
    return float(offset_lat), float(offset_lon)
