"""Exclusions that hold through redirects, Retry-After, backoff and the per-URL retry cap."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
from onions import MIRROR_ONION_MAP
from scrapy import Request, Spider
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Response
from scrapy.utils.test import get_crawler

import crawler.policy
from crawler.policy import ExclusionMiddleware, RedirectAwareDupeFilter, RetryPolicyMiddleware

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


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Records the waits the middleware asks for instead of sleeping through them."""
    asked: list[float] = []

    async def record(seconds: float) -> None:
        asked.append(seconds)

    monkeypatch.setattr(crawler.policy, "sleep", record)
    return asked


def run(coroutine):
    return asyncio.run(coroutine)


def test_retry_after_seconds_makes_the_whole_host_wait(waits: list[float]) -> None:
    crawler = crawler_for()
    middleware = RetryPolicyMiddleware.from_crawler(crawler)
    response = Response(URL, status=429, headers={"Retry-After": "30"})
    retry = middleware.process_response(Request(URL), response)
    assert isinstance(retry, Request) and retry.meta["retry_times"] == 1
    other = Request(f"https://{WWW}/section/world")
    run(middleware.process_request(other))
    assert len(waits) == 1 and 28 < waits[0] <= 30
    run(middleware.process_request(Request(f"https://static01.{WWW[4:]}/a.jpg")))
    assert len(waits) == 1  # other hosts do not wait
    assert crawler.stats.get_value("retry/retry_after_honoured") == 1


def test_retry_after_http_date(waits: list[float]) -> None:
    middleware = RetryPolicyMiddleware.from_crawler(crawler_for())
    when = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=90), usegmt=True)
    retry = middleware.process_response(
        Request(URL), Response(URL, status=503, headers={"Retry-After": when})
    )
    run(middleware.process_request(retry))
    assert 85 < waits[0] <= 90


def test_too_long_retry_after_gives_up(waits: list[float]) -> None:
    crawler = crawler_for(RETRY_AFTER_MAX=60)
    middleware = RetryPolicyMiddleware.from_crawler(crawler)
    response = Response(URL, status=429, headers={"Retry-After": "3600"})
    assert middleware.process_response(Request(URL), response) is response
    assert crawler.stats.get_value("retry/retry_after_too_long") == 1


def test_http_errors_back_off_exponentially_up_to_the_max(waits: list[float]) -> None:
    middleware = RetryPolicyMiddleware.from_crawler(crawler_for())
    request = Request(URL)
    for _ in range(3):
        before = time.time()
        request = middleware.process_response(request, Response(URL, status=502))
        assert isinstance(request, Request)
        waits_for = request.meta["retry_not_before"] - before
        run(middleware.process_request(request))
    assert [round(w) for w in waits] == [2, 4, 5]
    assert round(waits_for) == 5
    final = Response(URL, status=502)
    assert middleware.process_response(request, final) is final  # RETRY_TIMES reached


def test_not_found_is_not_retried() -> None:
    middleware = RetryPolicyMiddleware.from_crawler(crawler_for())
    response = Response(URL, status=404)
    assert middleware.process_response(Request(URL), response) is response


def test_total_retries_per_url_are_capped_whatever_retried_it(waits: list[float]) -> None:
    crawler = crawler_for()
    middleware = RetryPolicyMiddleware.from_crawler(crawler)
    # e.g. the Tor layer's circuit retries count through the same retry_times meta key
    request = Request(URL, meta={"retry_times": 5})
    with pytest.raises(IgnoreRequest, match="over RETRY_TOTAL_MAX"):
        run(middleware.process_request(request))
    assert crawler.stats.get_value("retry/total_cap_reached") == 1
    run(middleware.process_request(Request(URL, meta={"retry_times": 4})))


def test_circuit_failures_back_off_on_their_own_scale(waits: list[float]) -> None:
    from crawler.tor.socks import OnionRendezvousFailed

    middleware = RetryPolicyMiddleware.from_crawler(crawler_for())
    request = Request(URL)
    for _ in range(3):
        request = middleware.process_exception(request, OnionRendezvousFailed())
        assert isinstance(request, Request)
        run(middleware.process_request(request))
    assert [round(w, 1) for w in waits] == [0.5, 1.0, 2.0]
    assert middleware.process_exception(request, OnionRendezvousFailed()) is None
    assert middleware.process_exception(Request(URL), ValueError("not a Tor error")) is None


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
