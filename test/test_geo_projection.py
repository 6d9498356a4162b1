# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Web Mercator tile arithmetic against mercantile/morecantile; geodesy against pyproj."""

from __future__ import annotations

import math

import mercantile
import morecantile
import numpy as np
import pyproj
import pytest

from denseflow_ros.geo import LocalEnu, Utm
from denseflow_ros.geo.cache import CropGeometry
from denseflow_ros.geo.mercator import (
    lonlat_to_world,
    nominal_mpp,
    tile_bounds,
    tile_for,
    world_to_lonlat,
    zoom_for_mpp,
)
from denseflow_ros.geo.projection import GeodesicPlane, utm_zone

GEOD = pyproj.Geod(ellps="WGS84")
RNG = np.random.default_rng(7)
POINTS = [(float(lon), float(lat), int(z)) for lon, lat, z in zip(
    RNG.uniform(-179.9, 179.9, 40), RNG.uniform(-84.0, 84.0, 40), RNG.integers(0, 23, 40),
    strict=True)]
POINTS += [(8.4, 49.015, 19), (-83.2, 42.3, 18), (10.75, 59.91, 20), (0.0, 0.0, 1)]
WEB_MERCATOR_QUAD = morecantile.tms.get("WebMercatorQuad")


@pytest.mark.parametrize("lon,lat,z", POINTS)
def test_tile_index_and_bounds_match_mercantile(lon: float, lat: float, z: int) -> None:
    expected = mercantile.tile(lon, lat, z)
    assert tile_for(lon, lat, z) == (expected.x, expected.y)
    west, south, east, north = tile_bounds(z, expected.x, expected.y)
    bounds = mercantile.bounds(expected)
    assert west == pytest.approx(bounds.west, abs=1e-9)
    assert south == pytest.approx(bounds.south, abs=1e-9)
    assert east == pytest.approx(bounds.east, abs=1e-9)
    assert north == pytest.approx(bounds.north, abs=1e-9)


@pytest.mark.parametrize("lon,lat,z", POINTS[::4])
def test_tile_index_and_bounds_match_morecantile(lon: float, lat: float, z: int) -> None:
    tile = WEB_MERCATOR_QUAD.tile(lon, lat, z)
    assert tile_for(lon, lat, z) == (tile.x, tile.y)
    bounds = WEB_MERCATOR_QUAD.bounds(tile)
    assert np.allclose(tile_bounds(z, tile.x, tile.y),
                       (bounds.left, bounds.bottom, bounds.right, bounds.top), atol=1e-9)


def test_world_coordinates_match_epsg3857_and_invert() -> None:
    lon = RNG.uniform(-180, 180, 200)
    lat = RNG.uniform(-85, 85, 200)
    x, y = lonlat_to_world(lon, lat)
    mx, my = pyproj.Transformer.from_crs(4326, 3857, always_xy=True).transform(lon, lat)
    half = math.pi * 6378137.0
    assert np.allclose(x, (mx + half) / (2 * half), atol=1e-13, rtol=0)
    assert np.allclose(y, (half - my) / (2 * half), atol=1e-13, rtol=0)
    back_lon, back_lat = world_to_lonlat(x, y)
    assert np.allclose(back_lon, lon, atol=1e-10) and np.allclose(back_lat, lat, atol=1e-10)


@pytest.mark.parametrize("lat", [0.0, 49.015, 60.0])
def test_resolution_and_zoom_choice(lat: float) -> None:
    # morecantile's cell size is the equatorial metres per pixel at each zoom.
    for z in (0, 12, 19):
        cell = WEB_MERCATOR_QUAD.matrix(z).cellSize
        assert nominal_mpp(lat, z) == pytest.approx(cell * math.cos(math.radians(lat)), rel=1e-9)
    mpp = 0.2
    z = zoom_for_mpp(mpp, lat)
    assert nominal_mpp(lat, z) <= mpp < nominal_mpp(lat, z - 1)
    assert zoom_for_mpp(nominal_mpp(lat, 17), lat) == 17
    assert zoom_for_mpp(nominal_mpp(lat, 19, 512), lat, 512) == 19
    with pytest.raises(ValueError, match="positive"):
        zoom_for_mpp(0.0, lat)


