"""The mirror's HTTP/1.1 server: raw bytes on plain and TLS sockets, one thread per connection.

The server writes status lines and headers itself, exactly as a :class:`~mirror.wire.Reply`
gives them (name case, order, repeats), adds ``X-Mirror-Exchange: <id>`` to every response
and, with *sent_log_dir*, keeps what it received and wrote for each exchange as
``<id>.request`` / ``<id>.response`` there (the response file holds the bytes handed to the
kernel; a write that failed is not in it). Keep-alive is the HTTP/1.1 default;
``Connection: close`` (or HTTP/1.0 without keep-alive) closes after the response. An idle
connection is closed after *idle_timeout* seconds.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import selectors
import socket
import ssl
import threading
import traceback
from pathlib import Path
from typing import BinaryIO

from .app import MirrorApp
from .site import MirrorSite
from .tls import self_signed, server_context
from .wire import BadRequest, Reply, Request, simple

BACKLOG = 128
MAX_HEAD = 65536
MAX_BODY = 1 << 20
NO_BODY_STATUSES = (204, 304)


class MirrorServer:
    """Serves *site* on *host* over HTTP (*http_port*) and HTTPS (*https_port*).

    Port 0 picks a free port (read it from :attr:`http_port` / :attr:`https_port` after
    :meth:`start`); None leaves that listener off.
    """

    def __init__(
        self,
        site: MirrorSite,
        host: str = "127.0.0.1",
        http_port: int | None = 0,
        https_port: int | None = 0,
        sent_log_dir: str | os.PathLike | None = None,
        idle_timeout: float = 15.0,
    ):
        self.site = site
        self.host = host
        self.http_port = http_port
        self.https_port = https_port
        self.idle_timeout = idle_timeout
        self.sent_log_dir = Path(sent_log_dir) if sent_log_dir is not None else None
        self.app = MirrorApp(site)
        hosts = [site.www_host, site.site_onion, f"*.{site.site_onion}", site.static_host]
        hosts += [site.static_onion, f"*.{site.static_onion}", "localhost", host]
        self.certificate_pem, self._key_pem = self_signed(hosts)
        self._tls: ssl.SSLContext | None = None
        self._listeners: dict[socket.socket, str] = {}
        self._connections: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self._logged = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._ids = itertools.count(1)
        self._acceptor: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> MirrorServer:
        """Bind, listen (backlog 128) and serve in daemon threads; returns at once.

        :raises OSError: when a port cannot be bound.
        """
        if self._acceptor is not None:
            raise RuntimeError("MirrorServer already started")
        if self.sent_log_dir is not None:
            self.sent_log_dir.mkdir(parents=True, exist_ok=True)
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        try:
            for scheme, port in (("http", self.http_port), ("https", self.https_port)):
                if port is not None:
                    listener = socket.create_server(
                        (self.host, port), family=family, backlog=BACKLOG
                    )
                    self._listeners[listener] = scheme
                    setattr(self, f"{scheme}_port", listener.getsockname()[1])
        except OSError:
            for listener in self._listeners:
                listener.close()
            raise
        if self.https_port is not None:
            self._tls = server_context(self.certificate_pem, self._key_pem)
        self._acceptor = threading.Thread(
            target=self._accept_loop, name="mirror-accept", daemon=True
        )
        self._acceptor.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Close the listeners and every connection, and join all threads (up to *timeout* s)."""
        self._stopping.set()
        if self._acceptor is not None:
            self._acceptor.join(timeout)
        for listener in self._listeners:
            listener.close()
        with self._lock:
            connections, threads = list(self._connections), list(self._threads)
        for connection in connections:
            _shutdown(connection)
        for thread in threads:
            thread.join(timeout)

    def __enter__(self) -> MirrorServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def use_site(self, site: MirrorSite) -> MirrorSite:
        """Serve *site* from the next request on (a later edition behind the same onions).

        Returns the site served until now, to restore later.

        :raises ValueError: when *site* has another onion map (its links would not resolve).
        """
        if site.onions.as_dict() != self.site.onions.as_dict():
            raise ValueError("use_site needs a site with the same onion_map")
        with self._lock:
            previous = self.site
            self.site, self.app = site, MirrorApp(site)
        return previous

    def origin(self, scheme: str = "http") -> str:
        """``scheme://127.0.0.1:port`` of a listener, to connect to (send the onion Host)."""
        port = self.http_port if scheme == "http" else self.https_port
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{port}"

    # --- the exchange log ---------------------------------------------------------------------

    def sent_bytes(self, exchange_id: str, timeout: float = 5.0) -> bytes:
        """Exactly the bytes written for response *exchange_id* (waits for it to finish).

        :raises RuntimeError: when the server has no *sent_log_dir*.
        :raises KeyError: when no finished exchange has that id within *timeout* seconds.
        """
        return self._logged_bytes(exchange_id, "response", timeout)

    def received_bytes(self, exchange_id: str, timeout: float = 5.0) -> bytes:
        """The request head and body received for *exchange_id* (same errors as sent_bytes)."""
        return self._logged_bytes(exchange_id, "request", timeout)

    def _logged_bytes(self, exchange_id: str, kind: str, timeout: float) -> bytes:
        if self.sent_log_dir is None:
            raise RuntimeError("MirrorServer was started without sent_log_dir")
        if not exchange_id.isdigit():
            raise KeyError(exchange_id)
        path = self.sent_log_dir / f"{exchange_id}.{kind}"
        with self._logged:
            if not self._logged.wait_for(path.exists, timeout):
                raise KeyError(f"no finished exchange {exchange_id} in {self.sent_log_dir}")
        return path.read_bytes()

    # --- serving ------------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        with selectors.DefaultSelector() as selector:
            for listener in self._listeners:
                selector.register(listener, selectors.EVENT_READ)
            while not self._stopping.is_set():
                for key, _ in selector.select(timeout=0.1):
                    try:
                        connection, _ = key.fileobj.accept()
                    except OSError:
                        continue
                    scheme = self._listeners[key.fileobj]
                    thread = threading.Thread(
                        target=self._serve, args=(connection, scheme), daemon=True
                    )
                    with self._lock:
                        self._threads.add(thread)
                    thread.start()

    def _serve(self, connection: socket.socket, scheme: str) -> None:
        try:
            connection.settimeout(self.idle_timeout)
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if scheme == "https":
                connection = self._tls.wrap_socket(connection, server_side=True)
            with self._lock:
                self._connections.add(connection)
            reader = _Reader(connection)
            while not self._stopping.is_set() and self._exchange(connection, reader, scheme):
                pass
        except (OSError, ssl.SSLError):
            pass  # the client went away, or the TLS handshake failed: nothing to answer
        finally:
            with self._lock:
                self._connections.discard(connection)
                self._threads.discard(threading.current_thread())
            connection.close()

    def _exchange(self, connection: socket.socket, reader: _Reader, scheme: str) -> bool:
        """Read one request and answer it; False when the connection should close."""
        request, received = None, b""
        try:
            head = reader.read_head()
            if head is None:
                return False
            received = head
            request = _parse(head, scheme)
            length = request.header("Content-Length")
            received = request.raw = head + (reader.read_exact(int(length)) if length else b"")
            with self._lock:
                app = self.app
            reply = app.respond(request)
        except BadRequest as error:
            request, reply = None, simple(error.status, f"{error}\n".encode(), close=True)
        except Exception:  # a bug in the mirror: say so loudly, answer 500, keep serving
            traceback.print_exc()
            request, reply = None, simple(500, b"mirror error, see its stderr\n", close=True)
        exchange_id = f"{next(self._ids):08d}"
        self._log(exchange_id, "request", received + reader.buffer if request is None else received)
        return self._send(connection, exchange_id, request, reply)

    def _send(
        self, connection: socket.socket, exchange_id: str, request: Request | None, reply: Reply
    ) -> bool:
        close = reply.close or request is None or request.wants_close
        headers = list(reply.headers)
        marker = ("X-Mirror-Exchange", exchange_id)
        headers = [*headers, marker] if reply.exchange_header_last else [marker, *headers]
        if close and not any(name.lower() == "connection" for name, _ in headers):
            headers.append(("Connection", "close"))
        elif not close and request is not None and request.version == "HTTP/1.0":
            headers.append(("Connection", "keep-alive"))
        head = reply.status_line() + b"".join(
            f"{name}: {value}\r\n".encode("latin-1") for name, value in headers
        )
        with_body = reply.status not in NO_BODY_STATUSES and (
            request is None or request.method != "HEAD"
        )
        body = reply.body if with_body else b""
        log = self._open_log(exchange_id)
        try:
            if reply.first_byte_delay and self._stopping.wait(reply.first_byte_delay):
                return False
            self._write(connection, log, head + b"\r\n")
            for piece in [body] if isinstance(body, bytes) else body:
                if piece:
                    self._write(connection, log, piece)
                if reply.pace and self._stopping.wait(reply.pace):
                    return False
        finally:
            self._close_log(exchange_id, log)
        return not close

    @staticmethod
    def _write(connection: socket.socket, log: BinaryIO | None, data: bytes) -> None:
        connection.sendall(data)
        if log is not None:
            log.write(data)

    def _open_log(self, exchange_id: str) -> BinaryIO | None:
        if self.sent_log_dir is None:
            return None
        return open(self.sent_log_dir / f"{exchange_id}.response.part", "wb")

    def _close_log(self, exchange_id: str, log: BinaryIO | None) -> None:
        if log is None:
            return
        log.close()
        final = self.sent_log_dir / f"{exchange_id}.response"
        with self._logged:
            os.replace(log.name, final)
            self._logged.notify_all()

    def _log(self, exchange_id: str, kind: str, data: bytes) -> None:
        if self.sent_log_dir is not None:
            path = self.sent_log_dir / f"{exchange_id}.{kind}"
            partial = path.with_name(path.name + ".part")
            partial.write_bytes(data)
            os.replace(partial, path)


