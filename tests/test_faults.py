"""Faults during whole crawls (``scrapy crawl nytimes`` in a subprocess, through the private Tor
network, under the audit recorder of tests/auditcrawl.py): Tor's control port refusing us or
not answering, the Tor client stopped mid-crawl, onion services unreachable, SIGKILL at random
points, and a disk that fills up. Every crawl is also a leak test: it may contact nothing but
Tor's SOCKS and control ports, and resolves no crawled name.

The writer-level cases (SIGKILL of the WARC writer alone, a full tmpfs for the writer alone,
TorController auth errors) are in test_warc_files.py and test_control.py.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from auditcrawl import Run, finish, onion_services, run_scrapy, seeded_onion, start_scrapy
from test_handler import free_port
from test_leaks import project_settings
from warc_samples import assert_valid_warc
from warcio.archiveiterator import ArchiveIterator

from crawler.tor.control import LaunchedTor, launch_tor

pytestmark = [pytest.mark.tor, pytest.mark.slow]

SECRET = "control-secret-5d1e0b7a"


def assert_only_tor_contacted(run: Run, socks_url: str, control_ports: set[int]) -> None:
    socks_port = int(socks_url.rsplit(":", 1)[1])
    allowed = {repr(("127.0.0.1", port)) for port in {socks_port, *control_ports}}
    assert run.connects() <= allowed, run.connects() - allowed
    crawled = ("onion", "nytimes", "nyt.com", "example")
    assert not [name for name in run.lookups() if any(c in name for c in crawled)]
    assert "NetworkLeak" not in run.log


def captures(warc_dir: Path) -> Counter:
    """Response records per target URI over every finished WARC file (revisits not counted)."""
    found: Counter = Counter()
    for path in sorted(warc_dir.glob("*.warc.gz")):
        with open(path, "rb") as stream:
            for record in ArchiveIterator(stream):
                if record.rec_type == "response":
                    found[record.rec_headers.get_header("WARC-Target-URI")] += 1
    return found


# --- the control port ------------------------------------------------------------------------


def _hashed(password: str) -> str:
    done = subprocess.run(
        ["tor", "--quiet", "--hash-password", password], capture_output=True, text=True, timeout=30
    )
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def password_tor(tmp_path_factory) -> Iterator[LaunchedTor]:
    """A real, offline tor whose control port takes only a password (no cookie)."""
    tor = launch_tor(
        tmp_path_factory.mktemp("password-tor"),
        {
            "DisableNetwork": "1",
            "CookieAuthentication": "0",
            "HashedControlPassword": _hashed(SECRET),
        },
    )
    yield tor
    tor.stop()


def _control_crawl(tmp_path, tor_network, control_url: str, **extra) -> Run:
    settings = project_settings(
        tmp_path,
        tor_network,
        TOR_CONTROL_URL=control_url,
        TOR_CONTROL_TIMEOUT=3,
        TOR_BOOTSTRAP_TIMEOUT=3,
        LOG_LEVEL="DEBUG",
        **extra,
    )
    return run_scrapy(tmp_path, ["crawl", "nytimes"], settings, timeout=90)


@pytest.mark.timeout(180)
def test_control_port_refusing_the_password_stops_the_crawl_clearly(
    tmp_path, tor_network, password_tor
):
    run = _control_crawl(
        tmp_path, tor_network, password_tor.control_url, TOR_CONTROL_PASSWORD="not-" + SECRET
    )
    assert "Tor rejected TOR_CONTROL_PASSWORD" in run.log, run.log[-3000:]
    assert "'finish_reason': 'tor_preflight_failed'" in run.log
    assert SECRET not in run.log
    assert run.elapsed < 60
    control_port = int(password_tor.control_url.rsplit(":", 1)[1])
    assert_only_tor_contacted(run, tor_network.socks_url, {control_port})
    socks = repr(("127.0.0.1", int(tor_network.socks_url.rsplit(":", 1)[1])))
    assert socks not in run.connects(), "no request was sent before the preflight failed"


@pytest.mark.timeout(180)
def test_control_port_that_never_answers_fails_within_the_timeout(
    tmp_path, tor_network, password_tor
):
    os.kill(password_tor.process.pid, signal.SIGSTOP)  # the kernel still accepts connections
    try:
        run = _control_crawl(
            tmp_path, tor_network, password_tor.control_url, TOR_CONTROL_PASSWORD=SECRET
        )
    finally:
        os.kill(password_tor.process.pid, signal.SIGCONT)
    assert "Tor preflight failed" in run.log, run.log[-3000:]
    assert "'finish_reason': 'tor_preflight_failed'" in run.log
    assert SECRET not in run.log
    assert run.elapsed < 60, "bounded by TOR_CONTROL_TIMEOUT, not a hang"
    control_port = int(password_tor.control_url.rsplit(":", 1)[1])
    assert_only_tor_contacted(run, tor_network.socks_url, {control_port})


# --- the Tor client stopped mid-crawl --------------------------------------------------------


def _front_crawl_settings(tmp_path: Path, tor_network, **extra) -> dict:
    settings = {"SPIDER_SITEMAPS": False, "DEPTH_LIMIT": 1, "LOG_LEVEL": "INFO", **extra}
    return project_settings(tmp_path, tor_network, JOBDIR=str(tmp_path / "job"), **settings)


@pytest.mark.timeout(400)
def test_tor_stopped_for_30_s_mid_crawl_pauses_and_loses_nothing(
    tmp_path_factory, onion_mirror, tor_network
):
    start = "start_urls=https://www.nytimes.com/section/world,https://www.nytimes.com/section/arts"
    args = ["crawl", "nytimes", "-a", start]
    reference_dir = tmp_path_factory.mktemp("tor-restart-reference")
    reference = run_scrapy(
        reference_dir, args, _front_crawl_settings(reference_dir, tor_network), timeout=150
    )
    assert reference.returncode == 0, reference.log[-3000:]
    expected = captures(reference_dir / "warc")
    assert len(expected) > 10

    faulty_dir = tmp_path_factory.mktemp("tor-restart")
    settings = _front_crawl_settings(
        faulty_dir, tor_network, CONCURRENT_REQUESTS=2, DOWNLOAD_DELAY=0.2, LOG_LEVEL="DEBUG"
    )
    process, log_path = start_scrapy(faulty_dir, args, settings)
    deadline = time.monotonic() + 60
    while log_path.read_text().count("Crawled (200)") < 3 and time.monotonic() < deadline:
        assert process.poll() is None, log_path.read_text()[-3000:]
        time.sleep(0.05)
    tor_network.stop_client()
    try:
        time.sleep(30)
        paused_log = log_path.read_text()
    finally:
        tor_network.start_client(timeout=90)
    run = finish(process, log_path, timeout=180)
    assert run.returncode == 0, run.log[-3000:]
    assert "crawl paused" in paused_log and "crawl resumed" in run.log, run.log[-3000:]
    assert "'finish_reason': 'finished'" in run.log
    got = captures(faulty_dir / "warc")
    assert set(got) == set(expected), "no request lost"
    assert max(got.values()) == 1, [uri for uri, n in got.items() if n > 1]
    assert_only_tor_contacted(run, tor_network.socks_url, {tor_network.control_port})
    for path in sorted((faulty_dir / "warc").glob("*.warc.gz")):
        assert_valid_warc(path)


# --- SIGKILL at random points ----------------------------------------------------------------


# --- onion services unreachable --------------------------------------------------------------


@pytest.mark.timeout(300)
def test_unreachable_onions_fail_distinctly_with_bounded_retries_and_the_crawl_goes_on(
    tmp_path, onion_mirror, tor_network
):
    """One onion's backend is down (its descriptor is published, the port behind it closed:
    SOCKS 0x01), another has no descriptor at all (0xF0); the mirror's own hosts work."""
    from onions import MIRROR_ONION_MAP

    gone, _ = seeded_onion(b"onion-archiver faults: never published")
    with onion_services(
        tor_network, [b"onion-archiver faults: dead backend"], {443: free_port()}
    ) as (dead,):
        onion_map = {**MIRROR_ONION_MAP, "deadbackend.com": dead, "gone.com": gone}
        settings = project_settings(
            tmp_path,
            tor_network,
            ONION_MAP=onion_map,
            SPIDER_SITEMAPS=False,
            DEPTH_LIMIT=1,
            JOBDIR=str(tmp_path / "job"),
        )
        start = [
            "https://www.deadbackend.com/section/world",
            "https://www.gone.com/section/world",
            "https://www.nytimes.com/section/world",
        ]
        run = run_scrapy(
            tmp_path, ["crawl", "nytimes", "-a", "start_urls=" + ",".join(start)], settings, 240
        )
    assert run.returncode == 0, run.log[-3000:]
    assert "'finish_reason': 'finished'" in run.log
    report = json.loads(next((tmp_path / "warc").glob("*-report.json")).read_text())
    kinds = report["tor_errors"]
    assert len(kinds) >= 2, kinds  # the dead backend and the missing descriptor, told apart
    got = captures(tmp_path / "warc")
    good = [uri for uri in got if MIRROR_ONION_MAP["nytimes.com"] in uri]
    assert len(good) > 10, "the crawl went on with the reachable host"
    assert not [uri for uri in got if dead in uri or gone in uri]
    for onion in (dead, gone):
        retries = [line for line in run.log.splitlines() if "Retrying" in line and onion in line]
        assert len(retries) <= 2 * 5, retries  # robots.txt and the page, RETRY_TOTAL_MAX each
    assert_only_tor_contacted(run, tor_network.socks_url, {tor_network.control_port})


