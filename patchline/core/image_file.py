"""The one rule for image files and bytes from outside: regular files only, bounded size, and the
pixel count read from the header before anything is decoded.

`read_image_bytes` reads at most MAX_IMAGE_BYTES of a regular file (files.py: no /dev/zero, no
FIFO, no folder, opened without blocking).
`check_header` reads the width and height a PNG, JPEG, BMP or TIFF header declares and refuses
more than MAX_PIXELS (a 2.6 MB PNG can declare 30000 × 30000 pixels: 2.7 GB decoded) and any
other format. Both raise PatchlineError with one sentence.
"""

from __future__ import annotations

import struct
from pathlib import Path

from patchline.errors import PatchlineError
from patchline.files import read_regular_file

MAX_IMAGE_BYTES = 64 * 1024 * 1024   # an encoded frame; a 12-megapixel PNG is ~20 MB
MAX_PIXELS = 50_000_000              # an 8K × 6K sensor is 48 megapixels
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def read_image_bytes(path: str | Path, what: str = "image", max_bytes: int = MAX_IMAGE_BYTES) -> bytes:
    """The bytes of an image file: a regular file of at most `max_bytes` (files.read_regular_file)."""
    return read_regular_file(path, what, max_bytes)


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) a PNG, JPEG, BMP or TIFF header declares, or None for another or damaged header."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    if data[:2] == b"BM" and len(data) >= 26:
        width, height = struct.unpack("<ii", data[18:26])
        return abs(width), abs(height)  # a negative height is a top-down bitmap
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return _tiff_size(data)
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """Walk the JPEG's marker segments to its start-of-frame: (width, height)."""
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker in _JPEG_SOF:
            if i + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[i + 5:i + 9])
            return width, height
        if marker == 0xDA or length < 2:  # scan data before any frame header: damaged
            return None
        i += 2 + length
    return None


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    """ImageWidth (256) and ImageLength (257) of a TIFF's first directory."""
    order = "<" if data[:2] == b"II" else ">"
    try:
        offset = struct.unpack(order + "I", data[4:8])[0]
        count = struct.unpack(order + "H", data[offset:offset + 2])[0]
        found = {}
        for k in range(min(count, 512)):
            entry = data[offset + 2 + 12 * k: offset + 14 + 12 * k]
            tag, kind = struct.unpack(order + "HH", entry[:4])
            if tag in (256, 257):
                found[tag] = struct.unpack(order + ("H" if kind == 3 else "I"), entry[8:10] if kind == 3 else entry[8:12])[0]
        return (found[256], found[257]) if len(found) == 2 else None
    except (struct.error, KeyError):
        return None


def check_header(data: bytes, source: str = "frame", max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """(width, height) of encoded image `data` when its header declares at most `max_pixels`;
    PatchlineError naming `source` otherwise (too many pixels, or no PNG / JPEG / BMP / TIFF header)."""
    size = image_size(data)
    if size is None:
        raise PatchlineError(f"{source} is not a readable image (empty, truncated or not PNG, JPEG, BMP or TIFF).")
    width, height = size
    if width <= 0 or height <= 0:
        raise PatchlineError(f"{source} declares {width}×{height} pixels: not an image.")
    if width * height > max_pixels:
        raise PatchlineError(f"{source} is too large to decode: its header declares {width}×{height} pixels, "
                             f"at most {max_pixels} are decoded.")
    return width, height
