"""Streaming, damage-tolerant reading of the HTTP captures in a WARC file.

:func:`read_captures` yields one :class:`Capture` per ``response`` or ``revisit`` record with
an HTTP message, reading one record at a time (never a whole file or an oversized payload
into memory). Damage is counted in the caller's ``Counter`` and reading goes on:

- a record whose block ends before its ``Content-Length`` (a cut file, a length too large)
  is dropped (``damaged:truncated``), one followed by stray bytes (a length too small) too
  (``damaged:content-length``);
- a corrupt or truncated gzip member, or a record that does not parse, is dropped and
  reading resynchronises at the next gzip member (``.warc.gz``) or the next ``WARC/1.x``
  line (``.warc``) after it (``damaged:gzip``, ``damaged:record``);
- a capture the crawler marked ``WARC-Truncated`` (cut by size, time or disconnect) is
  skipped (``truncated-capture``);
- a payload whose ``Content-Encoding`` cannot be decoded is dropped (``bad-content-encoding``,
  ``unsupported-content-encoding``).

:raises UnreadableInput: for a file that holds no WARC record at all (not a WARC) or that
    cannot be opened; the caller reports it and exits non-zero.
"""

from __future__ import annotations

import contextlib
import io
import os
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from warcio.archiveiterator import ArchiveIterator, WARCIterator
from warcio.bufferedreaders import ChunkedDataReader, DecompressingBufferedReader
from warcio.exceptions import ArchiveLoadFailed
from warcio.limitreader import LimitReader

from crawler.extract.decode import DecodeError, read_payload
from crawler.extract.record import Provenance

GZIP_MAGIC = b"\x1f\x8b\x08"
WARC_MAGIC = b"\nWARC/1."
SCAN_BLOCK = 1 << 20
# A corrupt file could make every byte look like a sync point; stop after this many.
MAX_RESYNCS = 10_000
WARC_TYPES = {"warcinfo", "response", "resource", "request", "metadata", "revisit"}
WARC_TYPES |= {"conversion", "continuation"}
_STREAM_ERRORS = (ArchiveLoadFailed, zlib.error, EOFError, ValueError, OSError, IndexError)


class UnreadableInput(Exception):
    """An input file that could not be read at all (missing, unreadable, not a WARC)."""


@dataclass
class Capture:
    """One HTTP capture: a response, or a revisit pointing at an earlier payload."""

    provenance: Provenance
    record_type: str  # "response" or "revisit"
    target_uri: str
    status: int | None
    content_type: str | None
    body: bytes | None  # content-decoded payload; None for a revisit or an oversized payload
    oversized: bool = False
    refers_to_uri: str | None = None
    refers_to_date: str | None = None


def read_captures(
    path: str | os.PathLike, stats: Counter, max_body: int, start: int = 0
) -> Iterator[Capture]:
    """Yield the HTTP captures of the WARC at *path*, counting damage into *stats*.

    *start* is the offset to begin at (a record boundary), e.g. to re-read one record.
    """
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed in finally, across yields
    except OSError as exc:
        raise UnreadableInput(f"{path}: {exc.strerror or exc}") from None
    try:
        if os.fstat(fh.fileno()).st_size == 0:
            stats["empty-file"] += 1
            return
        gzipped = fh.read(2) == GZIP_MAGIC[:2]
        name = os.path.basename(path)
        position: int | None = start
        parsed_any = False
        in_damage = False  # failed again before any record since the last resync
        resyncs = 0
        while position is not None:
            fh.seek(position)
            iterator = _StrictWARCIterator(fh)
            offset = position
            try:
                for record in _quietly(iterator):
                    offset = iterator.offset
                    capture = _capture(record, iterator, name, offset, stats, max_body)
                    parsed_any, in_damage = True, False
                    if capture is not None:
                        yield capture
                position = None
            except _STREAM_ERRORS as exc:
                position = _next_sync(fh, offset + 1, gzipped)
                if position is None and not parsed_any:
                    raise UnreadableInput(f"{path}: not a WARC file ({exc})") from None
                if not in_damage:  # one damaged stretch counts once, however many probes
                    stats["damaged:gzip" if gzipped else "damaged:record"] += 1
                in_damage = True
                resyncs += 1
                if resyncs > MAX_RESYNCS:
                    stats["damaged:unrecoverable"] += 1
                    position = None
        if not parsed_any and not resyncs:  # e.g. a lone byte: warcio ends without a record
            raise UnreadableInput(f"{path}: not a WARC file (no record in it)")
    finally:
        fh.close()


