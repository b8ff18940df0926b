"""End to end through the private Tor network: the project's crawl of the onion mirror writes
WARC records whose HTTP blocks are byte for byte what the mirror sent; a full disk stops the
crawl with ``warc_write_failed``."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from onions import MIRROR_ONION_MAP
from test_handler import run_crawl, tor_settings
from warc_samples import assert_valid_warc, read_records, warc_files

MISBEHAVING = [
    "/_test/odd-headers",
    "/_test/chunked?encoding=gzip",
    "/_test/chunked",
    "/_test/cookies",
    "/_test/reason?reason=Fine%20Thanks",
    "/_test/encoding/br",
    "/_test/encoding/gzip",
    "/_test/status/404",
    "/_test/redirect/301?to=/_test/ok",
    "/_test/truncated?length=1000&sent=300",
    "/_test/close",
]


def warc_settings(tmp_path: Path, tor_network, **extra) -> dict:
    settings = {
        "WARC_DIR": str(tmp_path / "warcs"),
        "WARC_PREFIX": "e2e",
        "CAPTURE_INDEX": str(tmp_path / "index.sqlite3"),
        "ONION_MAP": json.dumps(MIRROR_ONION_MAP),
    }
    return tor_settings(tor_network, **{**settings, **extra})


#: ``warcio check`` as its CLI runs it, after giving warcio a decoder for ``br`` bodies: warcio
#: 1.8 decodes them through brotlipy's interface only (``warcio check`` alone crashes on them
#: with Google's Brotli, the ``brotli`` module Scrapy needs); see crawler/replay.py.
WARCIO_CHECK = """
import sys
from crawler.replay import install_brotli_for_warcio
install_brotli_for_warcio()
from warcio.cli import main
main(["check", "-v", sys.argv[1]])
"""


def warcio_check(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", WARCIO_CHECK, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parent.parent,
    )


def exchange_id(block: bytes) -> str:
    head = block.split(b"\r\n\r\n", 1)[0]
    return re.search(rb"(?im)^X-Mirror-Exchange: *(\S+)", head)[1].decode()


@pytest.mark.tor
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_response_records_are_the_bytes_the_mirror_sent(tmp_path, onion_mirror, tor_network):
    site = onion_mirror.site
    urls = [f"https://{site.www_host}{path}" for path in MISBEHAVING]
    urls += [f"http://{site.www_host}/_test/chunked?plain", site.onion_url(site.article_path(3))]
    crawl = run_crawl(tmp_path, urls, warc_settings(tmp_path, tor_network), project=True)
    assert crawl["reason"] == "finished", crawl["log"][-3000:]

    (path,) = warc_files(tmp_path / "warcs")
    assert_valid_warc(path)
    records = read_records(path)
    responses = [(h, b) for h, b in records if h["WARC-Type"] == "response"]
    # every URL, plus the redirect's target
    assert len(responses) == len(urls) + 1
    for headers, block in responses:
        assert block == onion_mirror.sent_bytes(exchange_id(block)), headers["WARC-Target-URI"]
    truncated = [h for h, _ in responses if "WARC-Truncated" in h]
    assert [h["WARC-Target-URI"] for h in truncated] == [
        urls[MISBEHAVING.index("/_test/truncated?length=1000&sent=300")]
    ]

    # warcio check: exactly the chunked responses disagree (it digests the chunk framing)
    check = warcio_check(path)
    assert "Traceback" not in check.stderr, check.stderr[-2000:]
    failed, current = set(), None
    for line in check.stdout.splitlines():
        if match := re.search(r"WARC-Record-ID (<urn:uuid:[^>]+>)", line):
            current = match[1]
        elif "failed" in line:
            failed.add(current)
    chunked = {
        h["WARC-Record-ID"]
        for h, b in responses
        if re.search(rb"(?im)^transfer-encoding: *chunked", b.split(b"\r\n\r\n", 1)[0])
    }
    assert len(chunked) == 3
    assert failed == chunked, check.stdout

    metadata = [b.decode() for h, b in records if h["WARC-Type"] == "metadata"]
    assert len(metadata) == len(responses)
    assert all("tor-isolation: " in m and "timing-done: " in m for m in metadata)
    cdxj = path.with_name(path.name.removesuffix(".warc.gz") + ".cdxj").read_text()
    assert "com,nytimes)/_test/odd-headers " in cdxj
    stats = crawl["stats"]  # the probe's snapshot precedes the writer's close: counters only
    assert stats["warc/truncated"] == 1


@pytest.mark.tor
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_full_disk_stops_the_crawl_and_keeps_what_was_written(tmp_path, onion_mirror, tor_network):
    site = onion_mirror.site
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)],
        capture_output=True,
        timeout=30,
    )
    if mounted.returncode:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        urls = [site.onion_url(site.article_path(i)) for i in range(60)]
        settings = warc_settings(tmp_path, tor_network, WARC_DIR=str(disk), CONCURRENT_REQUESTS=2)
        crawl = run_crawl(tmp_path, urls, settings, project=True)
        assert crawl["reason"] == "warc_write_failed"
        assert "WARC writing failed, closing the spider (warc_write_failed)" in crawl["log"]
        assert "No space left on device" in crawl["log"]
        (leftover,) = disk.glob("*.open")
        # the next start repairs it: here, the same repair run directly
        from crawler.warc.files import repair

        repaired = repair(leftover)
        assert assert_valid_warc(repaired) >= 3
    finally:
        subprocess.run(["umount", "-l", str(disk)], timeout=30, check=False)
