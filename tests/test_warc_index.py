"""CaptureIndex: the sqlite capture index shared by the WARC writer and the spider."""

from __future__ import annotations

import multiprocessing
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest
from scrapy.utils.test import get_crawler

from crawler.incremental import IncrementalMiddleware
from crawler.warc.extension import WarcWriterExtension
from crawler.warc.index import Capture, CaptureIndex

ONION = "http://abc.onion/page"
CLEAR = "https://www.nytimes.com/page"


def capture(n: int, **changes) -> Capture:
    base = Capture(
        url=ONION,
        clearnet_url=CLEAR,
        payload_digest="sha1:AAAA",
        record_id=f"<urn:uuid:{n:08d}-0000-0000-0000-000000000000>",
        warc_filename="x.warc.gz",
        warc_offset=n * 100,
        capture_time=f"2026-01-01T00:00:{n:02d}Z",
        status=200,
        etag=f'"e{n}"',
        last_modified=None,
    )
    return replace(base, **changes)


def test_the_index_lives_in_warc_dir_unless_placed_elsewhere(tmp_path: Path) -> None:
    """Both users of the index open the same file, beside the WARCs it points into."""
    warc_dir = tmp_path / "srv-warcs"
    crawler = get_crawler(settings_dict={"WARC_DIR": str(warc_dir), "INCREMENTAL_ENABLED": True})
    extension = WarcWriterExtension(crawler)
    middleware = IncrementalMiddleware.from_crawler(crawler)
    assert extension.index.path == middleware.index.path == warc_dir / "capture-index.sqlite3"
    assert extension.index.path.exists()
    extension.index.close()
    middleware.index.close()
    elsewhere = tmp_path / "index" / "i.sqlite3"
    crawler = get_crawler(
        settings_dict={
            "WARC_DIR": str(warc_dir),
            "CAPTURE_INDEX": str(elsewhere),
            "INCREMENTAL_ENABLED": True,
        }
    )
    middleware = IncrementalMiddleware.from_crawler(crawler)
    assert middleware.index.path == elsewhere
    middleware.index.close()


def test_empty_index_answers_none(tmp_path: Path) -> None:
    index = CaptureIndex(tmp_path / "sub" / "index.sqlite3")
    assert index.latest(ONION) is None
    assert index.by_digest("sha1:AAAA") is None
    index.close()


def test_latest_by_onion_or_clearnet_url_and_mixed_precision(tmp_path: Path) -> None:
    index = CaptureIndex(tmp_path / "i.sqlite3")
    index.add(capture(1))
    # Later, with a fraction: "…:01.5Z" sorts after "…:01Z" although '.' < 'Z'.
    later = capture(2, capture_time="2026-01-01T00:00:01.5Z", refers_to=capture(1).record_id)
    index.add(later)
    assert index.latest(ONION) == later
    assert index.latest(CLEAR) == later
    assert index.latest("http://abc.onion/other") is None
    index.close()


def test_latest_passes_over_error_pages_and_redirects(tmp_path: Path) -> None:
    index = CaptureIndex(tmp_path / "i.sqlite3")
    index.add(capture(1))
    for n, status in ((2, 503), (3, 404), (4, 301)):
        index.add(capture(n, status=status))
    assert index.latest(ONION) == capture(1)
    confirmed = capture(5, status=304)
    index.add(confirmed)
    assert index.latest(CLEAR) == confirmed
    only_errors = "http://abc.onion/gone"
    index.add(capture(6, url=only_errors, clearnet_url=only_errors, status=500))
    assert index.latest(only_errors) is None
    index.close()


def test_by_digest_returns_oldest_full_capture_scoped_by_url(tmp_path: Path) -> None:
    index = CaptureIndex(tmp_path / "i.sqlite3")
    first = capture(1)
    index.add(first)
    index.add(capture(2, refers_to=first.record_id))
    other = capture(3, url="http://abc.onion/b", clearnet_url="https://www.nytimes.com/b")
    index.add(other)
    assert index.by_digest("sha1:AAAA") == first
    assert index.by_digest("sha1:AAAA", url=CLEAR) == first
    assert index.by_digest("sha1:AAAA", url="http://abc.onion/b") == other
    assert index.by_digest("sha1:BBBB") is None
    index.close()


def test_bad_input_is_refused_clearly(tmp_path: Path) -> None:
    index = CaptureIndex(tmp_path / "i.sqlite3")
    with pytest.raises(ValueError, match="not a WARC-Date"):
        index.add(capture(1, capture_time="yesterday"))
    index.add(capture(1))
    with pytest.raises(sqlite3.IntegrityError):
        index.add(capture(1))
    assert index.latest(ONION) == capture(1)
    index.close()


