"""Exchanges in, WARC records out: the capture logic without Scrapy.

For each :class:`~crawler.warc.exchange.Exchange` with response bytes, :class:`CaptureWriter`
writes a ``response`` record (or a ``revisit`` when the payload is already archived, per
``dedup``) and a ``request`` record, together, then adds the capture to the
:class:`~crawler.warc.index.CaptureIndex`. The ``metadata`` record of a capture is written
later with :meth:`CaptureWriter.write_metadata`, once the spider has parsed the response.

An exchange with no response byte produces no record (there is nothing to archive); the
caller logs and counts it.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from io import BytesIO

from crawler.tor.onion import OnionMap
from crawler.warc.exchange import Exchange
from crawler.warc.files import WarcFiles
from crawler.warc.index import Capture, CaptureIndex
from crawler.warc.records import HttpScan, RecordFactory, new_record_id, scan_http

logger = logging.getLogger(__name__)

DEDUP_MODES = ("url", "any", "off")


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


class CaptureWriter:
    """Writes captures into ``files``, deduplicating against ``index``.

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
        if self.index is not None and not exchange.truncated:
            self._index(written, original.record_id if original else None)
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
        _, spans = self.files.write([record])
        return spans[0][1]

    def close(self) -> None:
        """Finish the open WARC file (the index stays open: its owner closes it)."""
        self.files.close()

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

    def _index(self, written: WrittenCapture, refers_to: str | None) -> None:
        capture = Capture(
            url=written.url,
            clearnet_url=written.clearnet_url,
            payload_digest=written.scan.payload_digest,
            record_id=written.record_id,
            warc_filename=written.warc_filename,
            warc_offset=written.warc_offset,
            capture_time=written.capture_time,
            status=written.scan.status,
            etag=written.scan.header("ETag"),
            last_modified=written.scan.header("Last-Modified"),
            refers_to=refers_to,
        )
        try:
            self.index.add(capture)
        except sqlite3.Error:  # the record is safely written; a missing entry only costs dedup
            logger.exception("could not add %s to the capture index", written.record_id)
