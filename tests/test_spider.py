"""The nytimes spider's discovery and scope, callback by callback, on constructed responses.

The crawls through Tor against the local mirror are in test_spider_crawl.py.
"""

from __future__ import annotations

import asyncio
import gzip
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from onions import MIRROR_ONION_MAP
from scrapy import Request
from scrapy.core.scheduler import Scheduler
from scrapy.dupefilters import RFPDupeFilter
from scrapy.http import HtmlResponse, Response, TextResponse, XmlResponse
from scrapy.utils.test import get_crawler

import settings as project_settings
from crawler.spiders.nytimes import NytimesSpider

WWW = "www." + MIRROR_ONION_MAP["nytimes.com"]
STATIC = "static01." + MIRROR_ONION_MAP["nyt.com"]
HOME = f"https://{WWW}/"


def test_scrapy_list_in_the_checkout_names_the_spider() -> None:
    listed = subprocess.run(
        [sys.executable, "-m", "scrapy", "list"],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert listed.stdout.split() == ["nytimes"]


def make_spider(**kwargs: Any) -> NytimesSpider:
    overrides = kwargs.pop("settings", {})
    values = {k: getattr(project_settings, k) for k in dir(project_settings) if "SPIDER_" in k}
    values.update(ONION_MAP=MIRROR_ONION_MAP, **overrides)
    crawler = get_crawler(NytimesSpider, values)
    spider = NytimesSpider.from_crawler(crawler, **kwargs)
    crawler.spider = spider
    crawler.stats.open_spider()
    return spider


def start_requests(spider: NytimesSpider) -> list[Request]:
    async def collect() -> list[Request]:
        return [request async for request in spider.start()]

    return asyncio.run(collect())


def stat(spider: NytimesSpider, key: str) -> Any:
    return spider.crawler.stats.get_value(key)


def html(url: str, body: str, kind: str = "front") -> HtmlResponse:
    return HtmlResponse(
        url, body=body.encode(), encoding="utf-8", request=Request(url, meta={"page_kind": kind})
    )


def test_start_urls_in_clearnet_or_onion_form_are_fetched_as_onion() -> None:
    spider = make_spider(
        start_urls="https://www.nytimes.com/section/world, "
        f"https://{WWW}/section/us?smid=x,https://www.example.com/,https://myaccount.nytimes.com/"
    )
    requests = start_requests(spider)
    assert [(r.url, r.meta["page_kind"]) for r in requests] == [
        (f"https://{WWW}/robots.txt", "robots"),
        (f"https://{WWW}/section/world", "front"),
        (f"https://{WWW}/section/us", "front"),
    ]
    assert stat(spider, "spider/start_urls_rejected") == 2
    assert requests[0].callback == spider.parse_robots
    assert requests[0].priority > requests[1].priority


def test_default_start_is_the_home_page_and_its_robots_txt() -> None:
    spider = make_spider()
    assert [r.url for r in start_requests(spider)] == [f"{HOME}robots.txt", HOME]
    spider = make_spider(settings={"SPIDER_SITEMAPS": False})
    assert [r.url for r in start_requests(spider)] == [HOME]


def test_since_must_be_a_date() -> None:
    with pytest.raises(ValueError, match="since='last week' is not a YYYY-MM-DD date"):
        make_spider(since="last week")


def test_robots_sitemap_lines_become_listing_requests() -> None:
    spider = make_spider()
    start_requests(spider)
    body = (
        "User-agent: *\nDisallow: /login\nSitemap: https://www.nytimes.com/sitemaps/index.xml\n"
        f"sitemap: https://{WWW}/sitemaps/news.xml\nSitemap: https://www.example.com/sm.xml\n"
    )
    response = TextResponse(f"{HOME}robots.txt", body=body.encode(), encoding="utf-8")
    requests = list(spider.parse_robots(response))
    assert [(r.url, r.meta["page_kind"]) for r in requests] == [
        (f"https://{WWW}/sitemaps/index.xml", "listing"),
        (f"https://{WWW}/sitemaps/news.xml", "listing"),
    ]
    assert all(r.callback == spider.parse_listing for r in requests)


def sitemap_response(url: str, body: bytes) -> Response:
    request = Request(url, meta={"page_kind": "listing"})
    if body[:2] == b"\x1f\x8b":
        return Response(url, body=body, request=request)
    return XmlResponse(url, body=body, request=request)


def test_listing_follows_articles_and_child_sitemaps_with_lastmod_and_since() -> None:
    spider = make_spider(since="2016-12-01")
    start_requests(spider)
    index = (
        b'<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        b"<sitemap><loc>https://www.nytimes.com/sitemaps/2016-11.xml.gz</loc>"
        b"<lastmod>2016-11-30T23:00:00Z</lastmod></sitemap>"
        b"<sitemap><loc>https://www.nytimes.com/sitemaps/2016-12.xml.gz</loc>"
        b"<lastmod>2016-12-20T10:00:00Z</lastmod></sitemap></sitemapindex>"
    )
    requests = list(spider.parse_listing(sitemap_response(f"https://{WWW}/sitemaps/i.xml", index)))
    assert [(r.url, r.meta["lastmod"]) for r in requests] == [
        (f"https://{WWW}/sitemaps/2016-12.xml.gz", "2016-12-20T10:00:00+00:00")
    ]
    urlset = gzip.compress(
        b'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        b"<url><loc>https://www.nytimes.com/2016/11/30/world/old.html</loc></url>"
        b"<url><loc>https://www.nytimes.com/2016/12/02/world/new.html?smid=x</loc>"
        b"<lastmod>2016-12-03</lastmod></url>"
        b"<url><loc>https://www.nytimes.com/2016/12/02/world/new.html#dup</loc></url>"
        b"<url><loc>https://www.nytimes.com/subscription</loc></url></urlset>"
    )
    requests = list(spider.parse_listing(sitemap_response(requests[0].url, urlset)))
    assert [(r.url, r.meta["page_kind"], r.callback) for r in requests] == [
        (f"https://{WWW}/2016/12/02/world/new.html", "article", spider.parse)
    ]
    assert requests[0].meta["lastmod"] == "2016-12-03T00:00:00+00:00"
    assert stat(spider, "spider/since_skipped") == 2
    assert stat(spider, "spider/links_skipped") == 1


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"<!DOCTYPE html><html><body>Sign in</body></html>", "html"),
        (b'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>x', "malformed"),
        (gzip.compress(b"<urlset>" + b"<url><loc>/a</loc></url>" * 1000)[:100], "malformed"),
    ],
)
def test_bad_listing_is_logged_counted_and_the_crawl_goes_on(
    body: bytes, error: str, caplog: pytest.LogCaptureFixture
) -> None:
    spider = make_spider()
    start_requests(spider)
    url = f"https://{WWW}/sitemaps/broken.xml"
    assert list(spider.parse_listing(sitemap_response(url, body))) == []
    assert stat(spider, f"spider/listing_errors/{error}") == 1
    assert f"listing {url} unusable ({error})" in caplog.text