def test_kitti_satellite_resolution_is_zoom_19() -> None:
    assert nominal_mpp(49.015, 19) == pytest.approx(0.1958, abs=5e-5)


@pytest.mark.parametrize("lat0,lon0", [(49.015, 8.43), (-33.9, 151.2), (60.0, 10.7), (0.1, 0.1)])
def test_local_enu_round_trip_and_topocentric_agreement(lat0: float, lon0: float) -> None:
    enu = LocalEnu(lat0, lon0)
    east = RNG.uniform(-2000, 2000, 100)
    north = RNG.uniform(-2000, 2000, 100)
    lat, lon = enu.inverse(east, north)
    back_e, back_n = enu.forward(lat, lon)
    assert np.abs(back_e - east).max() < 1e-3 and np.abs(back_n - north).max() < 1e-3
    # Independent reference: pyproj's topocentric ENU of the same ground points.
    topo = pyproj.Transformer.from_pipeline(
        f"+proj=pipeline +step +proj=cart +ellps=WGS84 +step +proj=topocentric "
        f"+ellps=WGS84 +lat_0={lat0} +lon_0={lon0} +h_0=0")
    te, tn, _ = topo.transform(lon, lat, np.zeros_like(lat))
    assert np.abs(te - east).max() < 1e-3 and np.abs(tn - north).max() < 1e-3
    assert enu.forward(lat0, lon0) == pytest.approx((0.0, 0.0), abs=1e-9)
    assert isinstance(enu.forward(lat0, lon0)[0], float)


def test_utm_matches_epsg_and_round_trips() -> None:
    utm = Utm()
    lat, lon = 49.015 + RNG.uniform(-0.5, 0.5, 50), 8.43 + RNG.uniform(-0.5, 0.5, 50)
    east, north = utm.forward(lat, lon)
    assert utm.zone == 32 and not utm.south and utm.epsg == 32632
    ref_e, ref_n = pyproj.Transformer.from_crs(4326, 32632, always_xy=True).transform(lon, lat)
    assert np.allclose(east, ref_e, atol=1e-6) and np.allclose(north, ref_n, atol=1e-6)
    back_lat, back_lon = utm.inverse(east, north)
    assert np.abs(np.asarray(back_lat) - lat).max() * 111e3 < 1e-3
    assert np.abs(np.asarray(back_lon) - lon).max() * 111e3 * math.cos(0.86) < 1e-3
    fixed = Utm(zone=33)
    east33, _ = fixed.forward(49.0, 8.43)
    assert east33 < 300000  # far west of zone 33's central meridian
    with pytest.raises(ValueError, match="zone"):
        Utm().inverse(500000.0, 5400000.0)


def test_utm_zone_exceptions() -> None:
    assert utm_zone(49.0, 8.4) == (32, False)
    assert utm_zone(60.0, 5.0) == (32, False)  # Norway
    assert utm_zone(78.0, 15.0) == (33, False)  # Svalbard
    assert utm_zone(-33.9, 151.2) == (56, True)
    with pytest.raises(ValueError, match="-80..84"):
        utm_zone(85.0, 0.0)


@pytest.mark.parametrize("lat,lon", [(49.015, 8.43), (49.015, 11.9), (-33.9, 151.2),
                                     (60.0, 5.0)])
