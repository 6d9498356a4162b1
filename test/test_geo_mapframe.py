# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The map frame: ENU at a datum and UTM zones (southern hemisphere, Norway), both ways."""

from __future__ import annotations

import math

import pytest
from pyproj import Transformer
from test_node_support import move

from denseflow_ros.geo.mapframe import MapFrame
from denseflow_ros.geo.projection import offset_latlon

SYDNEY = (-33.8688, 151.2093)  # zone 56 south, EPSG:32756
BERGEN = (60.3913, 5.3221)  # zone 32V by the Norway exception; 31 by longitude alone


def _utm(epsg: int, lat: float, lon: float) -> tuple[float, float]:
    return Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True).transform(lon, lat)


def _drive(start: tuple[float, float]) -> list[tuple[float, float]]:
    """Points of a 2 km drive north-east from ``start``."""
    return [move(*start, 100.0 * i, 70.0 * i) for i in range(21)]


@pytest.mark.parametrize(("start", "zone", "south", "epsg"), [
    (SYDNEY, 56, True, 32756), (BERGEN, 32, False, 32632)])
def test_utm_zone_from_the_first_fix(start: tuple[float, float], zone: int, south: bool,
                                     epsg: int) -> None:
    frame = MapFrame("utm")
    assert not frame.ready and frame.datum is None
    for lat, lon in _drive(start):
        frame.ensure(lat, lon)
        x, y = frame.forward(lat, lon)
        ex, ey = _utm(epsg, lat, lon)
        assert math.hypot(x - ex, y - ey) < 1e-6
        back = frame.inverse(x, y)
        assert back == pytest.approx((lat, lon), abs=1e-9)
    assert (frame.utm_zone, frame.utm_south, frame.datum) == (zone, south, start)
    if south:
        assert 1e6 < y < 1e7  # false northing: positive southern northings
    else:
        assert 5e5 > x > 2e5  # Bergen sits west of zone 32's central meridian (9 deg E)


def test_utm_zone_from_a_configured_datum_or_number() -> None:
    assert MapFrame("utm", SYDNEY).utm_zone == 56
    assert MapFrame("utm", BERGEN).utm_zone == 32
    # A fixed zone keeps its number; the datum's hemisphere still decides north or south.
    fixed = MapFrame("utm", SYDNEY, utm_zone=55)
    assert (fixed.utm_zone, fixed.utm_south) == (55, True)
    x, y = fixed.forward(*SYDNEY)
    assert math.hypot(x - _utm(32755, *SYDNEY)[0], y - _utm(32755, *SYDNEY)[1]) < 1e-6


@pytest.mark.parametrize("datum", [SYDNEY, BERGEN])
def test_enu_plane_is_metric_at_its_datum_and_inverts(datum: tuple[float, float]) -> None:
    frame = MapFrame("enu", datum)
    assert frame.forward(*datum) == pytest.approx((0.0, 0.0), abs=1e-9)
    lat, lon = move(*datum, 300.0, -400.0)
    x, y = frame.forward(lat, lon)
    assert (x, y) == pytest.approx((300.0, -400.0), abs=0.01)
    assert frame.inverse(x, y) == pytest.approx((lat, lon), abs=1e-9)
    assert frame.utm_south is None


def test_a_frame_without_datum_refuses_points_and_bad_kinds_are_refused() -> None:
    with pytest.raises(ValueError, match="no datum"):
        MapFrame("enu").forward(*BERGEN)
    with pytest.raises(ValueError, match="'enu' or 'utm'"):
        MapFrame("lambert")


@pytest.mark.parametrize("point", [SYDNEY, BERGEN, (0.0, 0.0)])
def test_offset_latlon_matches_the_geodesic_over_metres(point: tuple[float, float]) -> None:
    for east, north in ((3.0, 0.0), (0.0, -5.0), (-2.5, 4.0)):
        assert offset_latlon(*point, east, north) == \
            pytest.approx(move(*point, east, north), abs=1e-10)  # about 10 micrometres