def test_oversized_listing_keeps_what_came_before_the_cap() -> None:
    spider = make_spider(settings={"SPIDER_LISTING_MAX_SIZE": 100_000})
    start_requests(spider)
    urls = "".join(
        f"<url><loc>https://www.nytimes.com/2016/12/02/world/a{i}.html</loc></url>"
        for i in range(5000)
    )
    body = f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'
    response = sitemap_response(f"https://{WWW}/sitemap.xml", body.encode())
    requests = list(spider.parse_listing(response))
    assert 0 < len(requests) < 5000
    assert stat(spider, "spider/listing_errors/too_large") == 1


FRONT = f"""<html><head>
<link rel="alternate" type="application/rss+xml" href="https://rss.nytimes.com/services/xml/rss/nyt/World.xml">
</head><body>
<a href="/2016/12/10/world/a.html?action=click&module=Top">A</a>
<a href="https://www.nytimes.com/2016/12/10/world/a.html#comments">A again</a>
<a href="https://{WWW}/2016/12/10/world/b.amp.html">B</a>
<a href="/section/world/middleeast">Middle East</a>
<a href="https://myaccount.nytimes.com/auth/login">Log in</a>
<a href="/subscription/all-access">Subscribe</a>
<a href="https://www.nytimes.com/adx/bin/adx_click.html">ad</a>
<a href="https://twitter.com/nytimes">twitter</a>
<a href="mailto:x@nytimes.com">mail</a>
<a href="/crosswords">Crosswords</a>
<img src="https://static01.nyt.com/images/a.jpg">
</body></html>"""


