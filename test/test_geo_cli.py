# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``denseflow tiles info|crop|build`` through the real command-line entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from denseflow_ros.cli import main
from denseflow_ros.geo import SatelliteCache

LAT, LON, MPP = 52.52, 13.405, 0.25


@pytest.fixture(scope="module")
def source_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(2)
    image = cv2.GaussianBlur(rng.integers(0, 256, (300, 300, 3), dtype=np.uint8), (0, 0), 1.5)
    path = tmp_path_factory.mktemp("src") / "ortho.png"
    cv2.imwrite(str(path), image)
    return path


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_build_info_and_crop(source_png: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    cache = tmp_path / "berlin.mbtiles"
    code, out, _ = run(["tiles", "build", "--image", str(source_png), "--center-lat", str(LAT),
                        "--center-lon", str(LON), "--mpp", str(MPP), "--out", str(cache),
                        "--no-progress"], capsys)
    assert code == 0 and "zoom 19" in out and cache.is_file()
    code, out, _ = run(["tiles", "info", str(cache), "--json"], capsys)
    info = json.loads(out)
    assert code == 0 and info["kind"] == "mbtiles" and info["maxzoom"] == 19
    west, south, east, north = info["bounds"]
    assert west < LON < east and south < LAT < north
    assert info["tiles"] == sum(z["tiles"] for z in info["zooms"].values())
    assert all(0 < z["fill"] <= 1 for z in info["zooms"].values())
    code, out, _ = run(["tiles", "info", str(cache)], capsys)
    assert code == 0 and "zooms 17..19" in out and "bounds" in out
    crop_png = tmp_path / "crop.png"
    code, out, _ = run(["tiles", "crop", "--cache", str(cache), "--lat", str(LAT), "--lon",
                        str(LON), "--heading-deg", "30", "--size-px", "64", "--mpp", "0.3",
                        "--out", str(crop_png), "--mask-out", str(tmp_path / "mask.png")],
                       capsys)
    assert code == 0 and "coverage 1.0000" in out
    written = cv2.cvtColor(cv2.imread(str(crop_png)), cv2.COLOR_BGR2RGB)
    with SatelliteCache(cache) as satellite:
        expected = satellite.crop(LAT, LON, 30.0, 64, 0.3).image
    assert np.array_equal(written, expected)
    assert (cv2.imread(str(tmp_path / "mask.png"), cv2.IMREAD_GRAYSCALE) == 255).all()


@pytest.mark.parametrize("args,message", [
    (["tiles", "info", "/nonexistent/tiles"], "does not exist"),
    (["tiles", "build", "--out", "OUT"], "exactly one source"),
    (["tiles", "build", "--out", "OUT", "--image", "x.png"], "needs --center-lat"),
    (["tiles", "build", "--out", "OUT", "--kitti-satmap", "s"], "needs --kitti-oxts"),
])
def test_errors_are_one_sentence(args: list[str], message: str, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    args = [str(tmp_path / "out") if a == "OUT" else a for a in args]
    code, out, err = run(args, capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_crop_outside_the_cache_reports_zero_coverage(source_png: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    cache = tmp_path / "xyz"
    assert run(["tiles", "build", "--image", str(source_png), "--center-lat", str(LAT),
                "--center-lon", str(LON), "--mpp", str(MPP), "--out", str(cache),
                "--no-progress", "--min-zoom", "19"], capsys)[0] == 0
    code, out, _ = run(["tiles", "crop", "--cache", str(cache), "--lat", "0", "--lon", "0",
                        "--mpp", "0.3", "--size-px", "32", "--out", str(tmp_path / "c.png")],
                       capsys)
    assert code == 0 and "coverage 0.0000" in out


def test_tiles_info_does_not_import_heavy_modules(tmp_path: Path) -> None:
    code = ("import sys; from denseflow_ros.cli import main; "
            "rc = main(['tiles', 'info', sys.argv[1]]); "
            "print(sorted(m for m in ('torch', 'rclpy', 'matplotlib') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "none")],
                            capture_output=True, text=True, timeout=60)
    assert result.stdout.strip().endswith("[]")


def test_build_from_kitti_and_ford_layouts(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    image = cv2.GaussianBlur(np.random.default_rng(4).integers(0, 256, (200, 200, 3),
                                                               dtype=np.uint8), (0, 0), 1.0)
    satmap = tmp_path / "satmap" / "2011_09_26" / "2011_09_26_drive_0005_sync"
    oxts = tmp_path / "oxts" / "data"
    satmap.mkdir(parents=True)
    oxts.mkdir(parents=True)
    for frame, (lat, lon) in enumerate([(49.0110, 8.4236), (49.0111, 8.4238)]):
        cv2.imwrite(str(satmap / f"{frame:010d}.png"), image)
        (oxts / f"{frame:010d}.txt").write_text(f"{lat} {lon} 112.0 0.01 0.02 1.5\n")
    code, out, err = run(["tiles", "build", "--kitti-satmap", str(satmap), "--kitti-oxts",
                          str(oxts), "--out", str(tmp_path / "kitti"), "--no-progress"],
                         capsys)
    assert code == 0, err
    assert "zoom 19" in out
    with SatelliteCache(tmp_path / "kitti") as cache:
        assert cache.crop(49.01105, 8.4237, 0.0, 64, 0.2).coverage == 1.0
    ford = tmp_path / "SatelliteMaps_18"
    ford.mkdir()
    cv2.imwrite(str(ford / "42.294319_-83.223275.png"), image)
    code, out, err = run(["tiles", "build", "--ford", str(ford), "--out",
                          str(tmp_path / "ford.mbtiles"), "--no-progress"], capsys)
    assert code == 0, err
    with SatelliteCache(tmp_path / "ford.mbtiles") as cache:
        assert cache.crop(42.294319, -83.223275, 0.0, 64, 0.2).coverage == 1.0


def test_tile_tools_run_without_a_command_line(source_png: Path, tmp_path: Path) -> None:
    from denseflow_ros.tools import tiles

    cache = tmp_path / "xyz"
    built = tiles.build_cache(cache, tiles.BuildOptions(
        image=source_png, center_lat=LAT, center_lon=LON, mpp=MPP, zoom=18, progress=False))
    assert built.path == cache and set(built.tiles_per_zoom) == {16, 17, 18}
    info = tiles.cache_info(cache)
    assert (info.kind, info.minzoom, info.maxzoom) == ("xyz", 16, 18)
    assert info.tiles == sum(built.tiles_per_zoom.values())
    crop = tiles.write_crop(cache, tmp_path / "crop" / "c.png",
                            tiles.CropOptions(LAT, LON, 0.5, size_px=32))
    assert (crop.size_px, crop.zoom, crop.coverage) == (32, 18, 1.0)
    assert cv2.imread(str(crop.out)).shape == (32, 32, 3)
    with pytest.raises(ValueError, match="exactly one source"):
        tiles.build_cache(tmp_path / "none", tiles.BuildOptions())
