"""Incremental crawling against a real capture index (crawler/incremental.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from scrapy import Request
from scrapy.exceptions import IgnoreRequest, NotConfigured
from scrapy.http import Response
from scrapy.utils.test import get_crawler

from crawler.incremental import IncrementalMiddleware
from crawler.warc.index import Capture, CaptureIndex

URL = "https://www.example.onion/2016/12/10/world/a.html"
LAST_MODIFIED = "Sat, 10 Dec 2016 12:00:00 GMT"


def warc_date(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def capture(
    url: str,
    age: timedelta,
    etag: str | None = '"v1"',
    last_modified=LAST_MODIFIED,
    status: int = 200,
):
    return Capture(
        url=url,
        clearnet_url=url,
        payload_digest="sha1:AAAA",
        record_id=f"<urn:uuid:{abs(hash((url, age)))}>",
        warc_filename="a.warc.gz",
        warc_offset=0,
        capture_time=warc_date(datetime.now(UTC) - age),
        status=status,
        etag=etag,
        last_modified=last_modified,
    )


@pytest.fixture
def index_path(tmp_path: Path) -> Path:
    return tmp_path / "capture-index.sqlite3"


@pytest.fixture
def middleware(index_path: Path) -> Iterator[IncrementalMiddleware]:
    crawler = get_crawler(
        settings_dict={
            "INCREMENTAL_ENABLED": True,
            "INCREMENTAL_RECHECK_AFTER": 86400,
            "CAPTURE_INDEX": str(index_path),
        }
    )
    crawler.stats.open_spider()
    mw = IncrementalMiddleware.from_crawler(crawler)
    yield mw
    mw.spider_closed()


def add(index_path: Path, *captures: Capture) -> None:
    index = CaptureIndex(index_path)
    for c in captures:
        index.add(c)
    index.close()


def request(kind: str = "article", lastmod: str | None = None, url: str = URL) -> Request:
    meta = {"page_kind": kind}
    if lastmod:
        meta["lastmod"] = lastmod
    return Request(url, meta=meta)


def stats(mw: IncrementalMiddleware) -> dict:
    return {k: v for k, v in mw.crawler.stats.get_stats().items() if k.startswith("incr")}


def test_never_captured_is_fetched_and_counted_new(middleware: IncrementalMiddleware) -> None:
    req = request(lastmod="2016-12-10T00:00:00Z")
    assert middleware.process_request(req) is None
    assert b"If-None-Match" not in req.headers
    middleware.process_response(req, Response(URL, status=200))
    assert stats(middleware) == {"incremental/new/article": 1}


def test_an_article_that_failed_last_time_is_fetched_again(
    middleware: IncrementalMiddleware, index_path: Path
) -> None:
    """A 503 archived a minute ago is no capture of the article: no skip, no conditions."""
    add(index_path, capture(URL, timedelta(minutes=1), etag=None, last_modified=None, status=503))
    req = request(lastmod="2016-12-10T00:00:00Z")
    assert middleware.process_request(req) is None
    assert req.meta["incremental"] == "new"
    assert b"If-None-Match" not in req.headers


def test_sitemap_lastmod_not_newer_than_capture_skips(
    middleware: IncrementalMiddleware, index_path: Path
) -> None:
    add(index_path, capture(URL, timedelta(days=30)))
    # lastmod equal to the captured Last-Modified: unchanged, whatever the capture's age.
    with pytest.raises(IgnoreRequest, match="unchanged since its capture"):
        middleware.process_request(request(lastmod="2016-12-10T12:00:00+00:00"))
    assert stats(middleware) == {"incremental/skipped/article": 1}


def test_newer_lastmod_rechecks_with_conditional_headers(
    middleware: IncrementalMiddleware, index_path: Path
) -> None:
    add(index_path, capture(URL, timedelta(minutes=5)))
    req = request(lastmod="2016-12-11T08:00:00-05:00")
    assert middleware.process_request(req) is None
    assert req.headers[b"If-None-Match"] == b'"v1"'
    assert req.headers[b"If-Modified-Since"] == LAST_MODIFIED.encode()
    middleware.process_response(req, Response(URL, status=304))
    assert stats(middleware) == {"incremental/unchanged/article": 1}
    # A retry of the same request is not looked up again.
    retry = req.replace(dont_filter=True)
    assert middleware.process_request(retry) is None


def test_updated_article_counts_as_updated(
    middleware: IncrementalMiddleware, index_path: Path
) -> None:
    add(index_path, capture(URL, timedelta(days=1)))
    req = request(lastmod="2017-01-01")
    middleware.process_request(req)
    middleware.process_response(req, Response(URL, status=200))
    assert stats(middleware) == {"incremental/updated/article": 1}


def test_without_lastmod_recent_captures_skip_and_old_ones_recheck(
    middleware: IncrementalMiddleware, index_path: Path
) -> None:
    old = URL.replace("a.html", "old.html")
    add(index_path, capture(URL, timedelta(hours=1)), capture(old, timedelta(days=2), etag=None))
    with pytest.raises(IgnoreRequest):
        middleware.process_request(request())
    req = request(url=old)
    middleware.process_request(req)
    assert b"If-None-Match" not in req.headers
    assert req.headers[b"If-Modified-Since"] == LAST_MODIFIED.encode()


def test_without_last_modified_the_capture_time_counts(
    middleware: IncrementalMiddleware, index_path: Path
) -> None:
    add(index_path, capture(URL, timedelta(days=3), etag=None, last_modified=None))
    two_days_ago = (datetime.now(UTC) - timedelta(days=2)).isoformat()
    four_days_ago = (datetime.now(UTC) - timedelta(days=4)).isoformat()
    with pytest.raises(IgnoreRequest):
        middleware.process_request(request(lastmod=four_days_ago))
    req = request(lastmod=two_days_ago)
    assert middleware.process_request(req) is None
    assert not req.headers  # nothing to make it conditional with


def test_discovery_pages_are_always_fetched_in_full(
    middleware: IncrementalMiddleware, index_path: Path
) -> None:
    listing = "https://www.example.onion/sitemap.xml"
    front = "https://www.example.onion/section/world"
    add(index_path, capture(listing, timedelta(minutes=1)), capture(front, timedelta(minutes=1)))
    for req in (request("listing", url=listing), request("front", url=front), request("robots")):
        assert middleware.process_request(req) is None
        assert not req.headers
    # A dated child sitemap that did not change since its capture is skipped.
    with pytest.raises(IgnoreRequest):
        middleware.process_request(request("listing", lastmod="2016-01-01", url=listing))


def test_disabled_by_setting(index_path: Path) -> None:
    crawler = get_crawler(settings_dict={"INCREMENTAL_ENABLED": False})
    with pytest.raises(NotConfigured):
        IncrementalMiddleware.from_crawler(crawler)


def test_a_url_passes_once_per_run_and_a_skipped_one_can_be_redated(
    middleware: IncrementalMiddleware, index_path: Path
) -> None:
    fresh = URL.replace("a.html", "fresh.html")
    add(index_path, capture(URL, timedelta(hours=1)))
    # Named undated by a front first: captured an hour ago, so skipped ...
    with pytest.raises(IgnoreRequest):
        middleware.process_request(request())
    # ... then a sitemap dates it after the capture: re-checked.
    assert middleware.process_request(request(lastmod="2017-01-01")) is None
    with pytest.raises(IgnoreRequest, match="already requested in this run"):
        middleware.process_request(request(lastmod="2017-01-02"))
    # Never captured: the first request goes out, a redated one for it does not.
    assert middleware.process_request(request(url=fresh)) is None
    with pytest.raises(IgnoreRequest, match="already requested in this run"):
        middleware.process_request(request(url=fresh, lastmod="2017-01-01"))
    assert stats(middleware)["incremental/skipped/article"] == 0  # it was re-checked after all
    assert stats(middleware)["incremental/already_requested/article"] == 2
