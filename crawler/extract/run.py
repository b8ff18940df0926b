"""One extraction run over many WARC files: parallel over files, deterministic output order.

Files are extracted in the order given (directories expanded, sorted). With ``jobs > 1``
each file goes to a worker process that writes its records to a part file; the parent
copies finished parts to the sink in input order, so the output is the same whatever the
number of jobs. Revisits whose original response is in a later file are resolved at the
end, against the responses of all inputs.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import TextIO

from crawler.extract.extractor import ExtractOptions, FileExtractor, FileResult
from crawler.extract.output import Sink
from crawler.extract.record import Article
from crawler.extract.warcread import UnreadableInput


@dataclass
class Summary:
    """What a run did: counts by reason, unreadable inputs, elapsed time."""

    files: int = 0
    stats: Counter = field(default_factory=Counter)
    unreadable: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def records(self) -> int:
        return self.stats["records"]

    def lines(self) -> list[str]:
        """The human-readable summary printed at the end of ``scrapy extract``."""
        rate = self.records / self.seconds if self.seconds else 0.0
        out = [
            f"{self.records} article records from {self.files} files "
            f"in {self.seconds:.1f} s ({rate:.1f} articles/s)"
        ]
        groups: dict[str, list[str]] = {"extractor": [], "damaged": [], "skipped": []}
        for key, count in sorted(self.stats.items()):
            if key == "records":
                continue
            group, _, name = key.partition(":") if ":" in key else ("skipped", "", key)
            groups[group].append(f"{name} {count}")
        for group, items in groups.items():
            out.append(f"  {group}: {', '.join(items) if items else 'none'}")
        for message in self.unreadable:
            out.append(f"  unreadable input: {message}")
        return out


class ProgressBar:
    """A one-line progress bar on a terminal; silent when *stream* is not a terminal."""

    def __init__(self, total_files: int, stream: TextIO = sys.stderr):
        self.total = total_files
        self.stream = stream
        self.enabled = stream.isatty()
        self.files = 0
        self.records = 0
        self._last = 0.0

    def record(self) -> None:
        self.records += 1
        if time.monotonic() - self._last > 0.2:
            self._draw()

    def file_done(self, records: int | None = None) -> None:
        self.files += 1
        if records is not None:
            self.records += records
        self._draw()

    def finish(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()

    def _draw(self) -> None:
        self._last = time.monotonic()
        if not self.enabled:
            return
        width = 30
        done = width * self.files // max(self.total, 1)
        bar = "#" * done + "-" * (width - done)
        self.stream.write(f"\r[{bar}] {self.files}/{self.total} files, {self.records} records")
        self.stream.flush()


def extract(
    files: list[str],
    options: ExtractOptions,
    sink: Sink,
    jobs: int = 1,
    progress: ProgressBar | None = None,
) -> Summary:
    """Extract every article of *files* into *sink*; never raises for a bad input."""
    started = time.monotonic()
    summary = Summary(files=len(files))
    progress = progress or ProgressBar(len(files), stream=open(os.devnull, "w"))  # noqa: SIM115
    extractor = FileExtractor(options)

    def emit(article: Article) -> None:
        sink.write(article.to_dict())
        progress.record()

    results: list[FileResult] = []
    if jobs <= 1:
        for path in files:
            result = _guarded(path, summary, lambda p: extractor.run(p, emit))
            progress.file_done()
            results.append(result)
    else:
        results = _extract_parallel(files, options, jobs, sink, summary, progress)
    _resolve_pending(extractor, results, emit, summary)
    for result in results:
        summary.stats.update(result.stats)
    progress.finish()
    summary.seconds = time.monotonic() - started
    return summary


def _guarded(path: str, summary: Summary, work: Callable[[str], FileResult]) -> FileResult:
    try:
        return work(path)
    except UnreadableInput as exc:
        summary.unreadable.append(str(exc))
        return FileResult(path=path)


def _extract_parallel(
    files: list[str],
    options: ExtractOptions,
    jobs: int,
    sink: Sink,
    summary: Summary,
    progress: ProgressBar,
) -> list[FileResult]:
    results: list[FileResult] = []
    with (
        tempfile.TemporaryDirectory(prefix="extract-parts-") as parts,
        ProcessPoolExecutor(max_workers=jobs) as pool,
    ):
        futures: list[tuple[str, str, Future]] = []
        for number, path in enumerate(files):
            part = os.path.join(parts, f"{number}.jsonl")
            futures.append((path, part, pool.submit(_extract_to_part, path, options, part)))
        for path, part, future in futures:
            result = _guarded(path, summary, lambda _p, f=future: f.result())
            count = 0
            if os.path.exists(part):
                with open(part, encoding="utf-8") as lines:
                    for line in lines:
                        sink.write(json.loads(line))
                        count += 1
                os.unlink(part)
            progress.file_done(count)
            results.append(result)
    return results


def _extract_to_part(path: str, options: ExtractOptions, part: str) -> FileResult:
    """Worker: extract one file into a JSON Lines part file."""
    with open(part, "w", encoding="utf-8") as out:

        def emit(article: Article) -> None:
            out.write(json.dumps(article.to_dict(), ensure_ascii=False) + "\n")

        return FileExtractor(options).run(path, emit)


def _resolve_pending(
    extractor: FileExtractor,
    results: list[FileResult],
    emit: Callable[[Article], None],
    summary: Summary,
) -> None:
    """Revisits whose original came later (or in another file), resolved over all inputs."""
    originals: dict[str, tuple[str, int]] = {}
    for result in results:
        for digest, place in result.originals.items():
            originals.setdefault(digest, place)
    for result in results:
        for _path, revisit in result.pending:
            digest = revisit.provenance.payload_digest
            try:
                extractor.resolve(revisit, originals.get(digest or ""), emit, summary.stats)
            except UnreadableInput as exc:
                summary.stats["revisit-unresolved"] += 1
                summary.unreadable.append(str(exc))
