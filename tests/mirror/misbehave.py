"""Misbehaviour on demand, under ``/_test/`` on the site host (never linked from the site).

=====================================  ==========================================================
path                                   reply
=====================================  ==========================================================
``/_test/ok``                          200, a short text body (``ok\\n``)
``/_test/redirect/<code>?to=URL``      301/302/303/307/308 to ``URL`` (default ``/``)
``/_test/https?to=PATH``               on HTTP: 301 to ``https://<host>PATH``; on HTTPS: 200
``/_test/redirect-loop/a``             302 to ``/_test/redirect-loop/b``, which redirects back
``/_test/redirect-clearnet``           302 to ``https://www.nytimes.com/section/world``
``/_test/redirect-local``              302 to ``http://127.0.0.1/`` (a leak attempt)
``/_test/status/<code>``               that status; 429 and 503 carry ``Retry-After``
                                       (``?retry_after=`` seconds, default 1)
``/_test/slow?delay=S``                nothing for ``S`` seconds (max 60), then 200
``/_test/trickle?size=N&pace=S``       ``N`` body bytes (default 64) one byte at a time, ``S``
                                       seconds apart (default 0.01; total time capped at 60 s)
``/_test/chunked?size=N``              chunked transfer of ``N`` bytes (default 5000, max 1 MiB):
                                       odd chunk sizes, upper-case hex, a chunk extension, a
                                       trailer; ``&encoding=gzip|br`` codes the body first
``/_test/encoding/<gzip|br>``          that Content-Encoding whatever Accept-Encoding says
``/_test/cookies``                     two ``Set-Cookie`` headers (and one ``set-cookie``)
``/_test/odd-headers``                 header names in odd case (``x-ODD-case``), a repeated
                                       header, an empty value, ``Date`` after the body headers,
                                       ``X-Mirror-Exchange`` first
``/_test/reason?reason=TEXT``          ``HTTP/1.1 200 Fine Thanks`` (or ``TEXT``)
``/_test/truncated?length=N&sent=M``   ``Content-Length: N`` (default 1000), ``M`` bytes (default
                                       100), then the connection closes
``/_test/big?size=N``                  ``N`` bytes (default 1 MiB), streamed from a generator
``/_test/close``                       200 with ``Connection: close``, then closes
``/_test/echo``                        200, the request (head and body) as received, any method
=====================================  ==========================================================

Bodies of ``trickle``, ``chunked``, ``truncated`` and ``big`` are :func:`payload` bytes, so a
test can rebuild what it should have received.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator

import brotli

from .hostile import ROUTES as HOSTILE_ROUTES
from .wire import Reply, Request, http_date, simple

PATTERN = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-mirror-payload\n"
BLOCK = PATTERN * (65536 // len(PATTERN))
CHUNK_SIZES = (1, 7, 13, 0x1F, 250, 4096)
MAX_DELAY = 60.0
REDIRECT_CODES = (301, 302, 303, 307, 308)
CLEARNET_TARGET = "https://www.nytimes.com/section/world"
LOCAL_TARGET = "http://127.0.0.1/"


def payload(size: int) -> bytes:
    """The first *size* bytes of the repeating test pattern (what big/trickle/... send)."""
    return b"".join(payload_blocks(size))


def payload_blocks(size: int) -> Iterator[bytes]:
    """:func:`payload` in blocks of at most 64 KiB, never held whole in memory."""
    remaining = size
    while remaining > 0:
        block = BLOCK[: min(remaining, len(BLOCK))]
        remaining -= len(block)
        yield block


def chunk_framed(body: bytes) -> Iterator[bytes]:
    """*body* in chunks of cycling odd sizes, the second with an extension, then a trailer."""
    position, n = 0, 0
    while position < len(body):
        piece = body[position : position + CHUNK_SIZES[n % len(CHUNK_SIZES)]]
        extension = ";mirror-ext=1" if n == 1 else ""
        yield f"{len(piece):X}{extension}\r\n".encode() + piece + b"\r\n"
        position += len(piece)
        n += 1
    yield b"0\r\nX-Mirror-Trailer: done\r\n\r\n"


def _number(request: Request, name: str, default: float, high: float) -> float:
    try:
        value = float(request.query.get(name, default))
    except ValueError:
        return default
    return min(max(value, 0.0), high)


def ok(request: Request) -> Reply:
    return simple(200, b"ok\n")


def https(request: Request) -> Reply:
    target = request.query.get("to", "/")
    if request.scheme == "http":
        location = f"https://{request.header('Host')}{target}"
        return simple(301, b"", headers=[("Location", location)])
    return simple(200, b"secure\n")


def redirect_loop(request: Request) -> Reply:
    other = "b" if request.path.endswith("/a") else "a"
    return simple(302, b"", headers=[("Location", f"/_test/redirect-loop/{other}")])


def redirect_clearnet(request: Request) -> Reply:
    return simple(302, b"", headers=[("Location", CLEARNET_TARGET)])


def redirect_local(request: Request) -> Reply:
    return simple(302, b"", headers=[("Location", LOCAL_TARGET)])


def slow(request: Request) -> Reply:
    return simple(200, b"slow\n", first_byte_delay=_number(request, "delay", 1.0, MAX_DELAY))


def trickle(request: Request) -> Reply:
    size = int(_number(request, "size", 64, 100_000))
    pace = _number(request, "pace", 0.01, MAX_DELAY)
    if size * pace > MAX_DELAY:
        pace = MAX_DELAY / max(size, 1)
    body = payload(size)
    pieces = (body[i : i + 1] for i in range(size))
    return simple(200, pieces, pace=pace).with_length(size)


def chunked(request: Request) -> Reply:
    body = payload(int(_number(request, "size", 5000, 1 << 20)))
    headers = [("Date", http_date()), ("Server", "mirror/1"), ("Content-Type", "text/plain")]
    coding = request.query.get("encoding")
    if coding in ("gzip", "br"):
        body = gzip.compress(body, mtime=0) if coding == "gzip" else brotli.compress(body)
        headers.append(("Content-Encoding", coding))
    headers += [("Transfer-Encoding", "chunked"), ("Trailer", "X-Mirror-Trailer")]
    return Reply(200, headers, chunk_framed(body))


def encoding(request: Request) -> Reply:
    coding = request.path.rsplit("/", 1)[-1]
    body = b"content-coded body\n" * 50
    if coding == "gzip":
        coded = gzip.compress(body, mtime=0)
    elif coding == "br":
        coded = brotli.compress(body)
    else:
        return simple(404, b"unknown coding\n")
    return simple(200, coded, headers=[("Content-Encoding", coding), ("Vary", "Accept-Encoding")])


def cookies(request: Request) -> Reply:
    return simple(
        200,
        b"cookies\n",
        headers=[
            ("Set-Cookie", "nyt-a=first; Path=/; HttpOnly"),
            ("Set-Cookie", "nyt-b=second; Path=/; Max-Age=3600"),
            ("set-cookie", "nyt-a=third; Path=/_test"),
        ],
    )


def odd_headers(request: Request) -> Reply:
    body = b"odd headers\n"
    return Reply(
        200,
        [
            ("content-TYPE", "text/plain"),
            ("x-ODD-case", "yes"),
            ("X-Repeated", "one"),
            ("CONTENT-LENGTH", str(len(body))),
            ("X-Empty", ""),
            ("X-Repeated", "two"),
            ("server", "mirror/1"),
            ("Date", http_date()),
        ],
        body,
        exchange_header_last=False,
    )


def reason(request: Request) -> Reply:
    return simple(200, b"fine\n", reason=request.query.get("reason", "Fine Thanks"))


def truncated(request: Request) -> Reply:
    length = int(_number(request, "length", 1000, 1e12))
    sent = int(min(_number(request, "sent", 100, 1e9), max(length - 1, 0)))
    reply = simple(200, payload(sent), close=True)
    return reply.with_length(length)


def big(request: Request) -> Reply:
    size = int(_number(request, "size", 1 << 20, 1 << 40))
    reply = simple(200, payload_blocks(size), "application/octet-stream")
    return reply.with_length(size)


def close(request: Request) -> Reply:
    return simple(200, b"closing\n", headers=[("Connection", "close")], close=True)


def echo(request: Request) -> Reply:
    return simple(200, request.raw, "message/http")


def status(request: Request) -> Reply:
    try:
        code = int(request.path.rsplit("/", 1)[-1])
    except ValueError:
        code = 0
    if not 200 <= code <= 599:
        return simple(404, b"no such status\n")
    headers = []
    if code in (429, 503):
        headers.append(("Retry-After", str(int(_number(request, "retry_after", 1, 86400)))))
    return simple(code, f"status {code}\n".encode(), headers=headers)


def redirect(request: Request) -> Reply:
    try:
        code = int(request.path.rsplit("/", 1)[-1])
    except ValueError:
        code = 0
    if code not in REDIRECT_CODES:
        return simple(404, b"no such redirect\n")
    return simple(code, b"", headers=[("Location", request.query.get("to", "/"))])


ROUTES: dict[str, Callable[[Request], Reply]] = {
    "/_test/ok": ok,
    "/_test/https": https,
    "/_test/redirect-loop/a": redirect_loop,
    "/_test/redirect-loop/b": redirect_loop,
    "/_test/redirect-clearnet": redirect_clearnet,
    "/_test/redirect-local": redirect_local,
    "/_test/slow": slow,
    "/_test/trickle": trickle,
    "/_test/chunked": chunked,
    "/_test/encoding/gzip": encoding,
    "/_test/encoding/br": encoding,
    "/_test/cookies": cookies,
    "/_test/odd-headers": odd_headers,
    "/_test/reason": reason,
    "/_test/truncated": truncated,
    "/_test/big": big,
    "/_test/close": close,
    "/_test/echo": echo,
    **HOSTILE_ROUTES,  # deep nesting, gzip bomb, endless stream, bad charsets (hostile.py)
}
PREFIX_ROUTES = {"/_test/status/": status, "/_test/redirect/": redirect}


def respond(request: Request) -> Reply:
    """The reply for a ``/_test/`` request; 404 for an unknown one."""
    handler = ROUTES.get(request.path)
    if handler is None:
        handler = next(
            (h for prefix, h in PREFIX_ROUTES.items() if request.path.startswith(prefix)), None
        )
    if handler is None:
        return simple(404, b"no such test endpoint\n")
    return handler(request)
