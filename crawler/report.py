"""The crawl report: a JSON summary of a run, written next to its WARC files.

:class:`CrawlReport` (a Scrapy extension) writes, when the spider closes,
``{WARC_DIR}/{WARC_PREFIX}-{start}-report.json`` (atomically: a temporary file renamed) with
pages by status and kind, articles found, new, updated and unchanged, bytes, retries, Tor
errors by kind (download exceptions of the Tor layer, by their ``kind``), other errors,
damaged listings and the WARC files of this run, plus all of Scrapy's stats. The Tor error
counts also go to Scrapy's stats as ``report/tor_errors/<kind>``.
"""

from __future__ import annotations

import json
import logging
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.utils.misc import load_object

from crawler.warc.files import permission_mode

logger = logging.getLogger(__name__)

_WARC_NAME = r"{prefix}-(?P<time>\d{{17}})-\d+-[0-9a-f]+\.warc\.gz(?:\.open)?"


class CrawlReport:
    """Writes the JSON crawl report at spider close; see the module docstring.

    :raises NotConfigured: when ``CRAWL_REPORT`` is false.
    """

    def __init__(
        self,
        crawler: Crawler,
        warc_dir: Path,
        prefix: str,
        file_mode: int = 0o640,
        dir_mode: int = 0o750,
    ):
        self.crawler, self.warc_dir, self.prefix = crawler, warc_dir, prefix
        self.file_mode, self.dir_mode = file_mode, dir_mode  # as the WARC files and WARC_DIR
        self.started = datetime.now(UTC)
        self.path: Path | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> CrawlReport:
        settings = crawler.settings
        if not settings.getbool("CRAWL_REPORT"):
            raise NotConfigured("CRAWL_REPORT is off")
        report = cls(
            crawler,
            Path(settings["WARC_DIR"]),
            settings["WARC_PREFIX"],
            file_mode=permission_mode(settings.get("WARC_FILE_MODE", 0o640)),
            dir_mode=permission_mode(settings.get("WARC_DIR_MODE", 0o750)),
        )
        crawler.signals.connect(report.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(report.spider_closed, signal=signals.spider_closed)
        return report

    def spider_opened(self) -> None:
        self.started = datetime.now(UTC)

    def spider_closed(self, spider: Any, reason: str) -> None:
        summary = self.summary(reason)
        for kind, count in summary["tor_errors"].items():
            self.crawler.stats.set_value(f"report/tor_errors/{kind}", count)
        self.path = self.warc_dir / f"{self.prefix}-{self.started:%Y%m%d%H%M%S}-report.json"
        temporary = self.path.with_name(self.path.name + ".tmp")
        try:
            self.warc_dir.mkdir(parents=True, exist_ok=True, mode=self.dir_mode)
            temporary.write_text(json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n")
            os.chmod(temporary, self.file_mode)
            os.replace(temporary, self.path)
        except OSError as exc:  # e.g. the disk is full: say so, keep the rest of the shutdown
            logger.error("could not write the crawl report %s: %s", self.path, exc)
            temporary.unlink(missing_ok=True)
            self.path = None
            return
        self.crawler.stats.set_value("report/path", str(self.path))
        articles = summary["articles"]
        logger.info(
            "crawl report %s: %d pages, %d articles found (%d new, %d updated, %d unchanged), "
            "%d bytes, %d Tor errors, %d WARC files",
            self.path,
            sum(summary["pages_by_status"].values()),
            articles["found"],
            articles["new"],
            articles["updated"],
            articles["unchanged"],
            summary["bytes"]["received"],
            sum(summary["tor_errors"].values()),
            len(summary["warc_files"]),
        )

    def summary(self, reason: str) -> dict[str, Any]:
        """The report as a JSON-ready dict (see the README for its fields)."""
        stats = self.crawler.stats.get_stats()
        exceptions = _by_suffix(stats, "downloader/exception_type_count/")
        articles = {
            "found": stats.get("spider/found/article", 0),
            "new": stats.get("incremental/new/article", 0),
            "updated": stats.get("incremental/updated/article", 0),
            "unchanged": stats.get("incremental/unchanged/article", 0)
            + stats.get("incremental/skipped/article", 0),
        }
        return {
            "spider": self.crawler.spider.name if self.crawler.spider else None,
            "started": self.started.isoformat(),
            "finished": datetime.now(UTC).isoformat(),
            "finish_reason": reason,
            "robots_txt_obeyed": self.crawler.settings.getbool("ROBOTSTXT_OBEY"),
            "pages_by_status": _by_suffix(stats, "downloader/response_status_count/"),
            "pages_by_kind": _by_suffix(stats, "spider/pages/"),
            "found_by_kind": _by_suffix(stats, "spider/found/"),
            "articles": articles,
            "incremental": _by_suffix(stats, "incremental/"),
            "bytes": {
                "received": stats.get("downloader/response_bytes", 0),
                "sent": stats.get("downloader/request_bytes", 0),
            },
            "retries": {
                "total": stats.get("retry/count", 0),
                "gave_up": stats.get("retry/max_reached", 0),
                "total_cap_reached": stats.get("retry/total_cap_reached", 0),
                "retry_after_honoured": stats.get("retry/retry_after_honoured", 0),
            },
            "tor_errors": _tor_errors(exceptions),
            "exceptions": exceptions,
            "errors": _by_suffix(stats, "spider/errors/"),
            "listing_errors": _by_suffix(stats, "spider/listing_errors/"),
            "excluded": stats.get("policy/excluded", 0),
            "warc_files": self.warc_files(),
            "stats": stats,
        }

    def warc_files(self) -> list[str]:
        """Names of the WARC files this run opened (final names, ``.open`` dropped)."""
        pattern = re.compile(_WARC_NAME.format(prefix=re.escape(self.prefix)))
        since = f"{self.started:%Y%m%d%H%M%S}000"
        names = set()
        if self.warc_dir.is_dir():
            for path in self.warc_dir.iterdir():
                match = pattern.fullmatch(path.name)
                if match and match["time"] >= since:
                    names.add(path.name.removesuffix(".open"))
        return sorted(names)


def _by_suffix(stats: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {key[len(prefix) :]: value for key, value in stats.items() if key.startswith(prefix)}


def _tor_errors(exceptions: dict[str, int]) -> dict[str, int]:
    """Counts by ``kind`` of the download exceptions that carry one (the Tor layer's)."""
    kinds: dict[str, int] = {}
    for path, count in exceptions.items():
        try:
            kind = getattr(load_object(path), "kind", None)
        except (ImportError, NameError, ValueError, AttributeError):
            kind = None
        if isinstance(kind, str):
            kinds[kind] = kinds.get(kind, 0) + count
    return kinds