class _Reader:
    """Buffered reads of request heads and bodies from one connection."""

    def __init__(self, connection: socket.socket):
        self.connection = connection
        self.buffer = b""

    def read_head(self) -> bytes | None:
        """The next request head (through the blank line); None on EOF or idle timeout.

        :raises BadRequest: a head over 64 KiB, or EOF in the middle of one.
        """
        while b"\r\n\r\n" not in self.buffer:
            self.buffer = self.buffer.lstrip(b"\r\n")  # RFC 9112: ignore CRLF before a request
            if len(self.buffer) > MAX_HEAD:
                raise BadRequest(431, "request head over 64 KiB")
            try:
                data = self.connection.recv(65536)
            except TimeoutError:
                return None
            if not data:
                if self.buffer:
                    raise BadRequest(400, "connection closed in the middle of a request head")
                return None
            self.buffer += data
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        if len(head) > MAX_HEAD:
            raise BadRequest(431, "request head over 64 KiB")
        return head.lstrip(b"\r\n") + b"\r\n\r\n"

    def read_exact(self, size: int) -> bytes:
        """*size* body bytes. :raises BadRequest: over 1 MiB, or EOF before the end."""
        if size > MAX_BODY:
            raise BadRequest(413, "request body over 1 MiB")
        while len(self.buffer) < size:
            data = self.connection.recv(65536)
            if not data:
                raise BadRequest(400, "connection closed in the middle of a request body")
            self.buffer += data
        body, self.buffer = self.buffer[:size], self.buffer[size:]
        return body


