"""The JSON crawl report written next to the WARC files (crawler/report.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scrapy import Spider
from scrapy.exceptions import NotConfigured
from scrapy.utils.test import get_crawler

from crawler.report import CrawlReport


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
