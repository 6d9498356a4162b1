# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Geodesy and satellite imagery: tile sources, metric crops, map projections (no torch)."""

from denseflow_ros.geo.cache import Crop, CropGeometry, SatelliteCache
from denseflow_ros.geo.projection import GeodesicPlane, LocalEnu, Utm
from denseflow_ros.geo.sources import TileSource, TileSourceError, open_tile_source

__all__ = [
    "Crop",
    "CropGeometry",
    "GeodesicPlane",
    "LocalEnu",
    "SatelliteCache",
    "TileSource",
    "TileSourceError",
    "Utm",
    "open_tile_source",
]
