"""The JSON crawl report written next to the WARC files (crawler/report.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from onions import MIRROR_ONION_MAP
from scrapy import Spider
from scrapy.exceptions import NotConfigured
from scrapy.http import HtmlResponse, Response
from scrapy.spidermiddlewares.httperror import HttpError, HttpErrorMiddleware
from scrapy.utils.test import get_crawler
from test_spider import FRONT, HOME, html, start_requests
from twisted.python.failure import Failure

from crawler.incremental import IncrementalMiddleware
from crawler.report import CrawlReport
from crawler.spiders.nytimes import NytimesSpider
from crawler.warc.index import Capture, CaptureIndex


def test_report_sums_up_the_run_in_json_next_to_the_warcs(tmp_path: Path) -> None:
    crawler = get_crawler(
        Spider, {"WARC_DIR": str(tmp_path), "WARC_PREFIX": "oa", "CRAWL_REPORT": True}
    )
    crawler.spider = Spider.from_crawler(crawler, "nytimes")
    crawler.stats.open_spider()
    report = CrawlReport.from_crawler(crawler)
    report.spider_opened()
    stamp = f"{report.started:%Y%m%d%H%M%S}"
    # this run's files (one still .open while the writer finishes), an older run's, and noise
    (tmp_path / f"oa-{stamp}123-00000-0a1b2c3d.warc.gz").write_bytes(b"")
    (tmp_path / f"oa-{stamp}456-00001-0a1b2c3e.warc.gz.open").write_bytes(b"")
    (tmp_path / "oa-20200101000000000-00000-0a1b2c3d.warc.gz").write_bytes(b"")
    (tmp_path / f"other-{stamp}123-00000-0a1b2c3d.warc.gz").write_bytes(b"")
    for key, value in {
        "downloader/response_status_count/200": 40,
        "downloader/response_status_count/304": 7,
        "downloader/response_status_count/404": 1,
        "downloader/response_bytes": 123456,
        "downloader/request_bytes": 7890,
        "spider/found/article": 45,
        "spider/pages/article": 30,
        "incremental/new/article": 30,
        "incremental/updated/article": 3,
        "incremental/unchanged/article": 7,
        "incremental/skipped/article": 5,
        "spider/listing_errors/html": 1,
        "retry/count": 2,
    }.items():
        crawler.stats.set_value(key, value)
    exceptions = "downloader/exception_type_count/"
    crawler.stats.set_value(exceptions + "crawler.tor.socks.OnionRendezvousFailed", 2)
    crawler.stats.set_value(exceptions + "crawler.tor.socks.TorUnavailable", 1)
    crawler.stats.set_value(exceptions + "crawler.tor.socks.OnionIntroductionTimedOut", 3)
    crawler.stats.set_value(exceptions + "twisted.internet.error.TimeoutError", 4)
    crawler.stats.set_value(exceptions + "gone.module.Error", 5)

    report.spider_closed(crawler.spider, "finished")

    assert report.path == tmp_path / f"oa-{stamp}-report.json"
    summary = json.loads(report.path.read_text())
    assert summary["finish_reason"] == "finished"
    assert summary["pages_by_status"] == {"200": 40, "304": 7, "404": 1}
    assert summary["articles"] == {"found": 45, "new": 30, "updated": 3, "unchanged": 12}
    assert summary["bytes"] == {"received": 123456, "sent": 7890}
    assert summary["tor_errors"] == {
        "onion_rendezvous_failed": 2,
        "tor_unavailable": 1,
        "onion_introduction_timed_out": 3,
    }
    assert summary["exceptions"]["twisted.internet.error.TimeoutError"] == 4
    assert summary["listing_errors"] == {"html": 1}
    assert summary["retries"]["total"] == 2
    assert summary["warc_files"] == [
        f"oa-{stamp}123-00000-0a1b2c3d.warc.gz",
        f"oa-{stamp}456-00001-0a1b2c3e.warc.gz",
    ]
    assert summary["stats"]["spider/found/article"] == 45
    assert crawler.stats.get_value("report/tor_errors/onion_rendezvous_failed") == 2
    assert not list(tmp_path.glob("*.tmp"))


def test_report_can_be_switched_off() -> None:
    with pytest.raises(NotConfigured):
        CrawlReport.from_crawler(get_crawler(Spider, {"CRAWL_REPORT": False}))


def deliver(middleware: HttpErrorMiddleware, response: Response) -> list:
    """What Scrapy does with a downloaded response: HttpErrorMiddleware, then the request's
    callback, or its errback when the middleware rejects the status."""
    try:
        middleware.process_spider_input(response)
    except HttpError as error:
        failure = Failure(error)
        failure.request = response.request
        response.request.errback(failure)
        return []
    return list(response.request.callback(response))


def test_a_304_to_a_recheck_is_reported_unchanged_and_not_as_an_error(tmp_path: Path) -> None:
    index_path = tmp_path / "capture-index.sqlite3"
    crawler = get_crawler(
        NytimesSpider,
        {
            "ONION_MAP": MIRROR_ONION_MAP,
            "WARC_DIR": str(tmp_path),
            "WARC_PREFIX": "oa",
            "CRAWL_REPORT": True,
            "INCREMENTAL_ENABLED": True,
            "INCREMENTAL_RECHECK_AFTER": 3600,
            "CAPTURE_INDEX": str(index_path),
        },
    )
    spider = crawler.spider = NytimesSpider.from_crawler(crawler)
    crawler.stats.open_spider()
    report = CrawlReport.from_crawler(crawler)
    start_requests(spider)
    article, *_ = spider.parse(html(HOME, FRONT))
    index = CaptureIndex(index_path)
    index.add(
        Capture(
            url=article.url,
            clearnet_url=article.url,
            payload_digest="sha1:AAAA",
            record_id="<urn:uuid:1>",
            warc_filename="a.warc.gz",
            warc_offset=0,
            capture_time="2016-12-10T12:00:00Z",
            status=200,
            etag='"v1"',
            last_modified=None,
        )
    )
    index.close()
    incremental = IncrementalMiddleware.from_crawler(crawler)
    try:
        assert incremental.process_request(article) is None
        assert article.headers[b"If-None-Match"] == b'"v1"'
        response = HtmlResponse(article.url, status=304, request=article)
        response = incremental.process_response(article, response)
        assert deliver(HttpErrorMiddleware.from_crawler(crawler), response) == []
    finally:
        incremental.spider_closed()

    summary = report.summary("finished")
    assert summary["errors"] == {}
    assert summary["articles"]["unchanged"] == 1
    assert "article" not in summary["pages_by_kind"]  # the empty 304 was not read as one
