"""Revisit records for payloads already archived, across runs (the sqlite capture index)."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest
from warc_samples import (
    RESPONSES,
    assert_valid_warc,
    digest,
    make_exchange,
    make_writer,
    read_records,
    warc_files,
)

from crawler.warc.index import CaptureIndex
from crawler.warc.records import REVISIT_PROFILES


def crawl(directory: Path, index_path: Path, pages: dict[str, bytes], dedup: str = "url"):
    """One "crawl" in a fresh writer and index connection, as a new process would."""
    index = CaptureIndex(index_path)
    writer = make_writer(directory, index=index, dedup=dedup)
    captures = {
        path: writer.write_exchange(make_exchange(raw, path=path)) for path, raw in pages.items()
    }
    writer.close()
    index.close()
    return captures


def page(body: bytes, status: str = "200 OK", etag: str = '"v1"') -> bytes:
    return (
        b"HTTP/1.1 %s\r\nETag: %s\r\nContent-Length: %d\r\n\r\n"
        % (status.encode(), etag.encode(), len(body))
        + body
    )


def records_by_id(directory: Path) -> dict[str, tuple[dict[str, str], bytes]]:
    return {
        headers["WARC-Record-ID"]: (headers, block)
        for path in warc_files(directory)
        for headers, block in read_records(path)
    }


def test_identical_payload_becomes_a_revisit_across_runs(tmp_path: Path) -> None:
    index_path = tmp_path / "index.sqlite3"
    first = crawl(tmp_path / "a", index_path, {"/x": page(b"same"), "/y": page(b"old")})
    second = crawl(
        tmp_path / "b",
        index_path,
        {"/x": page(b"same", etag='"v2"'), "/y": page(b"new"), "/404": page(b"same", "404 No")},
    )
    assert second["/x"].record_type == "revisit"
    assert second["/y"].record_type == "response"  # changed payload: full record
    assert second["/404"].record_type == "response"  # only 200s are deduplicated

    records = records_by_id(tmp_path / "b")
    headers, block = records[second["/x"].record_id]
    assert headers["WARC-Type"] == "revisit"
    assert headers["WARC-Profile"] == REVISIT_PROFILES["1.1"]
    assert headers["WARC-Refers-To"] == first["/x"].record_id
    assert headers["WARC-Refers-To-Target-URI"] == first["/x"].url
    assert headers["WARC-Refers-To-Date"] == first["/x"].capture_time
    assert headers["WARC-Payload-Digest"] == digest(b"same")
    raw = page(b"same", etag='"v2"')
    assert block == raw[: raw.index(b"\r\n\r\n") + 4]  # the HTTP headers only
    for path in warc_files(tmp_path / "b"):
        assert_valid_warc(path)

    index = CaptureIndex(index_path)
    latest = index.latest(first["/x"].clearnet_url)
    assert latest.record_id == second["/x"].record_id
    assert latest.refers_to == first["/x"].record_id
    assert latest.etag == '"v2"'
    assert index.by_digest(digest(b"same"), first["/x"].url).record_id == first["/x"].record_id
    index.close()


@pytest.mark.parametrize(("dedup", "expected"), [("url", "response"), ("any", "revisit")])
def test_same_payload_at_another_url(tmp_path: Path, dedup: str, expected: str) -> None:
    index_path = tmp_path / "index.sqlite3"
    crawl(tmp_path / "a", index_path, {"/x": page(b"shared")}, dedup)
    second = crawl(tmp_path / "b", index_path, {"/other": page(b"shared")}, dedup)
    assert second["/other"].record_type == expected


def test_dedup_off_writes_full_records(tmp_path: Path) -> None:
    index_path = tmp_path / "index.sqlite3"
    crawl(tmp_path / "a", index_path, {"/x": page(b"same")}, "off")
    second = crawl(tmp_path / "b", index_path, {"/x": page(b"same")}, "off")
    assert second["/x"].record_type == "response"


def test_chunked_and_length_delimited_same_payload_dedup(tmp_path: Path) -> None:
    """The payload digest ignores transfer coding: chunked and plain bodies match."""
    raw, _ = RESPONSES["chunked-extensions-trailer"]
    index = CaptureIndex(tmp_path / "index.sqlite3")
    writer = make_writer(tmp_path, index=index, dedup="url")
    writer.write_exchange(make_exchange(raw, chunked=True))
    again = writer.write_exchange(make_exchange(page(b"hello, world")))
    writer.close()
    index.close()
    assert again.record_type == "revisit"


def test_truncated_captures_are_neither_indexed_nor_deduplicated(tmp_path: Path) -> None:
    index = CaptureIndex(tmp_path / "index.sqlite3")
    writer = make_writer(tmp_path, index=index, dedup="url")
    cut = writer.write_exchange(make_exchange(page(b"same"), truncated="length"))
    full = writer.write_exchange(make_exchange(page(b"same")))
    writer.close()
    assert cut.record_type == full.record_type == "response"
    assert index.latest(full.url).record_id == full.record_id
    index.close()


def test_dedup_needs_an_index(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs a capture index"):
        make_writer(tmp_path, index=None, dedup="url")
    with pytest.raises(ValueError, match="WARC_DEDUP"):
        make_writer(tmp_path, index=CaptureIndex(tmp_path / "i"), dedup="sometimes")


def index_rows(index_path: Path) -> list[tuple]:
    with sqlite3.connect(index_path) as db:
        rows = db.execute("SELECT * FROM captures ORDER BY record_id").fetchall()
    db.close()
    return [row[1:] for row in rows]  # without the row id


def test_catch_up_gives_the_captures_of_the_warcs_the_entries_the_writer_gave(
    tmp_path: Path, caplog
) -> None:
    written = tmp_path / "written.sqlite3"
    index = CaptureIndex(written)
    writer = make_writer(tmp_path / "warcs", index=index, dedup="url", max_size=3000)
    for name, (raw, chunked) in RESPONSES.items():  # odd heads, chunked bodies, a 404
        writer.write_exchange(make_exchange(raw, chunked, path=f"/{name}"))
    writer.write_exchange(make_exchange(page(b"same"), path="/x"))
    revisit = writer.write_exchange(make_exchange(page(b"same", etag='"v2"'), path="/x"))
    writer.write_exchange(make_exchange(page(b"cut"), path="/cut", truncated="length"))
    writer.close()
    index.close()
    assert revisit.record_type == "revisit"
    files = warc_files(tmp_path / "warcs")
    assert len(files) >= 3

    # A new index knows no file: catch_up reads them all (as for an index made before marks)
    rebuilt_path = tmp_path / "rebuilt.sqlite3"
    rebuilt = CaptureIndex(rebuilt_path)
    again = make_writer(tmp_path / "warcs", index=rebuilt)
    assert again.catch_up() == len(RESPONSES) + 2  # the truncated capture is not indexed
    assert index_rows(rebuilt_path) == index_rows(written)
    assert all(rebuilt.is_indexed(path.name) for path in files)

    files[0].write_bytes(b"no WARC at all")  # marked: it is not read again
    caplog.set_level(logging.INFO, logger="crawler.warc.writer")
    assert again.catch_up() == 0
    assert not caplog.records
    rebuilt.close()
