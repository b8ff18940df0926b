"""Bytes of an HTTP payload to HTML text: charset detection as browsers do it.

Order: the ``charset`` of the HTTP ``Content-Type``, a byte-order mark, a ``<meta charset>``
or ``http-equiv`` declaration in the first 4 KiB, else UTF-8 when the bytes are valid
UTF-8, else windows-1252 (the web's legacy default).
"""

from __future__ import annotations

import codecs
import re
import zlib
from typing import BinaryIO

import brotli

PRESCAN_BYTES = 4096
READ_BLOCK = 1 << 16
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


class DecodeError(ValueError):
    """The payload cannot be turned into text; ``reason`` is the counted skip reason."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def header_charset(content_type: str | None) -> str | None:
    """The ``charset`` parameter of a ``Content-Type`` value, lower-cased."""
    for param in (content_type or "").split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip(" \"'"):
            return value.strip(" \"'").lower()
    return None


def decode_html(body: bytes, content_type: str | None) -> str:
    """*body* as text.

    :raises DecodeError: ``unknown-charset`` for a declared charset Python does not know;
        ``invalid-utf-8`` when the page declares UTF-8 and its bytes are not valid UTF-8.
    """
    declared = header_charset(content_type)
    for bom, name in _BOMS:
        if body.startswith(bom):
            return body[len(bom) :].decode(name, errors="replace")
    if declared is None:
        match = _META_CHARSET.search(body[:PRESCAN_BYTES])
        declared = match.group(1).decode("ascii").lower() if match else None
    if declared is None:
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            return body.decode("cp1252", errors="replace")
    try:
        codec = codecs.lookup(declared).name
    except LookupError:
        raise DecodeError("unknown-charset", f"charset {declared!r} is not known") from None
    if codec in ("latin-1", "iso8859-1", "ascii"):
        codec = "cp1252"  # as WHATWG Encoding maps them
    try:
        return body.decode(codec)
    except UnicodeDecodeError as exc:
        if codec == "utf-8":
            raise DecodeError("invalid-utf-8", str(exc)) from None
        return body.decode(codec, errors="replace")


def read_payload(stream: BinaryIO, content_encoding: str | None, limit: int) -> bytes | None:
    """The payload of *stream* with its ``Content-Encoding`` (gzip, deflate, br, or a list
    of them) undone, read block by block; None when it decodes to more than *limit* bytes.

    :raises DecodeError: ``bad-content-encoding`` for data that does not decode;
        ``unsupported-content-encoding`` for an encoding other than those.
    """
    codings = [c.strip().lower() for c in (content_encoding or "").split(",") if c.strip()]
    codings = [c for c in codings if c != "identity"]
    for coding in codings:
        if coding not in ("gzip", "x-gzip", "deflate", "br"):
            raise DecodeError("unsupported-content-encoding", f"Content-Encoding {coding!r}")
    if not codings:
        data = stream.read(limit + 1)
        return None if len(data) > limit else data
    data = stream.read(limit + 1)  # encoded data is no larger than what it decodes to
    if len(data) > limit:
        return None
    for coding in reversed(codings):
        data = _undo(coding, data, limit)
        if data is None:
            return None
    return data


def _undo(coding: str, data: bytes, limit: int) -> bytes | None:
    out = bytearray()
    try:
        if coding == "br":
            # a few KB of brotli can stand for GBs: the output of every call is capped, and
            # the decompressor drained of what it holds back before it takes more input
            decompressor = brotli.Decompressor()
            for start in range(0, len(data), READ_BLOCK):
                block = data[start : start + READ_BLOCK]
                while True:
                    out += decompressor.process(block, output_buffer_limit=limit + 1 - len(out))
                    if len(out) > limit:
                        return None
                    block = b""
                    if decompressor.can_accept_more_data():
                        break
            if not decompressor.is_finished():
                raise DecodeError("bad-content-encoding", "truncated brotli stream")
            return bytes(out)
        # gzip: header auto-detected; deflate: zlib-wrapped, or raw as some servers send it
        wbits = 47 if coding in ("gzip", "x-gzip") else (15 if data[:1] == b"\x78" else -15)
        inflater = zlib.decompressobj(wbits)
        pending = data
        while pending:
            out += inflater.decompress(pending, limit + 1 - len(out))
            if len(out) > limit:
                return None
            pending = inflater.unconsumed_tail
        if not inflater.eof:
            raise DecodeError("bad-content-encoding", f"truncated {coding} stream")
        return bytes(out)
    except (zlib.error, brotli.error) as exc:
        raise DecodeError("bad-content-encoding", f"{coding}: {exc}") from None