def test_front_links_are_canonical_scoped_and_each_followed_once() -> None:
    spider = make_spider()
    start_requests(spider)
    requests = list(spider.parse(html(HOME, FRONT)))
    assert [(r.url, r.meta["page_kind"]) for r in requests] == [
        (f"https://{WWW}/2016/12/10/world/a.html", "article"),
        (f"https://{WWW}/2016/12/10/world/b.html", "article"),
        (f"https://{WWW}/section/world/middleeast", "front"),
        (f"https://rss.{WWW[4:]}/services/xml/rss/nyt/World.xml", "listing"),
    ]
    # The same links on another page are not requested again.
    assert list(spider.parse(html(f"https://{WWW}/section/world", FRONT))) == []
    assert stat(spider, "spider/found/article") == 2


def test_since_filters_linked_articles_by_their_url_date() -> None:
    spider = make_spider(since="2016-12-11")
    start_requests(spider)
    requests = list(spider.parse(html(HOME, FRONT)))
    assert [r.meta["page_kind"] for r in requests] == ["front", "listing"]


def test_page_requisites_are_off_by_default_and_capped_when_on() -> None:
    article = f"https://{WWW}/2016/12/10/world/a.html"
    body = (
        '<html><head><link rel="stylesheet" href="/css/a.css"><script src="/js/a.js"></script>'
        '</head><body><img src="https://static01.nyt.com/images/a.jpg" '
        'srcset="https://static01.nyt.com/images/a-2x.jpg 2x, data:image/gif;base64,R0">'
        '<img src="https://ads.nytimes.com/pixel.gif"></body></html>'
    )
    spider = make_spider()
    start_requests(spider)
    assert list(spider.parse(html(article, body, kind="article"))) == []
    spider = make_spider(
        settings={"SPIDER_PAGE_REQUISITES": True, "SPIDER_REQUISITE_MAX_SIZE": 1234}
    )
    start_requests(spider)
    requests = list(spider.parse(html(article, body, kind="article")))
    assert sorted(r.url for r in requests) == [
        f"https://{STATIC}/images/a-2x.jpg",
        f"https://{STATIC}/images/a.jpg",
        f"https://{WWW}/css/a.css",
        f"https://{WWW}/js/a.js",
    ]
    assert {r.meta["download_maxsize"] for r in requests} == {1234}
    assert {r.meta["page_kind"] for r in requests} == {"requisite"}
    # Requisites of a front are not fetched.
    assert list(spider.parse(html(HOME, body))) == []


def test_an_article_found_undated_is_asked_again_once_when_a_sitemap_dates_it() -> None:
    spider = make_spider()
    start_requests(spider)
    (first, *_) = spider.parse(html(HOME, FRONT))
    assert "lastmod" not in first.meta and not first.dont_filter
    urlset = (
        b'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        b"<url><loc>https://www.nytimes.com/2016/12/10/world/a.html</loc>"
        b"<lastmod>2016-12-12</lastmod></url></urlset>"
    )
    response = sitemap_response(f"https://{WWW}/sitemap.xml", urlset)
    (again,) = spider.parse_listing(response)
    assert again.url == first.url and again.dont_filter
    assert again.meta["lastmod"] == "2016-12-12T00:00:00+00:00"
    assert list(spider.parse_listing(response)) == []
    assert stat(spider, "spider/redated/article") == 1


