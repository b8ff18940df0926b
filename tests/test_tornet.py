"""The private Tor network harness: onion services reachable through the client's SOCKS port
(PySocks, names resolved by Tor), and the SOCKS replies Tor gives for each kind of failure."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest
import socks
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from onions import MIRROR_ONION_MAP
from tornet import http_get, open_stream, socks_reply_code

from crawler.tor.onion import onion_address_from_public_key

pytestmark = [pytest.mark.tor, pytest.mark.slow, pytest.mark.timeout(180)]

WWW = "www." + MIRROR_ONION_MAP["nytimes.com"]
STATIC = "static01." + MIRROR_ONION_MAP["nyt.com"]
GREETING = b"served behind an onion added at run time"


class _GreetingHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = GREETING + b" for " + self.headers["Host"].encode("ascii")
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    request_queue_size = 128  # 20 streams arriving at once overflow socketserver's 5
    daemon_threads = True


@pytest.fixture
def greeting_server() -> Iterator[_Server]:
    server = _Server(("127.0.0.1", 0), _GreetingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def _status_line(response: bytes) -> bytes:
    return response.split(b"\r\n", 1)[0]


def test_mirror_onions_answer_through_socks(onion_mirror, tor_network):
    www = http_get(tor_network.socks_port, WWW, 80, "/", timeout=30)
    assert _status_line(www).startswith(b"HTTP/1.") and b" 200 " in _status_line(www)
    static = http_get(tor_network.socks_port, STATIC, 80, "/", timeout=30)
    assert _status_line(static).startswith(b"HTTP/1.")


def test_onion_added_at_run_time_serves_a_local_http_server(tor_network, greeting_server):
    with tor_network.ephemeral_onion({80: greeting_server.server_address[1]}) as onion:
        response = http_get(tor_network.socks_port, onion, 80, "/", timeout=30)
    assert b" 200 " in _status_line(response)
    assert response.endswith(GREETING + b" for " + onion.encode("ascii"))


def _unhosted_onion() -> str:
    public = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    return onion_address_from_public_key(public)


def _bad_checksum(onion: str) -> str:
    label = onion.removesuffix(".onion")
    flipped = "a" if label[0] != "a" else "b"
    return f"{flipped}{label[1:]}.onion"


@pytest.mark.parametrize(
    ("host", "port", "reply"),
    [
        pytest.param(_unhosted_onion(), 80, 0xF0, id="unknown-onion-descriptor-not-found"),
        pytest.param(_bad_checksum(MIRROR_ONION_MAP["nytimes.com"]), 80, 0xF6, id="bad-address"),
        pytest.param(WWW, 8080, 0x05, id="port-not-served"),
    ],
)
def test_socks_reply_codes(tor_network, host, port, reply):
    with pytest.raises(socks.ProxyError) as failure:
        open_stream(tor_network.socks_port, host, port, timeout=30).close()
    assert socks_reply_code(failure.value) == reply, failure.value
