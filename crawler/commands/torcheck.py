"""``scrapy torcheck``: is Tor ready for a crawl?

    scrapy torcheck [--url URL] [--timeout SECONDS]

Connects to ``TOR_CONTROL_URL`` (cookie or ``TOR_CONTROL_PASSWORD``), reports Tor's version and
bootstrap state, fetches one page through ``TOR_SOCKS_URL`` (SOCKS5, the host name resolved by
Tor), and prints a one-line verdict. The page is ``https://www.<onion>/`` for the first domain
of ``ONION_MAP`` unless ``--url`` names another (an onion URL, or a clearnet URL covered by
``ONION_MAP``, fetched in its onion form). TLS certificates are not checked: the onion address
already authenticates the service. Exits 0 when Tor is bootstrapped and the page answered with a
status below 400, 1 otherwise, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import http.client
import ssl
import time
from urllib.parse import urlsplit

import socks
from scrapy.commands import ScrapyCommand
from scrapy.exceptions import NotConfigured, UsageError

from crawler.tor.control import TorControlError, TorController
from crawler.tor.handler import parse_socks_url
from crawler.tor.onion import OnionMap, is_onion_host
from crawler.tor.socks import reply_error

MAX_BODY_BYTES = 10 * 1024 * 1024


class CheckFailed(Exception):
    """One step of the check failed; the message is the verdict's reason."""


class _TorHTTPConnection(http.client.HTTPConnection):
    """An HTTP(S) connection whose socket goes through Tor's SOCKS port (rdns=True)."""

    def __init__(
        self, host: str, port: int, socks_address: tuple[str, int], tls: bool, timeout: float
    ):
        super().__init__(host, port, timeout=timeout)
        self._socks_address = socks_address
        self._tls = tls

    def connect(self) -> None:
        sock = socks.socksocket()
        sock.settimeout(self.timeout)
        sock.set_proxy(socks.SOCKS5, *self._socks_address, rdns=True)
        try:
            sock.connect((self.host, self.port))
        except BaseException:
            sock.close()
            raise
        if self._tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            sock = context.wrap_socket(sock, server_hostname=self.host)
        self.sock = sock


class Command(ScrapyCommand):
    requires_project = True
    requires_crawler_process = False
    default_settings = {"LOG_LEVEL": "WARNING"}

    def syntax(self) -> str:
        return "[--url URL] [--timeout SECONDS]"

    def short_desc(self) -> str:
        return "Check Tor: control port, bootstrap, and one page of the onion mirror"

    def long_desc(self) -> str:
        return __doc__ or ""

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super().add_options(parser)
        parser.add_argument(
            "--url", help="page to fetch (default: https://www.<onion>/ of ONION_MAP)"
        )
        parser.add_argument(
            "--timeout", type=float, default=60.0, metavar="SECONDS", help="for the page fetch"
        )

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        if args:
            raise UsageError("torcheck takes no arguments")
        assert self.settings is not None
        try:
            url = self._target_url(opts.url)
            socks_address = parse_socks_url(self.settings.get("TOR_SOCKS_URL"))
        except (ValueError, NotConfigured) as exc:
            raise UsageError(str(exc)) from None
        try:
            self._check_control()
            status, size, elapsed = self._fetch(url, socks_address, opts.timeout)
        except CheckFailed as exc:
            print(f"FAIL: {exc}")
            self.exitcode = 1
            return
        if status >= 400:
            print(f"FAIL: {url} answered HTTP {status} through Tor")
            self.exitcode = 1
            return
        print(f"fetched {url}: HTTP {status}, {size} bytes in {elapsed:.2f} s")
        print("OK: Tor is bootstrapped and the onion answered")

    def _target_url(self, given: str | None) -> str:
        onion_map = OnionMap.from_setting(self.settings.get("ONION_MAP"))
        if given is None:
            mapping = onion_map.as_dict()
            if not mapping:
                raise ValueError("ONION_MAP is empty: give --url")
            return f"https://www.{next(iter(mapping.values()))}/"
        parts = urlsplit(given)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"--url {given!r}: an http:// or https:// URL is needed")
        if is_onion_host(parts.hostname):
            return given
        onion = onion_map.to_onion_url(given)
        if onion is None:
            raise ValueError(f"--url {given!r}: not an onion URL and not covered by ONION_MAP")
        return onion

    def _check_control(self) -> None:
        controller = TorController(
            self.settings.get("TOR_CONTROL_URL"),
            password=self.settings.get("TOR_CONTROL_PASSWORD"),
            timeout=self.settings.getfloat("TOR_CONTROL_TIMEOUT"),
        )
        try:
            version = controller.version()
            phase = controller.bootstrap_phase()
        except TorControlError as exc:
            raise CheckFailed(str(exc)) from None
        finally:
            controller.close()
        print(f"Tor {version} at {controller.address}, bootstrap {phase}")
        if phase.progress < 100:
            raise CheckFailed(f"Tor has not finished bootstrapping: {phase}")

    def _fetch(
        self, url: str, socks_address: tuple[str, int], timeout: float
    ) -> tuple[int, int, float]:
        """GET *url* through Tor: ``(status, body bytes read, seconds)``."""
        parts = urlsplit(url)
        tls = parts.scheme == "https"
        port = parts.port or (443 if tls else 80)
        path = parts.path or "/"
        if parts.query:
            path += f"?{parts.query}"
        socks_url = f"socks5h://{socks_address[0]}:{socks_address[1]}"
        connection = _TorHTTPConnection(parts.hostname, port, socks_address, tls, timeout)
        started = time.monotonic()
        try:
            connection.request("GET", path, headers={"User-Agent": self.settings.get("USER_AGENT")})
            response = connection.getresponse()
            size = len(response.read(MAX_BODY_BYTES))
        except socks.ProxyError as exc:
            raise CheckFailed(f"{url} through {socks_url}: {_describe_proxy_error(exc)}") from None
        except (OSError, http.client.HTTPException) as exc:
            raise CheckFailed(f"{url} through {socks_url}: {exc or type(exc).__name__}") from None
        finally:
            connection.close()
        return response.status, size, time.monotonic() - started


def _describe_proxy_error(exc: socks.ProxyError) -> str:
    cause = exc.socket_err if isinstance(exc, socks.GeneralProxyError) else None
    if isinstance(cause, socks.SOCKS5Error):
        return str(reply_error(int(cause.msg.split(":", 1)[0], 16)))
    if isinstance(exc, socks.ProxyConnectionError):
        return f"Tor's SOCKS port does not answer ({exc.socket_err})"
    return str(exc)
