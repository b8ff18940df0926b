"""The Scrapy extension that archives every exchange the Tor download handler records.

It receives :data:`~crawler.warc.exchange.exchange_recorded`, writes the response (or
revisit) and request records at once (on the reactor thread: the handler closes the spool
when the signal returns), puts the response record id in ``request.meta["warc_record_id"]``,
and writes the capture's metadata record when :class:`~crawler.warc.middleware.OutlinksMiddleware`
reports the spider's outlinks, or without outlinks after :data:`PENDING_METADATA_TIMEOUT`
seconds (a response the spider never sees, e.g. a redirect) or at close.

At the spider's open it finishes the ``.open`` files of crashed crawls (not those another
live crawl is writing) and brings the capture index up to date with the finished WARC files
(:meth:`~crawler.warc.writer.CaptureWriter.catch_up`: captures written by a process killed
before its index commit), before any request is sent.

Exchanges without a response byte are logged and counted (``warc/no_response``), not
written. A failed write (disk full) closes the spider with reason ``warc_write_failed``.
The CDXJ index of each finished file is written on a separate thread; the spider's close
waits for it. At start-up, finished files of the prefix without one (a full disk, a kill) are
indexed too.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from scrapy import Request, Spider, signals
from scrapy.crawler import Crawler
from scrapy.http import Response
from scrapy.utils.asyncio import create_looping_call
from scrapy.utils.defer import deferred_from_coro

from crawler.tor.onion import OnionMap
from crawler.warc.cdxj import cdxj_path, write_cdxj
from crawler.warc.exchange import Exchange, exchange_recorded
from crawler.warc.files import WarcFiles, WarcWriteError, permission_mode
from crawler.warc.index import CaptureIndex, capture_index_path
from crawler.warc.middleware import capture_parsed, hop_path
from crawler.warc.records import RecordFactory, new_record_id
from crawler.warc.writer import CaptureWriter, WrittenCapture

logger = logging.getLogger(__name__)

#: Seconds a capture's metadata waits for the spider's outlinks before it is written without.
PENDING_METADATA_TIMEOUT = 120.0
#: At most this many captures wait for outlinks; beyond, the oldest is written without.
MAX_PENDING_METADATA = 10_000
#: How often (seconds) idle files and waiting metadata are checked.
TICK_INTERVAL = 5.0
#: Captures are committed to the capture index in groups, at most this many seconds apart.
INDEX_COMMIT_INTERVAL = 1.0
CLOSE_REASON = "warc_write_failed"
#: Settings recorded in each warcinfo record (never secrets: no TOR_CONTROL_PASSWORD).
WARCINFO_SETTINGS = (
    "ONION_MAP",
    "TOR_ISOLATION",
    "ROBOTSTXT_OBEY",
    "DEPTH_LIMIT",
    "DOWNLOAD_MAXSIZE",
    "DOWNLOAD_TIMEOUT",
    "CONCURRENT_REQUESTS",
    "CONCURRENT_REQUESTS_PER_DOMAIN",
    "USER_AGENT",
    "WARC_DEDUP",
    "WARC_DIGEST",
)


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


@dataclass
class _PendingMetadata:
    capture: WrittenCapture
    fields: list[tuple[str, str]]
    since: float


class WarcWriterExtension:
    """Writes WARC files from recorded exchanges (enabled by :class:`.WarcAddon`).

    :raises ValueError: (at start) for an invalid WARC_* setting, ONION_MAP or WARC_PREFIX.
    """

    def __init__(self, crawler: Crawler) -> None:
        settings = crawler.settings
        self.crawler = crawler
        self.stats = crawler.stats
        self.onion_map = OnionMap.from_setting(settings.get("ONION_MAP"))
        self.factory = RecordFactory(
            str(settings.get("WARC_VERSION", "1.1")), settings.get("WARC_DIGEST", "sha1")
        )
        self.index = CaptureIndex(
            capture_index_path(settings), commit_interval=INDEX_COMMIT_INTERVAL
        )
        self.file_mode = permission_mode(settings.get("WARC_FILE_MODE", 0o640))
        self.cdxj = settings.getbool("WARC_CDXJ", True)
        files = WarcFiles(
            settings.get("WARC_DIR", "warc_output"),
            settings.get("WARC_PREFIX", "onion-archiver"),
            settings.getint("WARC_MAX_SIZE", 1_000_000_000),
            self._warcinfo,
            on_finished=self._file_finished,
            file_mode=self.file_mode,
            dir_mode=permission_mode(settings.get("WARC_DIR_MODE", 0o750)),
        )
        self.writer = CaptureWriter(
            files, self.factory, self.index, self.onion_map, settings.get("WARC_DEDUP", "url")
        )
        self.max_idle = settings.getfloat("WARC_MAX_IDLE", 600)
        self.failure: str | None = None
        self._pending: OrderedDict[str, _PendingMetadata] = OrderedDict()
        self._last_write = time.monotonic()
        self._ticker: Any = None
        self._indexer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="warc-cdxj")
        crawler.signals.connect(self.exchange_recorded, signal=exchange_recorded)
        crawler.signals.connect(self.capture_parsed, signal=capture_parsed)
        crawler.signals.connect(self.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> WarcWriterExtension:
        return cls(crawler)

    def spider_opened(self, spider: Spider) -> None:
        self._ticker = create_looping_call(self._tick)
        self._ticker.start(TICK_INTERVAL, now=False)
        repaired = self.writer.files.repair_leftovers()  # each gets its CDXJ as it finishes
        for path in repaired:
            self.stats.inc_value("warc/repaired_files")
            logger.warning("finished leftover WARC file %s", path)
        if self.cdxj:  # a CDXJ lost to a full disk or a kill is written now
            for path in self.writer.files.finished_files():
                if path not in repaired and not cdxj_path(path).exists():
                    self._indexer.submit(self._write_cdxj, path)
        if added := self.writer.catch_up():
            self.stats.set_value("warc/index_caught_up", added)
            logger.warning(
                "added %d captures of the WARC files missing from the capture index (a crawl"
                " killed before committing them, or additions that failed)",
                added,
            )

    def spider_closed(self, spider: Spider, reason: str) -> None:
        if self._ticker is not None and self._ticker.running:
            self._ticker.stop()
        while self._pending and not self.failure:
            self._write_metadata(self._pending.popitem(last=False)[1], None)
        try:
            self.writer.close()
        finally:
            self._update_stats()
            if self.index is not None:
                self.index.close()
            self._indexer.shutdown(wait=True)  # the last files' CDXJ, before the process ends

    def exchange_recorded(self, exchange: Exchange, request: Request) -> None:
        if exchange.response is None or exchange.response_length <= 0:
            self.stats.inc_value("warc/no_response")
            logger.warning(
                "nothing archived for %s: no response byte (%s)",
                exchange.url,
                exchange.error or "no error given",
            )
            return
        if self.failure:
            self.stats.inc_value("warc/not_archived")
            logger.error("not archived (WARC writing failed earlier): %s", exchange.url)
            return
        record_id = new_record_id()
        try:
            capture = self.writer.write_exchange(exchange, record_id)
        except WarcWriteError as exc:
            self._fail(exc)
            return
        request.meta["warc_record_id"] = record_id
        self._written()
        if capture.record_type == "revisit":
            self.stats.inc_value("warc/revisits")
        if exchange.truncated:
            self.stats.inc_value("warc/truncated")
            logger.warning(
                "archived truncated response (%s) of %s: %s",
                exchange.truncated,
                exchange.url,
                exchange.error or "",
            )
        elif exchange.error:
            logger.warning("archived the response of %s despite: %s", exchange.url, exchange.error)
        self._pending[record_id] = _PendingMetadata(
            capture, self._capture_fields(exchange, request, capture), time.monotonic()
        )
        if len(self._pending) > MAX_PENDING_METADATA:
            self._write_metadata(self._pending.popitem(last=False)[1], None)

    def capture_parsed(self, response: Response, outlinks: list[str]) -> None:
        pending = self._pending.pop(response.meta.get("warc_record_id"), None)
        if pending is not None and not self.failure:
            self._write_metadata(pending, outlinks)

    def _capture_fields(
        self, exchange: Exchange, request: Request, capture: WrittenCapture
    ) -> list[tuple[str, str]]:
        referrer = request.headers.get("Referer")
        fields = [
            ("clearnet-url", capture.clearnet_url),
            ("referrer", referrer.decode("latin-1") if referrer else ""),
            ("depth", str(request.meta.get("depth", 0))),
            ("hop-path", hop_path(request.meta)),
            ("tor-isolation", exchange.isolation),
            ("truncated", exchange.truncated or ""),
            ("error", exchange.error or ""),
            ("chunked-framing-error", capture.scan.chunk_error or ""),
        ]
        fields += [
            (f"timing-{name}", f"{seconds:.6f}") for name, seconds in exchange.timings.items()
        ]
        return [(name, value) for name, value in fields if value]

    def _write_metadata(self, pending: _PendingMetadata, outlinks: list[str] | None) -> None:
        fields = list(pending.fields)
        if outlinks is None:
            fields.append(("outlinks", "unknown (the spider did not parse this response)"))
        else:
            fields += [("outlink", url) for url in outlinks]
        try:
            self.writer.write_metadata(pending.capture, fields)
        except WarcWriteError as exc:
            self._fail(exc)
            return
        self._written()

    def _written(self) -> None:
        self._last_write = time.monotonic()

    def _update_stats(self) -> None:
        """Copy the record and byte counts into the stats (each tick and at close: setting
        them per record cost measurably)."""
        self.stats.set_value("warc/records", self.writer.files.records_written)
        self.stats.set_value("warc/bytes", self.writer.files.bytes_written)

    def _tick(self) -> None:
        self._update_stats()
        if self.index is not None:
            self.index.commit()
        now = time.monotonic()
        while (
            self._pending
            and not self.failure
            and now - next(iter(self._pending.values())).since > PENDING_METADATA_TIMEOUT
        ):
            self._write_metadata(self._pending.popitem(last=False)[1], None)
        if self.writer.files.current is not None and now - self._last_write >= self.max_idle:
            logger.info("closing %s: idle", self.writer.files.current.final_path.name)
            self.writer.close()

    def _warcinfo(self, filename: str):
        settings = self.crawler.settings
        crawl = {name: settings.get(name) for name in WARCINFO_SETTINGS}
        crawl["ONION_MAP"] = self.onion_map.as_dict()
        fields = [
            (
                "software",
                f"onion-archiver/{_version('onion-archiver')} warcio/{_version('warcio')}"
                f" Scrapy/{_version('scrapy')}",
            ),
            ("format", f"WARC File Format {self.factory.version}"),
            (
                "conformsTo",
                "https://iipc.github.io/warc-specifications/specifications/warc-format/"
                f"warc-{self.factory.version}/",
            ),
            ("robots", "obey" if settings.getbool("ROBOTSTXT_OBEY") else "ignore"),
            ("tor-version", str(self.stats.get_value("tor/version") or "")),
            ("isPartOf", self.crawler.spider.name if self.crawler.spider else ""),
            ("crawl-settings", json.dumps(crawl, sort_keys=True, default=str)),
        ]
        if settings.getbool("WARC_OPERATOR_HOSTNAME"):
            fields.append(("hostname", socket.gethostname()))
        return self.factory.fields_record(
            "warcinfo",
            "",
            [(name, value) for name, value in fields if value],
            {
                "WARC-Record-ID": new_record_id(),
                "WARC-Filename": filename,
                "WARC-Date": self.factory.date(datetime.now(UTC)),
            },
        )

    def _file_finished(self, path: Path) -> None:
        self.writer.file_finished(path)
        self.stats.inc_value("warc/files")
        if self.cdxj:
            self._indexer.submit(self._write_cdxj, path)

    def _write_cdxj(self, path: Path) -> None:
        """On the indexing thread: a large file takes seconds, the reactor must not wait."""
        try:
            write_cdxj(path, self.onion_map, self.file_mode)
        except OSError as exc:  # a full disk, say: expected, no traceback
            logger.error(
                "could not write the CDXJ index of %s (the WARC is intact; it is indexed at the "
                "next start): %s",
                path,
                exc,
            )
        except Exception:  # a thread's failure would otherwise vanish; the WARC is intact
            logger.exception("could not write the CDXJ index of %s", path)

    def _fail(self, exc: WarcWriteError) -> None:
        self.failure = str(exc)
        self.stats.set_value("warc/write_failed", self.failure)
        logger.error(
            "WARC writing failed, closing the spider (%s): %s. The records written so far are "
            "intact; the open file stays .open and is repaired and finished at the next start.",
            CLOSE_REASON,
            exc,
        )
        if self.crawler.engine is not None and self.crawler.engine.spider is not None:
            deferred_from_coro(self.crawler.engine.close_spider_async(reason=CLOSE_REASON))
