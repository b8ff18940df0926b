"""The Tor download handler: first against loopback servers of this test (a small real SOCKS5
server, see localsocks.py), then through the private Tor network to the mirror."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import h11
import pytest
from localsocks import Backend, SocksServer, self_signed_certificate
from onions import MIRROR_ONION_MAP
from scrapy import Request
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Protocol
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

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
    when_logged: tuple[str, Callable[[], object]] | None = None,
) -> dict:
    """Crawl *requests* in a subprocess (tests/torcrawl.py) and return its JSON output.

    *when_logged* = (text, action): call action once the crawl's log shows text.
    """
    requests = [{"url": r} if isinstance(r, str) else r for r in requests]
    output = tmp_path / f"crawl-{time.monotonic_ns()}.json"
    config = tmp_path / f"{output.stem}-config.json"
    log = tmp_path / f"{output.stem}.log"
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
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, str(TESTS_DIR / "torcrawl.py"), str(config)],
            cwd=REPO_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            while process.poll() is None:
                if time.monotonic() - started > timeout:
                    pytest.fail(f"the crawl took over {timeout} s:\n{log.read_text()[-4000:]}")
                if when_logged is not None and when_logged[0] in log.read_text():
                    when_logged[1]()
                    when_logged = None
                time.sleep(0.05)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert process.returncode == 0, log.read_text()[-4000:]
    result = json.loads(output.read_text())
    result["log"] = log.read_text()
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


class _Application(Protocol):
    def __init__(self) -> None:
        self.received = b""

    def dataReceived(self, data: bytes) -> None:
        self.received += data


AUTH_OK = [b"\x05\x02", b"\x01\x00"]


def open_socks(replies: list[bytes]) -> tuple[socks.Socks5ClientProtocol, list]:
    """Run the client protocol over an in-memory transport, feeding *replies* one by one."""
    application = _Application()
    client = socks.Socks5ClientProtocol(f"www.{ONION_A}", 443, (b"user", b"pw"), application)
    outcome: list = []
    client.tunnel_ready.addBoth(outcome.append)
    client.makeConnection(StringTransport())
    for reply in replies:
        client.dataReceived(reply)
    return client, outcome


def test_socks_handshake_then_the_stream_goes_to_the_application():
    reply = b"\x05\x00\x00\x04" + bytes(16) + b"\x01\xbb"  # bound to an IPv6 address
    client, outcome = open_socks([b"\x05\x02", b"\x01\x00", reply[:7], reply[7:] + b"HTTP/1.1"])
    assert outcome == [client]
    written = client.transport.value()
    assert written.startswith(b"\x05\x01\x02" + b"\x01\x04user\x02pw")
    assert written.endswith(socks.connect_request(f"www.{ONION_A}", 443))
    assert client.application.received == b"HTTP/1.1"
    client.dataReceived(b" 200")
    assert client.application.received == b"HTTP/1.1 200"


@pytest.mark.parametrize(
    ("replies", "error", "message"),
    [
        ([b"\x05\xff"], socks.SocksProtocolError, "refused username/password"),
        ([b"\x04\x02"], socks.SocksProtocolError, "version 4"),
        ([b"\x05\x02", b"\x01\x01"], socks.SocksProtocolError, "rejected the credentials"),
        ([b"\x05\x02", b"\x01\x00", b"\x05\x00\x00\x09\x00"], socks.SocksProtocolError, "0x09"),
        (
            [b"\x05\x02", b"\x01\x00", b"\x05\xf0\x00\x01" + bytes(6)],
            socks.OnionDescriptorNotFound,
            "0xF0",
        ),
        ([b"\x05\x02", b"\x01\x00", b"\x05\x66\x00\x01" + bytes(6)], socks.UnknownReply, "0x66"),
    ],
)
def test_socks_handshake_failures(replies, error, message):
    client, (failure,) = open_socks(replies)
    assert failure.check(error) and message in str(failure.value)
    assert client.transport.disconnecting


def test_a_socks_port_that_closes_before_answering_is_tor_unavailable():
    client, outcome = open_socks([])
    client.connectionLost(Failure(ConnectionDone()))
    assert outcome[0].check(socks.TorUnavailable)
    client, outcome = open_socks([b"\x05\x02"])
    client.connectionLost(Failure(ConnectionDone()))
    assert outcome[0].check(socks.SocksProtocolError), "Tor answered: not unavailable"


def test_request_bytes():
    from crawler.tor.handler import _request_events

    request = Request(
        f"https://www.{ONION_A}:8443/a%20b?q=1#frag",
        method="POST",
        body=b"x=1",
        headers={"Proxy-Authorization": "Basic c2VjcmV0", "X-Two": ["1", "2"]},
    )
    connection = h11.Connection(h11.CLIENT)
    host = f"www.{ONION_A}"
    wire = b"".join(connection.send(e) for e in _request_events(request, host, 8443, "https"))
    assert wire == (
        f"POST /a%20b?q=1 HTTP/1.1\r\nHost: {host}:8443\r\n".encode()
        + b"X-Two: 1\r\nX-Two: 2\r\nContent-Length: 3\r\n\r\nx=1"
    )
    bad = Request(f"http://{host}/", headers={"X-Bad": "a\x00b"})
    with pytest.raises(ValueError, match="cannot send"):
        _request_events(bad, host, 80, "http")


# --- against loopback servers ----------------------------------------------------------------


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    certificate = self_signed_certificate(tmp_path_factory.mktemp("tls"), ONION_A)
    http, https = Backend(), Backend(certificate)
    proxy = SocksServer({80: http.port, 443: https.port, 8443: http.port})
    yield proxy, http, https
    for server in (proxy, http, https):
        server.stop()


@pytest.fixture
def proxy(servers):
    proxy = servers[0]
    proxy.tunnels.clear()
    proxy.replies.clear()
    return proxy


#: The loopback tests have no Tor control port for the Tor control extension.
NO_CONTROL = {"EXTENSIONS": {"crawler.tor.control.TorControl": None}}


def local_settings(proxy: SocksServer, **extra) -> dict:
    return {"TOR_SOCKS_URL": proxy.url, "RETRY_ENABLED": False, **NO_CONTROL, **extra}


@pytest.mark.slow
def test_http_and_https_exchanges_are_recorded_byte_for_byte(tmp_path, servers, proxy):
    servers[2].server_names.clear()
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
    assert servers[2].server_names == [f"www.{ONION_A}"], "SNI is the onion host"
    assert body(chunked) == b"abcdefghx"
    assert {t.atyp for t in proxy.tunnels} == {0x03}
    assert all(tunnel.host.endswith(".onion") for tunnel in proxy.tunnels)
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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def connects(crawl: dict) -> list[str]:
    return [target for event, target in crawl["audit"] if event == "socket.connect"]


@pytest.mark.slow
def test_each_socks_reply_raises_its_error_and_circuit_failures_are_signalled(tmp_path, proxy):
    codes = sorted(socks.REPLY_ERRORS)
    proxy.replies.update({f"r{code:02x}": code for code in codes})
    urls = [f"http://r{code:02x}.{ONION_A}/page" for code in codes]
    crawl = run_crawl(tmp_path, urls, local_settings(proxy))
    for code, result in zip(codes, crawl["results"], strict=True):
        expected = socks.REPLY_ERRORS[code]
        assert result["error"] == expected.__name__, result
        assert f"0x{code:02X}" in result["message"]
        assert crawl["stats"][f"tor/errors/{expected.kind}"] == 1
        exchange = exchange_of(crawl, codes.index(code))
        assert exchange["request"] == "" and exchange["response"] is None
        assert expected.__name__ in exchange["error"]
    circuit = sorted(c for c in codes if issubclass(socks.REPLY_ERRORS[c], socks.CircuitError))
    signalled = sorted(urls.index(url) for url, _ in crawl["circuit_failed"])
    assert [codes[i] for i in signalled] == circuit


@pytest.mark.slow
def test_keep_alive_reuses_one_tunnel_until_the_server_closes(tmp_path, proxy):
    urls = [f"https://www.{ONION_A}/page?{i}" for i in range(4)]
    crawl = run_crawl(tmp_path, urls, local_settings(proxy, CONCURRENT_REQUESTS=1))
    assert [r["status"] for r in crawl["results"]] == [200] * 4
    assert len({body(r).split(b" via ")[1] for r in crawl["results"]}) == 1
    assert len(proxy.tunnels) == 1
    fresh = [e for e in crawl["exchanges"] if "connected" in e["timings"]]
    assert len(fresh) == 1 and fresh[0]["timings"]["tls"] <= 0
    proxy.tunnels.clear()
    urls = [f"http://www.{ONION_A}/truncated", f"http://www.{ONION_A}/page"]
    crawl = run_crawl(tmp_path, urls, local_settings(proxy, CONCURRENT_REQUESTS=1))
    assert crawl["results"][1]["status"] == 200
    assert len(proxy.tunnels) == 2, "a connection with a broken response is never reused"


@pytest.mark.slow
def test_timeout_records_the_partial_response(tmp_path, proxy):
    request = {"url": f"http://www.{ONION_A}/hang?s=8", "meta": {"download_timeout": 1}}
    crawl = run_crawl(tmp_path, [request], local_settings(proxy))
    (result,) = crawl["results"]
    assert result["error"] == "DownloadTimeoutError", result
    exchange = exchange_of(crawl, 0)
    assert exchange["truncated"] == "time"
    assert raw(exchange, "response").endswith(b"\r\n\r\npartial")
    assert "took longer than 1" in exchange["error"]
    assert exchange["timings"]["done"] < 5, "stopped at the timeout, not when the server closed"


@pytest.mark.slow
def test_maxsize_aborts_and_warnsize_warns(tmp_path, proxy):
    requests = [
        {"url": f"http://www.{ONION_A}/big?n=5000000", "meta": {"download_maxsize": 1000}},
        {"url": f"http://www.{ONION_A}/chunked?n=50000", "meta": {"download_maxsize": 1000}},
        {"url": f"http://www.{ONION_A}/big?n=5000", "meta": {"download_warnsize": 1000}},
    ]
    crawl = run_crawl(tmp_path, requests, local_settings(proxy))
    declared, chunked, warned = crawl["results"]
    for result, probe in ((declared, 0), (chunked, 1)):
        assert result["error"] == "DownloadCancelledError", result
        assert "larger than download max size (1000)" in result["message"]
        assert exchange_of(crawl, probe)["truncated"] == "length"
    assert exchange_of(crawl, 0)["response_length"] < 5_000_000
    assert warned["status"] == 200 and len(body(warned)) == 5000
    assert "larger than download warn size (1000)" in crawl["log"]


@pytest.mark.slow
def test_connection_lost_mid_body_is_dataloss(tmp_path, proxy):
    url = f"http://www.{ONION_A}/truncated"
    requests = [url, {"url": url, "meta": {"download_fail_on_dataloss": False}}]
    crawl = run_crawl(tmp_path, requests, local_settings(proxy))
    failed, kept = crawl["results"]
    assert failed["error"] == "ResponseDataLossError", failed
    assert kept["status"] == 200 and kept["flags"] == ["dataloss"]
    assert body(kept) == b"only ten b"
    for probe in (0, 1):
        assert exchange_of(crawl, probe)["truncated"] == "disconnect"


@pytest.mark.slow
def test_handler_refuses_hosts_that_are_not_onions(tmp_path, servers, proxy):
    http = servers[1]
    urls = [f"http://127.0.0.1:{http.port}/page", "http://example.com/page"]
    scope_off = {"DOWNLOADER_MIDDLEWARES": {"crawler.tor.middleware.OnionScopeMiddleware": None}}
    crawl = run_crawl(tmp_path, urls, local_settings(proxy, **scope_off), audit=True)
    for result in crawl["results"]:
        assert result["error"] == "NonOnionHostRefused", result
    assert proxy.tunnels == []
    assert connects(crawl) == []
    assert not [e for e in crawl["audit"] if e[0] != "socket.connect"]


@pytest.mark.slow
def test_isolation_labels_are_the_socks_usernames(tmp_path, proxy):
    requests = [
        f"http://www.{ONION_A}/page",
        f"http://static01.{ONION_B}/page",
        {"url": f"http://www.{ONION_A}/page?g", "meta": {"tor_isolation": "logins"}},
    ]
    crawl = run_crawl(tmp_path, requests, local_settings(proxy))
    labels = [exchange_of(crawl, probe)["isolation"] for probe in range(3)]
    assert labels == [f"host:{ONION_A}", f"host:{ONION_B}", f"host:{ONION_A}/group:logins"]
    assert sorted(t.username.decode() for t in proxy.tunnels) == sorted(labels)
    crawl = run_crawl(
        tmp_path,
        [f"http://www.{ONION_A}/page"],
        local_settings(proxy, TOR_ISOLATION="job", TOR_ISOLATION_JOB="nightly"),
    )
    assert exchange_of(crawl, 0)["isolation"] == f"job:nightly/host:{ONION_A}"


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_without_tor_the_crawl_stops_with_tor_unavailable(tmp_path):
    port = free_port()
    settings = {
        "TOR_SOCKS_URL": f"socks5h://127.0.0.1:{port}",
        "TOR_UNAVAILABLE_TIMEOUT": 2,
        **NO_CONTROL,
    }
    crawl = run_crawl(tmp_path, [f"https://www.{ONION_A}/page"], settings, audit=True)
    assert crawl["reason"] == "tor_unavailable"
    assert crawl["results"] == [{}], "the request is neither answered nor dropped as failed"
    assert crawl["stats"]["tor/unavailable/requeued"] >= 1
    assert "unreachable for 2" in crawl["log"] and "closing the spider" in crawl["log"]
    assert set(connects(crawl)) == {repr(("127.0.0.1", port))}
    assert crawl["elapsed"] < 60


def crawl_while_tor_comes_back(tmp_path, servers, extensions: dict) -> dict:
    """Three pages crawled with no SOCKS server at first; one starts on its port once the
    crawl says it paused."""
    port = free_port()
    late: list[SocksServer] = []
    settings = {
        "TOR_SOCKS_URL": f"socks5h://127.0.0.1:{port}",
        "TOR_UNAVAILABLE_TIMEOUT": 20,
        "EXTENSIONS": {**NO_CONTROL["EXTENSIONS"], **extensions},
    }
    urls = [f"http://www.{ONION_A}/page?{i}" for i in range(3)]
    routes = {80: servers[1].port}
    try:
        return run_crawl(
            tmp_path,
            urls,
            settings,
            when_logged=("crawl paused", lambda: late.append(SocksServer(routes, port))),
        )
    finally:
        for server in late:
            server.stop()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_the_crawl_pauses_until_tor_is_back(tmp_path, servers):
    crawl = crawl_while_tor_comes_back(tmp_path, servers, {})
    assert crawl["reason"] == "finished"
    assert [r.get("status") for r in crawl["results"]] == [200] * 3
    assert crawl["stats"]["tor/unavailable/requeued"] >= 1
    assert "crawl paused" in crawl["log"] and "crawl resumed" in crawl["log"]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_tor_back_on_its_socks_port_but_not_ready_stops_the_crawl(tmp_path, servers):
    crawl = crawl_while_tor_comes_back(tmp_path, servers, {"tor_not_ready.TorNeverReady": 0})
    assert crawl["reason"] == "tor_unavailable"
    assert "answers again" in crawl["log"] and "not ready" in crawl["log"]
    assert "crawl resumed" not in crawl["log"]
    assert all(r.get("status") is None for r in crawl["results"]), crawl["results"]


# --- through the private Tor network to the mirror --------------------------------------------


def tor_settings(tor_network, **extra) -> dict:
    return {
        "TOR_SOCKS_URL": tor_network.socks_url,
        "TOR_CONTROL_URL": tor_network.control_url,
        "RETRY_ENABLED": False,
        **extra,
    }


def mirror_exchange_id(result: dict) -> str:
    return result["headers"]["X-Mirror-Exchange"][0]


def unknown_onion() -> str:
    """A valid v3 address (a real ed25519 key) that no service publishes."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from crawler.tor.onion import onion_address_from_public_key

    public = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    return onion_address_from_public_key(public)


