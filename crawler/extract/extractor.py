"""WARC captures to Article records: filtering, decoding, parser choice, revisits, counting."""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable, Generator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime

from lxml import etree, html

from crawler.extract import generic, nyt
from crawler.extract.decode import DecodeError, decode_html
from crawler.extract.page import NotAnArticle, Page
from crawler.extract.record import Article
from crawler.extract.warcread import Capture, read_captures
from crawler.tor.onion import OnionMap

logger = logging.getLogger(__name__)

HTML_TYPES = ("text/html", "application/xhtml+xml")
_PARSER = html.HTMLParser(encoding="utf-8", remove_comments=True, remove_pis=True)


@dataclass(frozen=True)
class ExtractOptions:
    """What an extraction run needs; picklable, so it travels to worker processes."""

    onion_map: dict[str, str]
    max_body: int = 20_000_000
    since: datetime | None = None  # keep captures made at or after this instant


@dataclass
class FileResult:
    """What one input file gave: counts, and what revisit resolution needs later."""

    path: str
    stats: Counter = field(default_factory=Counter)
    # payload digest -> (path, offset) of a response record carrying that payload
    originals: dict[str, tuple[str, int]] = field(default_factory=dict)
    # revisits whose original was not seen before them in this file
    pending: list[tuple[str, Capture]] = field(default_factory=list)


def article_from_html(text: str, capture_url: str, onion_map: OnionMap) -> Article:
    """Parse one HTML page: the NYT parser where it recognises the page, else trafilatura.

    :raises NotAnArticle: with the skip reason (``no-body``, ``not-article``, ...).
    """
    if not text.strip():
        raise NotAnArticle("no-body")
    try:
        doc = html.document_fromstring(text.encode("utf-8", "surrogatepass"), parser=_PARSER)
    except (etree.ParserError, ValueError):
        raise NotAnArticle("no-body") from None
    if doc is None or doc.find("body") is None or not len(doc.find("body")):
        raise NotAnArticle("no-body")
    page = Page(doc=doc, capture_url=capture_url, onion_map=onion_map)
    article = nyt.parse(page) if nyt.is_nyt(page) else None
    return article if article is not None else generic.parse(page)


class FileExtractor:
    """Extracts every article capture of WARC files, one file at a time, in record order."""

    def __init__(self, options: ExtractOptions):
        self.options = options
        self.onion_map = OnionMap(options.onion_map)

    def run(self, path: str, emit: Callable[[Article], None]) -> FileResult:
        """Extract *path*, calling *emit* for each article in record order.

        :raises UnreadableInput: when *path* cannot be read at all.
        """
        result = FileResult(path=path)
        # hash of (target URI, WARC-Date) -> place: small keys; a hash collision cannot
        # mislead, since resolve() checks the payload digests agree
        originals_by_uri: dict[int, tuple[str, int]] = {}
        for capture in read_captures(path, result.stats, self.options.max_body):
            place = (path, capture.provenance.warc_offset)
            if capture.record_type == "response":
                if capture.provenance.payload_digest:
                    result.originals.setdefault(capture.provenance.payload_digest, place)
                uri_key = hash((capture.target_uri, capture.provenance.capture_time))
                originals_by_uri.setdefault(uri_key, place)
                self._extract(capture, emit, result.stats)
                continue
            original = self._find_original(capture, result.originals, originals_by_uri)
            if original is None:
                result.pending.append((path, capture))
            else:
                self.resolve(capture, original, emit, result.stats)
        return result

    def resolve(
        self,
        revisit: Capture,
        original: tuple[str, int] | None,
        emit: Callable[[Article], None],
        stats: Counter,
    ) -> None:
        """Extract a revisit with the payload of its *original* response record."""
        source = None
        if original:
            with closing(self._captures_at(original)) as captures:
                source = next(captures, None)
        digests = {revisit.provenance.payload_digest, source and source.provenance.payload_digest}
        if source is None or source.record_type != "response" or len(digests - {None}) > 1:
            stats["revisit-unresolved"] += 1
            return
        revisit.body, revisit.oversized = source.body, source.oversized
        revisit.content_type = revisit.content_type or source.content_type
        if revisit.status in (None, 304):
            revisit.status = source.status
        self._extract(revisit, emit, stats)

    def _captures_at(self, place: tuple[str, int]) -> Generator[Capture, None, None]:
        path, offset = place
        return read_captures(path, Counter(), self.options.max_body, start=offset)

    @staticmethod
    def _find_original(
        revisit: Capture,
        by_digest: dict[str, tuple[str, int]],
        by_uri: dict[int, tuple[str, int]],
    ) -> tuple[str, int] | None:
        if revisit.refers_to_uri and revisit.refers_to_date:
            found = by_uri.get(hash((revisit.refers_to_uri, revisit.refers_to_date)))
            if found:
                return found
        digest = revisit.provenance.payload_digest
        return by_digest.get(digest) if digest else None

    def _extract(self, capture: Capture, emit: Callable[[Article], None], stats: Counter) -> None:
        reason = self._skip_reason(capture)
        if reason is None:
            try:
                text = decode_html(capture.body or b"", capture.content_type)
                article = article_from_html(text, capture.target_uri, self.onion_map)
            except (DecodeError, NotAnArticle) as exc:
                reason = exc.reason
            except Exception:  # a parser bug must cost one record, not the run's output
                provenance = capture.provenance
                logger.exception(
                    "extraction failed on %s (%s at offset %d); record skipped",
                    capture.target_uri,
                    provenance.warc_filename,
                    provenance.warc_offset,
                )
                reason = "parser-error"
        if reason is not None:
            stats[reason] += 1
            return
        article.provenance = capture.provenance
        stats["records"] += 1
        stats[f"extractor:{article.extractor}"] += 1
        emit(article)

    def _skip_reason(self, capture: Capture) -> str | None:
        if capture.status != 200:
            return "http-status"
        media_type = (capture.content_type or "").split(";")[0].strip().lower()
        if media_type not in HTML_TYPES:
            return "not-html"
        if self.options.since and _capture_time(capture) < self.options.since:
            return "before-since"
        if capture.oversized:
            return "too-large"
        return None


def _capture_time(capture: Capture) -> datetime:
    text = capture.provenance.capture_time.replace("Z", "+00:00")
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def warc_files(paths: list[str]) -> list[str]:
    """The WARC files named by *paths*: files as given, directories searched recursively
    for ``*.warc`` / ``*.warc.gz`` (sorted, so runs are deterministic)."""
    files: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            found = [
                os.path.join(root, name)
                for root, _dirs, names in os.walk(path)
                for name in names
                if name.endswith((".warc", ".warc.gz"))
            ]
            files.extend(sorted(found))
        else:
            files.append(path)
    return files
