# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Tile sources and the tile LRU: XYZ vs MBTiles, tile formats and sizes, every bad input."""

from __future__ import annotations

import shutil
import sqlite3
import struct
import threading
import zlib
from pathlib import Path

import cv2
import mercantile
import numpy as np
import pytest

from denseflow_ros.geo import SatelliteCache, TileSourceError, open_tile_source
from denseflow_ros.geo.builders import build_from_image
from denseflow_ros.geo.sources import MAX_TILE_BYTES, TileDecodeError, decode_tile

LAT, LON, MPP = 48.1, 11.5, 0.3


def texture(seed: int, size: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.standard_normal((size, size, 3)).astype(np.float32), (0, 0),
                             2.0)
    return np.clip(128 + 45 * noise / noise.std(), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return texture(3, 400)


@pytest.fixture(scope="module")
def xyz(image: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("xyz") / "cache"
    build_from_image(image, LAT, LON, MPP, out, progress=False, min_zoom=18)
    return out


@pytest.fixture(scope="module")
def mbtiles(image: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mbtiles") / "cache.mbtiles"
    build_from_image(image, LAT, LON, MPP, out, progress=False, min_zoom=18)
    return out


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def tile_files(root: Path, z: int) -> list[Path]:
    return sorted((root / str(z)).glob("*/*.png"))


CASES = [(LAT, LON, 0.0, 128, MPP), (LAT + 2e-4, LON - 1e-4, 123.0, 96, 0.45),
         (LAT, LON, -30.0, 64, 1.1)]


def test_xyz_and_mbtiles_give_identical_crops(xyz: Path, mbtiles: Path) -> None:
    with SatelliteCache(xyz) as a, SatelliteCache(mbtiles) as b:
        assert a.source.kind == "xyz" and b.source.kind == "mbtiles"
        assert a.source.zooms == b.source.zooms == [18, 19]
        for case in CASES:
            crop_a, crop_b = a.crop(*case), b.crop(*case)
            assert crop_a.zoom == crop_b.zoom
            assert np.array_equal(crop_a.image, crop_b.image)
            assert np.array_equal(crop_a.mask, crop_b.mask)
            assert crop_a.coverage == crop_b.coverage > 0.5


def test_mbtiles_is_real_sqlite_with_tms_rows(mbtiles: Path, image: np.ndarray) -> None:
    db = sqlite3.connect(mbtiles)
    metadata = dict(db.execute("SELECT name, value FROM metadata"))
    rows = db.execute("SELECT zoom_level, tile_column, tile_row FROM tiles").fetchall()
    db.close()
    assert metadata["format"] == "png"
    assert (metadata["minzoom"], metadata["maxzoom"]) == ("18", "19")
    west, south, east, north = (float(v) for v in metadata["bounds"].split(","))
    assert west < LON < east and south < LAT < north
    centre = mercantile.tile(LON, LAT, 19)
    assert (19, centre.x, (1 << 19) - 1 - centre.y) in rows
    # Every stored tile, flipped back from TMS, lies inside the advertised bounds.
    for z, x, row in rows:
        tile_bounds = mercantile.bounds(x, (1 << z) - 1 - row, z)
        assert tile_bounds.west >= west - 1e-7 and tile_bounds.east <= east + 1e-7
        assert tile_bounds.south >= south - 1e-7 and tile_bounds.north <= north + 1e-7


def test_jpeg_webp_and_512_px_tiles_are_detected(xyz: Path, tmp_path: Path) -> None:
    with SatelliteCache(xyz) as cache:
        reference = cache.crop(LAT, LON, 15.0, 128, MPP, zoom=19)
    webp = tmp_path / "webp"
    for path in tile_files(xyz, 19):
        target = webp / path.relative_to(xyz).with_suffix(".webp")
        target.parent.mkdir(parents=True, exist_ok=True)
        bgra = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        target.write_bytes(cv2.imencode(".webp", bgra, [cv2.IMWRITE_WEBP_QUALITY, 101])[1])
    with SatelliteCache(webp) as cache:
        assert cache.source.format == "webp"
        crop = cache.crop(LAT, LON, 15.0, 128, MPP)
    assert np.array_equal(crop.image, reference.image)
    # 512 px tiles: tile (z, x, y) holds the 2 x 2 block of 256 px tiles at z + 1.
    big = tmp_path / "big"
    children = {(int(p.parent.name), int(p.stem)) for p in tile_files(xyz, 19)}
    for px, py in {(x >> 1, y >> 1) for x, y in children}:
        tile = np.zeros((512, 512, 4), np.uint8)
        for dx in (0, 1):
            for dy in (0, 1):
                child = xyz / "19" / str(2 * px + dx) / f"{2 * py + dy}.png"
                if child.exists():
                    data = cv2.imread(str(child), cv2.IMREAD_UNCHANGED)
                    if data.shape[2] == 3:
                        data = cv2.cvtColor(data, cv2.COLOR_BGR2BGRA)
                    tile[dy * 256:(dy + 1) * 256, dx * 256:(dx + 1) * 256] = data
        (big / "18" / str(px)).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(big / "18" / str(px) / f"{py}.png"), tile)
    with SatelliteCache(big) as cache:
        assert cache.source.tile_size == 512
        crop = cache.crop(LAT, LON, 15.0, 128, MPP)
    assert crop.zoom == 18 and crop.coverage == reference.coverage
    assert np.abs(crop.image.astype(int) - reference.image).max() <= 1


def test_jpeg_tiles(xyz: Path, tmp_path: Path) -> None:
    jpeg = tmp_path / "jpeg"
    for path in tile_files(xyz, 19):
        target = jpeg / path.relative_to(xyz).with_suffix(".jpg")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(cv2.imencode(".jpg", cv2.imread(str(path)),
                                        [cv2.IMWRITE_JPEG_QUALITY, 98])[1])
    with SatelliteCache(xyz) as a, SatelliteCache(jpeg) as b:
        assert b.source.format == "jpg"
        crop_a = a.crop(LAT, LON, 0.0, 128, MPP)
        crop_b = b.crop(LAT, LON, 0.0, 128, MPP)
    assert crop_b.coverage == 1.0
    assert np.abs(crop_a.image.astype(int) - crop_b.image).mean() < 3.0


def test_one_crop_decodes_each_tile_once_even_with_an_empty_lru(xyz: Path) -> None:
    with SatelliteCache(xyz, cache_mb=0) as cache:
        reads: dict[tuple[int, int, int], int] = {}
        original = cache.source.read

        def counting_read(z: int, x: int, y: int) -> bytes | None:
            reads[(z, x, y)] = reads.get((z, x, y), 0) + 1
            return original(z, x, y)

        cache.source.read = counting_read  # type: ignore[method-assign]
        cache.crop(LAT, LON, 45.0, 256, MPP)
        assert reads and set(reads.values()) == {1}
        assert cache.tiles.size_bytes == 0


def test_lru_is_bounded_and_thread_safe(xyz: Path) -> None:
    with SatelliteCache(xyz, cache_mb=256) as serial:
        expected = [serial.crop(LAT, LON, float(h), 96, MPP).image for h in range(0, 360, 45)]
        decoded_serial = serial.tiles.decodes
    with SatelliteCache(xyz, cache_mb=256) as shared:
        results: dict[int, np.ndarray] = {}
        errors: list[BaseException] = []

        def worker(index: int) -> None:
            try:
                for _ in range(3):
                    results[index] = shared.crop(LAT, LON, float(index * 45), 96, MPP).image
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors
        # The same crops as one thread makes (a reused mosaic may round 1 level apart).
        assert all(np.abs(results[i].astype(int) - expected[i]).max() <= 1 for i in range(8))
        # Concurrent requests for one tile decode it once.
        assert shared.tiles.decodes == decoded_serial
    tile_bytes = 256 * 256 * 3
    with SatelliteCache(xyz, cache_mb=2.5 * tile_bytes / (1 << 20)) as small:
        for heading in range(0, 360, 30):
            small.crop(LAT, LON, float(heading), 128, MPP)
            assert small.tiles.size_bytes <= small.tiles.capacity_bytes
        assert 0 < len(small.tiles) <= 3


# --- bad inputs -----------------------------------------------------------------------------

def test_missing_empty_and_non_tile_paths(tmp_path: Path) -> None:
    with pytest.raises(TileSourceError, match="does not exist"):
        SatelliteCache(tmp_path / "nowhere")
    with pytest.raises(TileSourceError, match="holds no tiles"):
        SatelliteCache(tmp_path)
    junk = tmp_path / "junk"
    for name in ("..", "-1", "1e3", "abc", "19"):
        (junk / name if name != ".." else junk).mkdir(parents=True, exist_ok=True)
    (junk / "19" / "x").mkdir()
    (junk / "19" / "x" / "1.png").write_bytes(b"not a tile")
    (junk / "19" / "notes.txt").write_text("hello")
    with pytest.raises(TileSourceError, match="holds no tiles"):
        open_tile_source(junk)
    text = tmp_path / "cache.mbtiles"
    text.write_text("this is not a database, just text that is long enough " * 20)
    with pytest.raises(TileSourceError, match="not an MBTiles"):
        SatelliteCache(text)


def test_sqlite_files_that_are_not_usable_mbtiles(tmp_path: Path, mbtiles: Path) -> None:
    other = tmp_path / "other.mbtiles"
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE something (a INTEGER)")
    db.commit()
    db.close()
    with pytest.raises(TileSourceError, match="no tiles table"):
        SatelliteCache(other)
    vector = tmp_path / "vector.mbtiles"
    shutil.copy(mbtiles, vector)
    db = sqlite3.connect(vector)
    db.execute("UPDATE metadata SET value = 'pbf' WHERE name = 'format'")
    db.commit()
    db.close()
    with pytest.raises(TileSourceError, match="vector tiles"):
        SatelliteCache(vector)
    empty = tmp_path / "empty.mbtiles"
    shutil.copy(mbtiles, empty)
    db = sqlite3.connect(empty)
    db.execute("DELETE FROM tiles")
    db.commit()
    db.close()
    with pytest.raises(TileSourceError, match="holds no tiles"):
        SatelliteCache(empty)


def test_locked_mbtiles(tmp_path: Path, mbtiles: Path) -> None:
    locked = tmp_path / "locked.mbtiles"
    shutil.copy(mbtiles, locked)
    holder = sqlite3.connect(locked, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(TileSourceError, match="locked"):
            SatelliteCache(locked)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with SatelliteCache(locked) as cache:
        assert cache.crop(LAT, LON, 0.0, 32, MPP).coverage == 1.0


def test_opened_read_only(tmp_path: Path, mbtiles: Path) -> None:
    copy = tmp_path / "ro.mbtiles"
    shutil.copy(mbtiles, copy)
    before = copy.read_bytes()
    with SatelliteCache(copy) as cache:
        cache.crop(LAT, LON, 0.0, 32, MPP)
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            cache.source._db.execute("DELETE FROM tiles")
    assert copy.read_bytes() == before


def test_untrusted_tile_rows_are_ignored(tmp_path: Path, mbtiles: Path) -> None:
    hostile = tmp_path / "hostile.mbtiles"
    shutil.copy(mbtiles, hostile)
    db = sqlite3.connect(hostile)
    db.execute("DROP INDEX tile_index")
    db.executemany("INSERT INTO tiles VALUES (?, ?, ?, ?)", [
        (99, 0, 0, b"x"), (19, -5, 3, b"x"), (19, 1 << 40, 0, b"x"), ("19", "a", "b", b"x"),
        (-1, 0, 0, b"x"), (19, 3, None, b"x")])
    db.execute("UPDATE metadata SET value = 'garbage' WHERE name = 'bounds'")
    db.commit()
    db.close()
    with SatelliteCache(hostile) as cache:
        assert cache.source.zooms == [18, 19]
        assert cache.source.bounds is None
        counts = cache.info()["tile_counts"]
        clean = SatelliteCache(mbtiles)
        assert counts == clean.info()["tile_counts"]
        clean.close()
        assert cache.source.read(19, -5, 3) is None and cache.source.read(99, 0, 0) is None
        assert cache.crop(LAT, LON, 0.0, 64, MPP).coverage == 1.0


def corrupt_centre_tile(root: Path, payload: bytes) -> None:
    centre = mercantile.tile(LON, LAT, 19)
    (root / "19" / str(centre.x) / f"{centre.y}.png").write_bytes(payload)


@pytest.mark.parametrize("kind", ["truncated", "garbage", "empty", "huge-header", "oversized"])
def test_bad_tile_data_is_reported_as_missing_coverage(xyz: Path, tmp_path: Path,
                                                       kind: str) -> None:
    root = copy_tree(xyz, tmp_path / "bad")
    centre = mercantile.tile(LON, LAT, 19)
    name = root / "19" / str(centre.x) / f"{centre.y}.png"
    good = name.read_bytes()
    if kind == "truncated":
        name.write_bytes(good[: len(good) // 3])
    elif kind == "garbage":
        name.write_bytes(np.random.default_rng(0).bytes(5000))
    elif kind == "empty":
        name.write_bytes(b"")
    elif kind == "huge-header":
        name.write_bytes(png_header(100000, 100000))
    else:
        with open(name, "wb") as handle:
            handle.truncate(MAX_TILE_BYTES + 1)  # sparse: costs no disk
    with SatelliteCache(root) as cache:
        crop = cache.crop(LAT, LON, 0.0, 256, MPP, zoom=19)
        assert cache.tiles.bad_tiles == 1
    assert 0.3 < crop.coverage < 0.99
    assert not crop.mask[128, 128] and (crop.image[~crop.mask] == 0).all()


def png_header(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk
            + struct.pack(">I", zlib.crc32(chunk)))


def test_decode_refuses_before_allocating() -> None:
    with pytest.raises(TileDecodeError, match="100000 x 100000"):
        decode_tile(png_header(100000, 100000))
    with pytest.raises(TileDecodeError, match="not a PNG, JPEG or WebP"):
        decode_tile(b"GIF89a....")
    jpeg = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes()
    with pytest.raises(TileDecodeError, match="frame header"):
        decode_tile(jpeg[:4])
    rgb, mask = decode_tile(jpeg)
    assert rgb.shape == (8, 8, 3) and mask is None


def test_oversized_mbtiles_blob_is_not_read(tmp_path: Path, mbtiles: Path) -> None:
    big = tmp_path / "big.mbtiles"
    shutil.copy(mbtiles, big)
    centre = mercantile.tile(LON, LAT, 19)
    db = sqlite3.connect(big)
    db.execute("UPDATE tiles SET tile_data = zeroblob(?) WHERE zoom_level = 19 AND "
               "tile_column = ? AND tile_row = ?", (MAX_TILE_BYTES + 1, centre.x,
                                                    (1 << 19) - 1 - centre.y))
    db.commit()
    db.close()
    with SatelliteCache(big) as cache:
        crop = cache.crop(LAT, LON, 0.0, 128, MPP, zoom=19)
        assert cache.tiles.bad_tiles == 1
    assert 0.0 < crop.coverage < 1.0


def test_missing_tiles_lower_coverage(xyz: Path, tmp_path: Path) -> None:
    root = copy_tree(xyz, tmp_path / "holes")
    centre = mercantile.tile(LON, LAT, 19)
    (root / "19" / str(centre.x) / f"{centre.y}.png").unlink()
    with SatelliteCache(root) as cache:
        crop = cache.crop(LAT, LON, 0.0, 256, MPP, zoom=19)
        assert cache.tiles.bad_tiles == 0
    assert 0.3 < crop.coverage < 0.99 and not crop.mask[128, 128]


@pytest.mark.parametrize("args,message", [
    ((float("nan"), LON, 0.0, 64, MPP), "lat must be a finite"),
    ((LAT, float("inf"), 0.0, 64, MPP), "lon must be a finite"),
    ((LAT, LON, float("nan"), 64, MPP), "heading_deg must be a finite"),
    ((LAT, LON, 0.0, 64, -1.0), "mpp must be positive"),
    ((LAT, LON, 0.0, 0, MPP), "size_px must be an integer"),
    ((LAT, LON, 0.0, 64.5, MPP), "size_px must be an integer"),
    ((89.0, LON, 0.0, 64, MPP), "outside Web Mercator"),
    ((LAT, LON, 0.0, 4096, 5.0), "tiles at zoom"),
])
def test_bad_crop_requests(xyz: Path, args: tuple, message: str) -> None:
    with SatelliteCache(xyz) as cache, pytest.raises(ValueError, match=message):
        cache.crop(*args)


def test_read_rejects_out_of_range_indices(xyz: Path) -> None:
    source = open_tile_source(xyz)
    assert source.read(19, -1, 0) is None
    assert source.read(19, 1 << 19, 0) is None
    assert source.read(31, 0, 0) is None
    assert source.read(-1, 0, 0) is None


def test_transient_read_errors_are_retried(mbtiles: Path) -> None:
    with SatelliteCache(mbtiles) as cache:
        original = cache.source.read
        failures = {"left": 1}
        centre = mercantile.tile(LON, LAT, 19)

        def flaky_read(z: int, x: int, y: int) -> bytes | None:
            if (z, x, y) == (19, centre.x, centre.y) and failures["left"]:
                failures["left"] -= 1
                raise sqlite3.OperationalError("database is locked")
            return original(z, x, y)

        cache.source.read = flaky_read  # type: ignore[method-assign]
        first = cache.crop(LAT, LON, 0.0, 128, MPP, zoom=19)
        second = cache.crop(LAT, LON, 0.0, 128, MPP, zoom=19)
    assert first.coverage < 1.0 and not first.mask[64, 64]
    assert second.coverage == 1.0


def test_zero_padded_names_are_not_tiles(xyz: Path, tmp_path: Path) -> None:
    root = copy_tree(xyz, tmp_path / "padded")
    (root / "019").mkdir()
    assert open_tile_source(root).zooms == [18, 19]


@pytest.mark.parametrize("lat,lon", [(85.0, 179.9999), (-85.05, -180.0), (0.0, 540.0)])
def test_crops_at_the_edges_of_the_map(xyz: Path, lat: float, lon: float) -> None:
    with SatelliteCache(xyz) as cache:
        crop = cache.crop(lat, lon, 33.0, 64, 0.5)
    assert crop.coverage == 0.0 and crop.image.shape == (64, 64, 3) and not crop.image.any()
