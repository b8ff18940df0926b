"""Hostile pages (tests/mirror/hostile.py): deep nesting, a 100 MB body, a gzip bomb, an
endless chunked stream, bad charset declarations, redirects to clearnet and to loopback.

First the extractor alone on those payloads (fast), then one crawl with the project's
settings through the private Tor network (the real ``nytimes`` spider under the audit
recorder, then ``scrapy extract`` over what it wrote): the size limits hold, memory stays
bounded, every WARC file is valid, and nothing leaves the onion scope.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import brotli
import pytest
from auditcrawl import REPO_ROOT, run_scrapy
from extract_helpers import ONIONS
from mirror.hostile import CHARSET_CASES, _nested_body, gzip_bomb
from test_leaks import project_settings
from warc_samples import assert_valid_warc
from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from crawler.extract.decode import DecodeError, decode_html
from crawler.extract.extractor import article_from_html
from crawler.extract.page import NotAnArticle

MAXSIZE = 16 << 20  # DOWNLOAD_MAXSIZE of the hostile crawl
ONION_URL = f"https://www.{ONIONS.as_dict()['nytimes.com']}/_test/hostile"


# --- the extractor alone ---------------------------------------------------------------------


def test_extractor_on_a_page_nested_100000_deep_ends_cleanly():
    text = b"".join(_nested_body(100_000)).decode()
    started = time.monotonic()
    try:
        article = article_from_html(text, f"{ONION_URL}/nested", ONIONS)
    except NotAnArticle as exc:
        assert exc.reason  # a clean, counted skip
    else:
        assert all(isinstance(p, str) for p in article.paragraphs)
    assert time.monotonic() - started < 60, "bounded, not quadratic"


@pytest.mark.parametrize("case", sorted(CHARSET_CASES))
def test_extractor_on_bad_charset_declarations_decodes_or_says_why(case):
    content_type, text = CHARSET_CASES[case]
    body = b"<!DOCTYPE html><html><head><title>Charset</title></head><body>" + text
    try:
        decoded = decode_html(body, content_type)
    except DecodeError as exc:
        assert exc.reason in ("unknown-charset", "invalid-utf-8"), exc
        assert case in ("header", "meta", "lying")
        return
    assert "Caf" in decoded and "\ufffd" not in decoded[:20]


BOMBS = {"gzip": gzip_bomb, "br": lambda size: brotli.compress(bytes(size), quality=5)}


@pytest.mark.parametrize("encoding", sorted(BOMBS))
def test_a_bomb_in_a_warc_is_skipped_as_too_large_without_inflating_it(tmp_path, encoding):
    bomb = BOMBS[encoding](1 << 30)
    assert len(bomb) < 2 << 20
    path = tmp_path / "bomb.warc.gz"
    headers = [("Content-Type", "text/html"), ("Content-Encoding", encoding)]
    headers.append(("Content-Length", str(len(bomb))))
    with open(path, "wb") as out:
        writer = WARCWriter(out, gzip=True)
        writer.write_record(
            writer.create_warc_record(
                f"{ONION_URL}/bomb",
                "response",
                payload=io.BytesIO(bomb),
                http_headers=StatusAndHeaders("200 OK", headers, "HTTP/1.1"),
            )
        )
    # in a fresh process, whose own peak is VmHWM: this one's may be high from other tests,
    # and ru_maxrss keeps the peak of the forked pytest across exec
    extraction = subprocess.run(
        [sys.executable, "-c", EXTRACT_AND_REPORT_PEAK, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert extraction.returncode == 0, extraction.stderr[-2000:]
    stats, peak_mb = json.loads(extraction.stdout.splitlines()[-1])
    assert stats.get("too-large") == 1, stats
    assert peak_mb < 300, f"peak RSS {peak_mb:.0f} MB: inflated past EXTRACT_MAX_HTML_BYTES"


EXTRACT_AND_REPORT_PEAK = """
import json, re, sys
from pathlib import Path
from crawler.extract.extractor import ExtractOptions, FileExtractor
result = FileExtractor(ExtractOptions(onion_map={})).run(sys.argv[1], lambda article: None)
peak_kb = re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1)
print(json.dumps([dict(result.stats), int(peak_kb) / 1024]))
"""


# --- a crawl of the hostile pages through Tor ------------------------------------------------


@pytest.fixture(scope="module")
def hostile_crawl(tmp_path_factory, onion_mirror, tor_network):
    """``scrapy crawl nytimes`` of every hostile page and redirect, with DOWNLOAD_MAXSIZE
    16 MiB, under the audit recorder; then ``scrapy extract`` of its WARCs."""
    tmp_path = tmp_path_factory.mktemp("hostile")
    www = onion_mirror.site.www_host
    port = onion_mirror.http_port
    start_urls = [
        f"https://{www}/_test/hostile/nested",
        f"https://{www}/_test/hostile/bomb",
        f"https://{www}/_test/hostile/endless",
        f"https://{www}/_test/big?size=100000000",
        *(f"https://{www}/_test/hostile/charset/{case}" for case in sorted(CHARSET_CASES)),
        f"https://{www}/_test/redirect-clearnet",
        f"https://{www}/_test/redirect-local",
        f"https://{www}/_test/redirect/302?to=http://127.0.0.1:{port}/_test/ok",
        f"https://{www}/_test/redirect/301?to=http://[::1]:{port}/",
        f"https://{www}/_test/redirect/307?to=http://2130706433/",
        f"https://{www}/_test/redirect/308?to=https://www.example.net/",
        f"https://{www}/_test/redirect/302?to=https://www.nytimes.com.example.net/",
    ]
    settings = project_settings(
        tmp_path,
        tor_network,
        DOWNLOAD_MAXSIZE=MAXSIZE,
        DOWNLOAD_WARNSIZE=MAXSIZE // 4,
        DOWNLOAD_TIMEOUT=40,
        ROBOTSTXT_OBEY=False,
        SPIDER_SITEMAPS=False,
        DEPTH_LIMIT=1,
        RETRY_TIMES=0,
        MEMUSAGE_CHECK_INTERVAL_SECONDS=0.5,
        LOG_LEVEL="INFO",
    )
    args = ["crawl", "nytimes", "-a", "start_urls=" + ",".join(start_urls)]
    crawl = run_scrapy(tmp_path, args, settings, timeout=240)
    warc_dir = Path(settings["WARC_DIR"])
    extracted = subprocess.run(
        [sys.executable, "-m", "scrapy", "extract", str(warc_dir), "-o", str(tmp_path / "a.jsonl")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    reports = sorted(warc_dir.glob("*-report.json"))
    return {
        "crawl": crawl,
        "warc_dir": warc_dir,
        "report": json.loads(reports[-1].read_text()) if reports else None,
        "extract": extracted,
        "tor_network": tor_network,
        "mirror": onion_mirror,
    }


def _responses(warc_dir: Path) -> dict[str, dict]:
    """Target URI -> WARC headers of its response record, over every finished file."""
    found: dict[str, dict] = {}
    for path in sorted(warc_dir.glob("*.warc.gz")):
        with open(path, "rb") as stream:
            for record in ArchiveIterator(stream):
                if record.rec_type == "response":
                    uri = record.rec_headers.get_header("WARC-Target-URI")
                    found[uri] = dict(record.rec_headers.headers)
                    found[uri]["length"] = int(record.rec_headers.get_header("Content-Length"))
    return found


@pytest.mark.tor
@pytest.mark.slow
@pytest.mark.timeout(420)
def test_the_crawl_ends_normally_and_every_warc_file_is_valid(hostile_crawl):
    crawl = hostile_crawl["crawl"]
    assert crawl.returncode == 0, crawl.log[-4000:]
    assert "Traceback" not in crawl.log, crawl.log[-6000:]
    assert "NetworkLeak" not in crawl.log
    assert "'finish_reason': 'finished'" in crawl.log
    files = sorted(hostile_crawl["warc_dir"].glob("*.warc.gz"))
    assert files and not list(hostile_crawl["warc_dir"].glob("*.open"))
    for path in files:
        assert_valid_warc(path)


@pytest.mark.tor
@pytest.mark.slow
@pytest.mark.timeout(420)
def test_size_limits_hold_for_big_endless_and_bomb_bodies(hostile_crawl):
    crawl, responses = hostile_crawl["crawl"], _responses(hostile_crawl["warc_dir"])
    by_path = {uri.split(".onion", 1)[1]: headers for uri, headers in responses.items()}
    for path in ("/_test/hostile/endless", "/_test/big?size=100000000"):
        headers = by_path[path]
        assert headers.get("WARC-Truncated") == "length", headers
        assert headers["length"] <= MAXSIZE + (1 << 20), "cut at DOWNLOAD_MAXSIZE"
    bomb = by_path["/_test/hostile/bomb"]
    assert "WARC-Truncated" not in bomb, "the compressed body fits: archived whole"
    assert bomb["length"] < 2 << 20
    # what the download handler and the decompression middleware log, once, for each of them
    www = re.escape(hostile_crawl["mirror"].site.www_host)
    over = rf"larger than download max size \({MAXSIZE}\) in request <GET https://{www}"
    handler = r"\[crawler\.tor\.handler\] WARNING: "
    announced = re.findall(
        rf"{handler}Expected to receive (\d+) bytes which is {over}/_test/big\?size=100000000>\.",
        crawl.log,
    )
    assert announced == ["100000000"], "refused on its Content-Length, before the body"
    endless = re.findall(
        rf"{handler}Received (\d+) bytes which is {over}/_test/hostile/endless>\.", crawl.log
    )
    assert len(endless) == 1 and MAXSIZE < int(endless[0]) <= MAXSIZE + (1 << 20), endless
    inflated = re.findall(
        r"\[scrapy\.downloadermiddlewares\.httpcompression\] WARNING: "
        rf"Ignored response <200 https://{www}/_test/hostile/bomb> because its body "
        rf"\(\d+ B compressed, (\d+) B decompressed so far\) exceeded DOWNLOAD_MAXSIZE "
        rf"\({MAXSIZE} B\) during decompression\.",
        crawl.log,
    )
    assert len(inflated) == 1, "the bomb was dropped while inflating"
    assert MAXSIZE < int(inflated[0]) <= MAXSIZE + (1 << 20), "inflated only up to the cap"
    memory = [line for line in crawl.log.splitlines() if "'memusage/max'" in line]
    peak = int(memory[-1].split("'memusage/max':")[1].split(",")[0]) if memory else None
    assert peak is not None and peak < 600 << 20, f"peak RSS {peak} with a 1 GiB bomb"


@pytest.mark.tor
@pytest.mark.slow
@pytest.mark.timeout(420)
def test_nested_and_badly_declared_pages_are_archived_whole(hostile_crawl):
    responses = _responses(hostile_crawl["warc_dir"])
    paths = {uri.split(".onion", 1)[1] for uri in responses}
    assert "/_test/hostile/nested" in paths
    for case in CHARSET_CASES:
        assert f"/_test/hostile/charset/{case}" in paths
    for uri, headers in responses.items():
        if "/hostile/nested" in uri or "/charset/" in uri:
            assert "WARC-Truncated" not in headers, uri


@pytest.mark.tor
@pytest.mark.slow
@pytest.mark.timeout(420)
def test_redirects_off_the_onion_scope_are_dropped_and_nothing_leaves(hostile_crawl):
    crawl, tor_network, mirror = (hostile_crawl[k] for k in ("crawl", "tor_network", "mirror"))
    responses = _responses(hostile_crawl["warc_dir"])
    assert f"https://{mirror.site.www_host}/section/world" in responses, "mapped, then fetched"
    for host in ("127.0.0.1", "[::1]", "2130706433", "www.example.net", "nytimes.com.example"):
        assert not [uri for uri in responses if f"//{host}" in uri], host
    dropped = crawl.log.count("Dropped <GET")
    assert dropped >= 6, crawl.log[-4000:]
    socks_port = int(tor_network.socks_url.rsplit(":", 1)[1])
    allowed = {repr(("127.0.0.1", socks_port)), repr(("127.0.0.1", tor_network.control_port))}
    assert crawl.connects() <= allowed, crawl.connects()
    assert repr(("127.0.0.1", socks_port)) in crawl.connects()
    crawled = ("onion", "nytimes", "example", "2130706433")
    assert not [name for name in crawl.lookups() if any(c in name for c in crawled)]


@pytest.mark.tor
@pytest.mark.slow
@pytest.mark.timeout(420)
def test_extracting_the_hostile_warcs_counts_instead_of_crashing(hostile_crawl):
    extracted = hostile_crawl["extract"]
    assert extracted.returncode == 0, extracted.stderr[-3000:]
    assert "Traceback" not in extracted.stderr
    skipped = next(line for line in extracted.stderr.splitlines() if "skipped:" in line)
    counts = Counter(
        {
            name.strip(): int(count)
            for name, count in (item.rsplit(" ", 1) for item in skipped.split(":", 1)[1].split(","))
        }
    )
    assert counts["too-large"] >= 1, skipped  # the bomb, never inflated past the limit
    assert counts["truncated-capture"] >= 2, skipped  # the 100 MB and the endless bodies
    assert counts["unknown-charset"] >= 2, skipped  # charset/header and charset/meta
    assert "damaged: none" in extracted.stderr
