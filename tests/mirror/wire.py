"""One HTTP/1.1 request as parsed by the mirror, and the reply it writes byte for byte."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from urllib.parse import parse_qs, urlsplit

SERVER_NAME = "mirror/1"

REASONS = {
    200: "OK",
    206: "Partial Content",
    301: "Moved Permanently",
    302: "Found",
    303: "See Other",
    304: "Not Modified",
    307: "Temporary Redirect",
    308: "Permanent Redirect",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    410: "Gone",
    413: "Content Too Large",
    421: "Misdirected Request",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class BadRequest(Exception):
    """The bytes received are not an HTTP/1.x request the mirror can answer (400/501)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class Request:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    scheme: str
    """"http" or "https": which listener it came in on."""
    raw: bytes = b""
    """The request head (and body) exactly as received."""

    def header(self, name: str) -> str | None:
        """The first value of header *name* (any case), None when absent."""
        name = name.lower()
        return next((value for key, value in self.headers if key.lower() == name), None)

    @property
    def path(self) -> str:
        return urlsplit(self.target).path or "/"

    @property
    def query(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(urlsplit(self.target).query).items()}

    @property
    def host(self) -> str | None:
        """The Host header without port, lower case."""
        host = self.header("Host")
        if host is None:
            return None
        host = host.strip().lower()
        if host.startswith("["):
            return host[: host.find("]") + 1]
        return host.rsplit(":", 1)[0] if ":" in host else host

    @property
    def wants_close(self) -> bool:
        tokens = {t.strip().lower() for t in (self.header("Connection") or "").split(",")}
        if self.version == "HTTP/1.0":
            return "keep-alive" not in tokens
        return "close" in tokens


@dataclass
class Reply:
    """A response as the server will write it: header names, order and case kept as given."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes | Iterable[bytes] = b""
    reason: str | None = None
    """Reason phrase; None: the standard one."""
    first_byte_delay: float = 0.0
    """Seconds to wait before writing anything."""
    pace: float = 0.0
    """Seconds to wait after each body piece (slow trickle)."""
    close: bool = False
    """Close the connection after this reply, whatever the client asked."""
    exchange_header_last: bool = True
    """Where X-Mirror-Exchange goes: after the given headers (default) or first."""

    def with_length(self, length: int) -> Reply:
        """Set ``Content-Length: length`` (streamed bodies, deliberately short bodies)."""
        kept = [(k, v) for k, v in self.headers if k.lower() != "content-length"]
        self.headers = [*kept, ("Content-Length", str(length))]
        return self

    def status_line(self) -> bytes:
        reason = REASONS.get(self.status, "Unknown") if self.reason is None else self.reason
        return f"HTTP/1.1 {self.status} {reason}\r\n".encode("latin-1")


def http_date(moment: datetime | None = None) -> str:
    """RFC 9110 IMF-fixdate of *moment* (default: now)."""
    moment = moment or datetime.now(UTC)
    return format_datetime(moment.astimezone(UTC), usegmt=True)


def simple(
    status: int,
    body: bytes | Iterable[bytes] = b"",
    content_type: str = "text/plain; charset=utf-8",
    headers: list[tuple[str, str]] | None = None,
    **options,
) -> Reply:
    """A reply with Date, Server, Content-Type, Content-Length (for bytes), then *headers*."""
    length = [("Content-Length", str(len(body)))] if isinstance(body, bytes) else []
    return Reply(
        status,
        [
            ("Date", http_date()),
            ("Server", SERVER_NAME),
            ("Content-Type", content_type),
            *length,
            *(headers or []),
        ],
        body,
        **options,
    )
