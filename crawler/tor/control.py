"""Tor control with stem: preflight at crawl start, new identities within Tor's rate limit, and
an optional private tor launched for the crawl.

:class:`TorController` is a blocking, thread-safe client of Tor's control port; every call is
bounded by its timeout (a port that accepts but never answers gives :class:`TorControlError`,
not a hang), and every (re)connect reads the auth cookie file again, since a restarted tor writes
a new cookie. :class:`TorControl` is the Scrapy extension using it: it calls it from threads only,
so the reactor never blocks.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import stem
import stem.connection
import stem.process
import stem.socket
from scrapy import signals
from scrapy.exceptions import CloseSpider
from scrapy.utils.defer import maybe_deferred_to_future
from stem import Signal
from stem.control import Controller
from twisted.internet.threads import deferToThread

from crawler.tor.signals import circuit_failed, tor_available

if TYPE_CHECKING:
    from scrapy import Spider
    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from scrapy.settings import BaseSettings

logger = logging.getLogger(__name__)

T = TypeVar("T")
#: Tor honours NEWNYM at most once per this many seconds.
NEWNYM_INTERVAL = 10.0
BOOTSTRAP_POLL_INTERVAL = 0.5
STOP_GRACE = 5.0
_PHASE_FIELDS = re.compile(r'(\w+)=("[^"]*"|\S+)')
PREFLIGHT_FAILED = "tor_preflight_failed"


class TorControlError(RuntimeError):
    """Tor's control port is unreachable, refuses our credentials, does not answer in time,
    or Tor did not bootstrap in time. The message says which, and never holds a credential."""


@dataclass(frozen=True)
class ControlAddress:
    """Where Tor's control port listens: ``tcp://host:port`` or ``unix:/path``."""

    host: str | None = None
    port: int | None = None
    path: str | None = None

    @classmethod
    def parse(cls, url: str) -> ControlAddress:
        """:raises TorControlError: not ``tcp://host:port`` or ``unix:/path``."""
        if url.startswith("unix:"):
            path = url[len("unix:") :]
            if path.startswith("//"):
                path = path[2:]
            if not path.startswith("/"):
                raise TorControlError(f"TOR_CONTROL_URL={url!r}: unix: needs an absolute path")
            return cls(path=path)
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            port = None
        if parts.scheme != "tcp" or not parts.hostname or port is None:
            raise TorControlError(
                f"TOR_CONTROL_URL={url!r}: expected tcp://HOST:PORT or unix:/PATH"
            )
        return cls(host=parts.hostname, port=port)

    def __str__(self) -> str:
        return f"unix:{self.path}" if self.path else f"tcp://{self.host}:{self.port}"

    def control_socket(self) -> stem.socket.ControlSocket:
        """An unconnected stem control socket for this address."""
        if self.path:
            return stem.socket.ControlSocketFile(self.path, connect=False)
        return stem.socket.ControlPort(self.host, self.port, connect=False)


@dataclass(frozen=True)
class BootstrapPhase:
    """Tor's ``status/bootstrap-phase``: progress in percent, tag and summary."""

    progress: int
    tag: str
    summary: str
    warning: str | None = None

    @classmethod
    def parse(cls, line: str) -> BootstrapPhase:
        fields = {key: value.strip('"') for key, value in _PHASE_FIELDS.findall(line)}
        return cls(
            progress=int(fields.get("PROGRESS", 0)),
            tag=fields.get("TAG", ""),
            summary=fields.get("SUMMARY", ""),
            warning=fields.get("WARNING"),
        )

    def __str__(self) -> str:
        text = f"{self.progress}% ({self.summary or self.tag})"
        return f"{text}, warning: {self.warning}" if self.warning else text


