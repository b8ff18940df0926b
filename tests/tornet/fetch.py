"""Blocking one-shot HTTP fetches through a Tor SOCKS port (PySocks, names resolved by Tor)."""

from __future__ import annotations

import socks

MAX_RESPONSE_BYTES = 1 << 20


def socks_reply_code(error: socks.ProxyError) -> int | None:
    """The SOCKS5 reply code of a PySocks error (``0xf0: ...`` -> 0xF0), None when it has none.

    PySocks raises the reply as a :class:`socks.SOCKS5Error`, usually wrapped in a
    :class:`socks.GeneralProxyError` (as its ``socket_err``).
    """
    if isinstance(error, socks.GeneralProxyError) and error.socket_err is not None:
        error = error.socket_err
    if not isinstance(error, socks.SOCKS5Error):
        return None
    return int(error.msg.split(":", 1)[0], 16)


def open_stream(
    socks_port: int,
    host: str,
    port: int,
    timeout: float,
    username: str | None = None,
) -> socks.socksocket:
    """A TCP stream to *host*:*port* through Tor's SOCKS port, resolved by Tor (rdns).

    *username* (with a fixed password) isolates the stream on its own circuit.

    :raises socks.ProxyError: Tor refused the stream; :func:`socks_reply_code` says why.
    :raises OSError: the SOCKS port itself is unreachable or timed out.
    """
    sock = socks.socksocket()
    sock.settimeout(timeout)
    sock.set_proxy(
        socks.SOCKS5,
        "127.0.0.1",
        socks_port,
        rdns=True,
        username=username,
        password="x" if username else None,
    )
    try:
        sock.connect((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def http_get(
    socks_port: int,
    host: str,
    port: int = 80,
    path: str = "/",
    timeout: float = 30.0,
    username: str | None = None,
) -> bytes:
    """GET ``http://host:port/path`` through Tor (HTTP/1.0) and return the raw response bytes.

    Reads until the server closes the connection, at most :data:`MAX_RESPONSE_BYTES`.

    :raises socks.ProxyError: Tor refused the stream (see :func:`socks_reply_code`).
    :raises OSError: connection failure or timeout (*timeout* applies to each socket call).
    """
    with open_stream(socks_port, host, port, timeout, username) as sock:
        request = f"GET {path} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        sock.sendall(request.encode("ascii"))
        chunks: list[bytes] = []
        received = 0
        while received < MAX_RESPONSE_BYTES:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            received += len(chunk)
    return b"".join(chunks)
