"""Hostile pages, under ``/_test/hostile/`` on the site host (never linked from the site).

==========================================  =====================================================
path                                        reply
==========================================  =====================================================
``/_test/hostile/nested?depth=N``           HTML nesting ``N`` ``<div>`` elements (default
                                            100 000) around one paragraph, streamed
``/_test/hostile/bomb?size=N``              ``Content-Encoding: gzip`` HTML that inflates to ``N``
                                            bytes (default 1 GiB) from about ``N / 1000`` bytes
``/_test/hostile/endless``                  a chunked body that never ends (the server stops
                                            after :data:`ENDLESS_CAP_SECONDS`)
``/_test/hostile/charset/<case>``           HTML with a bad charset declaration: ``header``
                                            (unknown charset in Content-Type), ``meta``
                                            (unknown ``<meta charset>``), ``lying`` (declares
                                            UTF-8, sends windows-1252 bytes), ``utf7`` (a
                                            charset browsers refuse), ``bom`` (a UTF-16 BOM on
                                            UTF-8 text)
==========================================  =====================================================

A 100 MB body is ``/_test/big?size=100000000`` and the redirects to clearnet and loopback are
``/_test/redirect-clearnet``, ``/_test/redirect-local`` and ``/_test/redirect/<code>?to=URL``
(:mod:`mirror.misbehave`).
"""

from __future__ import annotations

import functools
import struct
import time
import zlib
from collections.abc import Callable, Iterator

from .wire import Reply, Request, http_date, simple

HTML = "text/html; charset=utf-8"
DEFAULT_DEPTH = 100_000
MAX_DEPTH = 1_000_000
DEFAULT_BOMB = 1 << 30
MAX_BOMB = 1 << 34
ENDLESS_CAP_SECONDS = 120.0
BLOCK = 1 << 16
BOMB_BLOCK = 1 << 20
CHARSET_TEXT = "<p>Caf\u00e9 cr\u00e8me \u2014 na\u00efve r\u00e9sum\u00e9</p>"


def _query_int(request: Request, name: str, default: int, high: int) -> int:
    try:
        return max(0, min(int(request.query.get(name, default)), high))
    except ValueError:
        return default


def _nested_body(depth: int) -> Iterator[bytes]:
    yield b"<!DOCTYPE html>\n<html><head><title>Nested</title></head><body>"
    for _ in range(0, depth, 4096):
        yield b"<div>" * min(4096, depth)
    yield b"<p>The bottom of a very deep page.</p>"
    for _ in range(0, depth, 4096):
        yield b"</div>" * min(4096, depth)
    yield b"</body></html>\n"


def nested(request: Request) -> Reply:
    depth = _query_int(request, "depth", DEFAULT_DEPTH, MAX_DEPTH)
    depth = -(-depth // 4096) * 4096 if depth > 4096 else depth  # whole blocks
    length = len(b"".join(_nested_body(0))) + depth * len(b"<div></div>")
    return simple(200, _nested_body(depth), HTML).with_length(length)


@functools.lru_cache(maxsize=4)
def gzip_bomb(size: int) -> bytes:
    """A gzip member of *size* zero bytes (about ``size / 1000`` bytes), built fast: a
    full flush after each 1 MiB of zeros makes every later block compress to the same bytes,
    so one compressed block is repeated and only the CRC is computed over all the zeros."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(BOMB_BLOCK)
    first = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    repeated = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    blocks, rest = divmod(size, BOMB_BLOCK)
    deflated = [first, repeated * (blocks - 1)] if blocks else []
    deflated.append(compressor.compress(bytes(rest)) + compressor.flush())
    crc = 0
    for _ in range(blocks):
        crc = zlib.crc32(zeros, crc)
    crc = zlib.crc32(bytes(rest), crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    trailer = struct.pack("<II", crc, size & 0xFFFFFFFF)
    return header + b"".join(deflated) + trailer


def bomb(request: Request) -> Reply:
    body = gzip_bomb(_query_int(request, "size", DEFAULT_BOMB, MAX_BOMB))
    return simple(200, body, HTML, [("Content-Encoding", "gzip")])


def _endless_chunks() -> Iterator[bytes]:
    chunk = b"%X\r\n%s\r\n" % (BLOCK, b"<p>more</p>\n" * (BLOCK // 12) + b"x" * (BLOCK % 12))
    deadline = time.monotonic() + ENDLESS_CAP_SECONDS
    while time.monotonic() < deadline:
        yield chunk


def endless(request: Request) -> Reply:
    headers = [("Date", http_date()), ("Content-Type", HTML), ("Transfer-Encoding", "chunked")]
    return Reply(200, headers, _endless_chunks())


CHARSET_CASES: dict[str, tuple[str, bytes]] = {
    "header": ("text/html; charset=x-no-such-charset", CHARSET_TEXT.encode()),
    "meta": ("text/html", b'<meta charset="x-bogus-8">' + CHARSET_TEXT.encode()),
    "lying": (HTML, b'<meta charset="utf-8">' + CHARSET_TEXT.encode("cp1252")),
    "utf7": ("text/html; charset=utf-7", CHARSET_TEXT.encode("utf-7")),
    "bom": ("text/html", b"\xff\xfe" + CHARSET_TEXT.encode()),
}


def charset(request: Request) -> Reply:
    case = CHARSET_CASES.get(request.path.rsplit("/", 1)[-1])
    if case is None:
        return simple(404, b"no such charset case\n")
    content_type, text = case
    body = b"<!DOCTYPE html><html><head><title>Charset</title></head><body>" + text
    return simple(200, body + b"</body></html>\n", content_type)


ROUTES: dict[str, Callable[[Request], Reply]] = {
    "/_test/hostile/nested": nested,
    "/_test/hostile/bomb": bomb,
    "/_test/hostile/endless": endless,
    **{f"/_test/hostile/charset/{case}": charset for case in CHARSET_CASES},
}
