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
from pathlib import Path


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


def _info(args: argparse.Namespace) -> int:
    from denseflow_ros.geo import SatelliteCache
    from denseflow_ros.geo.mercator import tile_bounds

    with SatelliteCache(args.cache, cache_mb=0) as cache:
        source = cache.source
        zooms = {}
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
        summary = {"path": str(source.path), "kind": source.kind, "format": source.format,
                   "tile_size": source.tile_size, "minzoom": source.minzoom,
                   "maxzoom": source.maxzoom,
                   "bounds": list(source.bounds) if source.bounds else finest,
                   "tiles": sum(z["tiles"] for z in zooms.values()), "zooms": zooms}
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    west, south, east, north = summary["bounds"]
    print(f"{summary['path']}: {summary['kind']}, {summary['format']} tiles of "
          f"{summary['tile_size']} px, zooms {summary['minzoom']}..{summary['maxzoom']}, "
          f"{summary['tiles']} tiles")
    print(f"bounds (west, south, east, north): {west:.7f}, {south:.7f}, {east:.7f}, "
          f"{north:.7f}")
    for z, entry in zooms.items():
        print(f"  zoom {z:2d}: {entry['tiles']:7d} tiles, {100 * entry['fill']:5.1f} % of "
              "their bounding box")
    return 0


def _crop(args: argparse.Namespace) -> int:
    import cv2

    from denseflow_ros.geo import SatelliteCache

    with SatelliteCache(args.cache) as cache:
        crop = cache.crop(args.lat, args.lon, args.heading_deg, args.size_px, args.mpp,
                          zoom=args.zoom)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(args.out), cv2.cvtColor(crop.image, cv2.COLOR_RGB2BGR)):
        raise ValueError(f"cannot write {args.out} (unknown image extension?)")
    if args.mask_out is not None:
        cv2.imwrite(str(args.mask_out), crop.mask.astype("uint8") * 255)
    print(f"wrote {args.out}: {args.size_px} x {args.size_px} px at {args.mpp} m/px from zoom "
          f"{crop.zoom}, coverage {crop.coverage:.4f}")
    return 0


def _build(args: argparse.Namespace) -> int:
    from denseflow_ros.geo import builders

    chosen = [name for name in ("image", "kitti_satmap", "ford", "geotiff")
              if getattr(args, name) is not None]
    if len(chosen) != 1:
        raise ValueError("give exactly one source: --image, --kitti-satmap, --ford or "
                         "--geotiff")
    progress = not args.no_progress
    common = {"zoom": args.zoom, "min_zoom": args.min_zoom, "progress": progress}
    if args.image is not None:
        import cv2

        if args.center_lat is None or args.center_lon is None or args.mpp is None:
            raise ValueError("--image needs --center-lat, --center-lon and --mpp")
        bgr = cv2.imread(str(args.image), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"{args.image} is not a readable image")
        result = builders.build_from_image(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB),
                                           args.center_lat, args.center_lon, args.mpp,
                                           args.out, **common)
    elif args.kitti_satmap is not None:
        if args.kitti_oxts is None:
            raise ValueError("--kitti-satmap needs --kitti-oxts (the drive's oxts/data)")
        sources = builders.kitti_satmap_sources(
            args.kitti_satmap, args.kitti_oxts, mpp=args.mpp or builders.KITTI_SATMAP_MPP)
        result = builders.build_from_sources(sources, args.out, projection="mercator",
                                             **common)
    elif args.ford is not None:
        sources = builders.ford_satmap_sources(args.ford, mpp=args.mpp)
        result = builders.build_from_sources(sources, args.out, projection="mercator",
                                             **common)
    else:
        result = builders.build_from_geotiff(args.geotiff, args.out, **common)
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
