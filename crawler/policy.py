"""Crawl policy: exclusions that survive redirects, HTTP retries, redirect loops.

:class:`ExclusionMiddleware` drops every request to an excluded URL (login, subscription,
account, ad, tracking; see :mod:`crawler.spiders.urls`), including redirect targets, which
the spider never sees. :class:`RetryPolicyMiddleware` replaces Scrapy's ``RetryMiddleware``:
the same retries, plus exponential backoff, ``Retry-After`` on 429/503 (the whole host waits,
not only the URL, and only that host) and a cap on the total retries of one URL whatever
retried it (it counts Scrapy's ``retry_times`` meta key, which every ``get_retry_request``
caller increments). The waits are served by :class:`DelayingScheduler` (``SCHEDULER``), which
parks a request until its ``meta["retry_not_before"]``: a request that waited inside a
downloader middleware would hold one of the ``CONCURRENT_REQUESTS`` download slots, so a
handful of retries to one dead onion or one host under ``Retry-After`` would stall the whole
crawl. :class:`RedirectAwareDupeFilter` is Scrapy's duplicate filter, reporting redirect loops.
"""

from __future__ import annotations

import heapq
import itertools
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from scrapy import Request, Spider
from scrapy.core.scheduler import Scheduler
from scrapy.crawler import Crawler
from scrapy.downloadermiddlewares.retry import RetryMiddleware
from scrapy.dupefilters import RFPDupeFilter
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Response
from scrapy.utils.misc import load_object

from crawler.spiders.urls import UrlPolicy
from crawler.tor.onion import OnionMap

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred


class ExclusionMiddleware:
    """Drops requests to excluded URLs (``IgnoreRequest``), counted in ``policy/excluded``."""

    def __init__(self, crawler: Crawler, policy: UrlPolicy):
        self.crawler, self.policy = crawler, policy

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ExclusionMiddleware:
        policy = UrlPolicy(
            OnionMap.from_setting(crawler.settings.get("ONION_MAP")),
            crawler.settings.getlist("SPIDER_EXCLUDE"),
        )
        return cls(crawler, policy)

    def process_request(self, request: Request) -> None:
        if self.policy.is_excluded(request.url):
            self.crawler.stats.inc_value("policy/excluded")
            raise IgnoreRequest(f"excluded URL {request.url}")


class RetryPolicyMiddleware(RetryMiddleware):
    """Scrapy's retries with backoff, ``Retry-After`` and a total cap per URL.

    Settings: ``RETRY_TOTAL_MAX`` (retries of one URL in all, any cause),
    ``RETRY_BACKOFF_BASE`` for HTTP errors and ``RETRY_CIRCUIT_BACKOFF_BASE`` for transport
    errors (``RETRY_EXCEPTIONS``: Tor circuit failures, timeouts), both capped by
    ``RETRY_BACKOFF_MAX`` (seconds; the n-th retry waits ``base * 2**(n-1)``), and
    ``RETRY_AFTER_MAX`` (a longer ``Retry-After`` makes the URL give up instead of waiting).

    Nothing waits here, where a waiting request would hold a download slot: a retry carries
    the time it may go out in ``meta["retry_not_before"]`` (a :func:`time.time` value), and
    :class:`DelayingScheduler` parks it until then. That scheduler (or a subclass) must be the
    ``SCHEDULER``: another one would send a held-back request straight back, again and again,
    so the middleware refuses to start with a ``ValueError``. A 429/503 ``Retry-After`` holds
    back every request to that host (``host:port``), and only to it, until then: the retry is
    stamped with the host's time, and :meth:`process_request` sends any other request to the
    host back to the scheduler, stamped the same way and with ``dont_filter=True`` (the
    duplicate filter saw it already), counting ``retry/waits``. A held-back request that is
    due passes, unless its host got a later ``Retry-After`` meanwhile. A request past
    ``RETRY_TOTAL_MAX`` retries is dropped (``IgnoreRequest``, ``retry/total_cap_reached``).
    """

    def __init__(self, crawler: Crawler):
        super().__init__(crawler.settings)
        self.crawler = crawler
        settings = crawler.settings
        self.total_max = settings.getint("RETRY_TOTAL_MAX")
        self.backoff_base = settings.getfloat("RETRY_BACKOFF_BASE")
        self.circuit_backoff_base = settings.getfloat("RETRY_CIRCUIT_BACKOFF_BASE")
        self.backoff_max = settings.getfloat("RETRY_BACKOFF_MAX")
        self.retry_after_max = settings.getfloat("RETRY_AFTER_MAX")
        self.host_not_before: dict[str, float] = {}
        scheduler = load_object(settings["SCHEDULER"])
        # not issubclass(): BaseScheduler's metaclass passes any class with a scheduler's methods
        if DelayingScheduler not in getattr(scheduler, "__mro__", ()):
            raise ValueError(
                f"RetryPolicyMiddleware needs SCHEDULER = crawler.policy.DelayingScheduler (or "
                f"a subclass), not {settings['SCHEDULER']!r}: that one would send the requests "
                "waiting for a backoff or a Retry-After at once, again and again"
            )

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RetryPolicyMiddleware:
        return cls(crawler)

    def process_request(self, request: Request) -> Request | None:
        retries = request.meta.get("retry_times", 0)
        if retries > self.total_max:
            self.crawler.stats.inc_value("retry/total_cap_reached")
            raise IgnoreRequest(f"{request.url}: {retries} retries, over RETRY_TOTAL_MAX")
        not_before = max(
            request.meta.get("retry_not_before", 0.0),
            self.host_not_before.get(urlsplit(request.url).netloc, 0.0),
        )
        if not_before <= time.time():
            return None
        self.crawler.stats.inc_value("retry/waits")
        meta = {**request.meta, "retry_not_before": not_before}
        return request.replace(dont_filter=True, meta=meta)

    def process_response(self, request: Request, response: Response) -> Request | Response:
        if request.meta.get("dont_retry") or response.status not in self.retry_http_codes:
            return response
        retry_after = _retry_after(response) if response.status in (429, 503) else None
        if retry_after is not None and retry_after > self.retry_after_max:
            self.crawler.stats.inc_value("retry/retry_after_too_long")
            self.crawler.spider.logger.warning(
                "%s asks to retry after %.0f s (over RETRY_AFTER_MAX); giving up",
                request.url,
                retry_after,
            )
            return response
        retry = self._retry(request, f"HTTP {response.status}")
        if retry is None:
            return response
        if retry_after is not None:
            host = urlsplit(request.url).netloc
            self.host_not_before[host] = max(
                self.host_not_before.get(host, 0.0), time.time() + retry_after
            )
            self.crawler.stats.inc_value("retry/retry_after_honoured")
            retry.meta["retry_not_before"] = self.host_not_before[host]
        else:
            retry.meta["retry_not_before"] = time.time() + self._backoff(retry, self.backoff_base)
        return retry

    def process_exception(self, request: Request, exception: Exception) -> Request | None:
        retry = super().process_exception(request, exception)
        if isinstance(retry, Request):
            backoff = self._backoff(retry, self.circuit_backoff_base)
            retry.meta["retry_not_before"] = time.time() + backoff
        return retry

    def _backoff(self, retry: Request, base: float) -> float:
        return min(self.backoff_max, base * 2 ** (retry.meta["retry_times"] - 1))


