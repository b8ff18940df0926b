"""Exchanges in, WARC records out: the capture logic without Scrapy.

For each :class:`~crawler.warc.exchange.Exchange` with response bytes, :class:`CaptureWriter`
writes a ``response`` record (or a ``revisit`` when the payload is already archived, per
``dedup``) and a ``request`` record, together, then adds the capture to the
:class:`~crawler.warc.index.CaptureIndex`. The ``metadata`` record of a capture is written
later with :meth:`CaptureWriter.write_metadata`, once the spider has parsed the response.

An exchange with no response byte produces no record (there is nothing to archive); the
caller logs and counts it.

The index lags the WARC files when a process dies between writing captures and committing
them (the index commits in groups), or when adding a capture failed. So each file the writer
finishes with all its captures added is marked in the index (:meth:`CaptureWriter.file_finished`)
and, at start-up, :meth:`CaptureWriter.catch_up` reads the finished files not marked and adds
what is missing. An index made before marks existed has none: its first catch-up reads every
finished file of the prefix once (about as long as indexing them with cdxj-indexer). Guessing
instead which old files might lag (e.g. those newer than the newest indexed capture) would
miss the last captures of a crawl killed while another job kept indexing.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed
from warcio.statusandheaders import StatusAndHeaders

from crawler.tor.onion import OnionMap
from crawler.warc.exchange import Exchange
from crawler.warc.files import WarcFiles
from crawler.warc.index import Capture, CaptureIndex
from crawler.warc.records import HttpScan, RecordFactory, new_record_id, scan_http

logger = logging.getLogger(__name__)

DEDUP_MODES = ("url", "any", "off")
#: The record types the index holds.
CAPTURE_TYPES = ("response", "revisit")


@dataclass(frozen=True)
class WrittenCapture:
    """Where a capture's response (or revisit) record went."""

    record_id: str
    url: str
    clearnet_url: str
    capture_time: str
    warc_filename: str
    warc_offset: int
    record_type: str  # "response" or "revisit"
    bytes_written: int  # compressed bytes of the response and request records
    scan: HttpScan


def _index_entry(
    warc_headers: StatusAndHeaders,
    scan: HttpScan,
    warc_filename: str,
    warc_offset: int,
    onion_map: OnionMap,
) -> Capture | None:
    """The index entry of a response or revisit record, or None if it is ``WARC-Truncated``
    (a partial page says nothing reliable of the document).

    :param warc_headers: the record's WARC headers (URL, id, date, payload digest, refers-to).
    :param scan: the record's HTTP message, for the status, ETag and Last-Modified of its head.
    """
    if warc_headers.get_header("WARC-Truncated"):
        return None
    url = warc_headers.get_header("WARC-Target-URI")
    return Capture(
        url=url,
        clearnet_url=onion_map.to_clearnet_url(url),
        payload_digest=warc_headers.get_header("WARC-Payload-Digest"),
        record_id=warc_headers.get_header("WARC-Record-ID"),
        warc_filename=warc_filename,
        warc_offset=warc_offset,
        capture_time=warc_headers.get_header("WARC-Date"),
        status=scan.status,
        etag=scan.header("ETag"),
        last_modified=scan.header("Last-Modified"),
        refers_to=warc_headers.get_header("WARC-Refers-To"),
    )