def _add_many(path: str, start: int) -> None:
    index = CaptureIndex(path)
    for n in range(start, start + 50):
        index.add(capture(n, capture_time="2026-01-01T00:00:00Z"))
    index.close()


def test_survives_restart_and_concurrent_processes(tmp_path: Path) -> None:
    path = str(tmp_path / "i.sqlite3")
    workers = [
        multiprocessing.get_context("spawn").Process(target=_add_many, args=(path, s))
        for s in (0, 1000)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    index = CaptureIndex(path)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM captures").fetchone()[0] == 100
    assert index.by_digest("sha1:AAAA") is not None
    index.close()


def test_grouped_commits_are_seen_by_others_after_commit_or_close(tmp_path: Path) -> None:
    path = tmp_path / "i.sqlite3"
    writer = CaptureIndex(path, commit_interval=3600)
    reader = CaptureIndex(path)
    writer.add(capture(1))
    assert writer.latest(ONION) == capture(1)  # its own connection sees it at once
    assert reader.latest(ONION) is None
    writer.commit()
    assert reader.latest(ONION) == capture(1)
    writer.add(capture(2))
    writer.close()
    assert reader.latest(ONION) == capture(2)
    reader.close()


def test_grouped_commits_commit_once_the_interval_passed(tmp_path: Path) -> None:
    path = tmp_path / "i.sqlite3"
    writer = CaptureIndex(path, commit_interval=1e-9)
    reader = CaptureIndex(path)
    writer.add(capture(1))
    writer.add(capture(2))  # at least the interval after the first: commits both
    assert reader.latest(ONION) == capture(2)
    writer.close()
    reader.close()


def test_mark_indexed_commits_the_pending_additions_with_the_mark(tmp_path: Path) -> None:
    path = tmp_path / "i.sqlite3"
    writer = CaptureIndex(path, commit_interval=3600)
    reader = CaptureIndex(path)
    writer.add(capture(1))
    assert not reader.is_indexed("x.warc.gz")
    assert writer.mark_indexed("x.warc.gz") == 0
    assert reader.is_indexed("x.warc.gz")
    assert reader.latest(ONION) == capture(1)
    assert not reader.is_indexed("y.warc.gz")
    writer.close()
    reader.close()


def test_mark_indexed_adds_only_the_missing_captures(tmp_path: Path) -> None:
    index = CaptureIndex(tmp_path / "i.sqlite3")
    index.add(capture(1))
    assert index.mark_indexed("x.warc.gz", [capture(1), capture(2)]) == 1
    assert index.mark_indexed("x.warc.gz", [capture(1), capture(2)]) == 0
    assert index.latest(ONION) == capture(2)
    with pytest.raises(ValueError, match="not a WARC-Date"):
        index.mark_indexed("y.warc.gz", [capture(3), capture(4, capture_time="yesterday")])
    assert not index.is_indexed("y.warc.gz")
    assert index.latest(ONION) == capture(2)
    index.close()


def test_an_index_made_before_file_marks_gets_them_empty(tmp_path: Path) -> None:
    path = tmp_path / "i.sqlite3"
    with sqlite3.connect(path) as db:  # the schema as it was, with one capture
        db.executescript(
            "CREATE TABLE captures (id INTEGER PRIMARY KEY, url TEXT NOT NULL,"
            " clearnet_url TEXT NOT NULL, payload_digest TEXT NOT NULL,"
            " record_id TEXT NOT NULL UNIQUE, warc_filename TEXT NOT NULL,"
            " warc_offset INTEGER NOT NULL, capture_time TEXT NOT NULL, status INTEGER NOT NULL,"
            " etag TEXT, last_modified TEXT, refers_to TEXT, sort_time TEXT NOT NULL);"
        )
        db.execute(
            "INSERT INTO captures VALUES (1, ?, ?, 'sha1:AAAA', ?, 'x.warc.gz', 100,"
            " '2026-01-01T00:00:01Z', 200, '\"e1\"', NULL, NULL, '2026-01-01T00:00:01.000000000')",
            (ONION, CLEAR, capture(1).record_id),
        )
    db.close()
    index = CaptureIndex(path)
    assert index.latest(ONION) == capture(1)
    assert not index.is_indexed("x.warc.gz")
    index.mark_indexed("x.warc.gz", [capture(1)])
    assert index.is_indexed("x.warc.gz")
    index.close()