class TorController:
    """A blocking, thread-safe connection to Tor's control port.

    Authentication: Tor's cookie (read from the file Tor names, on every connect) is tried
    first, then *password* when given. A call finding the connection closed (Tor restarted)
    reconnects once. Every call waits at most *timeout* seconds.
    """

    def __init__(
        self,
        url: str,
        password: str | None = None,
        timeout: float = 10.0,
        on_newnym: Callable[[str], object] | None = None,
    ) -> None:
        self.address = ControlAddress.parse(url)
        self.timeout = timeout
        self._password = password
        self._on_newnym = on_newnym or (lambda outcome: None)
        self._controller: Controller | None = None
        self._lock = threading.RLock()
        self._newnym_lock = threading.Lock()
        self._newnym_timer: threading.Timer | None = None
        self._last_newnym = -NEWNYM_INTERVAL

    # -- connection ------------------------------------------------------------------------

    def _bounded(self, what: str, call: Callable[[], T], on_timeout: Callable[[], object]) -> T:
        """Run *call* in a thread; after :attr:`timeout` s run *on_timeout* (to unblock it)."""
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                outcome["value"] = call()
            except BaseException as exc:
                outcome["error"] = exc

        thread = threading.Thread(target=run, name="tor-control-call", daemon=True)
        thread.start()
        thread.join(self.timeout)
        if thread.is_alive():
            on_timeout()
            thread.join(self.timeout)
            raise TorControlError(
                f"Tor's control port at {self.address} did not answer {what} within "
                f"{self.timeout:g} s (is it really Tor's control port?)"
            )
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]

    def _open(self) -> Controller:
        sockets: list[stem.socket.ControlSocket] = []

        def connect() -> Controller:
            control_socket = self.address.control_socket()
            sockets.append(control_socket)
            control_socket.connect()
            return Controller(control_socket)

        def close_all() -> None:
            for control_socket in sockets:
                control_socket.close()

        try:
            return self._bounded(
                "the connection", lambda: self._authenticate(connect), on_timeout=close_all
            )
        except stem.SocketError as exc:
            close_all()
            raise TorControlError(
                f"cannot connect to Tor's control port at {self.address}: {exc}"
            ) from None
        except BaseException:
            close_all()
            raise

    def _authenticate(self, connect: Callable[[], Controller]) -> Controller:
        """An authenticated controller: cookie first (read now), then the password."""
        controller = connect()
        info = stem.connection.get_protocolinfo(controller)
        cookie_problem = _cookie_problem(info)
        try:
            stem.connection.authenticate(controller, password=None, protocolinfo_response=info)
            return controller
        except stem.connection.AuthenticationFailure as exc:
            first = cookie_problem or _describe_auth_failure(exc)
        finally:
            if not controller.is_authenticated():
                controller.close()
        if self._password is None:
            raise TorControlError(f"cannot authenticate to Tor at {self.address}: {first}")
        controller = connect()  # Tor closes the connection after a failed attempt
        try:
            stem.connection.authenticate(controller, password=self._password)
        except stem.connection.AuthenticationFailure as exc:
            controller.close()
            raise TorControlError(
                f"cannot authenticate to Tor at {self.address}: {first}; "
                f"password: {_describe_auth_failure(exc)}"
            ) from None
        return controller

    def controller(self) -> Controller:
        """The authenticated stem controller, connecting (and reading the cookie) when needed.

        :raises TorControlError: unreachable, wrong credentials, or no answer in time.
        """
        with self._lock:
            if self._controller is None or not self._controller.is_alive():
                if self._controller is not None:
                    self._controller.close()
                self._controller = None
                self._controller = self._open()
            return self._controller

    def call(self, what: str, query: Callable[[Controller], T]) -> T:
        """Run *query* on the controller, bounded; reconnect once if Tor closed the socket.

        :raises TorControlError: as :meth:`controller`, or Tor answered with an error.
        """
        for attempt in (1, 2):
            controller = self.controller()
            try:
                return self._bounded(what, functools.partial(query, controller), controller.close)
            except stem.SocketClosed:
                if attempt == 2:
                    raise TorControlError(f"Tor at {self.address} closed the connection") from None
            except stem.ControllerError as exc:
                raise TorControlError(f"Tor at {self.address} refused {what}: {exc}") from None
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Cancel a scheduled NEWNYM and close the connection."""
        with self._newnym_lock:
            if self._newnym_timer is not None:
                self._newnym_timer.cancel()
                self._newnym_timer = None
        with self._lock:
            if self._controller is not None:
                self._controller.close()
                self._controller = None

    # -- queries ---------------------------------------------------------------------------

    def version(self) -> str:
        """Tor's version, e.g. ``0.4.9.11``."""
        return self.call("GETINFO version", lambda c: str(c.get_version()).split(" ")[0])

    def bootstrap_phase(self) -> BootstrapPhase:
        """Tor's current bootstrap phase."""
        line = self.call("GETINFO status/bootstrap-phase", _bootstrap_line)
        return BootstrapPhase.parse(line)

    def wait_bootstrapped(
        self, timeout: float, report: Callable[[BootstrapPhase], object] | None = None
    ) -> BootstrapPhase:
        """Wait until Tor reports 100%, calling *report* on each change of progress.

        :raises TorControlError: not bootstrapped within *timeout* seconds (the message has
            the last phase), or a control failure.
        """
        deadline = time.monotonic() + timeout
        last: BootstrapPhase | None = None
        while True:
            phase = self.bootstrap_phase()
            if report is not None and (last is None or phase.progress != last.progress):
                report(phase)
            last = phase
            if phase.progress >= 100:
                return phase
            if time.monotonic() >= deadline:
                raise TorControlError(
                    f"Tor at {self.address} did not bootstrap within {timeout:g} s: at {phase}"
                )
            time.sleep(min(BOOTSTRAP_POLL_INTERVAL, max(0.0, deadline - time.monotonic())))

    # -- new identity ----------------------------------------------------------------------

    def request_newnym(self) -> str:
        """Ask for a new identity without blocking, never faster than Tor allows.

        Returns ``"scheduled"`` (a NEWNYM is sent now or as soon as the 10 s rate limit
        allows, from a background thread) or ``"coalesced"`` (one is already scheduled and
        covers this request). The outcome of each send goes to *on_newnym*: ``"sent"`` or
        ``"failed"``.
        """
        with self._newnym_lock:
            if self._newnym_timer is not None:
                return "coalesced"
            delay = max(0.0, self._last_newnym + NEWNYM_INTERVAL - time.monotonic())
            self._newnym_timer = threading.Timer(delay, self._send_newnym)
            self._newnym_timer.daemon = True
            self._newnym_timer.start()
            return "scheduled"

    def _send_newnym(self) -> None:
        outcome = "failed"
        try:
            wait = self.call("the NEWNYM wait", lambda c: c.get_newnym_wait())
            time.sleep(min(wait, NEWNYM_INTERVAL))
            self.call("SIGNAL NEWNYM", lambda c: c.signal(Signal.NEWNYM))
            outcome = "sent"
            logger.info("Tor: new identity (NEWNYM) sent")
        except TorControlError as exc:
            logger.warning("Tor: NEWNYM failed: %s", exc)
        finally:
            with self._newnym_lock:
                self._last_newnym = time.monotonic()
                self._newnym_timer = None
        self._on_newnym(outcome)


