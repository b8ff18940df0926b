"""Score the extractor against the real NYT pages of ``../shared/nyt-pages``.

    python -m crawler.extract.evaluate ../shared/nyt-pages [--warc OUT.warc.gz] [-s ONION_MAP=...]

Packs every page of the manifest into a WARC as the crawler would have captured it through
the onion mirror (onion URL, hosts EOTK-rewritten to the onions of ``ONION_MAP`` in the HTML,
gzip content-encoding), runs the extractor over that WARC, and scores each expectation of the
manifest. The same pages go through trafilatura too; both columns are printed side by side.

Scoring rules (each expectation is one check):

- ``title``: exact, whitespace-normalised; ``title_must_not_end_with`` is a check of its own.
- ``authors``: the same names, compared case-insensitively (legacy bylines are upper case)
  and in any order (goose3 lists its four out of byline order); a readability ``byline``
  string is split like an NYT byline.
- ``date``: an expected timestamp must be the same instant as ``published``; an expected
  date alone must be the publication date in New York (the NYT's dateline date).
- ``paragraph``: each asserted paragraph (by index, ``last``, or a full list) exactly.
- ``paragraph_count``, ``must_contain`` (in ``text``), ``must_not_contain`` (nowhere in the
  record's text, title or captions), ``lead_image`` (same image: the NYT serves one picture in
  several crops, ``<slug>-<crop>.jpg``, so the crop suffix and query are ignored),
  ``description``, ``language`` (primary subtag), ``page_type`` (non-articles are skipped).
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import re
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import trafilatura
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from crawler.extract.extractor import ExtractOptions, FileExtractor
from crawler.extract.metadata import NEW_YORK, clean_text, iso_datetime
from crawler.extract.nyt import BYLINE_PREFIX, BYLINE_SPLIT
from crawler.tor.onion import OnionMap

CAPTURE_START = datetime(2026, 1, 1, tzinfo=UTC)
FRAGMENT_URL = "https://www.nytimes.com/fragments/{name}"
FIELDS = (
    "page_type",
    "title",
    "authors",
    "date",
    "paragraph",
    "paragraph_count",
    "must_contain",
    "must_not_contain",
    "lead_image",
    "description",
    "language",
)
LANGUAGE_NAMES = {"english": "en", "spanish": "es", "español": "es"}
_CROP = re.compile(r"-(?:[a-z]+[A-Z][A-Za-z0-9]*|jumbo|master\d+|blog\d+|span)(?:-v\d+)?(\.\w+)$")


# --- packing -------------------------------------------------------------------------------


def write_capture(
    writer: WARCWriter,
    url: str,
    body: bytes,
    date: datetime,
    content_type: str = "text/html; charset=utf-8",
    status: str = "200 OK",
) -> str:
    """Append a response record for *url* as the crawler captures it (gzip-encoded body);
    return its ``WARC-Record-ID``."""
    encoded = gzip.compress(body, mtime=0)
    headers = StatusAndHeaders(
        status,
        [
            ("Content-Type", content_type),
            ("Content-Encoding", "gzip"),
            ("Content-Length", str(len(encoded))),
        ],
        protocol="HTTP/1.1",
    )
    record = writer.create_warc_record(
        url,
        "response",
        payload=io.BytesIO(encoded),
        http_headers=headers,
        warc_headers_dict={"WARC-Date": date.strftime("%Y-%m-%dT%H:%M:%SZ")},
    )
    writer.write_record(record)
    return record.rec_headers.get_header("WARC-Record-ID")


def eotk_rewrite(page: bytes, onion_map: OnionMap) -> bytes:
    """*page* with every mapped clearnet host name rewritten to its onion, as EOTK does."""
    domains = "|".join(re.escape(d.encode()).decode() for d in onion_map.as_dict())
    if not domains:
        return page
    pattern = re.compile(rb"(?<![\w.-])((?:[a-z0-9-]+\.)*(?:" + domains.encode() + rb"))\b")
    return pattern.sub(lambda m: onion_map.to_onion_host(m.group(1).decode()).encode(), page)


@dataclass
class Entry:
    """One manifest page: where it is packed and what is expected of it."""

    file: str
    url: str
    record_id: str
    expected: dict


def pack(pages_dir: Path, warc_path: Path, onion_map: OnionMap) -> list[Entry]:
    """Write every manifest page into *warc_path*; return the entries with expectations."""
    manifest = json.loads((pages_dir / "manifest.json").read_text(encoding="utf-8"))
    entries: list[Entry] = []
    with open(warc_path, "wb") as out:
        writer = WARCWriter(out, gzip=True)
        for number, item in enumerate(manifest["entries"]):
            url = item.get("url") or FRAGMENT_URL.format(name=Path(item["file"]).name)
            capture_url = onion_map.to_onion_url(url) or url
            if capture_url.startswith("http://") and ".onion" in capture_url:
                capture_url = "https://" + capture_url[len("http://") :]
            page = eotk_rewrite((pages_dir / item["file"]).read_bytes(), onion_map)
            date = CAPTURE_START + timedelta(minutes=number)
            record_id = write_capture(writer, capture_url, page, date)
            entries.append(Entry(item["file"], url, record_id, expectations(pages_dir, item)))
    return entries


# --- expectations --------------------------------------------------------------------------


def expectations(pages_dir: Path, item: dict) -> dict:
    """The checkable expectations of one manifest entry, from its expected-value files."""
    found: dict = {}
    if item.get("published"):
        found["date"] = item["published"]
    if "NOT an article" in item.get("page_type", ""):
        return {"page_type": "not-article"}
    found["page_type"] = "article"
    for ref in item.get("expected") or []:
        name, _, key = ref.partition("#")
        if not name.endswith(".json"):
            continue
        data = json.loads((pages_dir / name).read_text(encoding="utf-8"))
        data = data.get(key, {}) if key else data
        data = data.get("expected", data)
        _take(found, data)
    return found


def _take(found: dict, data: dict) -> None:
    for key in ("title",):
        if data.get(key):
            found["title"] = data[key]
    if data.get("byline") or data.get("authors"):
        names = data.get("authors") or BYLINE_SPLIT.split(BYLINE_PREFIX.sub("", data["byline"]))
        found["authors"] = [n for n in names if n]
    date = data.get("date") or data.get("publishedDate")
    if date:
        found["date"] = date
    paragraphs = data.get("paragraphs")
    if isinstance(paragraphs, list):
        found["paragraphs"] = dict(enumerate(paragraphs))
        found["paragraph_count"] = len(paragraphs)
    elif isinstance(paragraphs, dict):
        found["paragraphs"] = paragraphs
    if "paragraph_count" in data:
        found["paragraph_count"] = data["paragraph_count"]
    found["must_contain"] = data.get("body_contains", [])
    found["must_not_contain"] = data.get("content_must_not_match", [])
    if data.get("title_must_not_end_with"):
        found["title_must_not_end_with"] = data["title_must_not_end_with"]
    images = data.get("images") or ([data["previewImage"]] if data.get("previewImage") else [])
    if images:
        found["lead_image"] = images[0]
    if data.get("excerpt"):
        found["description"] = data["excerpt"]
    if data.get("lang") or data.get("language"):
        found["language"] = data.get("lang") or data.get("language")


# --- scoring -------------------------------------------------------------------------------


def score(expected: dict, record: dict | None) -> list[tuple[str, bool, str]]:
    """``(field, passed, detail)`` for every check of one page against its *record*."""
    checks: list[tuple[str, bool, str]] = []
    if expected.get("page_type") == "not-article":
        return [("page_type", record is None, "skipped" if record is None else "extracted")]
    checks.append(("page_type", record is not None, "extracted" if record else "skipped"))
    record = record or {}
    paragraphs = record.get("paragraphs") or []
    text = "\n\n".join(paragraphs)
    if "title" in expected:
        got = clean_text(record.get("title"))
        checks.append(("title", got == clean_text(expected["title"]), got))
    if "title_must_not_end_with" in expected:
        bad = (record.get("title") or "").endswith(expected["title_must_not_end_with"])
        checks.append(("title", not bad, record.get("title") or ""))
    if "authors" in expected:
        got = sorted(a.casefold() for a in record.get("authors") or [])
        want = sorted(clean_text(a).casefold() for a in expected["authors"])
        checks.append(("authors", got == want, repr(record.get("authors"))))
    if "date" in expected:
        checks.append(
            (
                "date",
                _same_date(expected["date"], record.get("published")),
                str(record.get("published")),
            )
        )
    for index, want in (expected.get("paragraphs") or {}).items():
        position = -1 if index == "last" else int(index)
        got = paragraphs[position] if -len(paragraphs) <= position < len(paragraphs) else None
        checks.append(("paragraph", got == want, f"[{index}] {str(got)[:60]}"))
    if "paragraph_count" in expected:
        checks.append(
            (
                "paragraph_count",
                len(paragraphs) == expected["paragraph_count"],
                str(len(paragraphs)),
            )
        )
    for needle in expected.get("must_contain") or []:
        checks.append(("must_contain", needle in text, needle))
    everything = " ".join(
        [text, record.get("title") or ""]
        + [i.get("caption") or "" for i in record.get("images") or []]
    )
    for needle in expected.get("must_not_contain") or []:
        checks.append(("must_not_contain", needle not in everything, needle))
    if "lead_image" in expected:
        images = record.get("images") or []
        got = images[0]["url"] if images else None
        checks.append(
            ("lead_image", bool(got) and _same_image(got, expected["lead_image"]), str(got))
        )
    if "description" in expected:
        got = clean_text(record.get("description"))
        checks.append(("description", got == clean_text(expected["description"]), got[:60]))
    if "language" in expected:
        want = expected["language"].lower()
        want = LANGUAGE_NAMES.get(want, want).split("-")[0]
        got = (record.get("language") or "").lower().split("-")[0]
        checks.append(("language", got == want, got))
    return checks


def _same_date(expected: str, published: str | None) -> bool:
    if not published:
        return False
    if len(published) == 10:  # a date without time (trafilatura gives those)
        return expected[:10] == published
    got = datetime.fromisoformat(published)
    match = re.match(
        r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?)?", expected
    )
    if not match:
        return False
    if match.group(1):
        return datetime.fromisoformat(iso_datetime(match.group(0))) == got
    return got.astimezone(NEW_YORK).date().isoformat() == match.group(0)


def _same_image(got: str, expected: str) -> bool:
    def key(url: str) -> str:
        path = url.split("?", 1)[0].split("://", 1)[-1].split("/", 1)[-1]
        return _CROP.sub(r"\1", path).rsplit("/", 1)[0]

    return key(got) == key(expected)


# --- running -------------------------------------------------------------------------------


def trafilatura_record(html_bytes: bytes, url: str) -> dict | None:
    """trafilatura's extraction of a page, shaped like our record (for the side-by-side)."""
    result = trafilatura.bare_extraction(
        html_bytes.decode("utf-8", errors="replace"),
        url=url,
        with_metadata=True,
        include_comments=False,
        include_tables=False,
    )
    if result is None or not result.text:
        return None
    return {
        "title": result.title,
        "authors": [a.strip() for a in (result.author or "").split(";") if a.strip()],
        "published": result.date,
        "paragraphs": [p for p in (clean_text(t) for t in result.text.split("\n")) if p],
        "images": [{"url": result.image, "caption": None}] if result.image else [],
        "description": result.description,
        "language": result.language,
    }