def test_failures_are_counted_and_logged_and_deliberate_drops_are_not(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from scrapy.exceptions import IgnoreRequest
    from scrapy.spidermiddlewares.httperror import HttpError
    from twisted.python.failure import Failure

    from crawler.tor.socks import OnionIntroductionFailed

    spider = make_spider()
    request = Request(f"https://{WWW}/_test/redirect-loop/a")

    def fail(error: Exception) -> None:
        failure = Failure(error)
        failure.request = request
        spider.failed(failure)

    fail(IgnoreRequest("max redirections reached"))
    fail(OnionIntroductionFailed())
    fail(HttpError(Response(request.url, status=404, request=request), "Ignoring non-200"))
    fail(IgnoreRequest("unchanged since its capture at 2026-01-01T00:00:00Z"))
    assert stat(spider, "spider/errors/redirect_loop") == 1
    assert stat(spider, "spider/errors/onion_introduction_failed") == 1
    assert stat(spider, "spider/errors/http_404") == 1
    assert "redirect-loop/a failed (redirect_loop)" in caplog.text
    assert "unchanged since" not in caplog.text


def test_start_urls_of_any_page_kind_are_fetched() -> None:
    spider = make_spider(start_urls=f"https://{WWW}/_test/ok", settings={"SPIDER_SITEMAPS": False})
    (request,) = start_requests(spider)
    assert request.meta["page_kind"] == "page" and request.callback == spider.parse


class RecordingEngine:
    """Stands in for Scrapy's engine: records what the spider injects (crawls run for real
    in test_spider_crawl.py)."""

    def __init__(self) -> None:
        self.crawled: list[Request] = []

    def crawl(self, request: Request) -> None:
        self.crawled.append(request)


def test_with_robots_obeyed_the_sitemaps_come_from_robots_txt_middlewares_fetch() -> None:
    spider = make_spider(settings={"ROBOTSTXT_OBEY": True})
    assert [r.url for r in start_requests(spider)] == [HOME]
    spider.crawler.engine = RecordingEngine()
    body = (
        b"User-agent: *\nDisallow: /svc/\nSitemap: https://www.nytimes.com/sitemaps/sitemap.xml\n"
    )
    robots = Request(f"{HOME}robots.txt", meta={"dont_obey_robotstxt": True})
    spider.response_received(TextResponse(robots.url, body=body, encoding="utf-8"), robots)
    assert [r.url for r in spider.crawler.engine.crawled] == [f"https://{WWW}/sitemaps/sitemap.xml"]
    # robots.txt of hosts that are not start hosts, and failed fetches, are not read
    other = b"Sitemap: https://www.nytimes.com/sitemaps/other.xml\n"
    static = Request(f"https://{STATIC}/robots.txt", meta={"dont_obey_robotstxt": True})
    spider.response_received(TextResponse(static.url, body=other, encoding="utf-8"), static)
    spider.response_received(TextResponse(robots.url, body=other, status=404), robots)
    assert len(spider.crawler.engine.crawled) == 1


def test_seeds_pass_a_duplicate_filter_that_saw_them_before_a_kill(tmp_path: Path) -> None:
    """After a kill -9, JOBDIR's requests.seen outlives the queue (and no spider state was
    saved): the resumed run must request its seeds again, and still no article twice."""
    # (the default priority queue needs a running engine's downloader)
    jobdir = {
        "JOBDIR": str(tmp_path / "job"),
        "SCHEDULER_PRIORITY_QUEUE": "scrapy.pqueues.ScrapyPriorityQueue",
    }
    killed = make_spider(settings=jobdir)
    seen = [*start_requests(killed), *killed.parse(html(HOME, FRONT))]
    dupefilter = RFPDupeFilter.from_crawler(killed.crawler)
    assert not any(dupefilter.request_seen(request) for request in seen)
    dupefilter.close("killed")  # the fingerprints reached the disk, the queue did not

    resumed = make_spider(settings=jobdir)
    scheduler = Scheduler.from_crawler(resumed.crawler)
    scheduler.open(resumed)
    try:
        seeds = start_requests(resumed)
        assert [r.url for r in seeds] == [f"{HOME}robots.txt", HOME]
        assert all(scheduler.enqueue_request(request) for request in seeds)
        found = list(resumed.parse(html(HOME, FRONT)))
        enqueued = {r.meta["page_kind"]: scheduler.enqueue_request(r) for r in found}
        assert enqueued == {"article": False, "front": True, "listing": True}
    finally:
        scheduler.close("finished")


def test_discovery_pages_bypass_the_duplicate_filter_but_are_requested_once_per_run() -> None:
    spider = make_spider()
    assert all(request.dont_filter for request in start_requests(spider))
    robots = TextResponse(
        f"{HOME}robots.txt",
        body=b"Sitemap: https://www.nytimes.com/sitemaps/index.xml\n"
        b"Sitemap: https://www.nytimes.com/sitemaps/2016-12.xml.gz\n",
    )
    index_request, monthly = spider.parse_robots(robots)
    assert index_request.dont_filter and monthly.dont_filter
    assert list(spider.parse_robots(robots)) == []
    # The index dates the monthly sitemap found undated; a sitemap names the home page: neither
    # is asked for again (only an article is, so the incremental middleware can skip it).
    index = (
        b'<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        b"<sitemap><loc>https://www.nytimes.com/sitemaps/2016-12.xml.gz</loc>"
        b"<lastmod>2016-12-20T10:00:00Z</lastmod></sitemap></sitemapindex>"
    )
    assert list(spider.parse_listing(sitemap_response(index_request.url, index))) == []
    urlset = (
        b'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        b"<url><loc>https://www.nytimes.com/</loc><lastmod>2016-12-20</lastmod></url></urlset>"
    )
    assert list(spider.parse_listing(sitemap_response(monthly.url, urlset))) == []
    kinds = {r.meta["page_kind"]: r.dont_filter for r in spider.parse(html(HOME, FRONT))}
    assert kinds == {"article": False, "front": True, "listing": True}


def test_a_304_to_a_conditional_recheck_is_unchanged_not_an_article_nor_an_error() -> None:
    spider = make_spider(settings={"SPIDER_PAGE_REQUISITES": True})
    start_requests(spider)
    article, *_ = spider.parse(html(HOME, FRONT))
    assert article.meta["handle_httpstatus_list"] == [304]
    article.headers[b"If-None-Match"] = b'"v1"'  # as the incremental middleware re-checks
    links = '<a href="/2016/12/11/world/c.html">C</a><img src="/images/c.jpg">'
    response = HtmlResponse(article.url, status=304, body=links.encode(), request=article)
    assert list(article.callback(response)) == []
    requisite = Request(f"https://{STATIC}/images/a.jpg", headers={"If-Modified-Since": "x"})
    requisite_response = Response(requisite.url, status=304, request=requisite)
    assert list(spider.parse_requisite(requisite_response)) == []
    assert stat(spider, "spider/pages/article") is None
    assert stat(spider, "spider/errors/http_304") is None
    # A 304 to a request that was not conditional is not an answer: an error
    unasked = Request(f"https://{WWW}/2016/12/10/world/d.html", meta={"page_kind": "article"})
    assert list(spider.parse(HtmlResponse(unasked.url, status=304, request=unasked))) == []
    assert stat(spider, "spider/errors/http_304") == 1
    # Fronts and listings are never re-checked conditionally
    assert all("handle_httpstatus_list" not in r.meta for r in start_requests(make_spider()))
