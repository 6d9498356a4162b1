# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Map projections on pyproj: a local ENU plane at a datum, UTM, and geodesic offsets.

- :class:`LocalEnu` is a transverse Mercator plane with scale 1 at the datum: east/north in
  metres, conformal (headings in the plane are true headings), and within a few kilometres of
  the datum it agrees with the topocentric ENU tangent plane to well under a millimetre.
- :class:`Utm` is UTM on WGS84, its zone chosen from the first point (or fixed), with the
  meridian convergence to turn ENU yaw between true north and grid north.
- :class:`GeodesicPlane` maps offsets around a point by geodesic azimuth and distance
  (azimuthal equidistant). It needs no projection object, so building one costs nothing; crops
  use it for their local tangent plane.
- :func:`offset_latlon` moves a point a few metres east/north to first order, for lever arms.
"""

from __future__ import annotations

import math

import numpy as np
import pyproj

_WGS84 = pyproj.CRS.from_epsg(4326)
_GEOD = pyproj.Geod(ellps="WGS84")


def offset_latlon(lat: float, lon: float, east_m: float, north_m: float) -> tuple[float, float]:
    """Return the lat/lon a few metres (east, north) away from (lat, lon) on WGS84.

    First order in the offset, through the ellipsoid's radii of curvature at ``lat``: over a
    few metres that is exact to well below a millimetre, and it costs no projection call.
    """
    phi = math.radians(lat)
    a, e2 = _GEOD.a, _GEOD.es
    s2 = math.sin(phi) ** 2
    n = a / math.sqrt(1.0 - e2 * s2)  # prime vertical radius
    m = a * (1.0 - e2) / (1.0 - e2 * s2) ** 1.5  # meridian radius
    return lat + math.degrees(north_m / m), lon + math.degrees(east_m / (n * math.cos(phi)))


def _out(values: np.ndarray, scalar: bool) -> np.ndarray | float:
    return float(values) if scalar else values


def _is_scalar(*values: object) -> bool:
    return all(np.ndim(v) == 0 for v in values)


class LocalEnu:
    """A local east/north plane (metres) at a datum ``(lat0, lon0)``."""

    def __init__(self, lat0: float, lon0: float) -> None:
        """Set up the plane's projections at the datum."""
        if not (math.isfinite(lat0) and math.isfinite(lon0) and abs(lat0) < 90.0):
            raise ValueError(f"datum must be a finite latitude/longitude, got {lat0}, {lon0}")
        self.lat0 = float(lat0)
        self.lon0 = float(lon0)
        plane = pyproj.CRS.from_proj4(
            f"+proj=tmerc +lat_0={self.lat0!r} +lon_0={self.lon0!r} +k=1 +x_0=0 +y_0=0 "
            "+ellps=WGS84 +units=m +no_defs")
        self._fwd = pyproj.Transformer.from_crs(_WGS84, plane, always_xy=True)
        self._inv = pyproj.Transformer.from_crs(plane, _WGS84, always_xy=True)

    def __repr__(self) -> str:
        """Return the constructor call."""
        return f"LocalEnu(lat0={self.lat0!r}, lon0={self.lon0!r})"

    def forward(self, lat: np.ndarray | float, lon: np.ndarray | float
                ) -> tuple[np.ndarray | float, np.ndarray | float]:
        """Return (east_m, north_m) of latitudes/longitudes (degrees)."""
        scalar = _is_scalar(lat, lon)
        east, north = self._fwd.transform(np.asarray(lon, float), np.asarray(lat, float))
        return _out(np.asarray(east), scalar), _out(np.asarray(north), scalar)

    def inverse(self, east: np.ndarray | float, north: np.ndarray | float
                ) -> tuple[np.ndarray | float, np.ndarray | float]:
        """Return (lat, lon) in degrees of plane coordinates (metres)."""
        scalar = _is_scalar(east, north)
        lon, lat = self._inv.transform(np.asarray(east, float), np.asarray(north, float))
        return _out(np.asarray(lat), scalar), _out(np.asarray(lon), scalar)


