"""WARC records built from the exact bytes of an exchange, with warcio, never re-serialised.

warcio re-serialises the HTTP headers it parses (``compute_headers_buffer``); here the HTTP
header block is handed to warcio as :class:`RawHttpHeaders`, whose buffer is the bytes as
received, so a record's block is byte-identical to what travelled on the wire. Digests are
computed here, while streaming, and set before warcio sees the record, so warcio never reads
the payload twice or buffers it:

- ``WARC-Block-Digest``: over the block (the bytes as received);
- ``WARC-Payload-Digest``: over the entity body after removing the chunked transfer coding,
  still content-encoded (WARC 1.1, section 5.9). If the chunk framing is malformed, the body
  as received is the payload (as warcio does when reading).
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from io import BytesIO
from itertools import chain
from typing import BinaryIO

from warcio.limitreader import LimitReader
from warcio.recordbuilder import RecordBuilder
from warcio.recordloader import ArcWarcRecord
from warcio.statusandheaders import StatusAndHeaders
from warcio.timeutils import datetime_to_iso_date

READ_SIZE = 64 * 1024
#: An HTTP header block longer than this is not looked into: it all counts as the head.
MAX_HEAD = 1024 * 1024
#: A chunk-size line longer than this is malformed framing.
MAX_CHUNK_LINE = 4096

DIGEST_ALGORITHMS = ("sha1", "sha256")
WARC_VERSIONS = ("1.0", "1.1")
REVISIT_PROFILES = {
    "1.0": RecordBuilder.REVISIT_PROFILE,
    "1.1": RecordBuilder.REVISIT_PROFILE_1_1,
}


class Digest:
    """A labelled digest in the WARC form ``sha1:BASE32``."""

    def __init__(self, algorithm: str) -> None:
        self.algorithm = algorithm
        self._hash = hashlib.new(algorithm)

    def update(self, data: bytes) -> None:
        self._hash.update(data)

    def __str__(self) -> str:
        return f"{self.algorithm}:{base64.b32encode(self._hash.digest()).decode()}"


def labelled_digest(algorithm: str, chunks: Iterable[bytes]) -> str:
    """The WARC digest of the concatenated ``chunks``."""
    digest = Digest(algorithm)
    for chunk in chunks:
        digest.update(chunk)
    return str(digest)


_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")


class ChunkedFramingError(ValueError):
    """The chunked transfer coding is malformed."""


class Dechunker:
    """Streaming removal of the chunked transfer coding (RFC 9112, section 7.1).

    :meth:`feed` returns the payload bytes contained in each piece of the body; it raises
    :class:`ChunkedFramingError` on a malformed chunk-size line or a missing CRLF after a chunk.
    Bytes after the last chunk's trailer section are ignored.
    """

    def __init__(self) -> None:
        self._line = b""
        self._remaining = 0
        self._state = "size"  # size -> data -> crlf -> size ... -> trailer -> done

    def feed(self, data: bytes) -> bytes:
        out = []
        pos = 0
        while pos < len(data) and self._state != "done":
            if self._state == "data":
                piece = data[pos : pos + self._remaining]
                out.append(piece)
                pos += len(piece)
                self._remaining -= len(piece)
                if not self._remaining:
                    self._state = "crlf"
                continue
            end = data.find(b"\n", pos)
            self._line += data[pos : len(data) if end < 0 else end + 1]
            if len(self._line) > MAX_CHUNK_LINE:
                raise ChunkedFramingError(f"line too long: {self._line[:40]!r}...")
            if end < 0:
                break
            pos = end + 1
            line, self._line = self._line.rstrip(b"\r\n"), b""
            self._line_done(line)
        return b"".join(out)

    def _line_done(self, line: bytes) -> None:
        if self._state == "crlf":
            if line:
                raise ChunkedFramingError(f"no CRLF after chunk data: {line[:40]!r}")
            self._state = "size"
        elif self._state == "size":
            size = line.split(b";", 1)[0].strip()
            if not _HEX.fullmatch(size):
                raise ChunkedFramingError(f"bad chunk size line: {line[:40]!r}")
            self._remaining = int(size, 16)
            self._state = "data" if self._remaining else "trailer"
        elif not line:  # trailer section ends with an empty line
            self._state = "done"


def read_pieces(stream: BinaryIO, length: int) -> Iterator[bytes]:
    """At most ``length`` bytes of ``stream``, in pieces of :data:`READ_SIZE`."""
    while length > 0:
        piece = stream.read(min(READ_SIZE, length))
        if not piece:
            return
        length -= len(piece)
        yield piece


@dataclass(frozen=True)
class HttpScan:
    """What one streaming pass over an HTTP message (request or response) found."""

    head: bytes
    """The header block as received (start line, header lines, empty line)."""
    body_length: int
    """Bytes after the head."""
    block_digest: str
    """Digest of head + body as received."""
    payload_digest: str
    """Digest of the body without transfer coding (still content-encoded)."""
    chunk_error: str | None
    """Why de-chunking failed (the payload digest is then over the body as received)."""

    @property
    def status(self) -> int:
        """The status code of a response head (0 if it has none)."""
        fields = self.head.split(b"\n", 1)[0].split(None, 2)
        return int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else 0

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), or None."""
        pattern = rb"(?im)^" + re.escape(name.encode()) + rb"[ \t]*:[ \t]*([^\r\n]*?)[ \t]*\r?$"
        match = re.search(pattern, self.head.split(b"\n", 1)[-1])
        return match[1].decode("latin-1") if match else None


