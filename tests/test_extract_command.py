"""``scrapy extract`` end to end, as a user runs it (a real subprocess in the project)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from extract_helpers import Page, mirror_pages, mirror_site, write_warc
from onions import MIRROR_ONION_MAP

from crawler.extract.run import ProgressBar

REPO = Path(__file__).resolve().parent.parent


def scrapy_extract(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "scrapy",
            "extract",
            *map(str, args),
            "-s",
            f"ONION_MAP={json.dumps(MIRROR_ONION_MAP)}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def warcs(tmp_path_factory):
    """Three WARC files of mirror articles; the second has a second capture of article 0."""
    site, pages = mirror_site(articles=40)
    directory = tmp_path_factory.mktemp("warcs")
    write_warc(directory / "a.warc.gz", mirror_pages(site, pages, range(0, 10)))
    later = mirror_pages(site, pages, [0], date="2026-03-01T00:00:00Z")
    write_warc(directory / "b.warc.gz", mirror_pages(site, pages, range(10, 20)) + later)
    write_warc(directory / "sub.warc", mirror_pages(site, pages, range(20, 25)), gz=False)
    (directory / "c.warc.gz.open").write_bytes(b"being written")  # left out
    return site, directory


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_jsonl_output_and_summary(warcs, tmp_path):
    site, directory = warcs
    out = tmp_path / "out.jsonl"
    result = scrapy_extract(directory, "-o", out)
    assert result.returncode == 0, result.stderr
    records = lines(out)
    assert len(records) == 26
    assert [r["url"] for r in records[:10]] == [site.article(i).url for i in range(10)]
    assert "26 article records from 3 files" in result.stderr
    assert "extractor: nyt 26" in result.stderr
    assert "damaged: none" in result.stderr
    # same output, same order, with worker processes
    parallel = tmp_path / "parallel.jsonl"
    result = scrapy_extract(directory, "-o", parallel, "--jobs", "3")
    assert result.returncode == 0, result.stderr
    assert parallel.read_text() == out.read_text()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_latest_only_and_since(warcs, tmp_path):
    site, directory = warcs
    out = tmp_path / "latest.jsonl"
    assert scrapy_extract(directory, "-o", out, "--latest-only").returncode == 0
    records = lines(out)
    assert len(records) == 25
    first = [r for r in records if r["url"] == site.article(0).url]
    assert [r["capture_time"] for r in first] == ["2026-03-01T00:00:00Z"]
    since = tmp_path / "since.jsonl"
    result = scrapy_extract(directory, "-o", since, "--since", "2026-02-01")
    assert result.returncode == 0, result.stderr
    assert [r["url"] for r in lines(since)] == [site.article(0).url]
    assert "before-since 25" in result.stderr


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_markdown_files(warcs, tmp_path):
    site, directory = warcs
    out = tmp_path / "md"
    result = scrapy_extract(directory / "a.warc.gz", "-o", out, "--format", "md")
    assert result.returncode == 0, result.stderr
    files = sorted(out.glob("*.md"))
    assert len(files) == 10
    truth = site.article(3)
    (text,) = [f.read_text() for f in files if truth.url.rsplit("/", 1)[1][:-5] in f.name]
    assert text.startswith(f"# {truth.title}\n")
    for paragraph in truth.paragraphs:
        assert paragraph.replace("*", "\\*").replace("_", "\\_")[:40] in text
    assert "Advertisement" not in text and "Continue reading the main story" not in text


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_bad_inputs_are_reported_and_nothing_readable_is_lost(warcs, tmp_path):
    _site, directory = warcs
    junk = tmp_path / "junk.warc.gz"
    junk.write_bytes(b"this is a shopping list, not a WARC\n" * 10)
    empty = tmp_path / "empty.warc"
    empty.write_bytes(b"")
    out = tmp_path / "out.jsonl"
    result = scrapy_extract(junk, directory / "a.warc.gz", empty, tmp_path / "gone.warc", "-o", out)
    assert result.returncode == 1
    assert len(lines(out)) == 10
    assert "unreadable input:" in result.stderr and "junk.warc.gz: not a WARC" in result.stderr
    assert "gone.warc" in result.stderr and "empty-file 1" in result.stderr


@pytest.mark.slow
def test_usage_errors(tmp_path):
    assert scrapy_extract("-o", tmp_path / "x.jsonl").returncode == 2
    assert scrapy_extract(tmp_path, "-o", tmp_path / "x", "--since", "soon").returncode == 2


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_on_a_terminal():
    terminal, pipe = _Terminal(), io.StringIO()
    for stream in (terminal, pipe):
        bar = ProgressBar(2, stream=stream)
        bar.record()
        bar.file_done()
        bar.file_done(records=3)
        bar.finish()
    assert "[" + "#" * 30 + "] 2/2 files, 4 records" in terminal.getvalue()
    assert pipe.getvalue() == ""


def test_page_helper_pages_are_synthetic():
    # guard: the command tests never read the real NYT pages
    assert Page(url="x", body=b"").encoding == "gzip"