def _bootstrap_line(controller: Controller) -> str:
    return controller.get_info("status/bootstrap-phase")


def _cookie_problem(info: stem.response.protocolinfo.ProtocolInfoResponse) -> str | None:
    """Why the cookie Tor offers cannot be used, or None when it can be read."""
    methods = set(info.auth_methods)
    if not methods & {stem.connection.AuthMethod.COOKIE, stem.connection.AuthMethod.SAFECOOKIE}:
        return None
    if not info.cookie_path:
        return "Tor offers cookie auth but names no cookie file"
    try:
        with open(info.cookie_path, "rb") as cookie:
            cookie.read(32)
    except OSError as exc:
        return (
            f"cannot read Tor's auth cookie {info.cookie_path} ({exc.strerror}); run as a user "
            "who may read it, or set TOR_CONTROL_PASSWORD"
        )
    return None


def _describe_auth_failure(exc: stem.connection.AuthenticationFailure) -> str:
    if isinstance(exc, stem.connection.MissingPassword):
        return "Tor asks for a password: set TOR_CONTROL_PASSWORD"
    if isinstance(exc, stem.connection.IncorrectPassword | stem.connection.PasswordAuthRejected):
        return "Tor rejected TOR_CONTROL_PASSWORD"
    if isinstance(exc, stem.connection.UnreadableCookieFile):
        return f"cannot read Tor's auth cookie {exc.cookie_path}"
    if isinstance(exc, stem.connection.IncorrectCookieValue | stem.connection.CookieAuthRejected):
        return f"Tor rejected the auth cookie {exc.cookie_path} (stale cookie file?)"
    return f"authentication failed: {exc}"


# -- a private tor for the crawl ---------------------------------------------------------------