def split_head(stream: BinaryIO, length: int) -> tuple[bytes, bytes]:
    """Read the header block of an HTTP message: (head, the body bytes read past it).

    The head ends after the first empty line (CRLF CRLF, or bare LF LF). Without one in the
    first :data:`MAX_HEAD` bytes (a message cut inside its headers, or not HTTP), everything
    read is the head.
    """
    buffer = b""
    for piece in read_pieces(stream, min(length, MAX_HEAD)):
        start = max(0, len(buffer) - 3)
        buffer += piece
        ends = [
            i + len(sep) for sep in (b"\r\n\r\n", b"\n\n") if (i := buffer.find(sep, start)) >= 0
        ]
        if ends:
            end = min(ends)
            return buffer[:end], buffer[end:]
    return buffer, b""


def scan_http(stream: BinaryIO, length: int, chunked: bool, algorithm: str) -> HttpScan:
    """Digest an HTTP message of ``length`` bytes read from ``stream``'s current position."""
    head, body_start = split_head(stream, length)
    block = Digest(algorithm)
    raw_payload = Digest(algorithm)
    payload = Digest(algorithm) if chunked else raw_payload
    dechunker = Dechunker() if chunked else None
    chunk_error = None
    block.update(head)
    body_length = 0
    for piece in chain([body_start], read_pieces(stream, length - len(head) - len(body_start))):
        body_length += len(piece)
        block.update(piece)
        raw_payload.update(piece)
        if dechunker and not chunk_error:
            try:
                payload.update(dechunker.feed(piece))
            except ChunkedFramingError as exc:
                chunk_error = str(exc)
    return HttpScan(
        head=head,
        body_length=body_length,
        block_digest=str(block),
        payload_digest=str(raw_payload if chunk_error else payload),
        chunk_error=chunk_error,
    )


class RawHttpHeaders(StatusAndHeaders):
    """HTTP headers that warcio writes as the exact bytes received, never re-serialised."""

    def __init__(self, raw: bytes) -> None:
        super().__init__("", [])
        self.headers_buff = raw

    def compute_headers_buffer(self, header_filter=None) -> None:
        """Keep the received bytes (warcio calls this before writing)."""

    def __bool__(self) -> bool:
        # warcio writes (and refrains from parsing the payload for) headers that are truthy:
        # received bytes are written even when they do not parse as HTTP.
        return bool(self.headers_buff)


def new_record_id() -> str:
    return f"<urn:uuid:{uuid.uuid4()}>"


def warc_date(moment: datetime, version: str) -> str:
    """``moment`` as a WARC-Date: microseconds in WARC/1.1, seconds in WARC/1.0."""
    utc = moment.astimezone(UTC).replace(tzinfo=None)
    return datetime_to_iso_date(utc, use_micros=version == "1.1")


class RecordFactory:
    """Builds warcio records for one WARC version and digest algorithm.

    :raises ValueError: for an unknown ``version`` or ``algorithm``.
    """

    def __init__(self, version: str = "1.1", algorithm: str = "sha1") -> None:
        if version not in WARC_VERSIONS:
            raise ValueError(f"WARC_VERSION must be one of {WARC_VERSIONS}, not {version!r}")
        if algorithm not in DIGEST_ALGORITHMS:
            raise ValueError(f"WARC_DIGEST must be one of {DIGEST_ALGORITHMS}, not {algorithm!r}")
        self.version = version
        self.algorithm = algorithm
        self._builder = RecordBuilder(warc_version=version)

    def date(self, moment: datetime) -> str:
        return warc_date(moment, self.version)

    def http(
        self,
        record_type: str,
        uri: str,
        scan: HttpScan,
        body: BinaryIO | None,
        headers: dict[str, str],
    ) -> ArcWarcRecord:
        """A request, response or revisit record: ``scan.head`` then ``body`` (if any).

        ``body`` must be positioned at the first byte after the head; ``scan.body_length``
        bytes are read from it. A revisit record's block is the head only.
        """
        fields = {"WARC-Type": record_type, **headers}
        if record_type == "revisit":
            fields["WARC-Profile"] = REVISIT_PROFILES[self.version]
            block_digest = labelled_digest(self.algorithm, [scan.head])
        else:
            block_digest = scan.block_digest
        fields["WARC-Block-Digest"] = block_digest
        fields["WARC-Payload-Digest"] = scan.payload_digest
        has_body = record_type != "revisit" and body is not None
        return self._builder.create_warc_record(
            uri,
            record_type,
            payload=LimitReader(body, scan.body_length) if has_body else None,
            length=scan.body_length if has_body else 0,
            warc_content_type=RecordBuilder.WARC_RECORDS[record_type],
            warc_headers_dict=fields,
            http_headers=RawHttpHeaders(scan.head),
        )

    def fields_record(
        self, record_type: str, uri: str, fields: Iterable[tuple[str, str]], headers: dict[str, str]
    ) -> ArcWarcRecord:
        """A warcinfo or metadata record whose block is ``application/warc-fields``."""
        block = b"".join(
            f"{name}: {' '.join(str(value).split())}\r\n".encode() for name, value in fields
        )
        digest = labelled_digest(self.algorithm, [block])
        headers = {"WARC-Type": record_type, **headers, "WARC-Block-Digest": digest}
        if record_type not in RecordBuilder.NO_PAYLOAD_DIGEST_TYPES:
            headers["WARC-Payload-Digest"] = digest  # no HTTP head: the payload is the block
        return self._builder.create_warc_record(
            uri,
            record_type,
            payload=BytesIO(block),
            length=len(block),
            warc_content_type="application/warc-fields",
            warc_headers_dict=headers,
        )
