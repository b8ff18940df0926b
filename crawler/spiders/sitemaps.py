"""Streaming parser for the XML listings that lead to articles: sitemaps and feeds.

:func:`iter_entries` reads a sitemap index, a URL set (with news-sitemap publication dates),
an RSS 2.0 channel or an Atom feed, plain or gzipped, incrementally (lxml ``iterparse`` over
a stream, each element freed once read), so a large sitemap never sits in memory as a tree.
Entries are yielded as they are parsed; a damaged document raises :class:`ListingError`
after the entries before the damage, so the caller keeps what was readable.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import BinaryIO

from lxml import etree

#: Root elements this module understands, by local name.
LISTING_ROOTS = frozenset({"sitemapindex", "urlset", "rss", "feed"})
#: The elements that are entries, by local name.
ENTRY_ELEMENTS = frozenset({"url", "sitemap", "item", "entry"})


class ListingError(ValueError):
    """The body is not a readable sitemap or feed; the message says what was found instead."""


class ListingTooLarge(ListingError):
    """The (decompressed) body exceeds the size cap; entries before the cap were yielded."""


@dataclass(frozen=True)
class Entry:
    """One ``<url>``/``<sitemap>``/``<item>``/``<entry>`` of a listing."""

    loc: str
    is_sitemap: bool = False
    """True for the children of a sitemap index (further sitemaps to read)."""
    lastmod: datetime | None = None
    published: datetime | None = None
    """From ``news:publication_date``, RSS ``pubDate`` or Atom ``published``."""


def iter_entries(body: bytes, max_size: int) -> Iterator[Entry]:
    """Entries of a sitemap or feed *body* (plain or gzip-compressed XML).

    :param max_size: cap on the decompressed size in bytes (0: no cap).
    :raises ListingTooLarge: the decompressed body grows beyond *max_size*.
    :raises ListingError: the body is HTML, not XML, has an unknown root, is truncated or
        malformed, or is a damaged gzip stream.
    """
    root = _root_name(_open(body, max_size))
    if root == "html":
        raise ListingError("an HTML page, not a sitemap or feed")
    if root not in LISTING_ROOTS:
        raise ListingError(f"unknown root element <{root}>, not a sitemap or feed")
    yield from _parse(_open(body, max_size))


def _open(body: bytes, max_size: int) -> _CappedReader:
    stream: BinaryIO = io.BytesIO(body)
    if body[:2] == b"\x1f\x8b":
        stream = gzip.GzipFile(fileobj=stream)
    return _CappedReader(stream, max_size)


class _CappedReader(io.RawIOBase):
    """A read-only stream over *raw* that raises :class:`ListingTooLarge` past *max_size*."""

    def __init__(self, raw: BinaryIO, max_size: int):
        self.raw, self.max_size, self.size = raw, max_size, 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        try:
            data = self.raw.read(size)
        except (OSError, EOFError, zlib.error) as exc:
            raise ListingError(f"damaged gzip stream: {exc}") from None
        self.size += len(data)
        if self.max_size and self.size > self.max_size:
            raise ListingTooLarge(f"larger than the {self.max_size} byte cap")
        return data


_ROOT_CHUNK_SIZE = 16 * 1024  # bytes fed at a time while looking for the root element
_PARSER_OPTIONS = {
    "resolve_entities": False,
    "no_network": True,
    "remove_comments": True,
    "remove_pis": True,
    "huge_tree": False,
}


def _root_name(stream: _CappedReader) -> str:
    """Local name of the document's root element, read from the first start tag only.

    A pull parser keeps the events it saw before a syntax error, so an HTML page is named as
    such even when libxml2 meets its first non-XML tag in the same chunk as its root.
    """
    parser = etree.XMLPullParser(events=("start",), **_PARSER_OPTIONS)
    try:
        while chunk := stream.read(_ROOT_CHUNK_SIZE):
            parser.feed(chunk)
            for _event, element in parser.read_events():
                return _local_name(element.tag)
        parser.close()
    except etree.XMLSyntaxError as exc:
        for _event, element in parser.read_events():
            return _local_name(element.tag)
        raise ListingError(f"not XML: {exc}") from None
    raise ListingError("not XML: no root element")


def _parse(stream: _CappedReader) -> Iterator[Entry]:
    entries = etree.iterparse(
        stream,
        events=("end",),
        tag=[f"{{*}}{name}" for name in ENTRY_ELEMENTS],
        **_PARSER_OPTIONS,
    )
    try:
        for _event, element in entries:
            entry = _entry(element, _local_name(element.tag))
            element.clear(keep_tail=False)
            parent = element.getparent()
            while parent is not None and element.getprevious() is not None:
                del parent[0]
            if entry is not None:
                yield entry
    except etree.XMLSyntaxError as exc:
        raise ListingError(f"malformed XML: {exc}") from None


def _local_name(tag: object) -> str:
    """``url`` for ``{http://www.sitemaps.org/schemas/sitemap/0.9}url``; "" for comments."""
    return tag.rpartition("}")[2].lower() if isinstance(tag, str) else ""


def _entry(element: etree._Element, name: str) -> Entry | None:
    fields: dict[str, str] = {}
    for child in element.iterdescendants():
        local = _local_name(child.tag)
        if local == "link" and name == "entry":
            if child.get("rel", "alternate") == "alternate" and child.get("href"):
                fields.setdefault("loc", child.get("href", ""))
            continue
        text = child.text
        if text and (text := text.strip()):
            fields.setdefault("loc" if local == "link" else local, text)
    loc = fields.get("loc")
    if not loc:
        return None
    published = fields.get("publication_date") or fields.get("pubdate") or fields.get("published")
    return Entry(
        loc=loc,
        is_sitemap=name == "sitemap",
        lastmod=parse_date(fields.get("lastmod") or fields.get("updated")),
        published=parse_date(published),
    )


def parse_date(value: str | None) -> datetime | None:
    """An aware datetime from a W3C datetime (sitemaps, Atom) or an RFC 2822 date (RSS).

    Dates without a time are midnight UTC; values without an offset are taken as UTC; an
    unreadable value gives None.
    """
    if not value:
        return None
    value = value.strip()
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            parsed = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
