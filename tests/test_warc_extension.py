"""The WARC add-on in a Scrapy crawler: signals in, records, metadata with outlinks, stats."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from onions import MIRROR_ONION_MAP
from scrapy import Request, Spider
from scrapy.http import HtmlResponse
from scrapy.spidermiddlewares.httperror import HttpError
from scrapy.utils.reactor import install_reactor, is_reactor_installed
from scrapy.utils.test import get_crawler
from warc_samples import RESPONSES, assert_valid_warc, make_exchange, read_records, warc_files

from crawler.warc.exchange import exchange_recorded
from crawler.warc.extension import WarcWriterExtension
from crawler.warc.index import CaptureIndex
from crawler.warc.middleware import OutlinksMiddleware

TESTS_DIR = Path(__file__).parent


@pytest.fixture(autouse=True, scope="module")
def reactor() -> None:
    """The extension's idle timer needs an installed reactor (it is never run here)."""
    if not is_reactor_installed():
        install_reactor("twisted.internet.asyncioreactor.AsyncioSelectorReactor")


class ArchiveSpider(Spider):
    name = "archive-test"


def start(tmp_path: Path, **settings) -> tuple:
    crawler = get_crawler(
        ArchiveSpider,
        {
            "ADDONS": {"crawler.warc.addon.WarcAddon": 10},
            "WARC_DIR": str(tmp_path / "warcs"),
            "WARC_PREFIX": "test",
            "CAPTURE_INDEX": str(tmp_path / "index.sqlite3"),
            "ONION_MAP": json.dumps(MIRROR_ONION_MAP),
            "DEPTH_LIMIT": 3,
            **settings,
        },
    )
    crawler.spider = crawler._create_spider()
    (extension,) = [e for e in crawler.extensions.middlewares if isinstance(e, WarcWriterExtension)]
    extension.spider_opened(crawler.spider)
    return crawler, extension


def record(crawler, raw: bytes, chunked: bool = False, path: str = "/page", **meta) -> Request:
    exchange = make_exchange(raw, chunked, path=path)
    request = Request(exchange.url, meta=meta, headers={"Referer": "https://x.onion/"})
    crawler.signals.send_catch_log(exchange_recorded, exchange=exchange, request=request)
    return request


def parse(crawler, request: Request, outputs: list) -> list:
    response = HtmlResponse(request.url, body=b"<html></html>", request=request)
    middleware = OutlinksMiddleware.from_crawler(crawler)
    return list(middleware.process_spider_output(response, outputs))


def stop(crawler, extension) -> dict[str, list[dict]]:
    extension.spider_closed(crawler.spider, "finished")
    return records_by_type(crawler.settings["WARC_DIR"])


def records_by_type(directory) -> dict[str, list[dict]]:
    by_type: dict[str, list[dict]] = {}
    for path in warc_files(Path(directory)):
        assert_valid_warc(path)
        for headers, block in read_records(path):
            by_type.setdefault(headers["WARC-Type"], []).append({**headers, "block": block})
    return by_type


def metadata_fields(record: dict) -> list[tuple[str, str]]:
    lines = record["block"].decode().splitlines()
    return [tuple(line.split(": ", 1)) for line in lines]


def test_capture_gets_request_response_and_metadata_with_outlinks(tmp_path: Path) -> None:
    crawler, extension = start(tmp_path)
    raw, chunked = RESPONSES["chunked-gzip"]
    request = record(crawler, raw, chunked, depth=2, hop_path="L", redirect_urls=["https://x/"])
    record_id = request.meta["warc_record_id"]
    outputs = [Request("https://a.onion/1"), {"item": 1}, Request("https://a.onion/2")]
    assert parse(crawler, request, outputs) == outputs
    assert outputs[0].meta["hop_path"] == "LRL"
    records = stop(crawler, extension)

    (response,) = records["response"]
    assert response["WARC-Record-ID"] == record_id
    assert response["block"] == raw
    (metadata,) = records["metadata"]
    assert metadata["WARC-Concurrent-To"] == record_id
    fields = metadata_fields(metadata)
    assert ("clearnet-url", "https://www.nytimes.com/page") in fields
    assert ("referrer", "https://x.onion/") in fields
    assert ("depth", "2") in fields
    assert ("hop-path", "LR") in fields
    assert ("tor-isolation", "host:test") in fields
    assert ("timing-first_byte", "0.200000") in fields
    assert [v for k, v in fields if k == "outlink"] == ["https://a.onion/1", "https://a.onion/2"]

    stats = crawler.stats.get_stats()
    assert stats["warc/records"] == 4  # warcinfo, response, request, metadata
    assert stats["warc/files"] == 1
    (path,) = warc_files(tmp_path / "warcs")
    assert stats["warc/bytes"] == path.stat().st_size
    cdxj = path.with_name(path.name.removesuffix(".warc.gz") + ".cdxj").read_text()
    assert "com,nytimes)/page " in cdxj