class _StrictReader(DecompressingBufferedReader):
    """warcio's reader, except that a gzip member failing to inflate part-way, or cut short
    by the end of the file, raises.

    warcio only writes that zlib error to stderr and ends the record there, so a damaged
    member would pass for a short but valid record.
    """

    _fed = False  # the current member's decompressor has been given data

    def _init_decomp(self, decomp_type: str | None) -> None:
        self._fed = False
        super()._init_decomp(decomp_type)

    def _process_read(self, data: bytes) -> None:
        if not data and self.decompressor and self._fed and not self.decompressor.eof:
            raise ArchiveLoadFailed("gzip member cut short by the end of the file")
        super()._process_read(data)

    def _decompress(self, data: bytes) -> bytes:
        self._fed = self._fed or bool(self.decompressor and data)
        if self.decompressor and data and self.num_block_read:
            try:
                return self.decompressor.decompress(data)
            except zlib.error as exc:
                raise ArchiveLoadFailed(f"corrupt gzip member: {exc}") from None
        return super()._decompress(data)


class _StrictWARCIterator(WARCIterator):
    def __init__(self, fh) -> None:
        super().__init__(fh, no_record_parse=False)
        self.reader = _StrictReader(self.fh, block_size=self.reader.block_size)


def _quietly(iterator: ArchiveIterator) -> Iterator:
    """warcio prints a warning on stderr for a wrong Content-Length; we count it instead.

    warcio fails with AttributeError/TypeError on a record whose WARC headers are cut short
    (no WARC-Target-URI yet): raised here as ArchiveLoadFailed, i.e. a damaged record.
    """
    it = iter(iterator)
    while True:
        with contextlib.redirect_stderr(io.StringIO()):
            try:
                record = next(it, None)
            except (AttributeError, TypeError) as exc:  # warcio on a header block cut short
                raise ArchiveLoadFailed(f"unparsable WARC record: {exc}") from None
        if record is None:
            return
        if record.rec_type is None:  # what warcio makes of bytes that are no WARC header
            raise ArchiveLoadFailed("a record without WARC-Type")
        yield record


def _capture(
    record, iterator: ArchiveIterator, name: str, offset: int, stats: Counter, max_body: int
) -> Capture | None:
    if record.rec_type not in WARC_TYPES:  # a damaged WARC-Type line
        stats["damaged:record"] += 1
        return None
    if record.rec_type not in ("response", "revisit") or record.http_headers is None:
        if record.rec_type in ("response", "revisit"):
            stats["not-http"] += 1
        return None
    headers = record.rec_headers
    if headers.get_header("WARC-Truncated"):
        stats["truncated-capture"] += 1  # the crawler kept a partial page: not an article
        return None
    errors_before = iterator.err_count
    body: bytes | None = None
    oversized = False
    if record.rec_type == "response":
        stream = record.raw_stream
        if record.http_headers.get_header("Transfer-Encoding", "").lower() == "chunked":
            stream = ChunkedDataReader(stream)
        try:
            body = read_payload(
                stream, record.http_headers.get_header("Content-Encoding"), max_body
            )
        except DecodeError as exc:
            _finish(iterator)
            if not _short(record):
                stats[exc.reason] += 1
                return None
            body = None  # the record itself is cut short: counted as damaged below
        oversized = body is None
    _finish(iterator)
    if _short(record):
        stats["damaged:truncated"] += 1
        return None
    if iterator.err_count != errors_before:
        stats["damaged:content-length"] += 1
        return None
    status = record.http_headers.get_statuscode()
    return Capture(
        provenance=Provenance(
            warc_filename=name,
            warc_offset=offset,
            warc_record_id=headers.get_header("WARC-Record-ID") or "",
            payload_digest=headers.get_header("WARC-Payload-Digest"),
            capture_time=headers.get_header("WARC-Date") or "",
        ),
        record_type=record.rec_type,
        target_uri=headers.get_header("WARC-Target-URI") or "",
        status=int(status) if status and status.isdigit() else None,
        content_type=record.http_headers.get_header("Content-Type"),
        body=body,
        oversized=oversized,
        refers_to_uri=headers.get_header("WARC-Refers-To-Target-URI"),
        refers_to_date=headers.get_header("WARC-Refers-To-Date"),
    )


def _finish(iterator: ArchiveIterator) -> None:
    with contextlib.redirect_stderr(io.StringIO()):
        iterator.read_to_end()


def _short(record) -> bool:
    """True when the block ended before its Content-Length (a truncated record)."""
    return isinstance(record.raw_stream, LimitReader) and record.raw_stream.limit > 0


def _next_sync(fh, start: int, gzipped: bool) -> int | None:
    """Offset of the next gzip member or ``WARC/1.x`` line at or after *start*."""
    magic = GZIP_MAGIC if gzipped else WARC_MAGIC
    skip = 0 if gzipped else 1  # WARC_MAGIC starts with the newline before the line
    position = max(start - skip, 0)
    while True:
        fh.seek(position)
        block = fh.read(SCAN_BLOCK + len(magic))
        if len(block) < len(magic):
            return None
        found = block.find(magic)
        if found >= 0:
            return position + found + skip
        position += SCAN_BLOCK
