# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The planar map frame poses are published in: a local ENU plane at a datum, or one UTM zone.

The datum is configured or taken from the first point. In UTM the zone comes from the datum
(with the Norway and Svalbard exceptions, south of the equator the southern zone) unless it is
fixed, and stays for the whole run, so a drive across a zone border stays continuous.
"""

from __future__ import annotations

from collections.abc import Sequence

from denseflow_ros.geo.projection import LocalEnu, Utm, utm_zone

MAP_PROJECTIONS = ("enu", "utm")


class MapFrame:
    """A planar map frame: a local ENU plane at a datum, or a fixed UTM zone."""

    def __init__(self, kind: str, datum: Sequence[float] | None = None,
                 utm_zone: int = 0) -> None:
        """Fix the frame now when ``datum`` (lat, lon) is given, else at the first point."""
        if kind not in MAP_PROJECTIONS:
            raise ValueError(f"map projection must be 'enu' or 'utm', got {kind!r}")
        self.kind = kind
        self.utm_zone = utm_zone
        self._datum: tuple[float, float] | None = None
        self._projection: LocalEnu | Utm | None = None
        if datum is not None and len(datum) == 2:
            self._init(float(datum[0]), float(datum[1]))

    def __repr__(self) -> str:
        """Return the kind, datum and zone."""
        return f"MapFrame({self.kind!r}, datum={self.datum!r}, utm_zone={self.utm_zone!r})"

    @property
    def ready(self) -> bool:
        """Return whether the datum (or UTM zone) is fixed."""
        return self._projection is not None

    @property
    def datum(self) -> tuple[float, float] | None:
        """Return the datum latitude/longitude, once fixed."""
        return self._datum

    @property
    def utm_south(self) -> bool | None:
        """Return whether the UTM zone is a southern one (None for ENU or before the datum)."""
        return self._projection.south if isinstance(self._projection, Utm) else None

    def _init(self, lat: float, lon: float) -> None:
        if self.kind == "enu":
            projection: LocalEnu | Utm = LocalEnu(lat, lon)
        else:
            # A configured zone keeps its number; the hemisphere is the datum's either way.
            projection = Utm(zone=self.utm_zone, south=lat < 0.0) if self.utm_zone \
                else Utm(*utm_zone(lat, lon))
            self.utm_zone = int(projection.zone)
        self._datum, self._projection = (lat, lon), projection

    def ensure(self, lat: float, lon: float) -> None:
        """Fix the datum at (lat, lon) if none was configured."""
        if self._projection is None:
            self._init(lat, lon)

    def forward(self, lat: float, lon: float) -> tuple[float, float]:
        """Return map (x, y) in metres of a latitude/longitude."""
        x, y = self._fixed().forward(lat, lon)
        return float(x), float(y)

    def inverse(self, x: float, y: float) -> tuple[float, float]:
        """Return the latitude/longitude of map (x, y) in metres."""
        lat, lon = self._fixed().inverse(x, y)
        return float(lat), float(lon)

    def _fixed(self) -> LocalEnu | Utm:
        if self._projection is None:
            raise ValueError("the map frame has no datum yet: give one or call ensure()")
        return self._projection