# --- SIGKILL at random points ----------------------------------------------------------------


@pytest.mark.timeout(600)
def test_twenty_sigkills_on_one_jobdir_then_the_crawl_completes_with_every_page_once(
    tmp_path, tor_network
):
    from mirror import MirrorServer, MirrorSite

    seeds = [b"onion-archiver faults: kill www", b"onion-archiver faults: kill static"]
    www_onion, static_onion = (seeded_onion(seed)[0] for seed in seeds)
    onion_map = {"nytimes.com": www_onion, "nyt.com": static_onion}
    site = MirrorSite(articles=60, onion_map=onion_map, seed=7, edition=0)
    with (
        MirrorServer(site) as server,
        onion_services(tor_network, seeds, {80: server.http_port, 443: server.https_port}),
    ):
        settings = project_settings(
            tmp_path,
            tor_network,
            ONION_MAP=onion_map,
            JOBDIR=str(tmp_path / "job"),
            # about 40 s of work in all, so that twenty kills land in the middle of it
            DOWNLOAD_DELAY=0.3,
            CONCURRENT_REQUESTS_PER_DOMAIN=1,
            LOG_LEVEL="INFO",
        )
        rng = random.Random(20)
        kills, runs = 0, []
        while kills < 20:
            process, log_path = start_scrapy(tmp_path, ["crawl", "nytimes"], settings)
            time.sleep(rng.uniform(1.5, 5.0))
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                kills += 1
            runs.append(finish(process, log_path, timeout=60))
            assert len(runs) < 40, "the crawl keeps finishing before it can be killed"
        final = run_scrapy(tmp_path, ["crawl", "nytimes"], settings, timeout=240)
    assert final.returncode == 0, final.log[-3000:]
    assert "'finish_reason': 'finished'" in final.log
    warc_dir = tmp_path / "warc"
    assert not list(warc_dir.glob("*.open")), "every .open file was repaired and finished"
    for path in sorted(warc_dir.glob("*.warc.gz")):
        assert_valid_warc(path)
    got = captures(warc_dir)
    articles = set(site.all_article_urls(clearnet=False))
    missing = articles - set(got)
    assert not missing, f"{len(missing)} of {len(articles)} articles never captured"
    # Fronts are re-checked by every run (incremental design); articles are fetched once.
    twice = {uri: n for uri, n in got.items() if n > 1 and uri in articles}
    assert not twice, f"articles captured more than once (not as revisits): {twice}"
    for run in [*runs, final]:
        assert_only_tor_contacted(run, tor_network.socks_url, {tor_network.control_port})


