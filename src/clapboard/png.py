"""A minimal truecolour PNG encoder (pure Python), for placeholder media.

The demo draws board frames and take outputs with it, so the review UI has pictures
to show without an image library.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable


def encode_png(width: int, height: int, pixel: Callable[[int, int], tuple[int, int, int]]
               ) -> bytes:
    """An 8-bit RGB PNG whose colour at ``(x, y)`` is ``pixel(x, y)``."""
    raw = bytearray()
    for y in range(height):
        raw.append(0)  # filter type "none" for this row
        for x in range(width):
            raw.extend(pixel(x, y))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(bytes(raw), 6)) + chunk(b"IEND", b""))