def test_warcinfo_describes_the_crawl_without_operator_identity(tmp_path: Path) -> None:
    crawler, extension = start(tmp_path, ROBOTSTXT_OBEY=True)
    crawler.stats.set_value("tor/version", "0.4.9.11")
    record(crawler, RESPONSES["custom-reason"][0])
    (warcinfo,) = stop(crawler, extension)["warcinfo"]
    fields = dict(metadata_fields(warcinfo))
    assert fields["robots"] == "obey"
    assert fields["tor-version"] == "0.4.9.11"
    assert fields["format"] == "WARC File Format 1.1"
    assert fields["isPartOf"] == "archive-test"
    assert fields["software"].startswith("onion-archiver/")
    crawl = json.loads(fields["crawl-settings"])
    assert crawl["ONION_MAP"] == MIRROR_ONION_MAP
    assert crawl["DEPTH_LIMIT"] == 3
    assert "hostname" not in fields
    assert socket.gethostname() not in fields.values()


def test_warcinfo_names_the_operator_host_only_when_asked(tmp_path: Path) -> None:
    crawler, extension = start(tmp_path, WARC_OPERATOR_HOSTNAME=True)
    record(crawler, RESPONSES["custom-reason"][0])
    (warcinfo,) = stop(crawler, extension)["warcinfo"]
    assert dict(metadata_fields(warcinfo))["hostname"] == socket.gethostname()


def test_rejected_response_and_unparsed_capture_still_get_metadata(tmp_path: Path) -> None:
    crawler, extension = start(tmp_path)
    rejected = record(crawler, RESPONSES["custom-reason"][0], path="/404")
    unparsed = record(crawler, RESPONSES["duplicate-set-cookie"][0], path="/redirected")
    response = HtmlResponse(rejected.url, status=404, body=b"", request=rejected)
    OutlinksMiddleware.from_crawler(crawler).process_spider_exception(
        response, HttpError(response, "ignored")
    )
    records = stop(crawler, extension)
    by_parent = {m["WARC-Concurrent-To"]: metadata_fields(m) for m in records["metadata"]}
    assert not [k for k, _ in by_parent[rejected.meta["warc_record_id"]] if k.startswith("outl")]
    assert ("outlinks", "unknown (the spider did not parse this response)") in by_parent[
        unparsed.meta["warc_record_id"]
    ]


def test_exchange_without_response_bytes_is_logged_and_counted(tmp_path, caplog) -> None:
    crawler, extension = start(tmp_path)
    exchange = make_exchange(b"", error="CircuitError: descriptor not found")
    exchange.response = None
    request = Request(exchange.url)
    crawler.signals.send_catch_log(exchange_recorded, exchange=exchange, request=request)
    assert "warc_record_id" not in request.meta
    assert crawler.stats.get_value("warc/no_response") == 1
    assert "descriptor not found" in caplog.text
    assert stop(crawler, extension) == {}