def utm_zone(lat: float, lon: float) -> tuple[int, bool]:
    """Return the UTM (zone, south) of a point, with the Norway and Svalbard exceptions."""
    if not (math.isfinite(lat) and math.isfinite(lon) and -80.0 <= lat <= 84.0):
        raise ValueError(f"UTM covers latitudes -80..84 degrees, got {lat}")
    lon = (lon + 180.0) % 360.0 - 180.0
    zone = int((lon + 180.0) // 6.0) + 1
    if 56.0 <= lat < 64.0 and 3.0 <= lon < 12.0:
        zone = 32
    elif 72.0 <= lat <= 84.0 and 0.0 <= lon < 42.0:
        zone = 31 if lon < 9.0 else 33 if lon < 21.0 else 35 if lon < 33.0 else 37
    return min(zone, 60), lat < 0.0


class Utm:
    """UTM on WGS84; the zone is fixed, or chosen from the first point converted."""

    def __init__(self, zone: int | None = None, south: bool = False) -> None:
        """Fix the zone now, or leave it to the first point converted."""
        self.zone: int | None = None
        self.south = bool(south)
        self._fwd: pyproj.Transformer | None = None
        self._inv: pyproj.Transformer | None = None
        self._proj: pyproj.Proj | None = None
        if zone is not None:
            self._set_zone(int(zone), self.south)

    def __repr__(self) -> str:
        """Return the constructor call."""
        return f"Utm(zone={self.zone!r}, south={self.south!r})"

    @property
    def epsg(self) -> int | None:
        """Return the EPSG code of the zone (326zz north, 327zz south), or None if unset."""
        return None if self.zone is None else (32700 if self.south else 32600) + self.zone

    def _set_zone(self, zone: int, south: bool) -> None:
        if not 1 <= zone <= 60:
            raise ValueError(f"UTM zone must be 1..60, got {zone}")
        self.zone, self.south = zone, south
        crs = pyproj.CRS.from_epsg(self.epsg)
        self._fwd = pyproj.Transformer.from_crs(_WGS84, crs, always_xy=True)
        self._inv = pyproj.Transformer.from_crs(crs, _WGS84, always_xy=True)
        self._proj = pyproj.Proj(crs)

    def _ensure_zone(self, lat: np.ndarray | float, lon: np.ndarray | float) -> None:
        if self.zone is None:
            first_lat = float(np.ravel(lat)[0])
            first_lon = float(np.ravel(lon)[0])
            self._set_zone(*utm_zone(first_lat, first_lon))

    def forward(self, lat: np.ndarray | float, lon: np.ndarray | float
                ) -> tuple[np.ndarray | float, np.ndarray | float]:
        """Return (easting_m, northing_m) of latitudes/longitudes in this zone."""
        self._ensure_zone(lat, lon)
        scalar = _is_scalar(lat, lon)
        east, north = self._fwd.transform(np.asarray(lon, float), np.asarray(lat, float))
        return _out(np.asarray(east), scalar), _out(np.asarray(north), scalar)

    def inverse(self, easting: np.ndarray | float, northing: np.ndarray | float
                ) -> tuple[np.ndarray | float, np.ndarray | float]:
        """Return (lat, lon) of UTM coordinates; the zone must be known."""
        if self._inv is None:
            raise ValueError("UTM zone is not set: give Utm(zone=...) or convert a point first")
        scalar = _is_scalar(easting, northing)
        lon, lat = self._inv.transform(np.asarray(easting, float), np.asarray(northing, float))
        return _out(np.asarray(lat), scalar), _out(np.asarray(lon), scalar)

    def convergence_deg(self, lat: np.ndarray | float, lon: np.ndarray | float
                        ) -> np.ndarray | float:
        """Return the meridian convergence: the angle from true north to grid north, degrees.

        Positive where grid north lies clockwise (east) of true north, as east of the central
        meridian in the northern hemisphere. An ENU yaw (counter-clockwise from east) therefore
        converts as ``yaw_grid = yaw_true + convergence``.
        """
        self._ensure_zone(lat, lon)
        scalar = _is_scalar(lat, lon)
        factors = self._proj.get_factors(np.asarray(lon, float), np.asarray(lat, float))
        gamma = np.asarray(factors.meridian_convergence, dtype=np.float64)
        return _out(gamma, scalar)

    def yaw_true_to_grid_rad(self, yaw_rad: float, lat: float, lon: float) -> float:
        """Turn an ENU yaw about true north into a yaw about this zone's grid north."""
        return float(yaw_rad + math.radians(float(self.convergence_deg(lat, lon))))

    def yaw_grid_to_true_rad(self, yaw_rad: float, lat: float, lon: float) -> float:
        """Turn a yaw about this zone's grid north into an ENU yaw about true north."""
        return float(yaw_rad - math.radians(float(self.convergence_deg(lat, lon))))


class GeodesicPlane:
    """East/north offsets (metres) around a point, by geodesic azimuth and distance."""

    def __init__(self, lat0: float, lon0: float) -> None:
        """Centre the offsets on (lat0, lon0)."""
        self.lat0 = float(lat0)
        self.lon0 = float(lon0)

    def inverse(self, east: np.ndarray | float, north: np.ndarray | float
                ) -> tuple[np.ndarray | float, np.ndarray | float]:
        """Return (lat, lon) of offsets from the centre."""
        scalar = _is_scalar(east, north)
        east = np.asarray(east, dtype=np.float64)
        north = np.asarray(north, dtype=np.float64)
        shape = np.broadcast(east, north).shape
        east, north = np.broadcast_to(east, shape).ravel(), np.broadcast_to(north, shape).ravel()
        azimuth = np.degrees(np.arctan2(east, north))
        lon, lat, _ = _GEOD.fwd(np.full(east.size, self.lon0), np.full(east.size, self.lat0),
                                azimuth, np.hypot(east, north))
        lat, lon = np.asarray(lat).reshape(shape), np.asarray(lon).reshape(shape)
        return _out(lat, scalar), _out(lon, scalar)

    def forward(self, lat: np.ndarray | float, lon: np.ndarray | float
                ) -> tuple[np.ndarray | float, np.ndarray | float]:
        """Return (east_m, north_m) offsets of latitudes/longitudes from the centre."""
        scalar = _is_scalar(lat, lon)
        lat = np.asarray(lat, dtype=np.float64)
        lon = np.asarray(lon, dtype=np.float64)
        shape = np.broadcast(lat, lon).shape
        lat, lon = np.broadcast_to(lat, shape).ravel(), np.broadcast_to(lon, shape).ravel()
        azimuth, _, distance = _GEOD.inv(np.full(lat.size, self.lon0),
                                         np.full(lat.size, self.lat0), lon, lat)
        azimuth = np.radians(np.asarray(azimuth))
        distance = np.asarray(distance)
        east = (distance * np.sin(azimuth)).reshape(shape)
        north = (distance * np.cos(azimuth)).reshape(shape)
        return _out(east, scalar), _out(north, scalar)
