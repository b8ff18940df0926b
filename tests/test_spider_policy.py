"""Exclusions that hold through redirects; Retry-After, backoff and the per-URL retry cap,
whose waits the scheduler serves (crawls with such waits: test_retry_delays.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
from onions import MIRROR_ONION_MAP
from scrapy import Request, Spider
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Response
from scrapy.utils.test import get_crawler

import crawler.policy
from crawler.policy import (
    DelayingScheduler,
    ExclusionMiddleware,
    RedirectAwareDupeFilter,
    RetryPolicyMiddleware,
)

WWW = "www." + MIRROR_ONION_MAP["nytimes.com"]
URL = f"https://{WWW}/2016/12/10/world/a.html"
SETTINGS = {
    "ONION_MAP": MIRROR_ONION_MAP,
    "RETRY_TIMES": 3,
    "RETRY_TOTAL_MAX": 4,
    "RETRY_BACKOFF_BASE": 2.0,
    "RETRY_CIRCUIT_BACKOFF_BASE": 0.5,
    "RETRY_EXCEPTIONS": ["crawler.tor.socks.CircuitError"],
    "RETRY_BACKOFF_MAX": 5.0,
    "RETRY_AFTER_MAX": 600.0,
    "SPIDER_EXCLUDE": [r"/video/"],
    "SCHEDULER": "crawler.policy.DelayingScheduler",
}


def crawler_for(**overrides):
    crawler = get_crawler(Spider, {**SETTINGS, **overrides})
    crawler.spider = Spider.from_crawler(crawler, "test")
    crawler.stats.open_spider()
    return crawler


def test_excluded_urls_are_never_requested_even_as_redirect_targets() -> None:
    crawler = crawler_for()
    middleware = ExclusionMiddleware.from_crawler(crawler)
    assert middleware.process_request(Request(URL)) is None
    redirected = Request(f"https://myaccount.{WWW[4:]}/auth/login?redirect={URL}")
    for target in (redirected, Request(f"https://{WWW}/video/1"), Request(f"https://{WWW}/login")):
        with pytest.raises(IgnoreRequest, match="excluded URL"):
            middleware.process_request(target)
    assert crawler.stats.get_value("policy/excluded") == 3


class Clock:
    """Stands in for the ``time`` module of crawler.policy: ``time()`` is ``now``."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(crawler.policy, "time", clock)
    return clock


def test_retry_after_seconds_makes_the_whole_host_wait_and_only_it(clock: Clock) -> None:
    crawler = crawler_for()
    middleware = RetryPolicyMiddleware.from_crawler(crawler)
    response = Response(URL, status=429, headers={"Retry-After": "30"})
    retry = middleware.process_response(Request(URL), response)
    assert isinstance(retry, Request) and retry.meta["retry_times"] == 1
    assert retry.meta["retry_not_before"] == clock.now + 30
    # a request to the same host, never tried, goes back to the scheduler until then
    other = Request(f"https://{WWW}/section/world", meta={"page_kind": "front"})
    held = middleware.process_request(other)
    assert isinstance(held, Request) and held is not other
    assert (held.url, held.meta["page_kind"]) == (other.url, "front")
    assert held.meta["retry_not_before"] == clock.now + 30
    assert held.dont_filter, "the duplicate filter saw it already: it must not drop it"
    assert middleware.process_request(Request(f"https://static01.{WWW[4:]}/a.jpg")) is None
    assert crawler.stats.get_value("retry/retry_after_honoured") == 1
    assert crawler.stats.get_value("retry/waits") == 1
    clock.now += 30
    assert middleware.process_request(held) is None  # due: it goes, never parked again


def test_retry_after_http_date(clock: Clock) -> None:
    middleware = RetryPolicyMiddleware.from_crawler(crawler_for())
    # the Retry-After date is read against the wall clock, not the test's
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    retry = middleware.process_response(
        Request(URL), Response(URL, status=503, headers={"Retry-After": when})
    )
    assert 85 < retry.meta["retry_not_before"] - clock.now <= 90