class LaunchedTor:
    """A tor process launched for one crawl; :meth:`stop` ends it (by pid)."""

    def __init__(self, process: subprocess.Popen, socks_port: int, control_port: int) -> None:
        self.process = process
        self.socks_url = f"socks5h://127.0.0.1:{socks_port}"
        self.control_url = f"tcp://127.0.0.1:{control_port}"

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a grace period. Idempotent."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_GRACE)


def launch_tor(
    data_dir: str | Path,
    extra_config: Mapping[str, str | list[str]] | None = None,
    timeout: float = 30.0,
) -> LaunchedTor:
    """Start a private tor with its data in *data_dir* (mode 0700) and a SocksPort and a
    ControlPort (cookie auth) on free 127.0.0.1 ports. Returns once tor runs; it may still
    be bootstrapping. *extra_config* adds torrc options (a list for repeated ones).

    :raises TorControlError: tor could not be started within *timeout* seconds.
    """
    directory = Path(data_dir).resolve()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    socks_port, control_port = _free_ports(2)
    config: dict[str, str | list[str]] = {
        "DataDirectory": str(directory),
        "SocksPort": f"127.0.0.1:{socks_port} ExtendedErrors",
        "ControlPort": f"127.0.0.1:{control_port}",
        "CookieAuthentication": "1",
        "Log": ["notice stdout", f"notice file {directory / 'notice.log'}"],
        **(extra_config or {}),
    }
    try:
        process = stem.process.launch_tor_with_config(
            config,
            completion_percent=0,
            timeout=timeout if threading.current_thread() is threading.main_thread() else None,
            take_ownership=True,  # tor exits when this process does
        )
    except OSError as exc:
        raise TorControlError(f"could not launch tor in {directory}: {exc}") from None
    return LaunchedTor(process, socks_port, control_port)


def _free_ports(count: int) -> list[int]:
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


def _answers(address: ControlAddress, timeout: float) -> bool:
    """True when something accepts connections at *address*."""
    family, target = (
        (socket.AF_UNIX, address.path)
        if address.path
        else (socket.AF_INET, (address.host, address.port))
    )
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.settimeout(timeout)
        try:
            probe.connect(target)
        except OSError:
            return False
    return True


# -- the Scrapy extension ----------------------------------------------------------------------