class CaptureWriter:
    """Writes captures into ``files``, deduplicating against ``index``.

    For the index to know which files it holds whole, ``files``' ``on_finished`` must call
    :meth:`file_finished`; without that, :meth:`catch_up` reads every file.

    :raises ValueError: for an unknown ``dedup`` mode.
    """

    def __init__(
        self,
        files: WarcFiles,
        factory: RecordFactory,
        index: CaptureIndex | None,
        onion_map: OnionMap,
        dedup: str = "url",
    ) -> None:
        if dedup not in DEDUP_MODES:
            raise ValueError(f"WARC_DEDUP must be one of {DEDUP_MODES}, not {dedup!r}")
        if dedup != "off" and index is None:
            raise ValueError(f"WARC_DEDUP={dedup!r} needs a capture index")
        self.files = files
        self.factory = factory
        self.index = index
        self.onion_map = onion_map
        self.dedup = dedup
        #: Name of each file written to and not finished yet -> all its captures were indexed.
        self._indexed: dict[str, bool] = {}

    def write_exchange(self, exchange: Exchange, record_id: str | None = None) -> WrittenCapture:
        """Write the response (or revisit) and request records of ``exchange``.

        :param record_id: the response record's WARC-Record-ID (a new one if None).
        :raises ValueError: if the exchange has no response bytes.
        :raises WarcWriteError: if writing failed (nothing of this exchange stays in the file).
        """
        if exchange.response is None or exchange.response_length <= 0:
            raise ValueError(f"no response bytes to archive for {exchange.url}")
        record_id = record_id or new_record_id()
        algorithm = self.factory.algorithm
        exchange.response.seek(0)
        scan = scan_http(exchange.response, exchange.response_length, exchange.chunked, algorithm)
        request_scan = scan_http(BytesIO(exchange.request), len(exchange.request), False, algorithm)
        clearnet_url = self.onion_map.to_clearnet_url(exchange.url)
        date = self.factory.date(exchange.started)
        original = self._original(exchange, scan)

        headers = {"WARC-Record-ID": record_id, "WARC-Date": date}
        if exchange.truncated:
            headers["WARC-Truncated"] = exchange.truncated
        if original:
            headers["WARC-Refers-To"] = original.record_id
            headers["WARC-Refers-To-Target-URI"] = original.url
            headers["WARC-Refers-To-Date"] = original.capture_time
        record_type = "revisit" if original else "response"
        exchange.response.seek(len(scan.head))
        response = self.factory.http(record_type, exchange.url, scan, exchange.response, headers)
        request_body = BytesIO(exchange.request)
        request_body.seek(len(request_scan.head))
        request = self.factory.http(
            "request",
            exchange.url,
            request_scan,
            request_body,
            {
                "WARC-Record-ID": new_record_id(),
                "WARC-Date": date,
                "WARC-Concurrent-To": record_id,
            },
        )
        try:
            filename, spans = self.files.write([response, request])
        finally:
            exchange.response.seek(0)  # as received: other receivers may read it too
        written = WrittenCapture(
            record_id=record_id,
            url=exchange.url,
            clearnet_url=clearnet_url,
            capture_time=date,
            warc_filename=filename,
            warc_offset=spans[0][0],
            record_type=record_type,
            bytes_written=sum(length for _, length in spans),
            scan=scan,
        )
        entry = _index_entry(response.rec_headers, scan, filename, spans[0][0], self.onion_map)
        indexed = entry is None or self._index(entry)
        self._indexed[filename] = self._indexed.get(filename, True) and indexed
        return written

    def write_metadata(self, capture: WrittenCapture, fields: Iterable[tuple[str, str]]) -> int:
        """Write the metadata record of ``capture``; returns its compressed size.

        :raises WarcWriteError: if writing failed.
        """
        record = self.factory.fields_record(
            "metadata",
            capture.url,
            fields,
            {
                "WARC-Record-ID": new_record_id(),
                "WARC-Date": capture.capture_time,
                "WARC-Concurrent-To": capture.record_id,
            },
        )
        filename, spans = self.files.write([record])
        self._indexed.setdefault(filename, True)
        return spans[0][1]

    def close(self) -> None:
        """Finish the open WARC file (the index stays open: its owner closes it)."""
        self.files.close()

    def file_finished(self, path: Path) -> None:
        """Mark the finished file ``path`` in the index (committing its captures with the
        mark), if this writer wrote it and every capture in it was added.

        A file left unmarked (an addition or the mark failed, logged; a repaired leftover)
        is read by :meth:`catch_up` at the next start.
        """
        if not self._indexed.pop(path.name, False) or self.index is None:
            return
        try:
            self.index.mark_indexed(path.name)
        except sqlite3.Error:
            logger.exception("could not mark %s as indexed in the capture index", path.name)

    def catch_up(self) -> int:
        """Add to the index what it lacks of this prefix's finished WARC files that are not
        marked (see the module docstring), marking each; returns the captures added.

        Each file is read one record at a time; its missing response and revisit records
        (by WARC-Record-ID) get the entries :meth:`write_exchange` gives them. A file that
        cannot be read or indexed is logged and left unmarked, to be read at the next start.

        :raises OSError: if the directory cannot be listed.
        :raises sqlite3.Error: if the index cannot be read.
        """
        if self.index is None:
            return 0
        added = 0
        for path in self.files.finished_files():
            if self.index.is_indexed(path.name):
                continue
            try:
                missing = self.index.mark_indexed(path.name, self._entries(path))
            except (OSError, ValueError, ArchiveLoadFailed, sqlite3.Error) as exc:
                logger.error("could not bring the capture index up to date with %s: %s", path, exc)
                continue
            logger.info("read %s into the capture index: %d captures were missing", path, missing)
            added += missing
        return added

    def _entries(self, path: Path) -> list[Capture]:
        """The index entries of the records in the WARC file ``path``.

        :raises OSError: if it cannot be read.
        :raises ArchiveLoadFailed: if it is not a WARC file.
        :raises ValueError: if a record's header is malformed.
        """
        entries = []
        with open(path, "rb") as stream:
            records = ArchiveIterator(stream, no_record_parse=True)
            for record in records:
                if record.rec_type not in CAPTURE_TYPES:
                    continue
                # read as write_exchange read it: the same status, ETag and Last-Modified
                scan = scan_http(record.raw_stream, record.length, False, self.factory.algorithm)
                offset = records.get_record_offset()  # after the block: it reads to the end
                entry = _index_entry(record.rec_headers, scan, path.name, offset, self.onion_map)
                if entry is not None:
                    entries.append(entry)
        return entries

    def _original(self, exchange: Exchange, scan: HttpScan) -> Capture | None:
        """The archived capture this one's payload duplicates, if it is to be a revisit."""
        if self.dedup == "off" or self.index is None or exchange.truncated or scan.status != 200:
            return None
        url = exchange.url if self.dedup == "url" else None
        try:
            return self.index.by_digest(scan.payload_digest, url)
        except sqlite3.Error as exc:  # e.g. locked by another job: archive in full instead
            logger.error("capture index lookup failed, %s archived in full: %s", exchange.url, exc)
            return None

    def _index(self, entry: Capture) -> bool:
        """Add ``entry`` to the index, if any; False if that failed (logged)."""
        if self.index is None:
            return True
        try:
            self.index.add(entry)
        except sqlite3.Error:  # the record is safely written; catch_up adds it at next start
            logger.exception("could not add %s to the capture index", entry.record_id)
            return False
        return True