def test_too_long_retry_after_gives_up() -> None:
    crawler = crawler_for(RETRY_AFTER_MAX=60)
    middleware = RetryPolicyMiddleware.from_crawler(crawler)
    response = Response(URL, status=429, headers={"Retry-After": "3600"})
    assert middleware.process_response(Request(URL), response) is response
    assert crawler.stats.get_value("retry/retry_after_too_long") == 1


def test_http_errors_back_off_exponentially_up_to_the_max(clock: Clock) -> None:
    middleware = RetryPolicyMiddleware.from_crawler(crawler_for())
    request, waits = Request(URL), []
    for _ in range(3):
        request = middleware.process_response(request, Response(URL, status=502))
        assert isinstance(request, Request) and request.dont_filter
        waits.append(request.meta["retry_not_before"] - clock.now)
    assert waits == [2, 4, 5]
    final = Response(URL, status=502)
    assert middleware.process_response(request, final) is final  # RETRY_TIMES reached


def test_a_retry_not_due_is_sent_back_and_a_due_one_goes(clock: Clock) -> None:
    middleware = RetryPolicyMiddleware.from_crawler(crawler_for())
    retry = middleware.process_response(Request(URL), Response(URL, status=502))
    held = middleware.process_request(retry)  # e.g. resumed from JOBDIR before it was due
    assert isinstance(held, Request)
    assert held.meta["retry_not_before"] == retry.meta["retry_not_before"] == clock.now + 2
    clock.now += 2
    assert middleware.process_request(held) is None


def test_not_found_is_not_retried() -> None:
    middleware = RetryPolicyMiddleware.from_crawler(crawler_for())
    response = Response(URL, status=404)
    assert middleware.process_response(Request(URL), response) is response


def test_total_retries_per_url_are_capped_whatever_retried_it() -> None:
    crawler = crawler_for()
    middleware = RetryPolicyMiddleware.from_crawler(crawler)
    # e.g. the Tor layer's circuit retries count through the same retry_times meta key
    request = Request(URL, meta={"retry_times": 5})
    with pytest.raises(IgnoreRequest, match="over RETRY_TOTAL_MAX"):
        middleware.process_request(request)
    assert crawler.stats.get_value("retry/total_cap_reached") == 1
    assert middleware.process_request(Request(URL, meta={"retry_times": 4})) is None


def test_circuit_failures_back_off_on_their_own_scale(clock: Clock) -> None:
    from crawler.tor.socks import OnionRendezvousFailed

    middleware = RetryPolicyMiddleware.from_crawler(crawler_for())
    request, waits = Request(URL), []
    for _ in range(3):
        request = middleware.process_exception(request, OnionRendezvousFailed())
        assert isinstance(request, Request)
        waits.append(request.meta["retry_not_before"] - clock.now)
    assert waits == [0.5, 1.0, 2.0]
    assert middleware.process_exception(request, OnionRendezvousFailed()) is None
    assert middleware.process_exception(Request(URL), ValueError("not a Tor error")) is None


def test_the_retry_middleware_refuses_a_scheduler_that_would_not_wait() -> None:
    with pytest.raises(ValueError, match=r"needs SCHEDULER = crawler\.policy\.DelayingScheduler"):
        RetryPolicyMiddleware.from_crawler(crawler_for(SCHEDULER="scrapy.core.scheduler.Scheduler"))


def open_scheduler(**overrides) -> DelayingScheduler:
    crawler = crawler_for(**overrides)
    # Scrapy's default priority queue (DownloaderAwarePriorityQueue) asks the engine's
    # downloader for a request's slot and that slot's active downloads: here, all idle
    idle = SimpleNamespace(slots={}, get_slot_key=lambda request: urlsplit(request.url).netloc)
    crawler.engine = SimpleNamespace(downloader=idle)
    scheduler = DelayingScheduler.from_crawler(crawler)
    scheduler.open(crawler.spider)
    return scheduler