class TorControl:
    """Scrapy extension: Tor preflight, NEWNYM on triggers, and ``TOR_LAUNCH``.

    At spider open it checks that Tor answers on ``TOR_CONTROL_URL``, logs and records its
    version (``tor_version``; stats ``tor/version``) and waits up to ``TOR_BOOTSTRAP_TIMEOUT``
    for bootstrap, logging progress; on failure the spider closes with reason
    ``tor_preflight_failed`` and the cause in the log. It requests a new identity after
    ``TOR_NEWNYM_AFTER_FAILURES`` consecutive ``circuit_failed`` signals and on HTTP 429
    when ``TOR_NEWNYM_ON_429``. With ``TOR_LAUNCH`` and no Tor answering, it launches one
    (data in ``TOR_LAUNCH_DIR``, extra torrc options ``TOR_LAUNCH_CONFIG``), points
    ``TOR_SOCKS_URL``/``TOR_CONTROL_URL`` at it, and stops it when the spider closes.
    """

    def __init__(self, crawler: Crawler, launched: LaunchedTor | None = None) -> None:
        settings = crawler.settings
        self.crawler = crawler
        self.launched = launched
        self.tor_version: str | None = None
        self.bootstrap_timeout = settings.getfloat("TOR_BOOTSTRAP_TIMEOUT")
        self.newnym_after_failures = settings.getint("TOR_NEWNYM_AFTER_FAILURES")
        self.newnym_on_429 = settings.getbool("TOR_NEWNYM_ON_429")
        self.consecutive_failures = 0
        self.controller = TorController(
            settings.get("TOR_CONTROL_URL"),
            password=settings.get("TOR_CONTROL_PASSWORD"),
            timeout=settings.getfloat("TOR_CONTROL_TIMEOUT"),
            on_newnym=self._newnym_done,
        )

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> TorControl:
        launched = cls._launch_if_needed(crawler.settings)
        extension = cls(crawler, launched)
        crawler.signals.connect(extension.spider_opened, signals.spider_opened)
        crawler.signals.connect(extension.spider_closed, signals.spider_closed)
        crawler.signals.connect(extension.circuit_failed, circuit_failed)
        crawler.signals.connect(extension.tor_available, tor_available)
        crawler.signals.connect(extension.response_received, signals.response_received)
        return extension

    @staticmethod
    def _launch_if_needed(settings: BaseSettings) -> LaunchedTor | None:
        if not settings.getbool("TOR_LAUNCH"):
            return None
        address = ControlAddress.parse(settings.get("TOR_CONTROL_URL"))
        if _answers(address, timeout=2.0):
            return None
        extra = settings.get("TOR_LAUNCH_CONFIG") or {}
        if isinstance(extra, str):
            extra = json.loads(extra)
        launched = launch_tor(settings.get("TOR_LAUNCH_DIR"), extra)
        logger.info(
            "Tor: nothing answered at %s; launched tor (pid %d) in %s: SOCKS %s, control %s",
            address,
            launched.process.pid,
            settings.get("TOR_LAUNCH_DIR"),
            launched.socks_url,
            launched.control_url,
        )
        # Extensions are built before the settings freeze; the download handler, built
        # later, then reads these.
        settings.set("TOR_SOCKS_URL", launched.socks_url, priority="cmdline")
        settings.set("TOR_CONTROL_URL", launched.control_url, priority="cmdline")
        return launched

    async def spider_opened(self, spider: Spider) -> None:
        stats = self.crawler.stats
        try:
            self.tor_version = await maybe_deferred_to_future(deferToThread(self._preflight))
        except TorControlError as exc:
            logger.error("Tor preflight failed: %s", exc)
            stats.set_value("tor/preflight", "failed")
            raise CloseSpider(PREFLIGHT_FAILED) from exc
        stats.set_value("tor/version", self.tor_version)
        stats.set_value("tor/preflight", "ok")

    def _preflight(self) -> str:
        version = self.controller.version()
        logger.info("Tor %s at %s", version, self.controller.address)
        phase = self.controller.wait_bootstrapped(self.bootstrap_timeout, _log_bootstrap)
        logger.info("Tor bootstrapped: %s", phase)
        return version

    async def tor_available(self) -> bool:
        """After an outage, wait up to ``TOR_BOOTSTRAP_TIMEOUT`` for Tor to bootstrap again
        (a restarted tor answers on its SOCKS port before it can build circuits, and writes a
        new auth cookie, which the controller reads on reconnecting). False when it does not:
        the crawl then stops instead of spending its retries on circuits that cannot be built.
        """
        try:
            phase = await maybe_deferred_to_future(
                deferToThread(
                    self.controller.wait_bootstrapped, self.bootstrap_timeout, _log_bootstrap
                )
            )
        except TorControlError as exc:
            logger.error("Tor did not get ready after the outage: %s", exc)
            return False
        logger.info("Tor bootstrapped: %s", phase)
        return True

    def spider_closed(self, spider: Spider) -> None:
        self.controller.close()
        if self.launched is not None:
            self.launched.stop()
            logger.info("Tor: stopped the launched tor (pid %d)", self.launched.process.pid)

    def circuit_failed(self, request: object = None, error: object = None) -> None:
        if self.newnym_after_failures <= 0:
            return
        self.consecutive_failures += 1
        if self.consecutive_failures >= self.newnym_after_failures:
            self.consecutive_failures = 0
            self.request_newnym(f"{self.newnym_after_failures} consecutive circuit failures")

    def response_received(self, response: Response, request: object, spider: Spider) -> None:
        self.consecutive_failures = 0
        if response.status == 429 and self.newnym_on_429:
            self.request_newnym(f"HTTP 429 from {response.url}")

    def request_newnym(self, reason: str) -> str:
        """Ask Tor for a new identity (non-blocking, rate limited): see
        :meth:`TorController.request_newnym`."""
        outcome = self.controller.request_newnym()
        self.crawler.stats.inc_value(f"tor/newnym/{outcome}")
        logger.info("Tor: new identity requested (%s): %s", reason, outcome)
        return outcome

    def _newnym_done(self, outcome: str) -> None:
        self.crawler.stats.inc_value(f"tor/newnym/{outcome}")


def _log_bootstrap(phase: BootstrapPhase) -> None:
    logger.info("Tor bootstrap: %s", phase)