# --- the disk fills up -----------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path) -> Iterator[Path]:
    """A 384 KiB tmpfs (mounting needs root, as in CI)."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=384k,mode=0755", "tmpfs", str(mount_point)],
        capture_output=True,
        timeout=30,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode(errors='replace')}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], timeout=30)


@pytest.mark.timeout(300)
def test_a_full_disk_stops_the_crawl_cleanly_and_damages_no_finished_file(
    tmp_path, small_disk, onion_mirror, tor_network
):
    from crawler.warc.files import repair

    warc_dir = small_disk / "warc"
    settings = project_settings(
        tmp_path,
        tor_network,
        WARC_DIR=str(warc_dir),
        CAPTURE_INDEX=str(tmp_path / "index.sqlite3"),
        WARC_MAX_SIZE=60_000,
        SPIDER_SITEMAPS=False,
        DEPTH_LIMIT=1,
        LOG_LEVEL="INFO",
    )
    start = "start_urls=https://www.nytimes.com/section/world,https://www.nytimes.com/section/us"
    run = run_scrapy(tmp_path, ["crawl", "nytimes", "-a", start], settings, timeout=240)
    assert "No space left on device" in run.log, run.log[-3000:]
    assert "WARC writing failed, closing the spider" in run.log
    assert "'finish_reason': 'warc_write_failed'" in run.log
    assert "Traceback" not in run.log, run.log[-6000:]
    finished = sorted(warc_dir.glob("*.warc.gz"))
    assert finished, "files finished before the disk filled"
    for path in finished:
        assert_valid_warc(path)
    left_open = sorted(warc_dir.glob("*.open"))
    assert len(left_open) <= 1
    for path in left_open:  # repairable: copied off the full disk, repaired, valid
        copy = tmp_path / path.name
        copy.write_bytes(path.read_bytes())
        repaired = repair(copy)
        if repaired is not None:
            assert_valid_warc(repaired)
    assert_only_tor_contacted(run, tor_network.socks_url, {tor_network.control_port})


# --- load, small scale (bench/load.py runs the 20,000-article version) -----------------------


@pytest.mark.timeout(400)
def test_a_2000_article_crawl_stays_flat_and_captures_the_mirror_exactly(tmp_path, tor_network):
    """The flatness and exactness checks of bench/load.py on a 2,000-article mirror: RSS,
    open files and throughput of the last quarter against the first, every article captured
    once and reported, only Tor's ports contacted."""
    from mirror import MirrorServer, MirrorSite

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    import load

    seeds = [b"onion-archiver load: www", b"onion-archiver load: static"]
    onion_map = {"nytimes.com": seeded_onion(seeds[0])[0], "nyt.com": seeded_onion(seeds[1])[0]}
    site = MirrorSite(articles=2000, onion_map=onion_map, seed=3, edition=0)
    with (
        MirrorServer(site) as server,
        onion_services(tor_network, seeds, {80: server.http_port, 443: server.https_port}),
    ):
        result = load.run_load(
            site, tor_network, onion_map, tmp_path, per_host=8, interval=1.0, timeout=300
        )
    summary = load.report(result)
    print(summary)
    assert not result.problems, summary
    assert result.figures["extracted_articles"] == result.figures["extracted"] == 2000, summary
