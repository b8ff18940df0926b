"""Downloader middlewares of the Tor layer: onion scope and Tor availability.

* :class:`OnionScopeMiddleware` (early): rewrites clearnet URLs of ``ONION_MAP`` to their
  onion form and drops every request whose host is still not an onion host.
* :class:`TorAvailabilityMiddleware`: when Tor's SOCKS port cannot be reached, pauses the
  engine, puts the request back, probes the port with bounded exponential backoff and
  resumes, or closes the spider with reason ``tor_unavailable`` after
  ``TOR_UNAVAILABLE_TIMEOUT`` seconds.

Circuit failures are retried by the project's retry middleware: the Tor add-on adds
:class:`~crawler.tor.socks.CircuitError` and :class:`~crawler.tor.socks.GeneralFailure` to
``RETRY_EXCEPTIONS``.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from scrapy import signals
from scrapy.exceptions import IgnoreRequest
from scrapy.utils.defer import deferred_from_coro
from scrapy.utils.httpobj import urlparse_cached
from twisted.internet import error as txerror
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater

from crawler.tor.handler import parse_socks_url
from crawler.tor.onion import OnionMap, is_onion_host
from crawler.tor.signals import tor_available, tor_unavailable
from crawler.tor.socks import TorUnavailable

if TYPE_CHECKING:
    from typing import Self

    from scrapy import Request
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

#: First and largest wait between two probes of an unreachable SOCKS port (seconds).
PROBE_FIRST_DELAY = 0.5
PROBE_MAX_DELAY = 15.0
#: Time allowed for one probe (TCP connect + SOCKS method selection).
PROBE_TIMEOUT = 5.0


class OffOnionScope(IgnoreRequest):
    """The request's host is not an onion host and ``ONION_MAP`` does not cover it."""


class OnionScopeMiddleware:
    """Maps clearnet URLs to onion URLs and drops everything that would not go to an onion.

    A mapped request is replaced by its onion form with ``meta["clearnet_url"]`` set to the
    URL it came from (kept from the first mapping along a redirect chain). Dropped requests
    raise :class:`OffOnionScope` and are counted in ``tor/scope/dropped``.
    """

    def __init__(self, crawler: Crawler):
        self.crawler = crawler
        self.onion_map = OnionMap.from_setting(crawler.settings.get("ONION_MAP"))

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    def process_request(self, request: Request) -> Request | None:
        scheme = urlparse_cached(request).scheme
        if scheme not in ("http", "https"):
            self._drop(request, f"the {scheme!r} scheme is not fetched through Tor")
        host = urlparse_cached(request).hostname
        if is_onion_host(host):
            return None
        onion_url = self.onion_map.to_onion_url(request.url)
        if onion_url is None:
            self._drop(request, f"{host!r} is not an onion host and ONION_MAP does not map it")
        self.crawler.stats.inc_value("tor/scope/mapped")
        meta = {"clearnet_url": request.url, **request.meta}
        return request.replace(url=onion_url, meta=meta)

    def _drop(self, request: Request, reason: str) -> None:
        redirected = request.meta.get("redirect_urls")
        origin = f" (redirected from {redirected[-1]})" if redirected else ""
        logger.warning("Dropped %s%s: %s", request, origin, reason)
        self.crawler.stats.inc_value("tor/scope/dropped")
        raise OffOnionScope(f"{request.url}: {reason}")


