"""Records are byte-faithful, digests follow the WARC spec, and standard tools read the files."""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
import tempfile
import tracemalloc
from pathlib import Path

import pytest
from warc_samples import (
    BODY,
    ONION,
    ONION_MAP,
    RESPONSES,
    chunk,
    dechunk_whole,
    digest,
    make_exchange,
    make_writer,
    read_records,
    request_bytes,
    warc_files,
)

from crawler.warc.cdxj import cdxj_path, write_cdxj
from crawler.warc.records import ChunkedFramingError, Dechunker

BIN = Path(sys.executable).parent


def write_all(directory: Path, **options) -> dict[str, str]:
    """Write every sample; return sample name -> response record id."""
    writer = make_writer(directory, **options)
    ids = {}
    for name, (raw, chunked) in RESPONSES.items():
        ids[name] = writer.write_exchange(make_exchange(raw, chunked, path=f"/{name}")).record_id
    writer.close()
    return ids


def by_id(path: Path) -> dict[str, tuple[dict[str, str], bytes]]:
    return {headers["WARC-Record-ID"]: (headers, block) for headers, block in read_records(path)}


@pytest.mark.parametrize("name", RESPONSES)
def test_blocks_are_the_bytes_as_received(tmp_path: Path, name: str) -> None:
    raw, chunked = RESPONSES[name]
    writer = make_writer(tmp_path)
    capture = writer.write_exchange(make_exchange(raw, chunked))
    writer.close()
    records = by_id(warc_files(tmp_path)[0])
    headers, block = records[capture.record_id]
    assert headers["WARC-Type"] == "response"
    assert block == raw
    assert headers["WARC-Block-Digest"] == digest(raw)
    assert headers["WARC-Target-URI"] == f"https://www.{ONION}/page"
    (request_headers, request_block) = next(
        r for r in records.values() if r[0]["WARC-Type"] == "request"
    )
    assert request_block == request_bytes()
    assert request_headers["WARC-Concurrent-To"] == capture.record_id
    assert request_headers["WARC-Date"] == headers["WARC-Date"]


@pytest.mark.parametrize("name", RESPONSES)
def test_payload_digest_is_over_the_dechunked_still_encoded_body(tmp_path: Path, name: str) -> None:
    raw, chunked = RESPONSES[name]
    separator = b"\r\n\r\n" if b"\r\n\r\n" in raw else b"\n\n"
    body = raw.split(separator, 1)[1]
    expected = digest(dechunk_whole(body) if chunked else body)
    writer = make_writer(tmp_path)
    capture = writer.write_exchange(make_exchange(raw, chunked))
    writer.close()
    headers, _ = by_id(warc_files(tmp_path)[0])[capture.record_id]
    assert headers["WARC-Payload-Digest"] == expected
    if chunked:
        assert expected != digest(body)


def test_warcio_check_flags_exactly_the_chunked_records(tmp_path: Path) -> None:
    ids = write_all(tmp_path)
    (path,) = warc_files(tmp_path)
    result = subprocess.run(
        [BIN / "warcio", "check", "-v", path], capture_output=True, text=True, timeout=60
    )
    failed = set()
    current = None
    for line in result.stdout.splitlines():
        if match := re.search(r"WARC-Record-ID (<urn:uuid:[^>]+>)", line):
            current = match[1]
        elif "failed" in line:
            failed.add(current)
    chunked = {ids[name] for name, (_, is_chunked) in RESPONSES.items() if is_chunked}
    assert failed == chunked, result.stdout
    assert "payload digest failed" in result.stdout
    assert "block digest failed" not in result.stdout


def test_warcio_index_cdxj_indexer_and_our_cdxj_accept_every_record(tmp_path: Path) -> None:
    write_all(tmp_path)
    (path,) = warc_files(tmp_path)
    index = subprocess.run(
        [BIN / "warcio", "index", path], capture_output=True, text=True, timeout=60, check=True
    )
    # warcinfo + one response and one request per sample
    assert len(index.stdout.splitlines()) == 1 + 2 * len(RESPONSES)
    cdxj = subprocess.run(
        [BIN / "cdxj-indexer", path], capture_output=True, text=True, timeout=60, check=True
    )
    assert len(cdxj.stdout.splitlines()) == len(RESPONSES)
    ours = write_cdxj(path, ONION_MAP)
    assert ours == cdxj_path(path)
    lines = ours.read_text().splitlines()
    assert lines == sorted(lines)
    assert len(lines) == 2 * len(RESPONSES)
    entries = [json.loads(line.split(" ", 2)[2]) for line in lines]
    for name in RESPONSES:
        by_url = {e["url"]: e for e in entries if e["url"].endswith(f"/{name}")}
        onion = by_url[f"https://www.{ONION}/{name}"]
        clearnet = by_url[f"https://www.nytimes.com/{name}"]
        assert (onion["offset"], onion["length"], onion["filename"]) == (
            clearnet["offset"],
            clearnet["length"],
            clearnet["filename"],
        )
    assert any(line.startswith("com,nytimes)/odd-header-case ") for line in lines)


