# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Web Mercator (EPSG:3857) tile arithmetic: tile indices, bounds, global pixels, zoom choice.

Web Mercator applies the spherical Mercator formulas (radius 6378137 m) to WGS84 geodetic
latitude and longitude. Coordinates here are "world" units in [0, 1): x grows east from
longitude -180, y grows south from latitude +85.0511. A global pixel coordinate at zoom z and
tile size T is world * T * 2**z, with pixel edges at integers (pixel i covers [i, i + 1)).
"""

from __future__ import annotations

import math

import numpy as np

EARTH_RADIUS_M = 6378137.0
EQUATOR_M = 2.0 * math.pi * EARTH_RADIUS_M
MAX_LATITUDE_DEG = math.degrees(2.0 * math.atan(math.exp(math.pi)) - math.pi / 2.0)
MAX_ZOOM = 30


def lonlat_to_world(lon: np.ndarray | float, lat: np.ndarray | float
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Return world coordinates (x east, y south, both in [0, 1)) of longitudes/latitudes."""
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.clip(np.asarray(lat, dtype=np.float64), -MAX_LATITUDE_DEG, MAX_LATITUDE_DEG)
    x = (lon + 180.0) / 360.0
    y = 0.5 - np.log(np.tan(np.pi / 4.0 + np.radians(lat) / 2.0)) / (2.0 * np.pi)
    return x, y


def world_to_lonlat(x: np.ndarray | float, y: np.ndarray | float
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Return longitudes/latitudes (degrees) of world coordinates."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    lon = x * 360.0 - 180.0
    lat = np.degrees(2.0 * np.arctan(np.exp((0.5 - y) * 2.0 * np.pi)) - np.pi / 2.0)
    return lon, lat


def tile_for(lon: float, lat: float, zoom: int) -> tuple[int, int]:
    """Return the XYZ tile (x, y) holding a point at a zoom (y grows southward)."""
    n = 1 << zoom
    x, y = lonlat_to_world(lon, lat)
    return (min(max(int(math.floor(float(x) * n)), 0), n - 1),
            min(max(int(math.floor(float(y) * n)), 0), n - 1))


def tile_bounds(zoom: int, x: int, y: int) -> tuple[float, float, float, float]:
    """Return (west, south, east, north) in degrees of XYZ tile (zoom, x, y)."""
    n = float(1 << zoom)
    west, north = world_to_lonlat(x / n, y / n)
    east, south = world_to_lonlat((x + 1) / n, (y + 1) / n)
    return float(west), float(south), float(east), float(north)


def nominal_mpp(lat: float, zoom: float, tile_size: int = 256) -> float:
    """Return Web Mercator's east-west pixel size in metres at a latitude, 2 pi R cos(lat)/(T 2^z).

    This is the customary spherical figure (156543.03392 cos(lat) / 2^z for 256 px tiles); true
    ellipsoidal metres differ by under 0.4 %, which crops account for exactly.
    """
    return EQUATOR_M * math.cos(math.radians(lat)) / (tile_size * 2.0 ** zoom)


def zoom_for_mpp(mpp: float, lat: float, tile_size: int = 256) -> int:
    """Return the coarsest zoom whose pixels are at least as fine as ``mpp`` at a latitude."""
    if not (math.isfinite(mpp) and mpp > 0.0):
        raise ValueError(f"metres per pixel must be a positive number, got {mpp}")
    exact = math.log2(EQUATOR_M * math.cos(math.radians(lat)) / (tile_size * mpp))
    # A hair of tolerance so that a resolution equal to a zoom's own picks that zoom.
    return int(min(max(math.ceil(exact - 1e-6), 0), MAX_ZOOM))


def tile_range(zoom: int, x_min: float, y_min: float, x_max: float, y_max: float
               ) -> tuple[int, int, int, int]:
    """Return the inclusive tile range (x0, y0, x1, y1) covering a world box, clamped."""
    n = 1 << zoom
    return (min(max(int(math.floor(x_min * n)), 0), n - 1),
            min(max(int(math.floor(y_min * n)), 0), n - 1),
            min(max(int(math.floor(x_max * n)), 0), n - 1),
            min(max(int(math.floor(y_max * n)), 0), n - 1))
