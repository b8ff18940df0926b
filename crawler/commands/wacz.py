"""``scrapy wacz``: package finished WARCs, their CDXJ and the article records into a WACZ.

    scrapy wacz [PATH ...] -o OUT.wacz [--articles ARTICLES.jsonl] [--title TITLE]

PATH: finished WARC files (``.warc``, ``.warc.gz``) or directories of them; default: ``WARC_DIR``.
Files still being written (``.open``) are skipped and reported. The package follows WACZ 1.1.1:

- ``archive/``: the WARC files, byte for byte (stored, not recompressed);
- ``indexes/index.cdx``: CDXJ lines (WACZ's name for a plain index), the CDXJ written next to
  each WARC (its clearnet alias lines included, so a replay tool finds a capture under its onion
  or its clearnet URL), merged and sorted; a WARC without one is indexed here with cdxj-indexer;
- ``pages/pages.jsonl``: one page per article record (title and full text, for search), or,
  without ``--articles``, one per HTML capture with status 200;
- ``articles/articles.jsonl``: the article records as ``scrapy extract`` wrote them;
- ``datapackage.json`` (sha256 of every file) and ``datapackage-digest.json``.

The package is written as ``OUT.wacz.open`` and renamed when complete: a failure never leaves a
partial file under the final name. Exits non-zero, with the reason, when there is no finished
WARC, an input cannot be read, or an article line is not a JSON object.
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import json
import sys
import tempfile
import uuid
import zipfile
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from cdxj_indexer.main import CDXJIndexer
from scrapy.commands import ScrapyCommand
from scrapy.exceptions import UsageError
from warcio.timeutils import iso_date_to_timestamp, timestamp_to_iso_date

WACZ_VERSION = "1.1.1"
WARC_SUFFIXES = (".warc", ".warc.gz")
CHUNK = 1 << 16


class WaczError(Exception):
    """An input cannot be packaged (missing, unreadable or malformed); the message says which."""


def find_warcs(paths: Iterable[Path]) -> tuple[list[Path], list[Path]]:
    """Finished WARC files under *paths* (files or directories, not recursive), and the
    ``.open`` files skipped. Raises :class:`WaczError` for a path that does not exist or a
    file that is not a WARC."""
    warcs: list[Path] = []
    unfinished: list[Path] = []
    for path in paths:
        if path.is_dir():
            entries = sorted(path.iterdir())
        elif path.is_file():
            entries = [path]
        else:
            raise WaczError(f"{path}: no such file or directory")
        for entry in entries:
            if entry.name.endswith(WARC_SUFFIXES) and entry.is_file():
                warcs.append(entry)
            elif entry.name.endswith(".open"):
                unfinished.append(entry)
            elif path.is_file():
                raise WaczError(f"{path}: not a WARC file (.warc or .warc.gz)")
    names = [warc.name for warc in warcs]
    duplicates = {name for name in names if names.count(name) > 1}
    if duplicates:
        raise WaczError(f"two WARC files share a name, a WACZ needs unique names: {duplicates}")
    return warcs, unfinished


def cdxj_next_to(warc: Path) -> Path | None:
    """The CDXJ the WARC writer left next to *warc* (``X.warc.gz.cdxj`` or ``X.cdxj``)."""
    stem = warc.name.removesuffix(".gz").removesuffix(".warc")
    for candidate in (warc.with_name(warc.name + ".cdxj"), warc.with_name(stem + ".cdxj")):
        if candidate.is_file():
            return candidate
    return None


def sorted_cdxj(warc: Path, workdir: Path) -> Path:
    """A sorted CDXJ of *warc*: its own index when present (sorted into *workdir* only if it
    is not sorted yet), else one made with cdxj-indexer."""
    existing = cdxj_next_to(warc)
    target = workdir / f"{warc.name}.cdxj"
    if existing is None:
        with target.open("w", encoding="utf-8") as out:
            CDXJIndexer(
                output=out, inputs=[str(warc)], sort=True, dir_root=str(warc.parent)
            ).process_all()
        return target
    with existing.open(encoding="utf-8") as lines:
        previous = ""
        for line in lines:
            if line < previous:
                break
            previous = line
        else:
            return existing
    with existing.open(encoding="utf-8") as lines:
        target.write_text("".join(sorted(lines)), encoding="utf-8")
    return target


def merge_cdxj(indexes: list[Path], out: IO[str]) -> None:
    """Merge sorted CDXJ files into *out*, streaming, blank lines dropped."""
    files = [index.open(encoding="utf-8") for index in indexes]
    try:
        for line in heapq.merge(*files):
            if line.strip():
                out.write(line if line.endswith("\n") else line + "\n")
    finally:
        for handle in files:
            handle.close()


def read_articles(path: Path) -> Iterator[dict[str, Any]]:
    """Article records of a ``scrapy extract`` output, one JSON object a line. Raises
    :class:`WaczError` naming the line that is not a JSON object."""
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise WaczError(f"{path}:{number}: not JSON ({exc})") from None
            if not isinstance(record, dict):
                raise WaczError(f"{path}:{number}: not a JSON object")
            yield record


def article_pages(path: Path) -> Iterator[dict[str, Any]]:
    """WACZ page entries (url, ts, title, text) for the article records in *path*."""
    for record in read_articles(path):
        url = record.get("capture_url") or record.get("url")
        ts = record.get("capture_time")
        if not url or not ts:
            raise WaczError(f"{path}: article record without capture_url/capture_time: {url!r}")
        yield page_entry(url, ts, record.get("title"), record.get("text"))


def index_pages(index: Path) -> Iterator[dict[str, Any]]:
    """WACZ page entries for the HTML captures with status 200 in a CDXJ index."""
    seen: set[tuple[str, str]] = set()
    with index.open(encoding="utf-8") as lines:
        for line in lines:
            _key, timestamp, fields = line.split(" ", 2)
            entry = json.loads(fields)
            if entry.get("mime") != "text/html" or entry.get("status") != "200":
                continue
            page = (entry["url"], timestamp)
            if page not in seen:
                seen.add(page)
                yield page_entry(entry["url"], timestamp_to_iso_date(timestamp))


def page_entry(
    url: str, ts: str, title: str | None = None, text: str | None = None
) -> dict[str, Any]:
    """One line of ``pages/pages.jsonl``; ``ts`` is an ISO 8601 date (WARC-Date form)."""
    page: dict[str, Any] = {"id": uuid.uuid5(uuid.NAMESPACE_URL, f"{ts} {url}").hex}
    page.update(url=url, ts=timestamp_to_iso_date(iso_date_to_timestamp(ts)))
    if title:
        page["title"] = title
    if text:
        page["text"] = text
    return page


class WaczWriter:
    """Writes the entries of one WACZ, hashing each as it streams, then its datapackage."""

    def __init__(self, path: Path, title: str):
        self.path = path
        self.title = title
        self.zip = zipfile.ZipFile(path, "w", allowZip64=True)
        self.resources: list[dict[str, Any]] = []

    def add_file(self, source: Path, name: str, compress: bool) -> None:
        """Copy *source* into the package as *name*; WARCs are stored, not compressed."""
        info = zipfile.ZipInfo.from_file(source, name)
        info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        with source.open("rb") as data, self.zip.open(info, "w", force_zip64=True) as entry:
            self._copy(data, entry, name)

    def add_lines(self, name: str, lines: Iterable[str]) -> None:
        """Write text *lines* (each ending in a newline) as the compressed entry *name*."""
        info = zipfile.ZipInfo(name, now_tuple())
        info.compress_type = zipfile.ZIP_DEFLATED
        digest, size = hashlib.sha256(), 0
        with self.zip.open(info, "w", force_zip64=True) as entry:
            for line in lines:
                data = line.encode("utf-8")
                entry.write(data)
                digest.update(data)
                size += len(data)
        self._add_resource(name, digest, size)

    def close(self) -> None:
        """Write ``datapackage.json`` and ``datapackage-digest.json`` and close the zip."""
        created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        package = {
            "profile": "data-package",
            "title": self.title,
            "created": created,
            "wacz_version": WACZ_VERSION,
            "software": "onion-archiver scrapy wacz",
            "resources": self.resources,
        }
        package_bytes = json.dumps(package, indent=2).encode("utf-8")
        package_digest = {
            "path": "datapackage.json",
            "hash": "sha256:" + hashlib.sha256(package_bytes).hexdigest(),
        }
        self._write_small("datapackage.json", package_bytes)
        self._write_small("datapackage-digest.json", json.dumps(package_digest).encode("utf-8"))
        self.zip.close()

    def abort(self) -> None:
        """Close the zip without a datapackage (the caller removes the file)."""
        self.zip.close()

    def _copy(self, data: IO[bytes], entry: IO[bytes], name: str) -> None:
        digest, size = hashlib.sha256(), 0
        while chunk := data.read(CHUNK):
            entry.write(chunk)
            digest.update(chunk)
            size += len(chunk)
        self._add_resource(name, digest, size)

    def _add_resource(self, name: str, digest: Any, size: int) -> None:
        self.resources.append(
            {
                "name": Path(name).name.lower(),
                "path": name,
                "hash": "sha256:" + digest.hexdigest(),
                "bytes": size,
            }
        )

    def _write_small(self, name: str, data: bytes) -> None:
        info = zipfile.ZipInfo(name, now_tuple())
        info.compress_type = zipfile.ZIP_DEFLATED
        self.zip.writestr(info, data)


def now_tuple() -> tuple[int, int, int, int, int, int]:
    """The current UTC time as a zip date_time."""
    return datetime.now(UTC).timetuple()[:6]


def jsonl(entries: Iterable[dict[str, Any]], header: dict[str, Any]) -> Iterator[str]:
    """A JSON Lines stream: *header* first, then one line per entry."""
    yield json.dumps(header) + "\n"
    for entry in entries:
        yield json.dumps(entry, ensure_ascii=False) + "\n"


def build_wacz(
    warcs: list[Path], output: Path, articles: Path | None = None, title: str = "onion-archiver"
) -> None:
    """Package *warcs* (finished WARC files), their CDXJ and *articles* into *output*.

    Written to ``<output>.open`` and renamed on success; on any failure the partial file is
    removed and the exception propagates (:class:`WaczError` for bad input, ``OSError`` for
    unreadable files or a full disk)."""
    if not warcs:
        raise WaczError("no finished WARC file to package")
    if articles is not None and not articles.is_file():
        raise WaczError(f"{articles}: no such file")
    partial = output.with_name(output.name + ".open")
    writer = WaczWriter(partial, title)
    try:
        with tempfile.TemporaryDirectory(prefix="wacz-") as tmp:
            workdir = Path(tmp)
            merged = workdir / "index.cdxj"
            with merged.open("w", encoding="utf-8") as out:
                merge_cdxj([sorted_cdxj(warc, workdir) for warc in warcs], out)
            for warc in warcs:
                writer.add_file(warc, f"archive/{warc.name}", compress=False)
            writer.add_file(merged, "indexes/index.cdx", compress=True)
            if articles is not None:
                pages = article_pages(articles)
                writer.add_file(articles, "articles/articles.jsonl", compress=True)
            else:
                pages = index_pages(merged)
            header = {"format": "json-pages-1.0", "id": "pages", "title": "Pages"}
            header["hasText"] = articles is not None
            writer.add_lines("pages/pages.jsonl", jsonl(pages, header))
        writer.close()
    except BaseException:
        writer.abort()
        partial.unlink(missing_ok=True)
        raise
    partial.replace(output)


class Command(ScrapyCommand):
    requires_project = True
    requires_crawler_process = False
    default_settings = {"LOG_ENABLED": False}

    def syntax(self) -> str:
        return "[PATH ...] -o OUT.wacz [--articles ARTICLES.jsonl] [--title TITLE]"

    def short_desc(self) -> str:
        return "Package finished WARCs, their CDXJ and article records into a WACZ"

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super().add_options(parser)
        parser.add_argument("paths", nargs="*", metavar="PATH", help="WARC files or dirs")
        parser.add_argument("-o", "--output", required=True, help="the WACZ file to write")
        parser.add_argument("--articles", help="article records (scrapy extract output)")
        parser.add_argument("--title", default="onion-archiver", help="collection title")

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        assert self.settings is not None
        if not opts.output.endswith(".wacz"):
            raise UsageError("the output file name must end in .wacz")
        paths = [Path(p) for p in opts.paths] or [Path(self.settings["WARC_DIR"])]
        try:
            warcs, unfinished = find_warcs(paths)
            for path in unfinished:
                print(f"skipped {path}: still being written (.open)")
            articles = Path(opts.articles) if opts.articles else None
            build_wacz(warcs, Path(opts.output), articles, opts.title)
        except (WaczError, OSError) as exc:
            print(f"scrapy wacz: {exc}", file=sys.stderr)
            self.exitcode = 1
            return
        print(f"wrote {opts.output}: {len(warcs)} WARC file(s)")