@pytest.mark.tor
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_mirror_exchanges_through_tor_are_the_bytes_the_mirror_sent(
    tmp_path, onion_mirror, tor_network
):
    site = onion_mirror.site
    urls = [
        f"http://{site.www_host}/_test/odd-headers",
        site.onion_url(site.article_path(3)),
        f"https://{site.www_host}/_test/chunked?encoding=gzip",
        f"http://{site.www_host}/_test/cookies",
    ]
    crawl = run_crawl(tmp_path, urls, tor_settings(tor_network))
    for probe, result in enumerate(crawl["results"]):
        assert result.get("status") == 200, result
        exchange = exchange_of(crawl, probe)
        exchange_id = mirror_exchange_id(result)
        assert raw(exchange, "response") == onion_mirror.sent_bytes(exchange_id)
        assert raw(exchange, "request") == onion_mirror.received_bytes(exchange_id)
        assert exchange["error"] is None and exchange["truncated"] is None
    assert crawl["results"][1]["certificate"]
    assert exchange_of(crawl, 2)["chunked"]
    assert site.headline(3).encode() in body(crawl["results"][1])


@pytest.mark.tor
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_keep_alive_through_tor(tmp_path, onion_mirror, tor_network):
    urls = [f"https://{onion_mirror.site.www_host}/_test/ok?{i}" for i in range(5)]
    crawl = run_crawl(tmp_path, urls, tor_settings(tor_network, CONCURRENT_REQUESTS=1))
    assert [r.get("status") for r in crawl["results"]] == [200] * 5
    fresh = [e for e in crawl["exchanges"] if "connected" in e["timings"]]
    assert len(fresh) == 1, "one Tor stream (and TLS session) for the five requests"