def waiting(url: str, not_before: float, **kwargs) -> Request:
    return Request(url, meta={"retry_not_before": not_before}, dont_filter=True, **kwargs)


def test_the_scheduler_parks_requests_until_due_and_stays_busy_meanwhile(clock: Clock) -> None:
    scheduler = open_scheduler()
    later, sooner = waiting(f"{URL}?later", clock.now + 60), waiting(f"{URL}?soon", clock.now + 30)
    fresh = Request(URL)
    for request in (later, sooner, fresh):
        assert scheduler.enqueue_request(request)
    assert len(scheduler) == 3
    assert scheduler.next_request() is fresh
    assert scheduler.next_request() is None
    assert len(scheduler) == 2 and scheduler.has_pending_requests()  # the spider stays open
    clock.now += 29.9
    assert scheduler.next_request() is None
    clock.now += 0.1
    assert scheduler.next_request() is sooner
    assert scheduler.next_request() is None and scheduler.has_pending_requests()
    clock.now += 30
    assert scheduler.next_request() is later
    assert len(scheduler) == 0 and not scheduler.has_pending_requests()
    assert scheduler.stats.get_value("scheduler/delayed") == 2
    assert scheduler.stats.get_value("scheduler/enqueued") == 3  # each once, when due


def test_due_requests_keep_their_priority(clock: Clock) -> None:
    scheduler = open_scheduler()
    retry = waiting(f"{URL}?retry", clock.now + 5, priority=-1)
    scheduler.enqueue_request(retry)
    clock.now += 5
    other = Request(f"{URL}?other")
    scheduler.enqueue_request(other)
    assert [scheduler.next_request(), scheduler.next_request()] == [other, retry]


def test_the_duplicate_filter_judges_a_parked_request_when_it_is_due(clock: Clock) -> None:
    scheduler = open_scheduler()
    assert scheduler.enqueue_request(Request(URL))
    assert scheduler.next_request().url == URL
    duplicate = Request(URL, meta={"retry_not_before": clock.now + 5})  # dont_filter unset
    assert scheduler.enqueue_request(duplicate)
    clock.now += 5
    assert scheduler.next_request() is None and len(scheduler) == 0
    assert scheduler.stats.get_value("dupefilter/filtered") == 1


def test_closing_saves_the_parked_requests_with_the_job(clock: Clock, tmp_path) -> None:
    job = {"JOBDIR": str(tmp_path / "job")}
    scheduler = open_scheduler(**job)
    scheduler.enqueue_request(waiting(URL, clock.now + 30))
    scheduler.enqueue_request(Request(f"{URL}?queued"))
    scheduler.close("shutdown")
    resumed = open_scheduler(**job)
    assert len(resumed) == 2
    urls = {}
    while (request := resumed.next_request()) is not None:
        urls[request.url] = request.meta.get("retry_not_before")
    # still stamped: the retry middleware holds it back again if it is still not due
    assert urls == {URL: clock.now + 30, f"{URL}?queued": None}
    resumed.close("finished")


def test_redirect_loops_are_dropped_logged_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    crawler = crawler_for()
    dupefilter = RedirectAwareDupeFilter.from_crawler(crawler)
    a, b = f"https://{WWW}/_test/redirect-loop/a", f"https://{WWW}/_test/redirect-loop/b"
    assert not dupefilter.request_seen(Request(a))
    assert not dupefilter.request_seen(Request(b, meta={"redirect_urls": [a]}))
    back = Request(a, meta={"redirect_urls": [a, b]})
    assert dupefilter.request_seen(back)
    dupefilter.log(back, crawler.spider)
    plain = Request(a)  # an ordinary duplicate is not a loop
    assert dupefilter.request_seen(plain)
    dupefilter.log(plain, crawler.spider)
    assert crawler.stats.get_value("spider/errors/redirect_loop") == 1
    assert crawler.stats.get_value("dupefilter/filtered") == 2
    assert f"redirect loop dropped: {a} -> {b} -> {a}" in caplog.text
