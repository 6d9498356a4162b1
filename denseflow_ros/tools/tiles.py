# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``denseflow tiles``: inspect, crop from and build satellite tile caches.

- ``info CACHE``: format, tile size, zooms, bounds, tiles per zoom and how much of the
  bounding box each zoom fills.
- ``crop --cache C --lat --lon --heading-deg --size-px --mpp --out crop.png``: write a metric,
  heading-aligned crop and print its coverage.
- ``build --out OUT (--image IMG --center-lat --center-lon --mpp | --kitti-satmap DIR
  --kitti-oxts DIR | --ford DIR | --geotiff FILE)``: write an XYZ folder, or MBTiles when OUT
  ends in ``.mbtiles``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from denseflow_ros.geo.builders import BuildResult


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``info``, ``crop`` and ``build`` subcommands."""
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    info = sub.add_parser("info", help="describe a tile cache")
    info.add_argument("cache", type=Path, help="XYZ folder or .mbtiles file")
    info.add_argument("--json", action="store_true", help="print JSON instead of text")

    crop = sub.add_parser("crop", help="write a metric, heading-aligned crop")
    crop.add_argument("--cache", type=Path, required=True, help="XYZ folder or .mbtiles file")
    crop.add_argument("--lat", type=float, required=True, help="crop centre latitude, degrees")
    crop.add_argument("--lon", type=float, required=True, help="crop centre longitude, degrees")
    crop.add_argument("--heading-deg", type=float, default=0.0,
                      help="ENU yaw along +u (0 = east, counter-clockwise; 0 gives north-up)")
    crop.add_argument("--size-px", type=int, default=512, help="crop side in pixels")
    crop.add_argument("--mpp", type=float, required=True, help="true metres per pixel")
    crop.add_argument("--zoom", type=int, default=None, help="zoom to use (default: from mpp)")
    crop.add_argument("--out", type=Path, required=True, help="output image (.png, .jpg)")
    crop.add_argument("--mask-out", type=Path, default=None, help="optional valid-mask PNG")

    build = sub.add_parser("build", help="build a tile cache from georeferenced images")
    build.add_argument("--out", type=Path, required=True,
                       help="output XYZ folder, or a .mbtiles file")
    build.add_argument("--image", type=Path, help="one north-up image (with --center-lat/lon, "
                       "--mpp: metres per pixel in the tangent plane at its centre)")
    build.add_argument("--center-lat", type=float, help="latitude of the image centre pixel")
    build.add_argument("--center-lon", type=float, help="longitude of the image centre pixel")
    build.add_argument("--mpp", type=float, default=None,
                       help="source metres per pixel (--image: required; KITTI: 0.1958; "
                       "Ford: zoom 18 at scale 2 by default)")
    build.add_argument("--kitti-satmap", type=Path,
                       help="KITTI satmap/<date>/<drive> folder of <frame>.png")
    build.add_argument("--kitti-oxts", type=Path,
                       help="the raw drive's oxts/data folder of <frame>.txt")
    build.add_argument("--ford", type=Path,
                       help="Ford multi-AV SatelliteMaps_18 folder of <lat>_<lon>.png")
    build.add_argument("--geotiff", type=Path, help="a GeoTIFF (needs rasterio)")
    build.add_argument("--zoom", type=int, default=None,
                       help="finest zoom to write (default: from the source resolution)")
    build.add_argument("--min-zoom", type=int, default=None,
                       help="coarsest overview zoom (default: zoom - 2)")
    build.add_argument("--no-progress", action="store_true", help="hide the progress bar")


@dataclass
class CacheInfo:
    """A tile cache's format, zooms, bounds (west, south, east, north) and tiles per zoom.

    ``zooms`` maps each zoom to its tile count, bounds and the fraction of its bounding box
    the tiles fill.
    """

    path: str
    kind: str
    format: str
    tile_size: int
    minzoom: int
    maxzoom: int
    bounds: list[float]
    tiles: int
    zooms: dict[int, dict[str, Any]]


def cache_info(cache_path: Path) -> CacheInfo:
    """Describe the tile cache at ``cache_path``."""
    from denseflow_ros.geo import SatelliteCache
    from denseflow_ros.geo.mercator import tile_bounds

    with SatelliteCache(cache_path, cache_mb=0) as cache:
        source = cache.source
        zooms: dict[int, dict[str, Any]] = {}
        for z in source.zooms:
            # Streamed: a national cache has millions of tiles.
            count, box = 0, [1 << z, 1 << z, -1, -1]
            for x, y in source.tiles(z):
                count += 1
                box = [min(box[0], x), min(box[1], y), max(box[2], x), max(box[3], y)]
            west, _, _, north = tile_bounds(z, box[0], box[1])
            _, south, east, _ = tile_bounds(z, box[2], box[3])
            area = (box[2] - box[0] + 1) * (box[3] - box[1] + 1)
            zooms[z] = {"tiles": count, "bounds": [west, south, east, north],
                        "fill": min(count / area, 1.0)}
        finest = zooms[source.maxzoom]["bounds"]
        return CacheInfo(str(source.path), source.kind, source.format, source.tile_size,
                         source.minzoom, source.maxzoom,
                         list(source.bounds) if source.bounds else finest,
                         sum(z["tiles"] for z in zooms.values()), zooms)


def _info(args: argparse.Namespace) -> int:
    info = cache_info(args.cache)
    if args.json:
        print(json.dumps(asdict(info), indent=2))
        return 0
    west, south, east, north = info.bounds
    print(f"{info.path}: {info.kind}, {info.format} tiles of {info.tile_size} px, zooms "
          f"{info.minzoom}..{info.maxzoom}, {info.tiles} tiles")
    print(f"bounds (west, south, east, north): {west:.7f}, {south:.7f}, {east:.7f}, "
          f"{north:.7f}")
    for z, entry in info.zooms.items():
        print(f"  zoom {z:2d}: {entry['tiles']:7d} tiles, {100 * entry['fill']:5.1f} % of "
              "their bounding box")
    return 0


@dataclass(frozen=True)
class CropOptions:
    """A metric crop: centre, ENU heading (0: north-up), side, metres per pixel, zoom.

    ``zoom`` None: chosen from ``mpp``; ``mask_out``: also write the valid mask there.
    """

    lat: float
    lon: float
    mpp: float
    heading_deg: float = 0.0
    size_px: int = 512
    zoom: int | None = None
    mask_out: Path | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> CropOptions:
        """Return the options of a ``denseflow tiles crop`` command line."""
        return cls(args.lat, args.lon, args.mpp, args.heading_deg, args.size_px, args.zoom,
                   args.mask_out)


@dataclass
class CropSummary:
    """What a crop wrote: the image, its side, metres per pixel, zoom and coverage."""

    out: Path
    size_px: int
    mpp: float
    zoom: int
    coverage: float


def write_crop(cache_path: Path, out: Path, options: CropOptions) -> CropSummary:
    """Write a heading-aligned crop of the cache to the image ``out``."""
    import cv2

    from denseflow_ros.geo import SatelliteCache

    with SatelliteCache(cache_path) as cache:
        crop = cache.crop(options.lat, options.lon, options.heading_deg, options.size_px,
                          options.mpp, zoom=options.zoom)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), cv2.cvtColor(crop.image, cv2.COLOR_RGB2BGR)):
        raise ValueError(f"cannot write {out} (unknown image extension?)")
    if options.mask_out is not None:
        cv2.imwrite(str(options.mask_out), crop.mask.astype("uint8") * 255)
    return CropSummary(out, options.size_px, options.mpp, crop.zoom, crop.coverage)


def _crop(args: argparse.Namespace) -> int:
    done = write_crop(args.cache, args.out, CropOptions.from_args(args))
    print(f"wrote {done.out}: {done.size_px} x {done.size_px} px at {done.mpp} m/px from zoom "
          f"{done.zoom}, coverage {done.coverage:.4f}")
    return 0


@dataclass(frozen=True)
class BuildOptions:
    """The source of a tile cache and its zooms; see :func:`add_arguments` for each option.

    Exactly one of ``image``, ``kitti_satmap``, ``ford`` and ``geotiff`` is the source.
    """

    image: Path | None = None
    center_lat: float | None = None
    center_lon: float | None = None
    mpp: float | None = None
    kitti_satmap: Path | None = None
    kitti_oxts: Path | None = None
    ford: Path | None = None
    geotiff: Path | None = None
    zoom: int | None = None
    min_zoom: int | None = None
    progress: bool = True

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> BuildOptions:
        """Return the options of a ``denseflow tiles build`` command line."""
        return cls(args.image, args.center_lat, args.center_lon, args.mpp, args.kitti_satmap,
                   args.kitti_oxts, args.ford, args.geotiff, args.zoom, args.min_zoom,
                   not args.no_progress)


def build_cache(out: Path, options: BuildOptions) -> BuildResult:
    """Build a tile cache at ``out`` (XYZ folder, or MBTiles for ``.mbtiles``)."""
    from denseflow_ros.geo import builders

    chosen = [name for name in ("image", "kitti_satmap", "ford", "geotiff")
              if getattr(options, name) is not None]
    if len(chosen) != 1:
        raise ValueError("give exactly one source: --image, --kitti-satmap, --ford or "
                         "--geotiff")
    common = {"zoom": options.zoom, "min_zoom": options.min_zoom, "progress": options.progress}
    if options.image is not None:
        import cv2

        if options.center_lat is None or options.center_lon is None or options.mpp is None:
            raise ValueError("--image needs --center-lat, --center-lon and --mpp")
        bgr = cv2.imread(str(options.image), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"{options.image} is not a readable image")
        return builders.build_from_image(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB),
                                         options.center_lat, options.center_lon, options.mpp,
                                         out, **common)
    if options.kitti_satmap is not None:
        if options.kitti_oxts is None:
            raise ValueError("--kitti-satmap needs --kitti-oxts (the drive's oxts/data)")
        sources = builders.kitti_satmap_sources(
            options.kitti_satmap, options.kitti_oxts,
            mpp=options.mpp or builders.KITTI_SATMAP_MPP)
        return builders.build_from_sources(sources, out, projection="mercator", **common)
    if options.ford is not None:
        sources = builders.ford_satmap_sources(options.ford, mpp=options.mpp)
        return builders.build_from_sources(sources, out, projection="mercator", **common)
    return builders.build_from_geotiff(options.geotiff, out, **common)  # type: ignore[arg-type]


def _build(args: argparse.Namespace) -> int:
    result = build_cache(args.out, BuildOptions.from_args(args))
    counts = ", ".join(f"zoom {z}: {n}" for z, n in result.tiles_per_zoom.items())
    print(f"wrote {result.path} ({counts})")
    return 0


def main(args: argparse.Namespace) -> int:
    """Run one ``tiles`` action; a bad input ends with one sentence on stderr and status 2."""
    from denseflow_ros.geo import TileSourceError

    actions = {"info": _info, "crop": _crop, "build": _build}
    try:
        return actions[args.action](args)
    except (TileSourceError, ValueError, FileExistsError, RuntimeError, OSError) as exc:
        print(f"denseflow tiles {args.action}: {exc}", file=sys.stderr)
        return 2