def test_truncated_exchange_is_written_and_counted(tmp_path: Path) -> None:
    crawler, extension = start(tmp_path)
    exchange = make_exchange(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")
    exchange.truncated = "disconnect"
    crawler.signals.send_catch_log(
        exchange_recorded, exchange=exchange, request=Request(exchange.url)
    )
    (response,) = stop(crawler, extension)["response"]
    assert response["WARC-Truncated"] == "disconnect"
    assert crawler.stats.get_value("warc/truncated") == 1


def test_idle_file_is_closed_and_a_new_one_opened(tmp_path: Path) -> None:
    crawler, extension = start(tmp_path, WARC_MAX_IDLE=0)
    record(crawler, RESPONSES["custom-reason"][0])
    extension._tick()
    assert len(warc_files(tmp_path / "warcs")) == 1
    assert not list((tmp_path / "warcs").glob("*.open"))
    record(crawler, RESPONSES["custom-reason"][0])
    stop(crawler, extension)
    assert len(warc_files(tmp_path / "warcs")) == 2
    assert crawler.stats.get_value("warc/files") == 2


def test_revisits_are_counted(tmp_path: Path) -> None:
    crawler, extension = start(tmp_path)
    raw = RESPONSES["duplicate-set-cookie"][0]
    record(crawler, raw)
    record(crawler, raw)
    records = stop(crawler, extension)
    assert len(records["revisit"]) == 1
    assert crawler.stats.get_value("warc/revisits") == 1


def test_leftover_open_file_is_finished_when_the_spider_opens(tmp_path: Path) -> None:
    crawler, extension = start(tmp_path)
    record(crawler, RESPONSES["custom-reason"][0])
    # a crash: the file stays .open, its lock goes, the uncommitted index entry too
    os.close(extension.writer.files.current._fd)
    extension.index._db.close()
    (leftover,) = (tmp_path / "warcs").glob("*.open")
    again, again_extension = start(tmp_path)
    assert not leftover.exists()
    assert again.stats.get_value("warc/repaired_files") == 1
    stop(again, again_extension)


def test_a_finished_file_without_its_cdxj_gets_one_at_the_next_start(tmp_path: Path) -> None:
    """A CDXJ lost to a full disk (or a kill while indexing) is written by the next crawl."""
    crawler, extension = start(tmp_path)
    record(crawler, RESPONSES["custom-reason"][0])
    stop(crawler, extension)
    (warc,) = warc_files(tmp_path / "warcs")
    cdxj = warc.with_name(warc.name.removesuffix(".warc.gz") + ".cdxj")
    written = cdxj.read_bytes()
    cdxj.unlink()
    again, again_extension = start(tmp_path)
    stop(again, again_extension)
    assert cdxj.read_bytes() == written


def page(body: bytes, status: str = "200 OK") -> bytes:
    head = b'HTTP/1.1 %s\r\nETag: "%d"\r\nContent-Length: %d\r\n\r\n'
    return head % (status.encode(), len(body), len(body)) + body


CRAWL_SCRIPT = """
import json, sys
from pathlib import Path
from scrapy.utils.reactor import install_reactor
install_reactor("twisted.internet.asyncioreactor.AsyncioSelectorReactor")
from scrapy import Request
from test_warc_extension import page, record, start
from warc_samples import make_exchange
from crawler.warc.exchange import exchange_recorded
crawler, extension = start(Path(sys.argv[1]), WARC_MAX_IDLE=0)
record(crawler, page(b"first"), path="/a")
record(crawler, page(b"other"), path="/b")
extension._tick()  # commits the index, finishes the idle file
extension.index.commit_interval = 3600  # what follows stays uncommitted, however slow
ids = {path: record(crawler, raw, path=path).meta["warc_record_id"] for path, raw in [
    ("/a", page(b"first")),  # a revisit
    ("/c", page(b"new")),
    ("/gone", page(b"gone", "404 Not Found")),
]}
cut = make_exchange(page(b"cut"), path="/cut", truncated="disconnect")
crawler.signals.send_catch_log(exchange_recorded, exchange=cut, request=Request(cut.url))
print(json.dumps(ids), flush=True)
sys.stdin.read()  # crawling on, its file open, until killed
"""


def crawl_elsewhere(tmp_path: Path) -> tuple[subprocess.Popen, dict[str, str]]:
    """Another crawl process on the same WARC_DIR and index: it captures /a and /b (committed,
    file finished), then /a (a revisit), /c, /gone (404) and /cut (truncated), left in its
    open file and uncommitted in the index, and waits to be killed.

    Returns it and the record ids of its last captures but /cut, by path.
    """
    process = subprocess.Popen(
        [sys.executable, "-c", CRAWL_SCRIPT, str(tmp_path)],
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), os.environ["PYTHONPATH"]]),
        },
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=TESTS_DIR.parent,
    )
    ready, _, _ = select.select([process.stdout], [], [], 120)
    if not ready:
        kill(process)
        pytest.fail("the crawl process wrote nothing within 120 s")
    return process, json.loads(process.stdout.readline())


