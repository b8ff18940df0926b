"""Scrapy download handler that fetches onion URLs through Tor's SOCKS port.

Each request travels over TCP to Tor's SocksPort, a SOCKS5 CONNECT with the host name left
for Tor to resolve (:mod:`crawler.tor.socks`), TLS inside the tunnel for ``https`` (Scrapy's
client context factory, SNI = the onion host, no verification by default), then HTTP/1.1
spoken with h11. The request bytes written and the response bytes read are kept exactly as
they travelled and handed to the WARC writer as an :class:`~crawler.warc.exchange.Exchange`
through the :data:`~crawler.warc.exchange.exchange_recorded` signal, for every request,
whether it succeeded or not.

Connections are kept alive and reused per (isolation label, host, port, scheme). Only hosts
that are valid v3 onion hosts are ever contacted, and only through Tor.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from io import BytesIO
from ipaddress import ip_address
from pathlib import PurePath
from tempfile import SpooledTemporaryFile
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import urlsplit

import h11
from scrapy import signals
from scrapy.core.downloader.contextfactory import _load_context_factory_from_settings
from scrapy.core.downloader.handlers.base import BaseDownloadHandler
from scrapy.exceptions import (
    DownloadCancelledError,
    DownloadFailedError,
    DownloadTimeoutError,
    IgnoreRequest,
    NotConfigured,
    ResponseDataLossError,
)
from scrapy.http import Headers
from scrapy.utils._download_handlers import (
    check_stop_download,
    get_dataloss_msg,
    get_maxsize_msg,
    get_warnsize_msg,
    make_response,
)
from scrapy.utils.defer import maybe_deferred_to_future
from scrapy.utils.httpobj import urlparse_cached
from twisted.internet import error as txerror
from twisted.internet import ssl
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure

from crawler.tor.onion import is_onion_host, onion_base
from crawler.tor.signals import circuit_failed
from crawler.tor.socks import CircuitError, Socks5ClientProtocol, TorError, TorUnavailable
from crawler.warc.exchange import Exchange, exchange_recorded

if TYPE_CHECKING:
    from typing import Self

    from scrapy import Request
    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from scrapy.settings import BaseSettings

logger = logging.getLogger(__name__)

#: Response bytes kept in memory before the spool moves to a temporary file.
SPOOL_MEMORY_LIMIT = 1 << 20
#: Largest status line + header block accepted from a server.
MAX_HEADER_BYTES = 256 * 1024
#: Fixed SOCKS password: with IsolateSOCKSAuth the username (the isolation label) decides
#: the circuit, so this only has to be the same for every stream of one label.
SOCKS_PASSWORD = b"onion-archiver"
ISOLATION_POLICIES = ("host", "job", "none")


class NonOnionHostRefused(IgnoreRequest):
    """The handler was asked for a host that is not a v3 onion host; nothing was sent."""


def parse_socks_url(url: str) -> tuple[str, int]:
    """``(address, port)`` of a ``socks5h://ADDRESS:PORT`` URL (ADDRESS: an IP or localhost).

    :raises NotConfigured: another scheme (``socks5://`` would resolve names locally),
        credentials in the URL, a host name other than localhost, or no port.
    """
    parts = urlsplit(url or "")
    if parts.scheme != "socks5h":
        raise NotConfigured(
            f"TOR_SOCKS_URL={url!r}: only socks5h://HOST:PORT is accepted (SOCKS5 with names "
            "resolved by Tor); other schemes could resolve crawled host names locally"
        )
    if parts.username is not None or parts.password is not None:
        raise NotConfigured(
            f"TOR_SOCKS_URL={url!r}: credentials are set per request by TOR_ISOLATION, "
            "not in the URL"
        )
    host = parts.hostname or ""
    if host == "localhost":
        host = "127.0.0.1"
    try:
        ip_address(host)
        port = parts.port
    except ValueError as exc:
        raise NotConfigured(f"TOR_SOCKS_URL={url!r}: {exc}") from None
    if port is None:
        raise NotConfigured(f"TOR_SOCKS_URL={url!r} has no port")
    return host, port


@dataclass(frozen=True)
class IsolationPolicy:
    """Chooses the SOCKS credentials (so the Tor circuits) of each request.

    * ``host``: one identity per onion base host (``host:<onion>``);
    * ``job``: the same, prefixed with the job id (``job:<id>/host:<onion>``), so that
      concurrent jobs never share circuits;
    * ``none``: one identity for everything (``shared``).

    ``request.meta["tor_isolation"] = "<group>"`` appends ``/group:<group>``, putting that
    group of requests on circuits of its own.
    """

    policy: str
    job: str | None = None

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> Self:
        """Read ``TOR_ISOLATION``, ``TOR_ISOLATION_JOB`` and ``JOBDIR``.

        :raises NotConfigured: an unknown policy, or a job id that is not 1-64 characters.
        """
        policy = settings.get("TOR_ISOLATION", "host")
        if policy not in ISOLATION_POLICIES:
            raise NotConfigured(
                f"TOR_ISOLATION={policy!r}: expected one of {', '.join(ISOLATION_POLICIES)}"
            )
        if policy != "job":
            return cls(policy)
        job = settings.get("TOR_ISOLATION_JOB")
        if not job and settings.get("JOBDIR"):
            job = PurePath(settings["JOBDIR"]).name
        if not job:
            job = f"run-{time.time_ns():x}"
            logger.info("TOR_ISOLATION=job without JOBDIR or TOR_ISOLATION_JOB: job id %s", job)
        if not 1 <= len(job) <= 64:
            raise NotConfigured(f"TOR_ISOLATION_JOB={job!r}: must be 1-64 characters")
        return cls(policy, job)

    def label(self, host: str, group: str | None = None) -> str:
        """The isolation label (the SOCKS username) of a request to onion *host*."""
        if self.policy == "none":
            parts = ["shared"]
        else:
            parts = [f"host:{onion_base(host)}"]
            if self.job is not None:
                parts.insert(0, f"job:{self.job}")
        if group:
            parts.append(f"group:{group}")
        label = "/".join(parts)
        if len(label.encode()) > 255:
            raise ValueError(f"isolation label too long for SOCKS5 (255 bytes): {label!r}")
        return label


class _PoolKey(NamedTuple):
    label: str
    host: str
    port: int
    scheme: str


class _HTTPConnection(Protocol):
    """HTTP/1.1 client state (h11) of one Tor stream; buffers what arrives until read."""

    def __init__(self, key: _PoolKey, on_lost: Callable[[_HTTPConnection], None]):
        self.key = key
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEADER_BYTES)
        self.lost: Failure | None = None
        self._on_lost = on_lost
        self._chunks: deque[bytes] = deque()
        self._reader: Deferred[bytes] | None = None
        self._handshake: Deferred[None] | None = None

    def read(self) -> Deferred[bytes]:
        """The next bytes received; ``b""`` once the connection is closed."""
        if self._chunks:
            return succeed(self._chunks.popleft())
        if self.lost is not None:
            return succeed(b"")
        self._reader = Deferred(lambda _: self.abort())
        return self._reader

    def start_tls(self, creator: object) -> Deferred[None]:
        """Start TLS inside the tunnel; fires when the handshake is done.

        Fails with the connection's loss reason (e.g. an OpenSSL error) when it is not.
        """
        self._handshake = Deferred(lambda _: self.abort())
        self.transport.startTLS(creator)
        return self._handshake

    def peer_certificate(self) -> ssl.Certificate | None:
        """The server's TLS certificate (unverified), once the handshake is done."""
        tls = getattr(self.transport, "protocol", None)
        x509 = tls.getPeerCertificate() if hasattr(tls, "getPeerCertificate") else None
        return ssl.Certificate(x509) if x509 is not None else None

    def abort(self) -> None:
        if self.transport is not None and self.lost is None:
            self.transport.abortConnection()

    def close(self) -> None:
        if self.transport is not None and self.lost is None:
            self.transport.loseConnection()

    def handshakeCompleted(self) -> None:
        handshake, self._handshake = self._handshake, None
        if handshake is not None:
            handshake.callback(None)

    def dataReceived(self, data: bytes) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.callback(data)
        else:
            self._chunks.append(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost = reason
        handshake, self._handshake = self._handshake, None
        if handshake is not None:
            handshake.errback(reason)
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.callback(b"")
        self._on_lost(self)


class _ConnectionPool:
    """Idle keep-alive connections by key, at most *max_idle_per_key* of each."""

    def __init__(self, max_idle_per_key: int):
        self.max_idle_per_key = max_idle_per_key
        self._idle: dict[_PoolKey, list[_HTTPConnection]] = {}

    def take(self, key: _PoolKey) -> _HTTPConnection | None:
        idle = self._idle.get(key)
        while idle:
            connection = idle.pop()
            if connection.lost is None:
                return connection
        return None

    def put(self, connection: _HTTPConnection) -> None:
        idle = self._idle.setdefault(connection.key, [])
        if len(idle) < self.max_idle_per_key:
            idle.append(connection)
        else:
            connection.close()

    def discard(self, connection: _HTTPConnection) -> None:
        idle = self._idle.get(connection.key)
        if idle and connection in idle:
            idle.remove(connection)

    def close(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.abort()
        self._idle.clear()


class _StaleConnection(Exception):
    """A kept-alive connection closed before any response byte: send again on a new one."""


@dataclass
class _Download:
    """Per-request state shared between the download coroutine and its timer."""

    request: Request
    timeout: float
    maxsize: int
    warnsize: int
    fail_on_dataloss: bool
    exchange: Exchange
    connection: _HTTPConnection | None = None
    timed_out: bool = False
    flags: list[str] = field(default_factory=list)
    clock_start: float = 0.0


class TorDownloadHandler(BaseDownloadHandler):
    """``http``/``https`` download handler speaking to onion services through Tor only.

    Raises, besides Scrapy's own download errors: :class:`~crawler.tor.socks.TorUnavailable`
    (the SOCKS port is not reachable), a :class:`~crawler.tor.socks.SocksError` subclass per
    SOCKS reply, and :class:`NonOnionHostRefused` for a host that is not an onion host.
    """

    lazy = False

    def __init__(self, crawler: Crawler):
        super().__init__(crawler)
        settings = crawler.settings
        self.socks_address = parse_socks_url(settings.get("TOR_SOCKS_URL"))
        self.isolation = IsolationPolicy.from_settings(settings)
        self._context_factory = _load_context_factory_from_settings(crawler)
        self._default_timeout = settings.getfloat("DOWNLOAD_TIMEOUT")
        self._default_maxsize = settings.getint("DOWNLOAD_MAXSIZE")
        self._default_warnsize = settings.getint("DOWNLOAD_WARNSIZE")
        self._fail_on_dataloss = settings.getbool("DOWNLOAD_FAIL_ON_DATALOSS")
        self._dataloss_warned = False
        self._pool = _ConnectionPool(settings.getint("CONCURRENT_REQUESTS_PER_DOMAIN"))
        self._active: set[_HTTPConnection] = set()
        from twisted.internet import reactor

        self._reactor = reactor

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    async def download_request(self, request: Request) -> Response:
        meta = request.meta
        host = urlparse_cached(request).hostname
        label = ""
        if is_onion_host(host):
            label = self.isolation.label(host, meta.get("tor_isolation"))
        state = _Download(
            request=request,
            timeout=meta.get("download_timeout") or self._default_timeout,
            maxsize=meta.get("download_maxsize", self._default_maxsize),
            warnsize=meta.get("download_warnsize", self._default_warnsize),
            fail_on_dataloss=meta.get("download_fail_on_dataloss", self._fail_on_dataloss),
            exchange=Exchange(url=request.url, request=b"", started=_now(), isolation=label),
            clock_start=time.monotonic(),
        )
        download = Deferred.fromCoroutine(self._download(state))
        timer = self._reactor.callLater(state.timeout, self._expire, state, download)
        try:
            return await maybe_deferred_to_future(download)
        finally:
            if timer.active():
                timer.cancel()

    @staticmethod
    def _expire(state: _Download, download: Deferred[Response]) -> None:
        state.timed_out = True
        download.cancel()

    async def close(self) -> None:
        self._pool.close()
        for connection in list(self._active):
            connection.abort()

    async def _download(self, state: _Download) -> Response:
        """Fetch, record the exchange, translate errors; always sends ``exchange_recorded``."""
        request, exchange = state.request, state.exchange
        try:
            response = await self._fetch(state)
        except BaseException as exc:
            error = self._translate(exc, state)
            exchange.error = exchange.error or f"{type(error).__name__}: {error}"
            self._count_error(error, request)
            self._record(exchange, request)
            if error is exc:
                raise
            raise error from exc
        self._record(exchange, request)
        return response

    def _translate(self, exc: BaseException, state: _Download) -> BaseException:
        exchange = state.exchange
        if isinstance(exc, CancelledError) and state.timed_out:
            if exchange.response is not None:
                exchange.truncated = "time"
            return DownloadTimeoutError(
                f"Getting {state.request.url} took longer than {state.timeout} seconds."
            )
        return exc

    def _count_error(self, error: BaseException, request: Request) -> None:
        stats = self.crawler.stats
        if isinstance(error, TorError) and stats is not None:
            stats.inc_value(f"tor/errors/{error.kind}")
        if isinstance(error, CircuitError):
            self.crawler.signals.send_catch_log(circuit_failed, request=request, error=error)

    def _record(self, exchange: Exchange, request: Request) -> None:
        exchange.timings.setdefault("done", _seconds_since(exchange))
        if exchange.response is not None:
            exchange.response.seek(0)
        try:
            self.crawler.signals.send_catch_log(
                exchange_recorded, exchange=exchange, request=request
            )
        finally:
            if exchange.response is not None:
                exchange.response.close()

    async def _fetch(self, state: _Download) -> Response:
        request = state.request
        url = urlparse_cached(request)
        host = url.hostname
        if not is_onion_host(host):
            raise NonOnionHostRefused(
                f"refusing {request.url}: {host!r} is not a v3 onion host (only onion hosts "
                "are fetched, through Tor)"
            )
        port = url.port or (443 if url.scheme == "https" else 80)
        key = _PoolKey(state.exchange.isolation, host, port, url.scheme)
        events = _request_events(request, host, port, url.scheme)
        connection = self._pool.take(key)
        if connection is not None:
            try:
                return await self._exchange(state, connection, events)
            except _StaleConnection:
                logger.debug("Kept-alive connection to %s was closed; reconnecting", host)
                state.exchange.request = b""
        connection = await self._connect(state, key)
        return await self._exchange(state, connection, events)

    async def _connect(self, state: _Download, key: _PoolKey) -> _HTTPConnection:
        connection = _HTTPConnection(key, self._connection_lost)
        state.connection = connection
        self._active.add(connection)
        credentials = (key.label.encode(), SOCKS_PASSWORD)
        socks = Socks5ClientProtocol(key.host, key.port, credentials, connection)
        address, port = self.socks_address
        endpoint_class = TCP6ClientEndpoint if ":" in address else TCP4ClientEndpoint
        endpoint = endpoint_class(self._reactor, address, port, timeout=state.timeout)
        try:
            await endpoint.connect(Factory.forProtocol(lambda: socks))
        except (txerror.ConnectError, txerror.ConnectionLost) as exc:
            raise TorUnavailable(
                f"cannot reach Tor's SOCKS port {address}:{port}: {exc.__class__.__name__}"
            ) from exc
        await socks.tunnel_ready
        timings = state.exchange.timings
        timings["connected"] = time.monotonic() - state.clock_start
        if key.scheme == "https":
            creator = self._context_factory.creatorForNetloc(key.host.encode("ascii"), key.port)
            try:
                await connection.start_tls(creator)
            except CancelledError:
                raise
            except Exception as exc:
                raise DownloadFailedError(
                    f"TLS handshake with {key.host}:{key.port} failed: {exc}"
                ) from exc
            timings["tls"] = time.monotonic() - state.clock_start
        return connection

    def _connection_lost(self, connection: _HTTPConnection) -> None:
        self._active.discard(connection)
        self._pool.discard(connection)

    async def _exchange(
        self, state: _Download, connection: _HTTPConnection, events: list[h11.Event]
    ) -> Response:
        """Send the request *events* on *connection* and read one response with h11."""
        request, exchange = state.request, state.exchange
        state.connection = connection
        self._active.add(connection)
        reused = "connected" not in exchange.timings
        # Timings of the connection setup become offsets before the first request byte.
        sent_at = time.monotonic()
        for name in ("connected", "tls"):
            if name in exchange.timings:
                exchange.timings[name] -= sent_at - state.clock_start
        state.clock_start = sent_at
        exchange.started = _now()
        exchange.request = b"".join(connection.h11.send(event) for event in events)
        connection.transport.write(exchange.request)

        head: h11.Response | None = None
        headers = Headers()
        body = BytesIO()
        warned = False
        while True:
            try:
                event = connection.h11.next_event()
            except h11.RemoteProtocolError as exc:
                return self._broken_response(state, connection, head, headers, body, exc, reused)
            if event is h11.NEED_DATA:
                data = await connection.read()
                if data:
                    self._spool(exchange, data)
                connection.h11.receive_data(data)
                continue
            if isinstance(event, h11.Response):
                head = event
                request.meta["download_latency"] = time.monotonic() - sent_at
                for name, value in event.headers.raw_items():
                    headers.appendlist(name, value)
                exchange.chunked = b"chunked" in headers.get(b"Transfer-Encoding", b"").lower()
                expected = int(headers[b"Content-Length"]) if b"Content-Length" in headers else 0
                warned = self._check_size(state, expected, warned, expected=True)
                stop = check_stop_download(
                    signals.headers_received,
                    self.crawler,
                    request,
                    headers=headers,
                    body_length=expected or None,
                )
                if stop is not None:
                    return self._stopped(state, connection, head, headers, body, stop)
            elif isinstance(event, h11.Data):
                body.write(event.data)
                warned = self._check_size(state, body.tell(), warned, expected=False)
                stop = check_stop_download(
                    signals.bytes_received, self.crawler, request, data=event.data
                )
                if stop is not None:
                    return self._stopped(state, connection, head, headers, body, stop)
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                closed = h11.RemoteProtocolError("connection closed before the response ended")
                return self._broken_response(state, connection, head, headers, body, closed, reused)
        exchange.timings["done"] = time.monotonic() - sent_at
        self._release(connection, exchange)
        return self._response(state, connection, head, headers, body)

    def _spool(self, exchange: Exchange, data: bytes) -> None:
        if exchange.response is None:
            # Closed by _record once the exchange_recorded receivers have read it.
            exchange.response = SpooledTemporaryFile(max_size=SPOOL_MEMORY_LIMIT)  # noqa: SIM115
            exchange.timings["first_byte"] = _seconds_since(exchange)
        exchange.response.write(data)
        exchange.response_length += len(data)

    def _check_size(self, state: _Download, size: int, warned: bool, *, expected: bool) -> bool:
        """Abort beyond DOWNLOAD_MAXSIZE; log once beyond DOWNLOAD_WARNSIZE; True once warned."""
        if state.maxsize and size > state.maxsize:
            message = get_maxsize_msg(size, state.maxsize, state.request, expected=expected)
            logger.warning(message)
            state.exchange.truncated = "length"
            state.connection.abort()
            raise DownloadCancelledError(message)
        if state.warnsize and size > state.warnsize and not warned:
            logger.warning(get_warnsize_msg(size, state.warnsize, state.request, expected=expected))
            return True
        return warned

    def _release(self, connection: _HTTPConnection, exchange: Exchange) -> None:
        """Pool *connection* when h11 allows another cycle, else close it."""
        trailing, _closed = connection.h11.trailing_data
        if trailing:
            # Bytes after the end of the response are not part of this exchange.
            exchange.response_length -= len(trailing)
            exchange.response.truncate(exchange.response_length)
        self._active.discard(connection)
        if (
            not trailing
            and connection.lost is None
            and connection.h11.our_state is h11.DONE
            and connection.h11.their_state is h11.DONE
        ):
            connection.h11.start_next_cycle()
            self._pool.put(connection)
        else:
            connection.close()

    def _broken_response(
        self,
        state: _Download,
        connection: _HTTPConnection,
        head: h11.Response | None,
        headers: Headers,
        body: BytesIO,
        exc: h11.RemoteProtocolError,
        reused: bool,
    ) -> Response:
        """The server closed early or sent something h11 cannot parse."""
        exchange = state.exchange
        connection.abort()
        lost = connection.lost is not None
        if head is None:
            if lost and exchange.response is None and reused:
                raise _StaleConnection(str(exc))
            if lost and exchange.response is None:
                raise DownloadFailedError(
                    f"{state.request.url}: connection closed before a response"
                )
            raise DownloadFailedError(f"invalid HTTP response from {state.request.url}: {exc}")
        if not lost:
            raise DownloadFailedError(f"invalid HTTP response from {state.request.url}: {exc}")
        exchange.truncated = "disconnect"
        if state.fail_on_dataloss:
            if not self._dataloss_warned:
                logger.warning(get_dataloss_msg(state.request.url))
                self._dataloss_warned = True
            raise ResponseDataLossError(f"{state.request.url}: {exc}")
        exchange.error = f"ResponseDataLossError: {exc}"
        state.flags.append("dataloss")
        return self._response(state, connection, head, headers, body)

    def _stopped(self, state, connection, head, headers, body, stop) -> Response:
        """A ``headers_received``/``bytes_received`` handler raised StopDownload."""
        connection.abort()
        state.exchange.truncated = "unspecified"
        return make_response(
            **self._response_args(state, connection, head, headers),
            body=body.getvalue(),
            stop_download=stop,
        )

    def _response(self, state, connection, head, headers, body) -> Response:
        return make_response(
            **self._response_args(state, connection, head, headers),
            body=body.getvalue(),
            flags=state.flags or None,
        )

    @staticmethod
    def _response_args(
        state: _Download, connection: _HTTPConnection, head: h11.Response, headers: Headers
    ) -> dict:
        return {
            "url": state.request.url,
            "status": head.status_code,
            "headers": headers,
            "certificate": connection.peer_certificate(),
            "ip_address": None,
            "protocol": "HTTP/1.1",
        }


def _now() -> datetime:
    return datetime.now(UTC)


def _seconds_since(exchange: Exchange) -> float:
    return (_now() - exchange.started).total_seconds()


def _request_events(request: Request, host: str, port: int, scheme: str) -> list[h11.Event]:
    """The h11 events of *request*: request line and headers (case and order kept), body.

    :raises ValueError: a method, target or header h11 refuses to send (with the reason).
    """
    url = urlparse_cached(request)
    target = (url.path or "/") + (f"?{url.query}" if url.query else "")
    default_port = 443 if scheme == "https" else 80
    headers: list[tuple[bytes, bytes]] = []
    if b"Host" not in request.headers:
        headers.append((b"Host", (host if port == default_port else f"{host}:{port}").encode()))
    for name, values in request.headers.items():
        if name.lower() != b"proxy-authorization":
            headers.extend((name, value) for value in values)
    if b"Content-Length" not in request.headers and (
        request.body or request.method in ("POST", "PUT", "PATCH")
    ):
        headers.append((b"Content-Length", str(len(request.body)).encode()))
    try:
        head = h11.Request(method=request.method, target=target, headers=headers)
    except h11.LocalProtocolError as exc:
        raise ValueError(f"cannot send {request}: {exc}") from None
    body = [h11.Data(data=request.body)] if request.body else []
    return [head, *body, h11.EndOfMessage()]
