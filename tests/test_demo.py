"""`make demo` end to end (tests/demo.py): its own private Tor network and mirror, a crawl through
Tor into a temporary WARC root, articles extracted from those WARCs, a WACZ, everything stopped.

Each test boots the demo's own Tor network (that is what is being tested), about 15 s each."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import psutil
import pytest
from mirror import MirrorSite
from onions import MIRROR_ONION_MAP
from warcio.archiveiterator import ArchiveIterator

REPO_ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
ARTICLES = 60


def demo_command(warc_root: Path) -> list[str]:
    return [
        sys.executable,
        str(TESTS / "demo.py"),
        "--articles",
        str(ARTICLES),
        "--warc-root",
        str(warc_root),
    ]


def demo_env() -> dict[str, str]:
    """The environment `make demo` gives it (tests/ on the path), plus the netguard."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ["PYTHONPATH"]])}


def demo_tors() -> list[psutil.Process]:
    """tor processes whose data lives under a demo's network directory."""
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if process.info["name"] == "tor" and "demo-tornet-" in cmdline:
            found.append(process)
    return found


def response_uri_at(warc: Path, offset: int) -> str | None:
    with warc.open("rb") as stream:
        stream.seek(offset)
        record = next(iter(ArchiveIterator(stream)))
        assert record.rec_type == "response"
        return record.rec_headers.get_header("WARC-Target-URI")


@pytest.mark.tor
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_demo_extracts_articles_from_warcs_captured_through_tor(tmp_path: Path) -> None:
    result = subprocess.run(
        demo_command(tmp_path),
        cwd=REPO_ROOT,
        env=demo_env(),
        capture_output=True,
        text=True,
        timeout=840,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    # Progress a person can follow: Tor's boot, then Scrapy's periodic stats.
    assert "tor: client bootstrap" in output and "tor network ready" in output
    assert "pages/min" in output
    assert "Spider closed (finished)" in output

    [demo_dir] = tmp_path.glob("demo-*")
    warcs = sorted(demo_dir.glob("*.warc.gz"))
    assert warcs and not list(demo_dir.glob("*.open"))
    assert all(
        warc.with_name(warc.name.removesuffix(".warc.gz") + ".cdxj").exists() for warc in warcs
    )

    site = MirrorSite(articles=ARTICLES, onion_map=MIRROR_ONION_MAP)
    onion_host = f"www.{MIRROR_ONION_MAP['nytimes.com']}"
    records = [json.loads(line) for line in (demo_dir / "articles.jsonl").read_text().splitlines()]
    titles = {}
    for record in records:
        capture = urllib.parse.urlsplit(record["capture_url"])
        assert capture.hostname == onion_host  # fetched as an onion: only Tor can reach it
        # The record comes from a response record of a WARC this demo wrote.
        warc = demo_dir / record["warc_filename"]
        assert response_uri_at(warc, record["warc_offset"]) == record["capture_url"]
        index = site.resolve_article(capture.path)
        if index is not None:
            titles[index] = record["title"]
    assert len(titles) >= ARTICLES * 0.9, f"{len(titles)} of {ARTICLES} articles extracted"
    assert all(site.article(index).title == title for index, title in titles.items())

    wacz = demo_dir / "demo.wacz"
    validation = subprocess.run(
        [str(Path(sys.executable).parent / "wacz"), "validate", "-f", str(wacz)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert validation.returncode == 0, validation.stdout
    assert f"-m crawler.replay {demo_dir} --collection demo" in output
    assert f"Articles extracted:   {len(records)}" in output
    assert output.rstrip().endswith("done; the mirror and the Tor network are stopped")
    assert demo_tors() == []


@pytest.mark.tor
@pytest.mark.slow
@pytest.mark.timeout(400)
def test_ctrl_c_stops_everything_the_demo_started(tmp_path: Path) -> None:
    log = (tmp_path / "demo.log").open("w+")
    process = subprocess.Popen(
        demo_command(tmp_path),
        cwd=REPO_ROOT,
        env=demo_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, like a terminal's foreground job
    )
    try:
        deadline = time.monotonic() + 240
        while "running scrapy crawl" not in Path(log.name).read_text():
            assert process.poll() is None, Path(log.name).read_text()[-3000:]
            assert time.monotonic() < deadline, "the crawl did not start within 240 s"
            time.sleep(0.2)
        assert demo_tors(), "the demo's tor processes should be running"
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        returncode = process.wait(timeout=240)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        log.close()
    output = Path(log.name).read_text()
    assert returncode == 130, output[-3000:]
    assert "interrupted: stopping everything the demo started" in output
    assert "stopping the Tor network" in output and "stopping the mirror" in output
    deadline = time.monotonic() + 30
    while demo_tors():
        assert time.monotonic() < deadline, [p.info["cmdline"] for p in demo_tors()]
        time.sleep(0.5)
    [demo_dir] = tmp_path.glob("demo-*")
    assert not list(demo_dir.glob("*.open"))  # the crawl closed its WARC files