class TorAvailabilityMiddleware:
    """Pauses the crawl while Tor's SOCKS port is unreachable; never loses a request.

    On :class:`~crawler.tor.socks.TorUnavailable` the engine is paused, the request goes
    back to the scheduler (``dont_filter=True``), ``tor_unavailable`` is sent, and the SOCKS
    port is probed with exponential backoff. When it answers, ``tor_available`` is sent and
    its receivers awaited: a Tor opens its SOCKS port before it has bootstrapped, so the
    :class:`~crawler.tor.control.TorControl` extension waits there for bootstrap (without a
    control port the SOCKS answer is all there is to go by). The engine then resumes, or,
    when a receiver answered ``False`` (Tor never got ready), the spider is closed with reason
    ``tor_unavailable``, as it is after ``TOR_UNAVAILABLE_TIMEOUT`` seconds without an answer
    (the requests not yet sent stay in the scheduler, so in ``JOBDIR`` when one is set).
    """

    def __init__(self, crawler: Crawler):
        self.crawler = crawler
        self.socks_address = parse_socks_url(crawler.settings.get("TOR_SOCKS_URL"))
        self.timeout = crawler.settings.getfloat("TOR_UNAVAILABLE_TIMEOUT")
        self._probing: Deferred[None] | None = None
        crawler.signals.connect(self._spider_closed, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    def process_exception(self, request: Request, exception: Exception) -> Request | None:
        if not isinstance(exception, TorUnavailable):
            return None
        self.crawler.stats.inc_value("tor/unavailable/requeued")
        if self._probing is None:
            address, port = self.socks_address
            logger.error(
                "Tor's SOCKS port %s:%s is unreachable (%s): crawl paused, probing it for up "
                "to %s s",
                address,
                port,
                exception,
                self.timeout,
            )
            self.crawler.engine.pause()
            self.crawler.signals.send_catch_log(tor_unavailable, error=exception)
            self._probing = Deferred.fromCoroutine(self._probe_until_available())
            self._probing.addErrback(lambda failure: failure.trap(CancelledError))
        return request.replace(dont_filter=True)

    async def _probe_until_available(self) -> None:
        from twisted.internet import reactor

        address, port = self.socks_address
        deadline = time.monotonic() + self.timeout
        delay = PROBE_FIRST_DELAY
        while True:
            await deferLater(reactor, min(delay, max(0.0, deadline - time.monotonic())))
            if await probe_socks_port(address, port):
                break
            if time.monotonic() >= deadline:
                logger.error(
                    "Tor's SOCKS port %s:%s unreachable for %s s (TOR_UNAVAILABLE_TIMEOUT): "
                    "closing the spider (tor_unavailable); unsent requests were not fetched "
                    "and nothing was sent another way",
                    address,
                    port,
                    self.timeout,
                )
                self._probing = None
                await deferred_from_coro(
                    self.crawler.engine.close_spider_async(reason="tor_unavailable")
                )
                return
            delay = min(delay * 2, PROBE_MAX_DELAY)
        logger.info("Tor's SOCKS port %s:%s answers again", address, port)
        # deferred_from_coro: this coroutine runs on Deferreds, the signal's on asyncio
        results = await deferred_from_coro(self.crawler.signals.send_catch_log_async(tor_available))
        self._probing = None
        if any(ready is False for _receiver, ready in results):
            logger.error(
                "Tor is back on %s:%s but not ready (see above): closing the spider "
                "(tor_unavailable); unsent requests were not fetched",
                address,
                port,
            )
            await deferred_from_coro(
                self.crawler.engine.close_spider_async(reason="tor_unavailable")
            )
            return
        logger.info("Tor is ready: crawl resumed")
        self.crawler.engine.unpause()

    def _spider_closed(self) -> None:
        if self._probing is not None:
            self._probing.cancel()


class _GreetingProbe(Protocol):
    def __init__(self) -> None:
        self.answered: Deferred[bool] = Deferred()

    def connectionMade(self) -> None:
        self.transport.write(b"\x05\x01\x00")

    def dataReceived(self, data: bytes) -> None:
        if not self.answered.called:
            self.answered.callback(data[:1] == b"\x05")
        self.transport.loseConnection()

    def connectionLost(self, reason: object = None) -> None:
        if not self.answered.called:
            self.answered.callback(False)


async def probe_socks_port(address: str, port: int, timeout: float = PROBE_TIMEOUT) -> bool:
    """True when a SOCKS5 server at *address*:*port* answers a method-selection message.

    Never raises for a network failure: refused, reset and timed-out probes return False.
    """
    from twisted.internet import reactor

    endpoint_class = TCP6ClientEndpoint if ":" in address else TCP4ClientEndpoint
    probe = _GreetingProbe()
    try:
        await endpoint_class(reactor, address, port, timeout=timeout).connect(
            Factory.forProtocol(lambda: probe)
        )
    except (txerror.ConnectError, txerror.ConnectionLost):
        return False
    answered = probe.answered.addTimeout(timeout, reactor)
    try:
        return await answered
    except txerror.TimeoutError:
        return False
