"""Helpers for the extractor tests: WARCs of synthetic captures written with warcio directly.

Pages come from the local mirror (tests/mirror, ground truth in ``site.article(i)``) or from
the small synthetic templates in test_extract_nyt.py; never from real NYT pages.
"""

from __future__ import annotations

import gzip
import io
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import brotli
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from crawler.tor.onion import OnionMap

TESTS = Path(__file__).parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from mirror.pages import Pages  # noqa: E402
from mirror.site import MirrorSite  # noqa: E402
from onions import MIRROR_ONION_MAP  # noqa: E402

ONIONS = OnionMap(MIRROR_ONION_MAP)


@dataclass
class Page:
    """One capture to write: *body* as the server sent it (before content-encoding)."""

    url: str
    body: bytes
    date: str = "2026-01-01T00:00:00Z"
    content_type: str = "text/html; charset=utf-8"
    encoding: str | None = "gzip"  # Content-Encoding applied on the wire
    status: str = "200 OK"
    warc_headers: dict[str, str] = field(default_factory=dict)  # e.g. WARC-Truncated


def encode(body: bytes, encoding: str | None) -> bytes:
    if encoding == "gzip":
        return gzip.compress(body, mtime=0)
    if encoding == "br":
        return brotli.compress(body)
    if encoding == "deflate":
        import zlib

        return zlib.compress(body)
    return body


def write_warc(path: Path, pages: Iterable[Page | tuple[str, str, str, str]], gz: bool = True):
    """Write *pages* as response records; a tuple ``("revisit", url, date, digest_of_url)``
    writes a revisit of an earlier page. Returns ``{url or (url, date): record id}``."""
    ids: dict = {}
    digests: dict[str, str] = {}
    with open(path, "wb") as out:
        writer = WARCWriter(out, gzip=gz)
        for page in pages:
            if isinstance(page, tuple):
                _kind, url, date, original = page
                original_url, original_date = original.split(" ", 1)
                record = writer.create_revisit_record(
                    url,
                    digests[original],
                    original_url,
                    original_date,
                    http_headers=StatusAndHeaders(
                        "200 OK", [("Content-Type", "text/html; charset=utf-8")], "HTTP/1.1"
                    ),
                )
                record.rec_headers.replace_header("WARC-Date", date)
                writer.write_record(record)
                ids[(url, date)] = record.rec_headers.get_header("WARC-Record-ID")
                continue
            payload = encode(page.body, page.encoding)
            headers = [("Content-Type", page.content_type), ("Content-Length", str(len(payload)))]
            if page.encoding:
                headers.append(("Content-Encoding", page.encoding))
            record = writer.create_warc_record(
                page.url,
                "response",
                payload=io.BytesIO(payload),
                http_headers=StatusAndHeaders(page.status, headers, "HTTP/1.1"),
                warc_headers_dict={"WARC-Date": page.date, **page.warc_headers},
            )
            writer.write_record(record)
            digests[f"{page.url} {page.date}"] = record.rec_headers.get_header(
                "WARC-Payload-Digest"
            )
            ids[page.url] = ids[(page.url, page.date)] = record.rec_headers.get_header(
                "WARC-Record-ID"
            )
    return ids


def mirror_site(articles: int = 30) -> tuple[MirrorSite, Pages]:
    site = MirrorSite(articles=articles, onion_map=MIRROR_ONION_MAP)
    return site, Pages(site, "https")


def mirror_pages(site: MirrorSite, pages: Pages, indices: Iterable[int], **kw) -> list[Page]:
    """Captures of mirror articles *indices* at their onion URLs."""
    return [
        Page(
            url=site.onion_url(site.article(i).onion_path),
            body=pages.article(site.article(i)).encode("utf-8"),
            **kw,
        )
        for i in indices
    ]
