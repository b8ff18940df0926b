"""The Tor download handler: first against loopback servers of this test (a small real SOCKS5
server, see localsocks.py), then through the private Tor network to the mirror."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from localsocks import Backend, SocksServer, self_signed_certificate
from onions import MIRROR_ONION_MAP

from crawler.tor import socks

TESTS_DIR = Path(__file__).parent
REPO_ROOT = TESTS_DIR.parent
ONION_A = MIRROR_ONION_MAP["nytimes.com"]
ONION_B = MIRROR_ONION_MAP["nyt.com"]
CRAWL_TIMEOUT = 120


def run_crawl(
    tmp_path: Path,
    requests: list[dict | str],
    settings: dict | None = None,
    *,
    project: bool = False,
    audit: bool = False,
    timeout: float = CRAWL_TIMEOUT,
) -> dict:
    """Crawl *requests* in a subprocess (tests/torcrawl.py) and return its JSON output."""
    requests = [{"url": r} if isinstance(r, str) else r for r in requests]
    output = tmp_path / f"crawl-{time.monotonic_ns()}.json"
    config = tmp_path / f"{output.stem}-config.json"
    base = {"LOG_LEVEL": "INFO", "TELNETCONSOLE_ENABLED": False, "ROBOTSTXT_OBEY": False}
    config.write_text(
        json.dumps(
            {
                "settings": {**base, **(settings or {})},
                "requests": requests,
                "output": str(output),
                "project": project,
                "audit": audit,
            }
        )
    )
    started = time.monotonic()
    process = subprocess.run(
        [sys.executable, str(TESTS_DIR / "torcrawl.py"), str(config)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert process.returncode == 0, process.stderr[-4000:]
    result = json.loads(output.read_text())
    result["log"] = process.stderr
    result["elapsed"] = time.monotonic() - started
    return result


def body(result: dict) -> bytes:
    return base64.b64decode(result["body"])


def raw(exchange: dict, name: str) -> bytes:
    return base64.b64decode(exchange[name]) if exchange[name] is not None else b""


def exchange_of(crawl: dict, probe: int) -> dict:
    matches = [e for e in crawl["exchanges"] if e["probe"] == probe]
    assert len(matches) == 1, matches
    return matches[0]


# --- SOCKS5 protocol -------------------------------------------------------------------------


def test_every_reply_code_has_its_own_error_class():
    codes = [*range(0x01, 0x09), *range(0xF0, 0xF8)]
    classes = [type(socks.reply_error(code)) for code in codes]
    assert len(set(classes)) == len(codes)
    for code, cls in zip(codes, classes, strict=True):
        assert cls.code == code
        assert f"0x{code:02X}" in str(cls())
    assert isinstance(socks.reply_error(0x42), socks.UnknownReply)


@pytest.mark.parametrize(
    "code",
    [0x03, 0x04, 0x06, 0xF0, 0xF1, 0xF2, 0xF3, 0xF7],
)
def test_circuit_failures_are_circuit_errors(code):
    assert isinstance(socks.reply_error(code), socks.CircuitError)


@pytest.mark.parametrize("code", [0x01, 0x02, 0x05, 0x07, 0x08, 0xF4, 0xF5, 0xF6])
def test_other_replies_are_not_circuit_errors(code):
    error = socks.reply_error(code)
    assert isinstance(error, socks.SocksError)
    assert not isinstance(error, socks.CircuitError)


def test_connect_request_sends_the_name_not_an_address():
    message = socks.connect_request(f"www.{ONION_A}", 443)
    assert message[:4] == b"\x05\x01\x00\x03"
    assert message[5:-2] == f"www.{ONION_A}".encode()
    assert message[-2:] == b"\x01\xbb"


# --- against loopback servers ----------------------------------------------------------------


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    certificate = self_signed_certificate(tmp_path_factory.mktemp("tls"), ONION_A)
    http, https = Backend(), Backend(certificate)
    proxy = SocksServer({80: http.port, 443: https.port})
    yield proxy, http, https
    for server in (proxy, http, https):
        server.stop()


@pytest.fixture
def proxy(servers):
    proxy = servers[0]
    proxy.tunnels.clear()
    proxy.replies.clear()
    return proxy


def local_settings(proxy: SocksServer, **extra) -> dict:
    return {"TOR_SOCKS_URL": proxy.url, "RETRY_ENABLED": False, **extra}


@pytest.mark.slow
def test_http_and_https_exchanges_are_recorded_byte_for_byte(tmp_path, proxy):
    crawl = run_crawl(
        tmp_path,
        [f"http://www.{ONION_A}/page", f"https://www.{ONION_A}/page", f"http://{ONION_B}/chunked"],
        local_settings(proxy),
    )
    plain, tls, chunked = crawl["results"]
    for result in (plain, tls):
        assert result["status"] == 200, result
        assert body(result).startswith(b"page /page via ")
        assert result["headers"]["Set-Cookie"] == ["a=1", "b=2"]
        assert result["protocol"] == "HTTP/1.1"
    assert tls["certificate"] and not plain["certificate"]
    assert body(chunked) == b"abcdefghx"
    assert {t.atyp for t in proxy.tunnels} == {0x03}
    for probe, tunnel in enumerate(sorted(proxy.tunnels, key=lambda t: (t.host, t.port))):
        del probe
        assert tunnel.host.endswith(".onion")
    for probe in range(3):
        exchange = exchange_of(crawl, probe)
        assert exchange["error"] is None and exchange["truncated"] is None
        assert exchange["response_length"] == len(raw(exchange, "response"))
    http_exchange = exchange_of(crawl, 0)
    tunnel = next(t for t in proxy.tunnels if t.port == 80 and t.host == f"www.{ONION_A}")
    assert raw(http_exchange, "response") == bytes(tunnel.received)
    assert b"\r\nX-MiXeD-Case: kept\r\n" in raw(http_exchange, "response")
    assert b"HTTP/1.1 200 Fine Thanks\r\n" in raw(http_exchange, "response")
    request = raw(http_exchange, "request")
    assert request.startswith(f"GET /page HTTP/1.1\r\nHost: www.{ONION_A}\r\n".encode())
    assert exchange_of(crawl, 2)["chunked"] and not http_exchange["chunked"]
    assert b"\r\n3\r\nabc\r\n" in raw(exchange_of(crawl, 2), "response")
    assert http_exchange["isolation"] == f"host:{ONION_A}"
    assert tunnel.username == f"host:{ONION_A}".encode()
