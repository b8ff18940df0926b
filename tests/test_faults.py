"""Faults during whole crawls (``scrapy crawl nytimes`` in a subprocess, through the private Tor
network, under the audit recorder of tests/auditcrawl.py): Tor's control port refusing us or
not answering, the Tor client stopped mid-crawl, onion services unreachable, SIGKILL at random
points, and a disk that fills up. Every crawl is also a leak test: it may contact nothing but
Tor's SOCKS and control ports, and resolves no crawled name.

The writer-level cases (SIGKILL of the WARC writer alone, a full tmpfs for the writer alone,
TorController auth errors) are in test_warc_files.py and test_control.py.
"""

from __future__ import annotations

import io
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

import settings as project
from crawler.tor import socks
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


#: The record types of a fetch: a ``response``, or a ``revisit`` when WARC_DEDUP (``url`` by
#: default) found the payload already archived. Counting responses alone misses a refetch of an
#: unchanged page.
FETCH_RECORDS = ("response", "revisit")


def captures(warc_dir: Path) -> Counter:
    """Fetches archived per target URI (response and revisit records) over every finished WARC
    file."""
    found: Counter = Counter()
    for path in sorted(warc_dir.glob("*.warc.gz")):
        with open(path, "rb") as stream:
            found += _fetch_records(stream)
    return found


def _fetch_records(stream) -> Counter:
    found: Counter = Counter()
    for record in ArchiveIterator(stream):
        if record.rec_type in FETCH_RECORDS:
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
    # the dead backend (SOCKS 0x01) and the missing descriptor (0xF0), told apart, and nothing
    # else: the reachable host had no Tor error
    expected = {dead: socks.GeneralFailure, gone: socks.OnionDescriptorNotFound}
    kinds = report["tor_errors"]
    assert set(kinds) == {error.kind for error in expected.values()}, kinds
    got = captures(tmp_path / "warc")
    good = [uri for uri in got if MIRROR_ONION_MAP["nytimes.com"] in uri]
    assert len(good) > 10, "the crawl went on with the reachable host"
    assert not [uri for uri in got if dead in uri or gone in uri]
    # Scrapy retries a request RETRY_TIMES times; RETRY_TOTAL_MAX caps all causes together.
    per_request = min(project.RETRY_TIMES, project.RETRY_TOTAL_MAX)
    for onion, error in expected.items():
        lines = [line for line in run.log.splitlines() if onion in line]
        retries = [line for line in lines if "Retrying <GET" in line]
        # robots.txt and the page: each tried, retried for its own error, then given up
        assert 1 <= len(retries) <= 2 * per_request, retries
        assert all(f"(SOCKS reply 0x{error.code:02X})" in line for line in retries), retries
        assert kinds[error.kind] == 2 + len(retries), (kinds, retries)
        gave_up = [line for line in lines if "Gave up retrying <GET" in line]
        assert len(gave_up) == 2, lines
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
        warc_dir = tmp_path / "warc"
        rng = random.Random(20)
        kills, runs = 0, []
        # (index in runs of a killed run, an .open file it left, the fetches archived in it)
        left_open: list[tuple[int, str, int]] = []
        while kills < 20:
            process, log_path = start_scrapy(tmp_path, ["crawl", "nytimes"], settings)
            time.sleep(rng.uniform(1.5, 5.0))
            killed = process.poll() is None
            if killed:
                process.send_signal(signal.SIGKILL)
                kills += 1
            runs.append(finish(process, log_path, timeout=60))
            assert len(runs) < 40, "the crawl keeps finishing before it can be killed"
            if killed:
                known = {name for _, name, _ in left_open}
                for path in sorted(warc_dir.glob("*.open")):
                    if path.name not in known:
                        left_open.append((len(runs) - 1, path.name, _fetches_in_open(path)))
        final = run_scrapy(tmp_path, ["crawl", "nytimes"], settings, timeout=240)
    assert final.returncode == 0, final.log[-3000:]
    assert "'finish_reason': 'finished'" in final.log
    # The kills landed mid-crawl, not only in start-up: killed runs left .open files holding
    # archived fetches, and a later run repaired and finished each of them.
    mid_crawl = [(index, name) for index, name, fetches in left_open if fetches]
    assert len(mid_crawl) >= 5, f"only {len(mid_crawl)} of 20 kills hit a crawl that archived"
    for index, name in mid_crawl:
        final_name = name.removesuffix(".open")
        assert any(
            "finished leftover WARC file" in line and final_name in line
            for later in [*runs[index + 1 :], final]
            for line in later.log.splitlines()
        ), f"{name}, left by kill run {index}, was never repaired"
    assert not list(warc_dir.glob("*.open")), "every .open file was repaired and finished"
    for path in sorted(warc_dir.glob("*.warc.gz")):
        assert_valid_warc(path)
    got = captures(warc_dir)
    articles = set(site.all_article_urls(clearnet=False))
    missing = articles - set(got)
    assert not missing, f"{len(missing)} of {len(articles)} articles never captured"
    # Only articles must be fetched once: robots.txt, fronts and undated sitemaps are fetched
    # in full by every run (the incremental design: they are how new articles are found), so
    # each of the 20+ runs legitimately archives them again.
    twice = {uri: n for uri, n in got.items() if n > 1 and uri in articles}
    assert not twice, f"articles fetched more than once (responses and revisits): {twice}"
    for run in [*runs, final]:
        assert_only_tor_contacted(run, tor_network.socks_url, {tor_network.control_port})


def _fetches_in_open(path: Path) -> int:
    """Fetch records (response, revisit) in the whole records of an ``.open`` WARC file."""
    from crawler.warc.files import complete_length

    with open(path, "rb") as stream:
        whole = stream.read(complete_length(path))
    return sum(_fetch_records(io.BytesIO(whole)).values())


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
    from crawler.warc.files import complete_length, repair

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
    # The file whose write failed stays .open (WarcFile.finish never renames a failed file, and
    # no file is opened after the failure), cut back to the end of its last whole record.
    (left_open,) = sorted(warc_dir.glob("*.open"))
    serials = [int(path.name.split("-")[-2]) for path in [*finished, left_open]]
    assert serials == list(range(len(finished) + 1)), "the newest file, after every finished one"
    size = left_open.stat().st_size
    assert complete_length(left_open) == size, "the failed write was rolled back"
    copy = tmp_path / left_open.name  # repaired off the full disk
    copy.write_bytes(left_open.read_bytes())
    repaired = repair(copy)
    if size == 0:
        # Only when what failed was the warcinfo record of a file just opened on rotation (the
        # file starts with it): then there is nothing to keep and repair removes the file.
        assert repaired is None and not copy.exists()
    else:
        assert repaired is not None
        assert repaired.stat().st_size == size, "repair kept every byte: all whole records"
        assert_valid_warc(repaired)
        with open(repaired, "rb") as stream:
            assert next(iter(ArchiveIterator(stream))).rec_type == "warcinfo"
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
