"""Waiting out a retry never stalls the crawl: whole crawls with the project's settings
(tests/torcrawl.py in a subprocess) through the loopback SOCKS server of localsocks.py, where
one onion host asks for a ``Retry-After`` or is unreachable (backoff) while another serves
pages. Only ``CONCURRENT_REQUESTS = 4`` download slots: if waiting requests held them, as
they did while the retry middleware slept in ``process_request``, the healthy host would wait
as long as the sick one.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from localsocks import SocksServer
from onions import MIRROR_ONION_MAP
from test_handler import NO_CONTROL, run_crawl

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

SICK = "www." + MIRROR_ONION_MAP["nytimes.com"]
HEALTHY = "www." + MIRROR_ONION_MAP["nyt.com"]
DEAD = "dead." + MIRROR_ONION_MAP["nytimes.com"]  # the SOCKS server answers 0xF0 for it
HEALTHY_PAGES = 30
#: Seconds of the sick host's Retry-After and of the first backoff after a circuit failure;
#: the healthy host's pages must all be fetched in half that time.
WAIT = 10
CRAWL_TIMEOUT = 120


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Backend

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        host = self.headers["Host"]
        with self.server.lock:
            self.server.arrivals.append((time.monotonic(), host, self.path))
            unavailable = host == SICK and self.server.unavailable > 0
            self.server.unavailable -= unavailable
        body = b"busy\n" if unavailable else f"<html><body>{self.path}</body></html>".encode()
        self.send_response(503 if unavailable else 200)
        if unavailable:
            self.send_header("Retry-After", str(WAIT))
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Backend(ThreadingHTTPServer):
    """The onion services on 127.0.0.1: any host serves a small page, except that the first
    ``unavailable`` requests to ``SICK`` get a 503 with ``Retry-After: WAIT``. Records
    ``(monotonic time, Host, path)`` of every request in ``arrivals``."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, unavailable: int = 0):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.unavailable = unavailable
        self.arrivals: list[tuple[float, str, str]] = []
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()

    def times(self, host: str) -> list[float]:
        return sorted(t for t, h, _path in self.arrivals if h == host)


class TimedTunnels(list):
    """The SOCKS server's tunnel log, also recording when each tunnel was asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def append(self, tunnel: object) -> None:
        self.times.append(time.monotonic())
        super().append(tunnel)

    def times_of(self, host: str) -> list[float]:
        return sorted(t for t, tunnel in zip(self.times, self, strict=True) if tunnel.host == host)


@pytest.fixture
def services() -> Iterator[tuple[Backend, SocksServer]]:
    backend = Backend(unavailable=4)
    proxy = SocksServer({80: backend.server_address[1]})
    proxy.tunnels = TimedTunnels()
    proxy.replies[DEAD.split(".", 1)[0]] = 0xF0  # onion descriptor not found: a dead onion
    yield backend, proxy
    proxy.stop()
    backend.shutdown()
    backend.server_close()


def crawl_settings(tmp_path, proxy: SocksServer, **extra) -> dict:
    """The project's settings (SCHEDULER, retry middleware, Tor layer, WARC writer), with
    four download slots, the loopback SOCKS server and no Tor control port."""
    return {
        "TOR_SOCKS_URL": proxy.url,
        **NO_CONTROL,
        "ONION_MAP": json.dumps(MIRROR_ONION_MAP),
        "WARC_DIR": str(tmp_path / "warc"),
        "CAPTURE_INDEX": str(tmp_path / "warc" / "index.sqlite3"),
        "AUTOTHROTTLE_ENABLED": False,
        "CONCURRENT_REQUESTS": 4,
        "CONCURRENT_REQUESTS_PER_DOMAIN": 4,
        "DOWNLOAD_TIMEOUT": 20,
        **extra,
    }


def healthy_urls() -> list[str]:
    return [f"http://{HEALTHY}/page/{n}" for n in range(HEALTHY_PAGES)]


def assert_healthy_host_done_in_time(crawl: dict, backend: Backend, start: float) -> None:
    results = crawl["results"][-HEALTHY_PAGES:]
    assert [r.get("status") for r in results] == [200] * HEALTHY_PAGES, results
    healthy = backend.times(HEALTHY)
    assert len(healthy) == HEALTHY_PAGES
    assert healthy[-1] - start < WAIT / 2, (
        f"the healthy host's last page went out {healthy[-1] - start:.1f} s after the other "
        f"host began to wait ({WAIT} s): the waiting requests held the download slots"
    )


def test_a_host_under_retry_after_waits_alone(tmp_path, services) -> None:
    """Four requests to SICK get ``503 Retry-After: 10``, then it serves. Four more SICK URLs
    (never tried) come before the healthy ones, so the whole host waits, and only it."""
    backend, proxy = services
    sick = [f"http://{SICK}/item/{n}" for n in range(8)]
    settings = crawl_settings(tmp_path, proxy, RETRY_TIMES=2, RETRY_AFTER_MAX=60)
    crawl = run_crawl(
        tmp_path, sick + healthy_urls(), settings, project=True, timeout=CRAWL_TIMEOUT
    )
    assert crawl["reason"] == "finished", crawl["log"][-3000:]
    asked = backend.times(SICK)
    assert len(asked) == 4 + len(sick), asked
    refused_at = asked[3]  # the last 503 was sent then
    assert_healthy_host_done_in_time(crawl, backend, asked[0])
    # the whole host waited: the retries and the four URLs never tried before
    assert min(asked[4:]) >= refused_at + WAIT - 0.5, [t - refused_at for t in asked]
    assert [r.get("status") for r in crawl["results"][: len(sick)]] == [200] * len(sick)
    stats = crawl["stats"]
    assert stats["retry/retry_after_honoured"] == 4
    assert stats["retry/waits"] >= 1 and stats["scheduler/delayed"] >= 4


def test_a_dead_onion_backs_off_alone(tmp_path, services) -> None:
    """Six URLs of an onion whose descriptor cannot be found (SOCKS 0xF0), each retried once
    after a 10 s backoff. ``RETRY_PRIORITY_ADJUST = 0`` lets the retries go before the queued
    healthy pages, as they do in a real crawl whenever the queue holds nothing better."""
    backend, proxy = services
    dead = [f"http://{DEAD}/item/{n}" for n in range(6)]
    settings = crawl_settings(
        tmp_path,
        proxy,
        RETRY_TIMES=1,
        RETRY_CIRCUIT_BACKOFF_BASE=WAIT,
        RETRY_PRIORITY_ADJUST=0,
    )
    crawl = run_crawl(
        tmp_path, dead + healthy_urls(), settings, project=True, timeout=CRAWL_TIMEOUT
    )
    assert crawl["reason"] == "finished", crawl["log"][-3000:]
    tried = proxy.tunnels.times_of(DEAD)
    assert len(tried) == 2 * len(dead), tried  # bounded: the first try and one retry each
    assert_healthy_host_done_in_time(crawl, backend, tried[0])
    first, retries = tried[: len(dead)], tried[len(dead) :]
    assert min(retries) >= min(first) + WAIT - 0.5, [t - tried[0] for t in tried]
    for result in crawl["results"][: len(dead)]:
        assert result["error"] == "OnionDescriptorNotFound", result  # a distinct error
    assert crawl["stats"]["retry/max_reached"] == len(dead)