@dataclass
class Report:
    """Per-field pass counts of both extractors, and the failed checks for the details."""

    ours: Counter = field(default_factory=Counter)
    theirs: Counter = field(default_factory=Counter)
    totals: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def rate(self, name: str, counter: Counter | None = None) -> float:
        counter = self.ours if counter is None else counter
        return counter[name] / self.totals[name] if self.totals[name] else 1.0

    def overall(self, counter: Counter) -> float:
        total = sum(self.totals.values())
        return sum(counter.values()) / total if total else 1.0

    def table(self) -> str:
        rows = [f"{'field':<18}{'checks':>7}{'nyt':>14}{'trafilatura':>18}"]
        for name in FIELDS:
            if self.totals[name]:
                rows.append(
                    f"{name:<18}{self.totals[name]:>7}"
                    f"{self.ours[name]:>6} {self.rate(name):>6.0%}"
                    f"{self.theirs[name]:>10} {self.rate(name, self.theirs):>6.0%}"
                )
        rows.append(
            f"{'overall':<18}{sum(self.totals.values()):>7}"
            f"{sum(self.ours.values()):>6} {self.overall(self.ours):>6.0%}"
            f"{sum(self.theirs.values()):>10} {self.overall(self.theirs):>6.0%}"
        )
        return "\n".join(rows)


