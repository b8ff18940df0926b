"""Security properties of a whole crawl: no credential or operator identity in logs and WARCs,
restrictive file permissions by default, and no path built from settings or URLs escaping its
directory. The leak audit over crawls (only Tor's ports contacted) is in test_leaks.py,
test_hostile.py and test_faults.py."""

from __future__ import annotations

import gzip
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from auditcrawl import run_scrapy
from extract_helpers import mirror_pages, mirror_site, write_warc
from hypothesis import given, settings
from hypothesis import strategies as st
from test_leaks import project_settings

from crawler.extract.output import MarkdownSink, markdown_filename

REPO_ROOT = Path(__file__).resolve().parent.parent

SECRET = "pw-7f3a9c41e6b2-do-not-log"


def _operator_identity() -> list[str]:
    """This machine's host name and non-loopback addresses (what must not be archived)."""
    found = [socket.gethostname()]
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family in (socket.AF_INET, socket.AF_INET6):
                ip = address.address.split("%", 1)[0]
                if not ip.startswith(("127.", "::1", "fe80:")):
                    found.append(ip)
    return [item for item in found if len(item) >= 4 and item != "localhost"]


def _readable(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.name.endswith(".gz") else data


@pytest.fixture(scope="module")
def debug_crawl(tmp_path_factory, onion_mirror, tor_network):
    """A ``scrapy crawl nytimes`` of 15 pages at LOG_LEVEL DEBUG, with TOR_CONTROL_PASSWORD
    set (the client uses cookie auth, so it is configured but unused), under umask 022."""
    tmp_path = tmp_path_factory.mktemp("security")
    settings = project_settings(
        tmp_path,
        tor_network,
        TOR_CONTROL_PASSWORD=SECRET,
        CLOSESPIDER_PAGECOUNT=15,
        LOG_LEVEL="DEBUG",
        SPIDER_SITEMAPS=False,
        JOBDIR=str(tmp_path / "job"),
    )
    start = f"https://www.nytimes.com{onion_mirror.site.article_path(3)}"
    previous = os.umask(0o022)
    try:
        crawl = run_scrapy(tmp_path, ["crawl", "nytimes", "-a", f"start_urls={start}"], settings)
    finally:
        os.umask(previous)
    return crawl, Path(settings["WARC_DIR"]), tor_network


@pytest.mark.tor
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_control_credentials_appear_in_no_log_or_file(debug_crawl):
    crawl, warc_dir, tor_network = debug_crawl
    assert crawl.returncode == 0, crawl.log[-4000:]
    assert "Tor 0." in crawl.log, "the control port was used (preflight)"
    cookie = tor_network.client_cookie_path.read_bytes()
    secrets = [SECRET, cookie.hex(), cookie.hex().upper()]
    files = [p for p in warc_dir.rglob("*") if p.is_file()]
    assert any(p.name.endswith(".warc.gz") for p in files)
    for secret in secrets:
        assert secret not in crawl.log
        for path in files:
            assert secret.encode() not in _readable(path), path


@pytest.mark.tor
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_warcs_and_logs_carry_no_operator_hostname_or_address(debug_crawl):
    crawl, warc_dir, _ = debug_crawl
    identity = _operator_identity()
    assert identity, "nothing to look for"
    for path in warc_dir.rglob("*"):
        if path.is_file() and not path.name.endswith(".sqlite3"):
            data = _readable(path)
            for item in identity:
                assert item.encode() not in data, (item, path)
    for item in identity:
        assert item not in crawl.log, item


@pytest.mark.tor
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_files_and_directories_are_not_world_accessible_by_default(debug_crawl):
    _, warc_dir, _ = debug_crawl
    paths = [warc_dir, *warc_dir.rglob("*")]
    assert len(paths) > 3
    exposed = {
        str(path.relative_to(warc_dir.parent)): oct(stat.S_IMODE(path.stat().st_mode))
        for path in paths
        if stat.S_IMODE(path.stat().st_mode) & 0o007
    }
    assert not exposed, f"world-accessible under umask 022: {exposed}"


@pytest.mark.parametrize("output_format", ["jsonl", "md"])
def test_extracted_articles_are_not_world_readable_by_default(tmp_path, output_format):
    site, pages = mirror_site()
    warc = tmp_path / "a.warc.gz"
    write_warc(warc, mirror_pages(site, pages, range(3)))
    output = tmp_path / ("articles.jsonl" if output_format == "jsonl" else "articles")
    if output_format == "jsonl":
        output.touch(mode=0o644)  # an older, world-readable file: replaced, mode and all
    done = subprocess.run(
        [sys.executable, "-m", "scrapy", "extract", warc, "-o", output, "--format", output_format],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=lambda: os.umask(0o022),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    written = [output, *output.rglob("*")]
    assert len(written) == (1 if output_format == "jsonl" else 4), written
    for path in written:
        want = 0o750 if path.is_dir() else 0o640
        assert stat.S_IMODE(path.stat().st_mode) == want, (path, oct(path.stat().st_mode))


@pytest.mark.parametrize("prefix", ["../escape", "/tmp/abs", "a/b", "..", ".hidden/x"])
def test_a_warc_prefix_that_could_leave_warc_dir_stops_the_crawl_with_a_clear_error(
    tmp_path, prefix
):
    warc_dir = tmp_path / "sandbox" / "warc"
    settings = {
        "WARC_DIR": str(warc_dir),
        "WARC_PREFIX": prefix,
        "CAPTURE_INDEX": str(warc_dir / "index.sqlite3"),
        "TOR_CONTROL_URL": "tcp://127.0.0.1:9",  # never reached: the prefix fails first
        "TOR_CONTROL_TIMEOUT": 2,
    }
    crawl = run_scrapy(tmp_path, ["crawl", "nytimes"], settings, timeout=60)
    assert crawl.returncode != 0 or "WARC_PREFIX" in crawl.log
    assert "WARC_PREFIX" in crawl.log and "not allowed" in crawl.log, crawl.log[-3000:]
    outside = [p for p in tmp_path.rglob("*") if "warc" in p.name and warc_dir not in p.parents]
    assert not [p for p in outside if p.suffix in (".gz", ".open", ".cdxj")], outside


def test_validate_prefix_rejects_separators_and_nul():
    from crawler.warc.files import validate_prefix

    for prefix in ("../x", "/abs", "a/b", "a\\b", "a\x00b", "", ".", ".."):
        with pytest.raises(ValueError, match="WARC_PREFIX"):
            validate_prefix(prefix)
    assert validate_prefix("nyt-2026.daily") == "nyt-2026.daily"


RECORD = {"title": "t", "paragraphs": [], "authors": [], "images": [], "links": []}


@settings(max_examples=300, deadline=None)
@given(
    url=st.one_of(
        st.text(max_size=80),
        st.builds(lambda s: f"https://www.nytimes.com/{s}", st.text(max_size=60)),
    ),
    published=st.one_of(st.none(), st.text(max_size=30), st.just("../../../../etc/x")),
    captured=st.one_of(st.none(), st.text(max_size=30), st.just("/../..")),
)
def test_markdown_names_built_from_records_stay_plain_file_names(url, published, captured):
    name = markdown_filename(
        {**RECORD, "url": url, "published": published, "capture_time": captured}
    )
    assert "/" not in name and "\\" not in name and "\x00" not in name
    assert not name.startswith(".") and name.endswith(".md")


def test_markdown_sink_writes_only_inside_its_directory(tmp_path):
    out = tmp_path / "a" / "b" / "md"
    sink = MarkdownSink(out)
    sink.write(
        {
            **RECORD,
            "url": "https://www.nytimes.com/../../../x/..%2f..%2fevil.html",
            "published": "../../../escaped",
            "capture_time": "../../..",
        }
    )
    sink.close()
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written and all(out in p.parents for p in written), written
