"""``scrapy extract``: WARC files to cleaned article records.

    scrapy extract PATH [PATH ...] -o OUT.jsonl [--format jsonl|md] [--since DATE]
                   [--latest-only] [--jobs N]

PATH: WARC files (``.warc``, ``.warc.gz``) or directories of them (searched recursively;
files still being written, ``*.open``, are left out). Writes one record per article capture
(JSON Lines, or with ``--format md`` one Markdown file per article into the ``-o``
directory), then a summary on stderr: records, skipped by reason, damaged records, time.
Exits 1 when an input could not be read at all (missing, unreadable, not a WARC), 2 on a
usage error, else 0; damaged records are skipped and counted, never fatal.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from scrapy.commands import ScrapyCommand
from scrapy.exceptions import UsageError

from crawler.extract.extractor import ExtractOptions, warc_files
from crawler.extract.output import JsonLinesSink, LatestOnlySink, MarkdownSink, Sink
from crawler.extract.run import ProgressBar, extract
from crawler.tor.onion import OnionMap
from crawler.warc.files import permission_mode


class Command(ScrapyCommand):
    requires_project = True
    requires_crawler_process = False
    default_settings = {"LOG_LEVEL": "WARNING"}

    def syntax(self) -> str:
        return "PATH [PATH ...] -o OUT.jsonl [options]"

    def short_desc(self) -> str:
        return "Extract article records from WARC files"

    def long_desc(self) -> str:
        return (
            "Extract one article record per article capture from WARC files (.warc, .warc.gz) "
            "or directories of them. Non-article pages are skipped and counted; damaged "
            "records are skipped, counted and reported; a summary goes to stderr. Exits 1 "
            "when an input could not be read at all, else 0."
        )

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super().add_options(parser)
        parser.add_argument("-o", "--output", metavar="OUT", help="JSON Lines file (md: directory)")
        parser.add_argument("--format", choices=("jsonl", "md"), default="jsonl")
        parser.add_argument(
            "--since",
            metavar="DATE",
            help="only captures made on or after DATE (YYYY-MM-DD or ISO 8601; UTC if no offset)",
        )
        parser.add_argument(
            "--latest-only",
            action="store_true",
            help="keep only the newest capture of each article (by canonical URL)",
        )
        parser.add_argument("--jobs", type=int, default=1, metavar="N", help="worker processes")

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        if not args:
            raise UsageError("give at least one WARC file or directory")
        if not opts.output:
            raise UsageError("-o OUT is required")
        if opts.jobs < 1:
            raise UsageError("--jobs must be at least 1")
        assert self.settings is not None
        try:
            onion_map = OnionMap.from_setting(self.settings.get("ONION_MAP"))
        except ValueError as exc:
            raise UsageError(f"ONION_MAP: {exc}") from None
        options = ExtractOptions(
            onion_map=onion_map.as_dict(),
            max_body=self.settings.getint("EXTRACT_MAX_HTML_BYTES"),
            since=_parse_since(opts.since),
        )
        files = warc_files(args)
        file_mode = permission_mode(self.settings.get("WARC_FILE_MODE"))
        sink: Sink = (
            MarkdownSink(
                opts.output, file_mode, permission_mode(self.settings.get("WARC_DIR_MODE"))
            )
            if opts.format == "md"
            else JsonLinesSink(opts.output, file_mode)
        )
        if opts.latest_only:
            sink = LatestOnlySink(sink)
        try:
            summary = extract(files, options, sink, opts.jobs, ProgressBar(len(files)))
        finally:
            sink.close()
        for line in summary.lines():
            print(line, file=sys.stderr)
        self.exitcode = 1 if summary.unreadable else 0


def _parse_since(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--since {value!r} is not a date (YYYY-MM-DD or ISO 8601)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