def evaluate(pages_dir: Path, onion_map: OnionMap, warc_path: Path) -> Report:
    """Pack, extract and score: the whole evaluation."""
    entries = pack(pages_dir, warc_path, onion_map)
    records: dict[str, dict] = {}
    extractor = FileExtractor(ExtractOptions(onion_map=onion_map.as_dict()))
    extractor.run(
        str(warc_path),
        lambda article: records.__setitem__(article.provenance.warc_record_id, article.to_dict()),
    )
    report = Report()
    for entry in entries:
        page = eotk_rewrite((pages_dir / entry.file).read_bytes(), onion_map)
        theirs = trafilatura_record(page, entry.url)
        ours_checks = score(entry.expected, records.get(entry.record_id))
        for (name, ok, detail), (_, their_ok, _) in zip(
            ours_checks, score(entry.expected, theirs), strict=True
        ):
            report.totals[name] += 1
            report.ours[name] += ok
            report.theirs[name] += their_ok
            if not ok:
                report.failures.append(f"{entry.file}: {name}: got {detail}")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m crawler.extract.evaluate", description=__doc__.split("\n")[0]
    )
    parser.add_argument("pages", type=Path, help="the nyt-pages directory (with manifest.json)")
    parser.add_argument("--warc", type=Path, help="keep the packed WARC at this path")
    parser.add_argument("-s", dest="settings", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args(argv)
    if not (args.pages / "manifest.json").exists():
        parser.error(f"{args.pages} has no manifest.json")
    from scrapy.settings import Settings

    settings = Settings()
    settings.setmodule("settings", priority="project")
    for assignment in args.settings:
        name, _, value = assignment.partition("=")
        settings.set(name, value, priority="cmdline")
    onion_map = OnionMap.from_setting(settings.get("ONION_MAP"))
    with tempfile.TemporaryDirectory() as tmp:
        warc_path = args.warc or Path(tmp) / "nyt-pages.warc.gz"
        report = evaluate(args.pages, onion_map, warc_path)
    print(report.table())
    if report.failures:
        print("\nfailed checks (nyt parser):")
        for failure in report.failures:
            print("  " + failure)
    return 0


if __name__ == "__main__":
    sys.exit(main())