def _parse(head: bytes, scheme: str) -> Request:
    """Parse a request head. :raises BadRequest: on anything that is not HTTP/1.x."""
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
        raise BadRequest(400, "undecodable request head") from None
    lines = text[:-4].split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or parts[2] not in ("HTTP/1.0", "HTTP/1.1") or not parts[1]:
        raise BadRequest(400, f"bad request line {lines[0][:100]!r}")
    method, target, version = parts
    headers = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip() or line[:1] in " \t":
            raise BadRequest(400, f"bad header line {line[:100]!r}")
        headers.append((name, value.strip(" \t")))
    request = Request(method, target, version, headers, scheme)
    if request.header("Transfer-Encoding") is not None:
        raise BadRequest(501, "request bodies with Transfer-Encoding are not supported")
    length = request.header("Content-Length")
    if length is not None and not length.isdigit():
        raise BadRequest(400, f"bad Content-Length {length!r}")
    if version == "HTTP/1.1" and request.host is None:
        raise BadRequest(400, "HTTP/1.1 request without Host")
    return request


def _shutdown(connection: socket.socket) -> None:
    """Wake a thread blocked on *connection* (plain or TLS) by shutting the socket down."""
    with contextlib.suppress(OSError, ValueError):
        duplicate = socket.socket(fileno=os.dup(connection.fileno()))
        with duplicate:
            duplicate.shutdown(socket.SHUT_RDWR)
