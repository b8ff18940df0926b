"""Incremental crawling: skip what the capture index shows unchanged, re-check the rest.

:class:`IncrementalMiddleware` (a downloader middleware) looks up each article, page
requisite and dated sitemap in the persistent capture index (``CAPTURE_INDEX``, shared with
the WARC writer's dedup) before it is requested:

- never captured: fetched (``incremental/new``);
- the sitemap's ``lastmod`` (``meta["lastmod"]``) is not newer than the capture's
  ``Last-Modified`` (its capture time when the server sent none): not requested at all
  (``incremental/skipped``);
- no ``lastmod`` known and captured less than ``INCREMENTAL_RECHECK_AFTER`` seconds ago:
  not requested;
- otherwise re-checked with ``If-None-Match`` / ``If-Modified-Since`` from the capture;
  a 304 counts as ``incremental/unchanged``, a 200 as ``incremental/updated``.

A URL passes at most once per run (retries and redirects aside): the spider asks again for
an article that a front or feed named before a sitemap dated it (``meta["lastmod"]``), and
that second request only goes out if the first one was skipped.

Robots.txt, fronts, feeds and undated sitemaps are always fetched in full: they are how new
articles are found.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from scrapy import Request, signals
from scrapy.crawler import Crawler
from scrapy.exceptions import IgnoreRequest, NotConfigured
from scrapy.http import Response

from crawler.spiders.sitemaps import parse_date as _parse_date
from crawler.warc.index import Capture, CaptureIndex, capture_index_path

#: Page kinds (``meta["page_kind"]``) that the middleware may skip or re-check.
CHECKED_KINDS = frozenset({"article", "requisite", "listing"})
#: Kinds re-checked with conditional requests; a 304 listing would hide its links.
CONDITIONAL_KINDS = frozenset({"article", "requisite"})


class IncrementalMiddleware:
    """Skips unchanged captures and sends conditional requests; see the module docstring.

    :raises NotConfigured: when ``INCREMENTAL_ENABLED`` is false.
    :raises sqlite3.Error: when ``CAPTURE_INDEX`` cannot be opened.
    """

    def __init__(self, crawler: Crawler, index: CaptureIndex, recheck_after: timedelta):
        self.crawler, self.index, self.recheck_after = crawler, index, recheck_after
        self.passed: set[str] = set()
        self.skipped: set[str] = set()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> IncrementalMiddleware:
        settings = crawler.settings
        if not settings.getbool("INCREMENTAL_ENABLED"):
            raise NotConfigured("INCREMENTAL_ENABLED is off")
        middleware = cls(
            crawler,
            CaptureIndex(capture_index_path(settings)),
            timedelta(seconds=settings.getfloat("INCREMENTAL_RECHECK_AFTER")),
        )
        crawler.signals.connect(middleware.spider_closed, signal=signals.spider_closed)
        return middleware

    def spider_closed(self) -> None:
        self.index.close()

    def process_request(self, request: Request) -> None:
        kind = request.meta.get("page_kind")
        if kind not in CHECKED_KINDS or "incremental" in request.meta:
            return
        if request.url in self.passed:
            self.crawler.stats.inc_value(f"incremental/already_requested/{kind}")
            raise IgnoreRequest("already requested in this run")
        capture = self.index.latest(request.url)
        if capture is None:
            self._pass(request, "new")
            return
        lastmod = _parse_date(request.meta.get("lastmod"))
        if lastmod is not None:
            unchanged = lastmod <= _document_time(capture)
        else:
            captured = _parse_date(capture.capture_time)
            unchanged = (
                kind != "listing"
                and captured is not None
                and (datetime.now(UTC) - captured < self.recheck_after)
            )
        if unchanged:
            if request.url not in self.skipped:
                self.skipped.add(request.url)
                self.crawler.stats.inc_value(f"incremental/skipped/{kind}")
            raise IgnoreRequest(f"unchanged since its capture at {capture.capture_time}")
        self._pass(request, "recheck")
        if kind in CONDITIONAL_KINDS:
            if capture.etag:
                request.headers.setdefault(b"If-None-Match", capture.etag)
            if capture.last_modified:
                request.headers.setdefault(b"If-Modified-Since", capture.last_modified)

    def _pass(self, request: Request, state: str) -> None:
        request.meta["incremental"] = state
        self.passed.add(request.url)
        if request.url in self.skipped:  # skipped undated, re-checked once a sitemap dated it
            self.skipped.discard(request.url)
            self.crawler.stats.inc_value(f"incremental/skipped/{request.meta['page_kind']}", -1)

    def process_response(self, request: Request, response: Response) -> Response:
        state = request.meta.get("incremental")
        if state is None:
            return response
        kind = request.meta.get("page_kind")
        if response.status == 304:
            self.crawler.stats.inc_value(f"incremental/unchanged/{kind}")
        elif 200 <= response.status < 300:
            outcome = "new" if state == "new" else "updated"
            self.crawler.stats.inc_value(f"incremental/{outcome}/{kind}")
        return response


def _document_time(capture: Capture) -> datetime:
    """When the captured document last changed: its Last-Modified, else its capture time."""
    return (
        _parse_date(capture.last_modified) or _parse_date(capture.capture_time) or datetime.now(UTC)
    )
