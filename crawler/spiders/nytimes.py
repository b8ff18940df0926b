"""The NYT onion mirror spider: discovery through robots.txt sitemaps, fronts, feeds and links.

Discovery starts at the start URLs (clearnet or onion form, default the home page) and at
``/robots.txt`` of their hosts, whose ``Sitemap:`` lines lead to sitemap indexes, monthly
(often gzipped) sitemaps and news sitemaps. Fronts and articles contribute their links to
articles, further fronts and feeds. Every link goes through :class:`UrlPolicy`, so only
canonical onion URLs of ``ONION_MAP`` hosts that are not excluded are requested, each once.

Each request carries ``meta["page_kind"]`` (``robots``, ``listing``, ``front``, ``article``,
``requisite``, ``page``) and, when a sitemap or feed tells it, ``meta["lastmod"]`` (ISO 8601),
which :class:`crawler.incremental.IncrementalMiddleware` uses to skip unchanged pages; a 304
answering its conditional re-check reaches the callback as "unchanged", not as an error.

Discovery requests (robots, listings, fronts) bypass Scrapy's duplicate filter: with
``JOBDIR``, ``requests.seen`` may outlive the queue (a ``kill -9``), and a resumed run must be
able to start discovery again. ``discovered`` keeps every URL to one request per run.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable, Iterator
from datetime import date
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import scrapy
from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Response, TextResponse
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.python.failure import Failure

from crawler.incremental import CONDITIONAL_KINDS
from crawler.spiders.sitemaps import Entry, ListingError, ListingTooLarge, iter_entries
from crawler.spiders.urls import (
    UrlPolicy,
    is_article,
    is_feed,
    is_front,
    is_sitemap,
    url_date,
)
from crawler.tor.onion import OnionMap

DEFAULT_START_URLS = ("https://www.nytimes.com/",)

#: Request priorities: listings first (they find the most), requisites last.
PRIORITY = {"robots": 30, "listing": 20, "front": 10, "article": 0, "page": 0, "requisite": -10}
#: Page kinds that find other pages: requested with ``dont_filter=True``.
DISCOVERY_KINDS = frozenset({"robots", "listing", "front"})

_REQUISITE_XPATH = (
    "//img/@src | //img/@data-src | //script/@src"
    " | //link[contains(concat(' ', normalize-space(@rel), ' '), ' stylesheet ')]/@href"
    " | //link[@rel='preload' or @rel='icon']/@href"
)
_SRCSET_XPATH = "//img/@srcset | //source/@srcset"
_SRCSET_DESCRIPTOR = re.compile(r"\d+(?:\.\d+)?[wx],?")
_FEED_LINK_XPATH = (
    "//link[@rel='alternate'][contains(@type, 'rss') or contains(@type, 'atom')]/@href"
)


class NytimesSpider(scrapy.Spider):
    """Crawls the NYT onion mirror; see the module docstring for how it discovers pages.

    :param start_urls: comma-separated URLs, clearnet or onion form.
    :param since: ``YYYY-MM-DD``; articles published earlier (as their sitemap entry, feed
        item or URL tells) and sitemaps last modified earlier are not requested.
    :raises ValueError: when *since* is not a ``YYYY-MM-DD`` date.
    """

    name = "nytimes"

    def __init__(self, start_urls: str | None = None, since: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.start_url_args = (
            [u.strip() for u in start_urls.split(",") if u.strip()]
            if start_urls
            else list(DEFAULT_START_URLS)
        )
        try:
            self.since: date | None = date.fromisoformat(since) if since else None
        except ValueError:
            raise ValueError(f"since={since!r} is not a YYYY-MM-DD date") from None

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> NytimesSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        settings = crawler.settings
        spider.policy = UrlPolicy(
            OnionMap.from_setting(settings.get("ONION_MAP")),
            settings.getlist("SPIDER_EXCLUDE"),
        )
        spider.use_sitemaps = settings.getbool("SPIDER_SITEMAPS")
        # RobotsTxtMiddleware fetches robots.txt anyway: read its Sitemap lines from that
        # response instead of fetching the file a second time.
        spider.robots_from_middleware = settings.getbool("ROBOTSTXT_OBEY")
        if spider.use_sitemaps and spider.robots_from_middleware:
            crawler.signals.connect(spider.response_received, signal=signals.response_received)
        spider.listing_max_size = settings.getint("SPIDER_LISTING_MAX_SIZE")
        spider.requisites = settings.getbool("SPIDER_PAGE_REQUISITES")
        spider.requisite_max_size = settings.getint("SPIDER_REQUISITE_MAX_SIZE")
        return spider

    async def start(self) -> AsyncIterator[scrapy.Request]:
        # With JOBDIR, SpiderState restores ``self.state``, so a resumed run remembers.
        # canonical URL -> the lastmod it was first dated with (None: found undated)
        self.discovered: dict[str, str | None] = getattr(self, "state", {}).setdefault(
            "discovered", {}
        )
        self.sitemap_hosts: list[str] = []
        for url in self.start_url_args:
            canonical = self.policy.canonical(url)
            if canonical is None:
                self.logger.error("start URL %s is off the ONION_MAP hosts or excluded", url)
                self._inc("spider/start_urls_rejected")
                continue
            parts = urlsplit(canonical)
            if self.use_sitemaps and parts.netloc not in self.sitemap_hosts:
                self.sitemap_hosts.append(parts.netloc)
                if not self.robots_from_middleware:
                    robots = urlunsplit((parts.scheme, parts.netloc, "/robots.txt", "", ""))
                    for request in self._follow([robots], kind="robots"):
                        yield request
            for request in self._follow([canonical], kind=_kind(canonical) or "page"):
                yield request

    def parse(self, response: Response, **kwargs: Any) -> Iterator[scrapy.Request]:
        """Fronts, articles and other HTML pages: follow their links; XML goes to listings."""
        if self._not_modified(response) or not isinstance(response, TextResponse):
            return
        if _looks_like_xml(response):
            yield from self.parse_listing(response)
            return
        self._inc(f"spider/pages/{response.meta.get('page_kind', 'page')}")
        links = response.xpath("//a/@href | //area/@href").getall()
        yield from self._follow(response.urljoin(link) for link in links)
        feeds = response.xpath(_FEED_LINK_XPATH).getall()
        yield from self._follow((response.urljoin(f) for f in feeds), kind="listing")
        if self.requisites and response.meta.get("page_kind") == "article":
            yield from self._follow(
                (response.urljoin(u) for u in _requisite_urls(response)), kind="requisite"
            )

    def parse_robots(self, response: Response) -> Iterator[scrapy.Request]:
        """``Sitemap:`` lines of robots.txt."""
        text = response.body.decode("utf-8", "replace")
        sitemaps = [
            line.split(":", 1)[1].strip()
            for line in text.splitlines()
            if line.lower().startswith("sitemap:")
        ]
        self._inc("spider/robots_sitemaps", len(sitemaps))
        yield from self._follow((response.urljoin(s) for s in sitemaps), kind="listing")

    def response_received(self, response: Response, request: scrapy.Request) -> None:
        """Take the ``Sitemap:`` lines of a start host's robots.txt fetched by
        RobotsTxtMiddleware (which sends no response to the spider)."""
        parts = urlsplit(response.url)
        if (
            request.meta.get("dont_obey_robotstxt")
            and parts.path == "/robots.txt"
            and parts.netloc in self.sitemap_hosts
            and response.status == 200
        ):
            for sitemap_request in self.parse_robots(response):
                self.crawler.engine.crawl(sitemap_request)

    def parse_listing(self, response: Response) -> Iterator[scrapy.Request]:
        """Sitemap indexes, URL sets, news sitemaps and feeds; damage is logged and counted."""
        found = 0
        try:
            for entry in iter_entries(response.body, self.listing_max_size):
                found += 1
                yield from self._follow_entry(response, entry)
        except ListingTooLarge as exc:
            self._listing_error(response, "too_large", exc, found)
        except ListingError as exc:
            kind = "html" if "HTML" in str(exc) else "malformed"
            self._listing_error(response, kind, exc, found)
        self._inc("spider/listing_entries", found)

    def parse_requisite(self, response: Response) -> Iterable[Any]:
        """Page requisites are archived by the WARC writer; nothing to follow."""
        self._not_modified(response)
        return ()

    def failed(self, failure: Failure) -> None:
        """Count and log requests that ended without a usable response; the crawl goes on.

        Deliberate drops (incremental skips, robots.txt, exclusions, the onion scope guard)
        are counted where they happen and are not repeated here.
        """
        request = failure.request
        error = failure.value
        if isinstance(error, HttpError):
            self._inc(f"spider/errors/http_{error.response.status}")
            return
        if isinstance(error, IgnoreRequest):
            if str(error) != "max redirections reached":
                return
            kind = "redirect_loop"
        else:
            kind = getattr(error, "kind", None) or type(error).__name__
        self._inc(f"spider/errors/{kind}")
        self.logger.warning("%s failed (%s): %s", request.url, kind, error)

    def _not_modified(self, response: Response) -> bool:
        """True for a 304, which has nothing to read. It is the "unchanged" answer to the
        incremental middleware's conditional re-check (counted there); a 304 to a request that
        was not conditional is counted as an HTTP error."""
        if response.status != 304:
            return False
        headers = response.request.headers
        if b"If-None-Match" not in headers and b"If-Modified-Since" not in headers:
            self._inc("spider/errors/http_304")
        return True

    def _follow_entry(self, response: Response, entry: Entry) -> Iterator[scrapy.Request]:
        url = response.urljoin(entry.loc)
        if self.since:
            day = entry.published or (entry.lastmod if entry.is_sitemap else None)
            known = day.date() if day else None
            if known is None and not entry.is_sitemap:
                known = url_date(url)
                if known is None and entry.lastmod:
                    known = entry.lastmod.date()  # never published after its last change
            if known is not None and known < self.since:
                self._inc("spider/since_skipped")
                return
        kind = "listing" if entry.is_sitemap else None
        lastmod = entry.lastmod.isoformat() if entry.lastmod else None
        yield from self._follow([url], kind=kind, lastmod=lastmod)

    def _follow(
        self, urls: Iterable[str], kind: str | None = None, lastmod: str | None = None
    ) -> Iterator[scrapy.Request]:
        for url in urls:
            canonical = self.policy.canonical(url)
            if canonical is None:
                self._inc("spider/links_skipped")
                continue
            page_kind = kind or _kind(canonical)
            if page_kind is None:
                continue
            # An article found undated first (a front, a feed), dated now by a sitemap: ask
            # again, so the incremental middleware can skip or re-check it unless it already
            # let it through. Anything else is requested once per run.
            redate = canonical in self.discovered
            if redate and (
                page_kind != "article" or lastmod is None or self.discovered[canonical] is not None
            ):
                continue
            if page_kind == "article" and self.since:
                published = url_date(canonical)
                if published is not None and published < self.since:
                    self._inc("spider/since_skipped")
                    continue
            self.discovered[canonical] = lastmod
            self._inc(f"spider/redated/{page_kind}" if redate else f"spider/found/{page_kind}")
            meta: dict[str, Any] = {"page_kind": page_kind}
            if lastmod:
                meta["lastmod"] = lastmod
            if page_kind == "requisite":
                meta["download_maxsize"] = self.requisite_max_size
            if page_kind in CONDITIONAL_KINDS:
                meta["handle_httpstatus_list"] = [304]
            yield scrapy.Request(
                canonical,
                callback=self._callbacks[page_kind],
                errback=self.failed,
                priority=PRIORITY[page_kind],
                meta=meta,
                dont_filter=redate or page_kind in DISCOVERY_KINDS,
            )

    @property
    def _callbacks(self) -> dict[str, Any]:
        return {
            "robots": self.parse_robots,
            "listing": self.parse_listing,
            "front": self.parse,
            "article": self.parse,
            "page": self.parse,
            "requisite": self.parse_requisite,
        }

    def _listing_error(self, response: Response, kind: str, exc: Exception, found: int) -> None:
        self.logger.warning(
            "listing %s unusable (%s) after %d entries: %s", response.url, kind, found, exc
        )
        self._inc(f"spider/listing_errors/{kind}")

    def _inc(self, key: str, count: int = 1) -> None:
        self.crawler.stats.inc_value(key, count)


def _kind(url: str) -> str | None:
    """The page kind of a canonical URL worth following from a page, or None."""
    if is_article(url):
        return "article"
    if is_sitemap(url) or is_feed(url):
        return "listing"
    if is_front(url):
        return "front"
    return None


def _looks_like_xml(response: TextResponse) -> bool:
    content_type = response.headers.get(b"Content-Type", b"").decode("latin-1").lower()
    return "xml" in content_type and "html" not in content_type


def _requisite_urls(response: TextResponse) -> Iterator[str]:
    yield from response.xpath(_REQUISITE_XPATH).getall()
    for srcset in response.xpath(_SRCSET_XPATH).getall():
        # "url 1x, url 2x": each candidate is a URL and an optional width/density descriptor.
        for token in srcset.split():
            if not _SRCSET_DESCRIPTOR.fullmatch(token):
                yield token.rstrip(",")