def _retry_after(response: Response) -> float | None:
    """Seconds from now that ``Retry-After`` asks for (delta-seconds or HTTP-date), or None."""
    value = response.headers.get(b"Retry-After")
    if not value:
        return None
    text = value.decode("latin-1").strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class DelayingScheduler(Scheduler):
    """Scrapy's scheduler, holding back each request until its ``meta["retry_not_before"]``.

    A request whose ``retry_not_before`` (a :func:`time.time` value) is in the future is
    parked in memory, ordered by that time, instead of entering the queues; no download slot
    is taken while it waits, so other hosts keep all of ``CONCURRENT_REQUESTS``.
    :meth:`next_request` first moves the requests now due into the queues through Scrapy's own
    :meth:`~scrapy.core.scheduler.Scheduler.enqueue_request`: priorities, ``JOBDIR`` disk
    queues and the duplicate filter apply then (retries and the requests
    :class:`RetryPolicyMiddleware` holds back carry ``dont_filter=True`` and always pass). The
    engine asks for a request when a download ends and otherwise on its heartbeat, every 5 s,
    so a parked request goes out up to about 5 s after it is due, never before.

    Parked requests count in ``len()`` and :meth:`has_pending_requests`: the spider is not idle,
    so it does not close while any waits. :meth:`close` moves all of them into the queues
    first, so with ``JOBDIR`` they are saved with the others and a resumed crawl sends them
    (:class:`RetryPolicyMiddleware` parks again those still not due); without ``JOBDIR`` they
    are dropped like every pending request. Parked requests are counted in
    ``scheduler/delayed``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._parked: list[tuple[float, int, Request]] = []  # heap of (due, arrival, request)
        self._arrivals = itertools.count()

    def enqueue_request(self, request: Request) -> bool:
        not_before = request.meta.get("retry_not_before", 0.0)
        if not_before <= time.time():
            return super().enqueue_request(request)
        heapq.heappush(self._parked, (not_before, next(self._arrivals), request))
        assert self.stats is not None
        self.stats.inc_value("scheduler/delayed")
        return True

    def next_request(self) -> Request | None:
        self._release(until=time.time())
        return super().next_request()

    def close(self, reason: str) -> Deferred[None] | None:
        self._release(until=float("inf"))
        return super().close(reason)

    def __len__(self) -> int:
        return super().__len__() + len(self._parked)

    def _release(self, until: float) -> None:
        """Move the parked requests due at *until* into the queues, earliest first."""
        while self._parked and self._parked[0][0] <= until:
            super().enqueue_request(heapq.heappop(self._parked)[2])


class RedirectAwareDupeFilter(RFPDupeFilter):
    """Scrapy's duplicate filter (``JOBDIR`` persistence included) that reports redirect loops.

    A redirect back to a URL of its own chain is dropped as a duplicate like any other, and
    also logged as a warning and counted in ``spider/errors/redirect_loop``.
    """

    def log(self, request: Request, spider: Spider) -> None:
        chain = request.meta.get("redirect_urls") or []
        if request.url in chain:
            spider.crawler.stats.inc_value("spider/errors/redirect_loop")
            self.logger.warning("redirect loop dropped: %s -> %s", " -> ".join(chain), request.url)
        super().log(request, spider)
