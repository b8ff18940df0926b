"""What the download handler hands to the WARC writer: one exchange, as it was on the wire.

The Tor download handler (``crawler.tor.handler``) fills an :class:`Exchange` for every
request it sends, successful or not, and sends the :data:`exchange_recorded` signal with
``exchange=`` and ``request=`` before returning the response (or raising). Receivers must
not keep ``exchange.response`` open: the handler closes it when the signal returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO

#: Scrapy signal: ``exchange_recorded(exchange: Exchange, request: scrapy.Request)``.
exchange_recorded = object()


@dataclass
class Exchange:
    """One HTTP request and its response as bytes inside the Tor stream (after SOCKS, in TLS)."""

    url: str
    """The URL fetched (onion form)."""
    request: bytes
    """Exactly the bytes written: request line, header lines as sent, blank line, body."""
    started: datetime
    """When the first request byte was written (UTC, aware): the WARC-Date of the capture."""
    response: BinaryIO | None = None
    """Exactly the bytes read, positioned at 0: status line, headers, body as received
    (chunk framing and content-encoding kept). None when no byte arrived."""
    response_length: int = 0
    """Number of bytes in ``response``."""
    chunked: bool = False
    """The response body uses chunked transfer coding."""
    truncated: str | None = None
    """WARC-Truncated reason when the response is incomplete: "length" (DOWNLOAD_MAXSIZE),
    "time" (timeout), "disconnect" (connection lost), or "unspecified"."""
    error: str | None = None
    """Why the exchange failed (a timeout, a SOCKS reply, a protocol error); None if it did not."""
    isolation: str = ""
    """The Tor isolation identity (circuit group) the stream used; never a secret."""
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds from ``started``: "connected" (SOCKS tunnel ready), "tls" (handshake done),
    "first_byte", "done"."""