def test_sha256_and_warc_1_0(tmp_path: Path) -> None:
    raw, chunked = RESPONSES["chunked-gzip"]
    writer = make_writer(tmp_path, version="1.0", algorithm="sha256")
    capture = writer.write_exchange(make_exchange(raw, chunked))
    writer.close()
    (path,) = warc_files(tmp_path)
    with gzip.open(path, "rb") as stream:
        assert stream.read(10) == b"WARC/1.0\r\n"
    headers, _ = by_id(path)[capture.record_id]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", headers["WARC-Date"])
    body = raw.split(b"\r\n\r\n", 1)[1]
    assert headers["WARC-Payload-Digest"] == digest(dechunk_whole(body), "sha256")
    assert headers["WARC-Block-Digest"] == digest(raw, "sha256")
    for record_headers, _ in read_records(path):
        for name in ("WARC-Block-Digest", "WARC-Payload-Digest"):
            assert record_headers.get(name, "sha256:").startswith("sha256:")


def test_bad_version_or_digest_is_refused() -> None:
    from crawler.warc.records import RecordFactory

    with pytest.raises(ValueError, match="WARC_VERSION"):
        RecordFactory("1.2")
    with pytest.raises(ValueError, match="WARC_DIGEST"):
        RecordFactory("1.1", "md5")


def test_truncated_response_is_kept_with_its_reason(tmp_path: Path) -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    # Two whole 100-byte chunks (106 bytes each with framing), then 34 bytes of the third.
    cut = head + chunk(BODY, 100)[:250]
    writer = make_writer(tmp_path)
    capture = writer.write_exchange(make_exchange(cut, True, truncated="disconnect"))
    writer.close()
    headers, block = by_id(warc_files(tmp_path)[0])[capture.record_id]
    assert headers["WARC-Truncated"] == "disconnect"
    assert block == cut
    assert headers["WARC-Payload-Digest"] == digest(BODY[:234])


def test_response_cut_inside_its_headers_is_kept(tmp_path: Path) -> None:
    cut = b"HTTP/1.1 200 OK\r\nContent-Ty"
    writer = make_writer(tmp_path)
    capture = writer.write_exchange(make_exchange(cut, truncated="disconnect"))
    writer.close()
    headers, block = by_id(warc_files(tmp_path)[0])[capture.record_id]
    assert block == cut
    assert headers["WARC-Payload-Digest"] == digest(b"")


def test_malformed_chunking_digests_the_body_as_received(tmp_path: Path) -> None:
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nnot chunked at all"
    writer = make_writer(tmp_path)
    capture = writer.write_exchange(make_exchange(raw, True))
    writer.close()
    headers, block = by_id(warc_files(tmp_path)[0])[capture.record_id]
    assert block == raw
    assert headers["WARC-Payload-Digest"] == digest(raw.split(b"\r\n\r\n", 1)[1])
    assert "chunk size" in capture.scan.chunk_error


def test_exchange_without_response_bytes_is_refused(tmp_path: Path) -> None:
    exchange = make_exchange(b"")
    exchange.response = None
    writer = make_writer(tmp_path)
    with pytest.raises(ValueError, match="no response bytes"):
        writer.write_exchange(exchange)
    writer.close()
    assert warc_files(tmp_path) == []


def dechunk(pieces: list[bytes]) -> bytes:
    dechunker = Dechunker()
    return b"".join(dechunker.feed(piece) for piece in pieces)


@pytest.mark.parametrize("name", [n for n, (_, chunked) in RESPONSES.items() if chunked])
def test_dechunker_gives_the_same_payload_for_every_split(name: str) -> None:
    body = RESPONSES[name][0].split(b"\r\n\r\n", 1)[1]
    expected = dechunk_whole(body)
    for cut in range(len(body) + 1):
        assert dechunk([body[:cut], body[cut:]]) == expected
    assert dechunk([bytes([b]) for b in body]) == expected


@pytest.mark.parametrize(
    "body", [b"g\r\n", b"5\r\nhelloXX\r\n", b"-1\r\n", b"9" * 5000, b"\r\n", b"0x5\r\nhello\r\n"]
)
def test_dechunker_rejects_malformed_framing(body: bytes) -> None:
    with pytest.raises(ChunkedFramingError):
        Dechunker().feed(body)


def test_large_response_is_streamed_not_loaded(tmp_path: Path) -> None:
    """A 32 MB chunked response is written with far less than 32 MB of Python memory."""
    size = 32 * 1024 * 1024
    with tempfile.TemporaryFile() as spool:
        spool.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        piece = BODY * 50
        written = 0
        while written < size:
            spool.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            written += len(piece)
        spool.write(b"0\r\n\r\n")
        length = spool.tell()
        exchange = make_exchange(b"", True)
        exchange.response, exchange.response_length = spool, length
        writer = make_writer(tmp_path)
        tracemalloc.start()
        try:
            writer.write_exchange(exchange)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        writer.close()
    assert peak < 8 * 1024 * 1024, peak
    ((_, block),) = [r for r in read_records(warc_files(tmp_path)[0]) if b"HTTP/" in r[1][:5]]
    assert len(block) == length


def test_status_and_headers_are_read_from_the_raw_head() -> None:
    from crawler.warc.records import HttpScan

    scan = HttpScan(
        b'HTTP/1.1 404 Not Found\r\nX-ETag: no\r\nEtag:  "v1" \r\nlast-modified: Tue\r\n\r\n',
        0,
        "",
        "",
        None,
    )
    assert (scan.status, scan.header("ETag"), scan.header("Last-Modified")) == (404, '"v1"', "Tue")
    assert scan.header("Missing") is None
    bare = HttpScan(b"HTTP/1.0 200 OK\nETag: a\n\n", 0, "", "", None)
    assert (bare.status, bare.header("etag")) == (200, "a")
    assert HttpScan(b"not http", 0, "", "", None).status == 0