def kill(process: subprocess.Popen) -> None:
    """SIGKILL ``process``, as a crash would end it, and reap it."""
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    process.stdin.close()
    process.stdout.close()
    assert process.returncode == -signal.SIGKILL


def indexed_ids(index_path: Path) -> set[str]:
    with sqlite3.connect(index_path) as db:
        ids = {row[0] for row in db.execute("SELECT record_id FROM captures")}
    db.close()
    return ids


def captures_in_warcs(directory: Path) -> set[str]:
    """The ids of the records the index is to hold: non-truncated responses and revisits."""
    return {
        headers["WARC-Record-ID"]
        for path in warc_files(directory)
        for headers, _ in read_records(path)
        if headers["WARC-Type"] in ("response", "revisit") and "WARC-Truncated" not in headers
    }


@pytest.mark.timeout(240)
def test_start_up_leaves_alone_the_open_file_another_crawl_is_writing(tmp_path: Path) -> None:
    process, _ = crawl_elsewhere(tmp_path)
    try:
        (live,) = (tmp_path / "warcs").glob("*.open")
        content = live.read_bytes()
        crawler, extension = start(tmp_path)
        assert live.read_bytes() == content
        assert list((tmp_path / "warcs").glob("*.open")) == [live]
        assert crawler.stats.get_value("warc/repaired_files") is None
        stop(crawler, extension)
    finally:
        kill(process)
    crawler, extension = start(tmp_path)
    assert not live.exists()
    assert live.with_name(live.name.removesuffix(".open")).read_bytes() == content
    assert crawler.stats.get_value("warc/repaired_files") == 1
    stop(crawler, extension)


@pytest.mark.timeout(240)
def test_captures_a_killed_crawl_did_not_commit_are_indexed_at_the_next_start(
    tmp_path: Path,
) -> None:
    process, last = crawl_elsewhere(tmp_path)
    kill(process)
    index_path = tmp_path / "index.sqlite3"
    first = captures_in_warcs(tmp_path / "warcs")  # the finished file: /a and /b
    assert len(first) == 2
    assert indexed_ids(index_path) == first  # the last captures are in no index: the lag

    crawler, extension = start(tmp_path)
    assert crawler.stats.get_value("warc/repaired_files") == 1
    assert captures_in_warcs(tmp_path / "warcs") == first | set(last.values())
    assert indexed_ids(index_path) == captures_in_warcs(tmp_path / "warcs")
    index = extension.index
    assert index.latest("https://www.nytimes.com/a").record_id == last["/a"]
    assert index.latest("https://www.nytimes.com/a").refers_to in first
    assert index.latest("https://www.nytimes.com/c").record_id == last["/c"]
    assert index.latest("https://www.nytimes.com/gone") is None  # indexed, but a 404
    assert crawler.stats.get_value("warc/index_caught_up") == 3  # /a, /c, /gone: not /cut
    assert all(index.is_indexed(path.name) for path in warc_files(tmp_path / "warcs"))
    stop(crawler, extension)
    reader = CaptureIndex(index_path)
    assert reader.latest("https://www.nytimes.com/c").record_id == last["/c"]
    reader.close()


@pytest.mark.parametrize("setting", [{"WARC_PREFIX": "../x"}, {"WARC_DIGEST": "md5"}])
def test_bad_settings_fail_at_start(tmp_path: Path, setting: dict) -> None:
    with pytest.raises(ValueError):
        start(tmp_path, **setting)


def test_unusable_warc_dir_stops_archiving_loudly(tmp_path: Path, caplog) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    crawler, extension = start(tmp_path, WARC_DIR=str(tmp_path / "a-file" / "warcs"))
    first = record(crawler, RESPONSES["custom-reason"][0])
    record(crawler, RESPONSES["custom-reason"][0])
    assert "warc_record_id" not in first.meta
    assert "cannot create" in crawler.stats.get_value("warc/write_failed")
    assert crawler.stats.get_value("warc/not_archived") == 1
    assert "WARC writing failed, closing the spider (warc_write_failed)" in caplog.text
    extension.spider_closed(crawler.spider, "warc_write_failed")
