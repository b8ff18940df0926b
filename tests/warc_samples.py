"""Raw HTTP exchanges written by hand, and helpers to write and read them back as WARC.

Independent of crawler.warc's parsing on purpose: :func:`dechunk_whole` and :func:`digest`
are the tests' own de-chunker and digest, to check the writer against.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import zlib
from datetime import UTC, datetime
from pathlib import Path

from onions import MIRROR_ONION_MAP
from warcio.archiveiterator import ArchiveIterator

from crawler.tor.onion import OnionMap
from crawler.warc.exchange import Exchange
from crawler.warc.files import WarcFiles
from crawler.warc.index import CaptureIndex
from crawler.warc.records import RecordFactory, new_record_id
from crawler.warc.writer import CaptureWriter

ONION = MIRROR_ONION_MAP["nytimes.com"]
ONION_MAP = OnionMap(MIRROR_ONION_MAP)
BODY = b"<html><body><p>Hello, archive.</p></body></html>\n" * 20
GZ_BODY = gzip.compress(BODY, mtime=0)


def chunk(body: bytes, size: int) -> bytes:
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


#: name -> (raw response bytes, chunked?)
RESPONSES: dict[str, tuple[bytes, bool]] = {
    "chunked-gzip": (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
        b"Content-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk(GZ_BODY, 100),
        True,
    ),
    "chunked-extensions-trailer": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;name=value\r\nhello\r\n7 \r\n, world\r\n0\r\nX-Trailer: yes\r\n\r\n",
        True,
    ),
    "odd-header-case": (
        b"HTTP/1.1 200 OK\r\ncOnTeNt-TyPe: text/html\r\nx-lower: a\r\nX-UPPER: B\r\n"
        b"Content-Length: %d\r\n\r\n" % len(BODY) + BODY,
        False,
    ),
    "duplicate-set-cookie": (
        b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1; Path=/\r\nSet-Cookie: b=2; Path=/\r\n"
        b"Set-Cookie: a=3\r\nContent-Length: 2\r\n\r\nok",
        False,
    ),
    "custom-reason": (
        b"HTTP/1.1 404 Nothing To See Here, Move Along\r\nContent-Length: 4\r\n\r\nnope",
        False,
    ),
    "gzip-length": (
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(GZ_BODY)
        + GZ_BODY,
        False,
    ),
    "bare-lf-headers": (b"HTTP/1.0 200 OK\nContent-Type: text/plain\n\nplain body", False),
    "folded-header-and-spaces": (
        b"HTTP/1.1 200  OK \r\nX-Folded: one\r\n two\r\nX-Space :  v \r\n\r\nbody",
        False,
    ),
}


def request_bytes(path: str = "/page") -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: www.{ONION}\r\nUser-Agent: test\r\n"
        "Accept-Encoding: gzip, br\r\n\r\n"
    ).encode()


def make_exchange(
    raw: bytes,
    chunked: bool = False,
    path: str = "/page",
    truncated: str | None = None,
    error: str | None = None,
) -> Exchange:
    return Exchange(
        url=f"https://www.{ONION}{path}",
        request=request_bytes(path),
        started=datetime.now(UTC),
        response=io.BytesIO(raw),
        response_length=len(raw),
        chunked=chunked,
        truncated=truncated,
        error=error,
        isolation="host:test",
        timings={"connected": 0.1, "first_byte": 0.2, "done": 0.3},
    )


def warcinfo_builder(factory: RecordFactory):
    def warcinfo(name: str):
        return factory.fields_record(
            "warcinfo",
            "",
            [("software", "onion-archiver tests")],
            {
                "WARC-Record-ID": new_record_id(),
                "WARC-Filename": name,
                "WARC-Date": factory.date(datetime.now(UTC)),
            },
        )

    return warcinfo


def make_writer(
    directory: Path,
    index: CaptureIndex | None = None,
    dedup: str = "off",
    max_size: int = 10**9,
    version: str = "1.1",
    algorithm: str = "sha1",
    prefix: str = "test",
    on_finished=lambda path: None,
) -> CaptureWriter:
    factory = RecordFactory(version, algorithm)
    files = WarcFiles(directory, prefix, max_size, warcinfo_builder(factory), on_finished)
    return CaptureWriter(files, factory, index, ONION_MAP, dedup)


def dechunk_whole(body: bytes) -> bytes:
    """The tests' own, non-streaming de-chunker."""
    out = b""
    while True:
        line, _, body = body.partition(b"\r\n")
        size = int(line.split(b";")[0].strip(), 16)
        if size == 0:
            return out
        out += body[:size]
        assert body[size : size + 2] == b"\r\n"
        body = body[size + 2 :]


def digest(data: bytes, algorithm: str = "sha1") -> str:
    return f"{algorithm}:{base64.b32encode(hashlib.new(algorithm, data).digest()).decode()}"


def read_records(path: Path) -> list[tuple[dict[str, str], bytes]]:
    """(WARC headers, block as stored) of every record, read with warcio."""
    records = []
    with open(path, "rb") as stream:
        for record in ArchiveIterator(stream, no_record_parse=True):
            headers = dict(record.rec_headers.headers)
            records.append((headers, record.raw_stream.read()))
    return records


def warc_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.warc.gz"))


def assert_valid_warc(path: Path) -> int:
    """Check ``path`` record by record with warcio (each a gzip member, block digests right,
    warcinfo first); return the number of records."""
    records = read_records(path)
    assert records, f"{path} has no record"
    assert records[0][0]["WARC-Type"] == "warcinfo"
    for headers, block in records:
        algorithm = headers["WARC-Block-Digest"].split(":")[0]
        assert headers["WARC-Block-Digest"] == digest(block, algorithm), headers
        assert int(headers["Content-Length"]) == len(block)
    assert gzip_members(path) == len(records), "one gzip member per record"
    return len(records)


def gzip_members(path: Path) -> int:
    """The number of gzip members in ``path`` (raises ``zlib.error`` on a damaged one)."""
    data = path.read_bytes()
    members = 0
    while data:
        decompressor = zlib.decompressobj(zlib.MAX_WBITS | 16)
        decompressor.decompress(data)
        assert decompressor.eof, "incomplete gzip member"
        data = decompressor.unused_data
        members += 1
    return members
