"""Small, valid, deterministic images and static assets for the mirror's static host.

The JPEG encoder writes a baseline greyscale image whose 8x8 blocks are flat (DC only), which
keeps it to a few dozen lines and still yields a file any decoder reads; the PNG is RGB, filter 0.
"""

from __future__ import annotations

import hashlib
import struct
import zlib

# Standard luminance DC Huffman table (ITU T.81, Table K.3); AC: a single code for EOB.
_DC_BITS = (0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0)
_DC_VALUES = tuple(range(12))
_AC_BITS = (1,) + (0,) * 15
_AC_VALUES = (0x00,)


def _huffman_codes(bits: tuple[int, ...], values: tuple[int, ...]) -> dict[int, tuple[int, int]]:
    """Canonical Huffman codes: symbol -> (code, length)."""
    codes, code, position = {}, 0, 0
    for length, count in enumerate(bits, start=1):
        for _ in range(count):
            codes[values[position]] = (code, length)
            code += 1
            position += 1
        code <<= 1
    return codes


_DC_CODES = _huffman_codes(_DC_BITS, _DC_VALUES)
_EOB = _huffman_codes(_AC_BITS, _AC_VALUES)[0x00]


def _segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


class _BitWriter:
    def __init__(self) -> None:
        self.out = bytearray()
        self.acc = 0
        self.count = 0

    def write(self, value: int, length: int) -> None:
        for shift in range(length - 1, -1, -1):
            self.acc = (self.acc << 1) | ((value >> shift) & 1)
            self.count += 1
            if self.count == 8:
                self.out.append(self.acc)
                if self.acc == 0xFF:
                    self.out.append(0x00)  # byte stuffing
                self.acc = self.count = 0

    def flush(self) -> bytes:
        if self.count:
            self.write((1 << (8 - self.count)) - 1, 8 - self.count)  # pad with 1 bits
        return bytes(self.out)


def jpeg(name: str, width_blocks: int = 8, height_blocks: int = 6) -> bytes:
    """A greyscale JPEG of 8x8-pixel blocks whose shading depends on *name*."""
    digest = hashlib.sha256(name.encode()).digest()
    bits = _BitWriter()
    previous = 0
    for row in range(height_blocks):
        for column in range(width_blocks):
            level = (digest[(row * width_blocks + column) % 32] + row * 16 + column * 8) % 256
            dc = (level - 128) * 8  # DC of a flat block with quantiser 1
            diff, previous = dc - previous, dc
            category = abs(diff).bit_length()
            code, length = _DC_CODES[category]
            bits.write(code, length)
            if category:
                bits.write(diff if diff > 0 else diff + (1 << category) - 1, category)
            bits.write(*_EOB)
    width, height = 8 * width_blocks, 8 * height_blocks
    return b"".join(
        (
            b"\xff\xd8",
            _segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"),
            _segment(0xFE, f"mirror image {name}".encode()),
            _segment(0xDB, b"\x00" + b"\x01" * 64),
            _segment(0xC0, struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00"),
            _segment(0xC4, b"\x00" + bytes(_DC_BITS) + bytes(_DC_VALUES)),
            _segment(0xC4, b"\x10" + bytes(_AC_BITS) + bytes(_AC_VALUES)),
            _segment(0xDA, b"\x01\x01\x00\x00\x3f\x00"),
            bits.flush(),
            b"\xff\xd9",
        )
    )


def png(name: str, width: int = 16, height: int = 16) -> bytes:
    """An RGB PNG whose colours depend on *name*."""
    digest = hashlib.sha256(name.encode()).digest()
    rows = b"".join(
        b"\x00" + bytes(digest[(x + y) % 30 + c] for x in range(width) for c in range(3))
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            chunk(b"IHDR", header),
            chunk(b"IDAT", zlib.compress(rows, 9)),
            chunk(b"IEND", b""),
        )
    )


STYLESHEET_PATH = "/vi-assets/static-assets/global-3f2a9c.css"
SCRIPT_PATH = "/vi-assets/static-assets/main-7b41d0.js"
LOGO_PATH = "/images/icons/t-logo-mirror.png"

_STYLESHEET = """\
/* mirror stylesheet: synthetic */
body{margin:0;font-family:georgia,serif;color:#121212}
.css-1vxca1d,.story-body{max-width:600px;margin:0 auto}
.ad,.css-9tf9ac{background:#f7f7f7;text-align:center;font-size:11px}
#site-index{border-top:1px solid #ccc;padding:20px}
"""

_SCRIPT = """\
/* mirror script: synthetic */
(function(){var b=document.body;if(b){b.setAttribute('data-mirror','1');}})();
"""

#: Static-host path -> (Content-Type, body).
ASSETS = {
    STYLESHEET_PATH: ("text/css; charset=utf-8", _STYLESHEET.encode()),
    SCRIPT_PATH: ("application/javascript; charset=utf-8", _SCRIPT.encode()),
}