@pytest.mark.tor
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_tor_failures_are_mapped(tmp_path, onion_mirror, tor_network):
    www = onion_mirror.site.www_host
    bad_checksum = www[:-8] + ("a" if www[-7] != "a" else "b") + ".onion"
    requests = [
        f"http://{unknown_onion()}/",
        f"http://{www}:8080/",
        f"http://{bad_checksum}/",
        {"url": f"http://{www}/_test/slow?delay=10", "meta": {"download_timeout": 2}},
        {"url": f"http://{www}/_test/big?size=4000000", "meta": {"download_maxsize": 100000}},
    ]
    settings = tor_settings(
        tor_network, DOWNLOADER_MIDDLEWARES={"crawler.tor.middleware.OnionScopeMiddleware": None}
    )
    crawl = run_crawl(tmp_path, requests, settings)
    errors = [r.get("error") for r in crawl["results"]]
    assert errors == [
        "OnionDescriptorNotFound",
        "ConnectionRefusedByService",
        "NonOnionHostRefused",
        "DownloadTimeoutError",
        "DownloadCancelledError",
    ], crawl["results"]
    assert crawl["circuit_failed"] == [[requests[0], "OnionDescriptorNotFound"]]
    assert exchange_of(crawl, 4)["truncated"] == "length"
    assert crawl["stats"]["tor/errors/onion_descriptor_not_found"] == 1


