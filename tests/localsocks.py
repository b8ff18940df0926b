"""Loopback test servers for the handler tests that need no tor process.

:class:`SocksServer` is a real (small) SOCKS5 server, written here because the real tor
cannot produce every reply code on demand: it answers CONNECT for hosts listed in
``replies`` with that reply code, and relays every other stream to a local backend by port
(``routes``), recording the credentials, address types and the bytes sent back.
:class:`Backend` is an HTTP/1.1 server (optionally TLS) with a few misbehaving endpoints.
Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import datetime
import socket
import socketserver
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

IO_TIMEOUT = 30


@dataclass
class Tunnel:
    username: bytes | None
    atyp: int
    host: str
    port: int
    received: bytearray = field(default_factory=bytearray)


class _SocksHandler(socketserver.BaseRequestHandler):
    server: SocksServer

    def handle(self) -> None:
        sock = self.request
        sock.settimeout(IO_TIMEOUT)
        reader = sock.makefile("rb")
        _version, count = reader.read(2)
        methods = reader.read(count)
        username = None
        if 0x02 in methods:
            sock.sendall(b"\x05\x02")
            _sub, length = reader.read(2)
            username = reader.read(length)
            reader.read(reader.read(1)[0])
            sock.sendall(b"\x01\x00")
        else:
            sock.sendall(b"\x05\x00")
        _version, _cmd, _rsv, atyp = reader.read(4)
        if atyp != 0x03:
            sock.sendall(b"\x05\x08\x00\x01" + bytes(6))
            return
        host = reader.read(reader.read(1)[0]).decode()
        port = int.from_bytes(reader.read(2), "big")
        tunnel = Tunnel(username, atyp, host, port)
        self.server.tunnels.append(tunnel)
        code = self.server.replies.get(host.split(".", 1)[0])
        if code is not None:
            sock.sendall(bytes((5, code, 0, 1)) + bytes(6))
            return
        upstream = socket.create_connection(("127.0.0.1", self.server.routes[port]), IO_TIMEOUT)
        sock.sendall(b"\x05\x00\x00\x01\x7f\x00\x00\x01" + port.to_bytes(2, "big"))
        threading.Thread(target=self._pump, args=(sock, upstream, None), daemon=True).start()
        self._pump(upstream, sock, tunnel.received)

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket, record: bytearray | None) -> None:
        try:
            while data := source.recv(65536):
                if record is not None:
                    record += data
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class SocksServer(socketserver.ThreadingTCPServer):
    """SOCKS5 on 127.0.0.1: ``replies`` {first host label: reply code}, ``routes`` {port: port}."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, routes: dict[int, int], port: int = 0):
        super().__init__(("127.0.0.1", port), _SocksHandler)
        self.routes = routes
        self.replies: dict[str, int] = {}
        self.tunnels: list[Tunnel] = []
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def url(self) -> str:
        return f"socks5h://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _BackendHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Backend

    def log_message(self, *args: object) -> None:
        pass

    drop_next = False

    def do_GET(self) -> None:
        if self.drop_next:  # a kept-alive connection the server closes on the next request
            self.close_connection = True
            return
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        n = int(query.get("n", 0))
        self.server.paths.append(url.path)
        if url.path == "/page":
            body = f"page {self.path} via {self.client_address[1]}".encode()
            self.send_response(200, "Fine Thanks")
            self.send_header("content-type", "text/html; charset=utf-8")
            self.send_header("X-MiXeD-Case", "kept")
            self.send_header("Set-Cookie", "a=1")
            self.send_header("Set-Cookie", "b=2")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.drop_next = "drop-next" in query
        elif url.path == "/chunked":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"abc", b"defgh", b"x" * max(n, 1)):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        elif url.path == "/big":
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(n))
            self.end_headers()
            self.wfile.write(b"z" * n)
        elif url.path == "/slow":
            time.sleep(float(query.get("s", 1)))
            self._plain(b"slow")
        elif url.path == "/truncated":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"only ten b")
            self.wfile.flush()
            self.close_connection = True
        elif url.path == "/hang":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"partial")
            self.wfile.flush()
            time.sleep(float(query.get("s", 10)))
            self.close_connection = True
        elif url.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", query["to"])
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.send_error(404)

    def _plain(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Backend(ThreadingHTTPServer):
    """HTTP/1.1 test server on 127.0.0.1 (TLS when *certificate* is given)."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, certificate: tuple[Path, Path] | None = None):
        super().__init__(("127.0.0.1", 0), _BackendHandler)
        self.paths: list[str] = []
        self.server_names: list[str | None] = []
        if certificate is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*certificate)
            context.sni_callback = lambda _sock, name, _context: self.server_names.append(name)
            self.socket = context.wrap_socket(self.socket, server_side=True)
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def port(self) -> int:
        return self.server_address[1]

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


def self_signed_certificate(directory: Path, host: str) -> tuple[Path, Path]:
    """A self-signed certificate for *host* and its key, as PEM files in *directory*."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(f"*.{host}")]), False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path