def test_meridian_convergence_matches_grid_direction_of_true_north(lat: float,
                                                                   lon: float) -> None:
    utm = Utm()
    e0, n0 = utm.forward(lat, lon)
    lon1, lat1, _ = GEOD.fwd(lon, lat, 0.0, 10.0)  # 10 m due true north
    e1, n1 = utm.forward(lat1, lon1)
    # True north seen in the grid lies at the grid azimuth -convergence.
    true_north_grid_azimuth = math.degrees(math.atan2(e1 - e0, n1 - n0))
    gamma = utm.convergence_deg(lat, lon)
    assert gamma == pytest.approx(-true_north_grid_azimuth, abs=1e-5)
    assert (gamma > 0) == ((lon > utm_central_meridian(utm.zone)) == (lat > 0))
    # A true-east yaw (0) becomes a grid yaw of +gamma; the inverse undoes it.
    grid_yaw = utm.yaw_true_to_grid_rad(0.0, lat, lon)
    lon2, lat2, _ = GEOD.fwd(lon, lat, 90.0, 10.0)
    e2, n2 = utm.forward(lat2, lon2)
    assert grid_yaw == pytest.approx(math.atan2(n2 - n0, e2 - e0), abs=1e-6)
    assert utm.yaw_grid_to_true_rad(grid_yaw, lat, lon) == pytest.approx(0.0, abs=1e-12)


def utm_central_meridian(zone: int) -> float:
    return -183.0 + 6.0 * zone


def test_geodesic_plane_round_trip_and_distances() -> None:
    plane = GeodesicPlane(60.0, 10.0)
    east, north = RNG.uniform(-500, 500, 50), RNG.uniform(-500, 500, 50)
    lat, lon = plane.inverse(east, north)
    az, _, dist = GEOD.inv(np.full(50, 10.0), np.full(50, 60.0), lon, lat)
    assert np.allclose(dist, np.hypot(east, north), atol=1e-6)
    back_e, back_n = plane.forward(lat, lon)
    assert np.abs(back_e - east).max() < 1e-6 and np.abs(back_n - north).max() < 1e-6


@pytest.mark.parametrize("heading", [0.0, 90.0, -135.0, 30.0])
def test_crop_geometry_follows_the_frame_conventions(heading: float) -> None:
    geometry = CropGeometry(49.0, 8.4, heading, 512, 0.2)
    assert geometry.centre_px == 256.0
    h = math.radians(heading)
    # One pixel along +u moves mpp along the heading; one along +v moves mpp to the right.
    east, north = geometry.pixel_to_offset(257.0, 256.0)
    assert (east, north) == pytest.approx((0.2 * math.cos(h), 0.2 * math.sin(h)), abs=1e-12)
    east, north = geometry.pixel_to_offset(256.0, 257.0)
    assert (east, north) == pytest.approx((0.2 * math.sin(h), -0.2 * math.cos(h)), abs=1e-12)
    u = RNG.uniform(0, 511, 20)
    v = RNG.uniform(0, 511, 20)
    back_u, back_v = geometry.offset_to_pixel(*geometry.pixel_to_offset(u, v))
    assert np.allclose(back_u, u) and np.allclose(back_v, v)
    lat, lon = geometry.pixel_to_latlon(u, v)
    back_u, back_v = geometry.latlon_to_pixel(lat, lon)
    assert np.allclose(back_u, u, atol=1e-6) and np.allclose(back_v, v, atol=1e-6)
    east, north = geometry.pixel_to_offset(u, v)
    az, _, dist = GEOD.inv(np.full(20, 8.4), np.full(20, 49.0), lon, lat)
    assert np.allclose(dist, np.hypot(east, north), atol=1e-6)
    assert np.allclose(np.sin(np.radians(az)) * dist, east, atol=1e-6)


def test_heading_zero_is_north_up() -> None:
    geometry = CropGeometry(49.0, 8.4, 0.0, 512, 0.5)
    lat_top, lon_top = geometry.pixel_to_latlon(256.0, 0.0)
    lat_right, lon_right = geometry.pixel_to_latlon(511.0, 256.0)
    assert lat_top > 49.0 and lon_top == pytest.approx(8.4, abs=1e-9)
    assert lon_right > 8.4 and lat_right == pytest.approx(49.0, abs=1e-6)
