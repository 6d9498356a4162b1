# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Tile sources: XYZ folders and MBTiles 1.3 files behind one read-only interface.

Tile coordinates and tile bytes come from files, so both are untrusted: coordinates are
checked integers (a path is only ever built from them), tile payloads are size-capped before
they are read, and an image's header is checked before it is decoded, so a tile claiming
100000 x 100000 pixels is refused instead of allocated.
"""

from __future__ import annotations

import math
import os
import sqlite3
import struct
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from denseflow_ros.geo.mercator import MAX_ZOOM

MAX_TILE_BYTES = 8 << 20
TILE_SIZES = (256, 512)
IMAGE_EXTENSIONS = ("png", "jpg", "jpeg", "webp")


class TileSourceError(RuntimeError):
    """A tile cache that cannot be used (missing, empty, locked, not a tile cache)."""


class TileDecodeError(ValueError):
    """One tile whose bytes are not a usable image."""


def image_size(data: bytes) -> tuple[int, int]:
    """Return (width, height) from a PNG, JPEG or WebP header without decoding it."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24 and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    if data[:2] == b"\xff\xd8":
        pos = 2
        while pos + 4 <= len(data):
            if data[pos] != 0xFF:
                break
            marker = data[pos + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                pos += 2
                continue
            (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
            # SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC) carry the frame size.
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                if pos + 9 > len(data):
                    break
                height, width = struct.unpack(">HH", data[pos + 5:pos + 9])
                return width, height
            pos += 2 + length
        raise TileDecodeError("JPEG data has no frame header (truncated?)")
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
        chunk = data[12:16]
        if chunk == b"VP8 ":
            width, height = struct.unpack("<HH", data[26:30])
            return width & 0x3FFF, height & 0x3FFF
        if chunk == b"VP8L":
            bits = int.from_bytes(data[21:25], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if chunk == b"VP8X":
            return (int.from_bytes(data[24:27], "little") + 1,
                    int.from_bytes(data[27:30], "little") + 1)
    raise TileDecodeError("tile data is not a PNG, JPEG or WebP image")


def decode_tile(data: bytes, max_side: int = 4096) -> tuple[np.ndarray, np.ndarray | None]:
    """Decode tile bytes to (RGB uint8 (H, W, 3), validity mask (H, W) bool or None if opaque)."""
    import cv2

    width, height = image_size(data)
    if not (0 < width <= max_side and 0 < height <= max_side):
        raise TileDecodeError(f"tile image is {width} x {height} px, outside 1..{max_side}")
    try:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise TileDecodeError(f"tile image data cannot be decoded: {exc.msg}") from exc
    if image is None or image.shape[:2] != (height, width):
        raise TileDecodeError("tile image data is truncated or corrupt")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise TileDecodeError(f"tile image has unsupported sample type {image.dtype}")
    mask = None
    if image.ndim == 2:
        rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    elif image.shape[2] == 4:
        rgb = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
        alpha = image[:, :, 3] >= 128
        mask = None if alpha.all() else alpha
    elif image.shape[2] == 3:
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    else:
        raise TileDecodeError(f"tile image has {image.shape[2]} channels")
    return rgb, mask


def check_tile_index(z: int, x: int, y: int) -> bool:
    """Return whether (z, x, y) is a valid XYZ tile index."""
    return (0 <= z <= MAX_ZOOM and 0 <= x < (1 << z) and 0 <= y < (1 << z))


class TileSource:
    """Read-only access to tile bytes by XYZ index (y grows southward)."""

    kind = "abstract"

    def __init__(self, path: Path) -> None:
        """Remember the path; subclasses fill in zooms, format and tile size."""
        self.path = path
        self.zooms: list[int] = []
        self.format = "png"
        self.tile_size = 256
        self.bounds: tuple[float, float, float, float] | None = None

    @property
    def minzoom(self) -> int:
        """Return the coarsest zoom level present."""
        return min(self.zooms)

    @property
    def maxzoom(self) -> int:
        """Return the finest zoom level present."""
        return max(self.zooms)

    def read(self, z: int, x: int, y: int) -> bytes | None:
        """Return the bytes of tile (z, x, y), or None if the cache does not hold it."""
        raise NotImplementedError

    def tiles(self, z: int) -> Iterator[tuple[int, int]]:
        """Yield the (x, y) of every tile held at zoom z."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the file handles."""

    def _detect_tile_size(self) -> None:
        # The first readable tile at the finest zoom tells the tile size for the whole cache.
        for x, y in self.tiles(self.maxzoom):
            try:
                data = self.read(self.maxzoom, x, y)
                if data is None:
                    continue
                width, height = image_size(data)
            except (TileDecodeError, OSError):
                continue
            if width == height and width in TILE_SIZES:
                self.tile_size = width
                return
            raise TileSourceError(
                f"{self.path}: tiles are {width} x {height} px; expected 256 or 512 px squares")
        raise TileSourceError(f"{self.path}: no readable tile image at zoom {self.maxzoom}")


def _int_name(name: str) -> int | None:
    # Only plain decimal names count: "007", "-1", "1e3", "../3" are not tile indices.
    if name.isascii() and name.isdigit() and len(name) <= 10 and (
            name == "0" or name[0] != "0"):
        return int(name)
    return None


class XyzSource(TileSource):
    """A ``{z}/{x}/{y}.{png,jpg,jpeg,webp}`` folder."""

    kind = "xyz"

    def __init__(self, path: Path) -> None:
        """Scan the folder; raise TileSourceError if it holds no tiles."""
        super().__init__(path)
        if not path.is_dir():
            raise TileSourceError(f"{path} is not a folder")
        try:
            self._scan()
        except OSError as exc:
            raise TileSourceError(f"{path} cannot be read: {exc.strerror or exc}") from exc
        self._detect_tile_size()

    def _scan(self) -> None:
        path = self.path
        zooms = []
        for entry in os.scandir(path):
            z = _int_name(entry.name)
            if z is not None and z <= MAX_ZOOM and entry.is_dir():
                zooms.append(z)
        extensions: set[str] = set()
        for z in sorted(zooms, reverse=True):
            for x_entry in os.scandir(path / str(z)):
                if _int_name(x_entry.name) is None or not x_entry.is_dir():
                    continue
                for y_entry in os.scandir(x_entry.path):
                    stem, _, ext = y_entry.name.rpartition(".")
                    if _int_name(stem) is not None and ext.lower() in IMAGE_EXTENSIONS:
                        extensions.add(ext.lower())
                if extensions:
                    break
            if extensions:
                break
        self.zooms = sorted(z for z in zooms if any(self.tiles(z)))
        if not self.zooms:
            raise TileSourceError(
                f"{path} holds no tiles (expected {{z}}/{{x}}/{{y}}.png|jpg|webp files)")
        # Look the likeliest extension up first; the others follow for mixed folders.
        self._extensions = sorted(extensions) + [e for e in IMAGE_EXTENSIONS
                                                 if e not in extensions]
        self.format = "jpg" if self._extensions[0] in ("jpg", "jpeg") else self._extensions[0]

    def read(self, z: int, x: int, y: int) -> bytes | None:
        """Return the bytes of tile (z, x, y), or None if the folder does not hold it."""
        if not check_tile_index(z, x, y):
            return None
        base = self.path / str(int(z)) / str(int(x))
        for ext in self._extensions:
            name = base / f"{int(y)}.{ext}"
            try:
                with open(name, "rb") as handle:
                    size = os.fstat(handle.fileno()).st_size
                    if size > MAX_TILE_BYTES:
                        raise TileDecodeError(f"tile {name} is {size} bytes, over the limit")
                    return handle.read(MAX_TILE_BYTES + 1)
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                continue
        return None

    def tiles(self, z: int) -> Iterator[tuple[int, int]]:
        """Yield the (x, y) of every tile file at zoom z."""
        zoom_dir = self.path / str(int(z))
        if not zoom_dir.is_dir():
            return
        n = 1 << z
        for x_entry in os.scandir(zoom_dir):
            x = _int_name(x_entry.name)
            if x is None or x >= n or not x_entry.is_dir():
                continue
            for y_entry in os.scandir(x_entry.path):
                stem, _, ext = y_entry.name.rpartition(".")
                y = _int_name(stem)
                if y is not None and y < n and ext.lower() in IMAGE_EXTENSIONS:
                    yield x, y


class MbtilesSource(TileSource):
    """An MBTiles 1.3 file (SQLite, TMS rows), opened read-only."""

    kind = "mbtiles"

    def __init__(self, path: Path) -> None:
        """Open the file read-only; raise TileSourceError if it is not usable MBTiles."""
        super().__init__(path)
        if not path.is_file():
            raise TileSourceError(f"{path} is not a file")
        uri = f"file:{urllib.parse.quote(str(path.resolve()))}?mode=ro"
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(uri, uri=True, timeout=2.0, check_same_thread=False)
        except sqlite3.Error as exc:
            raise TileSourceError(f"{path} cannot be opened as SQLite: {exc}") from exc
        try:
            self._load_metadata()
            self._detect_tile_size()
        except sqlite3.OperationalError as exc:
            self._db.close()
            if "locked" in str(exc) or "busy" in str(exc):
                raise TileSourceError(f"{path} is locked by another process") from exc
            raise TileSourceError(f"{path} is not a usable MBTiles file: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise TileSourceError(f"{path} is not an MBTiles (SQLite) file: {exc}") from exc
        except TileSourceError:
            self._db.close()
            raise

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def _load_metadata(self) -> None:
        names = {row[0] for row in self._query(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}
        if "tiles" not in names:
            raise TileSourceError(f"{self.path} is not an MBTiles file: it has no tiles table")
        metadata: dict[str, str] = {}
        if "metadata" in names:
            for name, value in self._query("SELECT name, value FROM metadata LIMIT 1000"):
                if isinstance(name, str) and isinstance(value, str | int | float):
                    metadata[name] = str(value)
        self.metadata = metadata
        fmt = metadata.get("format", "png").strip().lower()
        if fmt == "pbf":
            raise TileSourceError(f"{self.path} holds vector tiles (pbf); raster tiles needed")
        self.format = "jpg" if fmt == "jpeg" else fmt
        self.zooms = sorted(int(row[0]) for row in self._query(
            "SELECT DISTINCT zoom_level FROM tiles") if isinstance(row[0], int)
            and 0 <= row[0] <= MAX_ZOOM)
        if not self.zooms:
            raise TileSourceError(f"{self.path} holds no tiles")
        bounds = metadata.get("bounds", "")
        try:
            values = tuple(float(v) for v in bounds.split(","))
        except ValueError:
            values = ()
        if len(values) == 4 and all(math.isfinite(v) for v in values):
            self.bounds = values  # type: ignore[assignment]

    def read(self, z: int, x: int, y: int) -> bytes | None:
        """Return the bytes of tile (z, x, y) (XYZ y), or None if the file does not hold it."""
        if not check_tile_index(z, x, y):
            return None
        tms_row = (1 << z) - 1 - y
        # sqlite3.Error (a busy or vanished file) propagates: the caller retries later.
        rows = self._query(
            "SELECT CASE WHEN length(tile_data) <= ? THEN tile_data END, length(tile_data) "
            "FROM tiles WHERE zoom_level = ? AND tile_column = ? AND tile_row = ? LIMIT 1",
            (MAX_TILE_BYTES, z, x, tms_row))
        if not rows or rows[0][1] is None:
            return None
        data, length = rows[0]
        if data is None:
            raise TileDecodeError(f"tile {z}/{x}/{y} is {length} bytes, over the limit")
        if not isinstance(data, bytes):
            raise TileDecodeError(f"tile {z}/{x}/{y} holds no image bytes")
        return data

    def tiles(self, z: int) -> Iterator[tuple[int, int]]:
        """Yield the (x, y) (XYZ y) of every tile at zoom z."""
        n = 1 << z
        page, offset = 10000, 0
        while True:
            rows = self._query("SELECT tile_column, tile_row FROM tiles WHERE zoom_level = ? "
                               "LIMIT ? OFFSET ?", (z, page, offset))
            for column, row in rows:
                if isinstance(column, int) and isinstance(row, int) and 0 <= column < n \
                        and 0 <= row < n:
                    yield column, n - 1 - row
            if len(rows) < page:
                return
            offset += page

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()


def open_tile_source(path: str | os.PathLike) -> TileSource:
    """Open an XYZ folder or an .mbtiles file; raise TileSourceError with a reason otherwise."""
    path = Path(path).expanduser()
    if not path.exists():
        raise TileSourceError(f"tile cache {path} does not exist")
    if path.is_dir():
        return XyzSource(path)
    return MbtilesSource(path)
