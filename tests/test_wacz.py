"""`scrapy wacz`: WARCs (made here with warcio), their CDXJ and article records into a WACZ that
py-wacz's `wacz validate` accepts and pywb's `wb-manager` can load."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from io import BytesIO
from pathlib import Path

import pytest
from onions import MIRROR_ONION_MAP
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from crawler.commands.wacz import sorted_cdxj
from crawler.tor.onion import OnionMap
from crawler.warc.cdxj import write_cdxj

REPO_ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
ONION = MIRROR_ONION_MAP["nytimes.com"]
ARTICLE_PATH = "/2016/12/10/world/middleeast/aleppo-evacuation.html"
ONION_URL = f"https://www.{ONION}{ARTICLE_PATH}"
CLEARNET_URL = f"https://www.nytimes.com{ARTICLE_PATH}"
HEADLINE = "Evacuation Stalls as Talks Resume"


def write_warc(path: Path, url: str, body: bytes) -> None:
    """A WARC with one HTML response (and its request) for *url*."""
    with path.open("wb") as out:
        writer = WARCWriter(out, gzip=True)
        headers = StatusAndHeaders(
            "200 OK",
            [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body)))],
            protocol="HTTP/1.1",
        )
        response = writer.create_warc_record(
            url, "response", payload=BytesIO(body), http_headers=headers
        )
        writer.write_record(response)
        request_headers = StatusAndHeaders(
            f"GET {url.split('.onion', 1)[1]} HTTP/1.1", [("Host", url.split("/")[2])]
        )
        writer.write_record(
            writer.create_warc_record(
                url, "request", payload=BytesIO(b""), http_headers=request_headers
            )
        )


@pytest.fixture
def warc_dir(tmp_path: Path) -> Path:
    """Two finished WARCs (one with the CDXJ the WARC writer makes, clearnet aliases included,
    one without a CDXJ) and a WARC still being written (``.open``)."""
    warcs = tmp_path / "warc_output"
    warcs.mkdir()
    article = f"<html><head><title>{HEADLINE}</title></head><body><h1>{HEADLINE}</h1>"
    article += "<p>First paragraph.</p></body></html>"
    write_warc(warcs / "onion-archiver-1-00000-a.warc.gz", ONION_URL, article.encode())
    write_cdxj(warcs / "onion-archiver-1-00000-a.warc.gz", OnionMap.from_setting(MIRROR_ONION_MAP))
    write_warc(
        warcs / "onion-archiver-1-00001-b.warc.gz",
        f"https://www.{ONION}/section/world",
        b"<html><head><title>World</title></head><body>front</body></html>",
    )
    (warcs / "onion-archiver-1-00002-c.warc.gz.open").write_bytes(b"\x1f\x8b half a record")
    return warcs


@pytest.fixture
def articles(tmp_path: Path, warc_dir: Path) -> Path:
    """One article record as `scrapy extract` writes it, for the capture in the first WARC."""
    cdxj = (warc_dir / "onion-archiver-1-00000-a.cdxj").read_text().splitlines()
    entry = json.loads(next(line for line in cdxj if ONION in line).split(" ", 2)[2])
    record = {
        "url": CLEARNET_URL,
        "capture_url": ONION_URL,
        "title": HEADLINE,
        "authors": ["Anne Barnard"],
        "paragraphs": ["First paragraph."],
        "text": "First paragraph.",
        "warc_filename": entry["filename"],
        "warc_offset": int(entry["offset"]),
        "capture_time": "2026-11-25T04:00:00Z",
        "extractor": "nyt",
    }
    path = tmp_path / "articles.jsonl"
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    return path


def scrapy(*args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scrapy", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def wacz_validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "wacz"), "validate", "-f", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_wacz_packages_warcs_index_and_articles(
    tmp_path: Path, warc_dir: Path, articles: Path
) -> None:
    out = tmp_path / "crawl.wacz"
    result = scrapy("wacz", str(warc_dir), "-o", str(out), "--articles", str(articles))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "still being written" in result.stdout and ".open" in result.stdout

    validation = wacz_validate(out)
    assert validation.returncode == 0, validation.stdout + validation.stderr
    assert "the passed WACZ is valid" in validation.stdout

    with zipfile.ZipFile(out) as wacz:
        names = set(wacz.namelist())
        assert names == {
            "archive/onion-archiver-1-00000-a.warc.gz",
            "archive/onion-archiver-1-00001-b.warc.gz",
            "indexes/index.cdx",
            "pages/pages.jsonl",
            "articles/articles.jsonl",
            "datapackage.json",
            "datapackage-digest.json",
        }
        for name in names:
            if name.startswith("archive/"):
                assert wacz.read(name) == (warc_dir / Path(name).name).read_bytes()
                assert wacz.getinfo(name).compress_type == zipfile.ZIP_STORED
        index = wacz.read("indexes/index.cdx").decode().splitlines()
        assert index == sorted(index)
        urls = [json.loads(line.split(" ", 2)[2])["url"] for line in index]
        assert CLEARNET_URL in urls and ONION_URL in urls  # the alias line is kept
        assert f"https://www.{ONION}/section/world" in urls  # indexed here: it had no CDXJ
        pages = [json.loads(line) for line in wacz.read("pages/pages.jsonl").splitlines()]
        assert pages[0]["format"] == "json-pages-1.0" and pages[0]["hasText"] is True
        assert [(p["url"], p["title"], p["text"]) for p in pages[1:]] == [
            (ONION_URL, HEADLINE, "First paragraph.")
        ]
        assert wacz.read("articles/articles.jsonl") == articles.read_bytes()


def test_wacz_defaults_to_warc_dir_and_lists_html_pages(tmp_path: Path, warc_dir: Path) -> None:
    out = tmp_path / "default.wacz"
    result = scrapy("wacz", "-o", str(out), "-s", f"WARC_DIR={warc_dir}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert wacz_validate(out).returncode == 0
    with zipfile.ZipFile(out) as wacz:
        pages = [json.loads(line) for line in wacz.read("pages/pages.jsonl").splitlines()]
    assert {p["url"] for p in pages[1:]} == {
        ONION_URL,
        CLEARNET_URL,
        f"https://www.{ONION}/section/world",
    }


def test_pywb_loads_the_wacz_with_its_clearnet_aliases(
    tmp_path: Path, warc_dir: Path, articles: Path
) -> None:
    out = tmp_path / "crawl.wacz"
    assert scrapy("wacz", str(warc_dir), "-o", str(out)).returncode == 0
    for args in (["init", "crawl"], ["add", "--unpack-wacz", "crawl", str(out)]):
        subprocess.run([str(VENV_BIN / "wb-manager"), *args], cwd=tmp_path, check=True, timeout=120)
    collection = tmp_path / "collections" / "crawl"
    index = (collection / "indexes" / "index.cdxj").read_text()
    assert f"com,nytimes){ARTICLE_PATH} " in index
    assert len(list((collection / "archive").glob("*.warc.gz"))) == 2


def test_tampered_wacz_fails_validation(tmp_path: Path, warc_dir: Path, articles: Path) -> None:
    out = tmp_path / "crawl.wacz"
    assert (
        scrapy("wacz", str(warc_dir), "-o", str(out), "--articles", str(articles)).returncode == 0
    )
    tampered = tmp_path / "tampered.wacz"
    with zipfile.ZipFile(out) as source, zipfile.ZipFile(tampered, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "articles/articles.jsonl":
                data = data.replace(HEADLINE.encode(), b"Something Else Entirely")
            target.writestr(info, data)
    validation = wacz_validate(tampered)
    assert validation.returncode == 1
    assert "invalid" in validation.stdout


def test_bad_article_line_fails_clearly_and_leaves_no_file(
    tmp_path: Path, warc_dir: Path, articles: Path
) -> None:
    with articles.open("a", encoding="utf-8") as out:
        out.write("{not json\n")
    out = tmp_path / "crawl.wacz"
    result = scrapy("wacz", str(warc_dir), "-o", str(out), "--articles", str(articles))
    assert result.returncode == 1
    assert f"scrapy wacz: {articles}:2: not JSON" in result.stderr
    assert not out.exists() and not out.with_name(out.name + ".open").exists()


def test_no_finished_warc_fails_clearly(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = scrapy("wacz", str(empty), "-o", str(tmp_path / "x.wacz"))
    assert result.returncode == 1
    assert "scrapy wacz: no finished WARC file to package" in result.stderr
    missing = scrapy("wacz", str(tmp_path / "missing"), "-o", str(tmp_path / "x.wacz"))
    assert missing.returncode == 1 and "no such file or directory" in missing.stderr


def test_an_unsorted_cdxj_is_sorted_before_the_merge(tmp_path: Path, warc_dir: Path) -> None:
    warc = warc_dir / "onion-archiver-1-00000-a.warc.gz"
    cdxj = warc_dir / "onion-archiver-1-00000-a.cdxj"
    lines = cdxj.read_text().splitlines(keepends=True)
    assert len(lines) == 2 and lines == sorted(lines)  # the capture and its clearnet alias
    assert sorted_cdxj(warc, tmp_path) == cdxj  # already sorted: used in place
    cdxj.write_text("".join(reversed(lines)))
    resorted = sorted_cdxj(warc, tmp_path)
    assert resorted.parent == tmp_path and resorted.read_text() == "".join(lines)