@pytest.mark.tor
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_isolation_puts_hosts_on_different_circuits(tmp_path, onion_mirror, tor_network):
    from stem.control import Controller

    site = onion_mirror.site
    requests = [
        f"http://{site.www_host}/_test/ok",
        f"http://{site.static_host}{site.image_path(0)}",
        {"url": f"http://{site.www_host}/_test/ok?g", "meta": {"tor_isolation": "g"}},
    ]
    crawl = run_crawl(tmp_path, requests, tor_settings(tor_network))
    assert all("error" not in r for r in crawl["results"]), crawl["results"]
    labels = {exchange_of(crawl, probe)["isolation"] for probe in range(3)}
    assert len(labels) == 3
    with Controller.from_port(address="127.0.0.1", port=tor_network.control_port) as control:
        control.authenticate()
        circuits = {}
        for circuit in control.get_circuits():
            if circuit.socks_username in labels:
                circuits.setdefault(circuit.socks_username, set()).add(circuit.id)
    assert set(circuits) == labels
    everything = [cid for ids in circuits.values() for cid in ids]
    assert len(everything) == len(set(everything)), "no circuit carries two identities"


@pytest.mark.tor
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sixteen_slow_requests_run_concurrently(tmp_path, onion_mirror, tor_network):
    """Sixteen requests at once to an onion whose server waits 1 s before answering complete in
    about 1 s, not 16 s. A warm-up request first builds the circuit to the onion; the sixteen
    are then timed from when they reach Scrapy's downloader to when the last one leaves it, so
    their SOCKS connections and TLS handshakes count, while the crawl process's start-up does
    not: a loaded CI machine slows the process, not this span by whole seconds."""
    www = onion_mirror.site.www_host
    requests = [{"url": f"https://{www}/_test/slow?delay=0&warm-up"}]
    requests += [{"url": f"https://{www}/_test/slow?delay=1&n={i}"} for i in range(16)]
    requests[1]["after_previous"] = True  # the sixteen go once the warm-up is done
    settings = tor_settings(tor_network, CONCURRENT_REQUESTS=16, CONCURRENT_REQUESTS_PER_DOMAIN=16)
    crawl = run_crawl(tmp_path, requests, settings)
    assert [r.get("status") for r in crawl["results"]] == [200] * 17, crawl["results"]
    for exchange in crawl["exchanges"]:
        if exchange["probe"] != 0:
            assert exchange["timings"]["done"] >= 1.0, "the mirror waited 1 s"
    times: dict[tuple[int, str], float] = {}
    for probe, event, seconds in crawl["downloader"]:
        assert (probe, event) not in times, "each request goes through the downloader once"
        times[probe, event] = seconds
    reached = [times[probe, "reached"] for probe in range(1, 17)]
    left = [times[probe, "left"] for probe in range(1, 17)]
    assert min(reached) >= times[0, "left"], "after the warm-up"
    assert all(out - into >= 1.0 for into, out in zip(reached, left, strict=True))
    wall = max(left) - min(reached)
    assert wall < 3, f"16 requests of 1 s took {wall:.1f} s: not concurrent"


@pytest.mark.slow
def test_a_kept_alive_connection_closed_by_the_server_is_replaced(tmp_path, proxy):
    urls = [f"http://www.{ONION_A}/page?drop-next", f"http://www.{ONION_A}/page?after"]
    crawl = run_crawl(tmp_path, urls, local_settings(proxy, CONCURRENT_REQUESTS=1))
    assert [r.get("status") for r in crawl["results"]] == [200, 200], crawl["results"]
    assert len(proxy.tunnels) == 2
    after = exchange_of(crawl, 1)
    assert after["error"] is None and "connected" in after["timings"]
    assert raw(after, "request").startswith(b"GET /page?after HTTP/1.1\r\n")


@pytest.mark.slow
def test_a_failed_tls_handshake_is_a_download_error(tmp_path, proxy):
    crawl = run_crawl(tmp_path, [f"https://www.{ONION_A}:8443/page"], local_settings(proxy))
    (result,) = crawl["results"]
    assert result["error"] == "DownloadFailedError", result
    assert f"TLS handshake with www.{ONION_A}:8443 failed" in result["message"]
    assert exchange_of(crawl, 0)["request"] == ""
