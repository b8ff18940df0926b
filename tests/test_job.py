"""The scheduled-job wrapper (crawler/job.py): the lock, failure exits, graceful stop.

The successful end-to-end run (preflight, crawl and extraction through the private Tor network)
is `tests/test_demo.py`, whose driver runs this wrapper."""

from __future__ import annotations

import fcntl
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from onions import MIRROR_ONION_MAP
from scrapy.settings import Settings

from crawler.job import (
    EXIT_CRAWL_FAILED,
    EXIT_LOCKED,
    EXIT_TOR_UNAVAILABLE,
    Job,
    JobFailed,
    JobLock,
    StepRunner,
)
from crawler.tor.onion import onion_address_from_public_key

REPO_ROOT = Path(__file__).resolve().parent.parent

SLEEPY_SPIDER = """
import asyncio
import scrapy

class Sleepy(scrapy.Spider):
    name = "sleepy"

    async def start(self):
        self.logger.info("sleepy started")
        await asyncio.sleep(60)
        return
        yield
"""


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_job(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crawler.job", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def no_tor_settings(warc_dir: Path) -> list[str]:
    port = closed_port()
    return [
        "-s", f"WARC_DIR={warc_dir}",
        "-s", f"TOR_SOCKS_URL=socks5h://127.0.0.1:{port}",
        "-s", f"TOR_CONTROL_URL=tcp://127.0.0.1:{port}",
        "-s", "TOR_BOOTSTRAP_TIMEOUT=5",
    ]  # fmt: skip


def crawl_args(*overrides: str, crawl_timeout: float) -> list[str]:
    # not project_settings(): Scrapy's get_project_settings() exports SCRAPY_SETTINGS_MODULE
    # into this process's environment, and every job started after would think it is in the
    # project directory
    settings = Settings({"WARC_DIR": "/srv/warcs"})
    runner = StepRunner(io.StringIO(), JobLock(Path(os.devnull)))
    return Job(settings, overrides, ["since=2026-01-01"], None, crawl_timeout, runner).crawl_args()


@pytest.mark.parametrize(
    ("crawl_timeout", "budget"),
    [(6 * 3600, "CLOSESPIDER_TIMEOUT=21000"), (60, "CLOSESPIDER_TIMEOUT=54")],
)
def test_the_crawl_closes_itself_before_the_job_timeout(crawl_timeout, budget) -> None:
    """A whole site takes longer than any schedule: the crawl must end as closespider_timeout
    (a success, whose WARCs are extracted), not be stopped by the wrapper (exit 70)."""
    args = crawl_args("WARC_DIR=/srv/warcs", crawl_timeout=crawl_timeout)
    assert args[:2] == ["crawl", "nytimes"] and args[-2:] == ["-a", "since=2026-01-01"]
    assert [args[i + 1] for i, a in enumerate(args) if a == "-s"] == [
        "WARC_DIR=/srv/warcs",
        "CRAWL_REPORT=True",
        budget,
    ]
    mine = crawl_args("CLOSESPIDER_TIMEOUT=100", crawl_timeout=crawl_timeout)
    assert [a for a in mine if a.startswith("CLOSESPIDER_TIMEOUT=")] == ["CLOSESPIDER_TIMEOUT=100"]


def test_a_held_lock_stops_the_run_before_anything_starts(tmp_path: Path) -> None:
    lock_path = tmp_path / "job.lock"
    with lock_path.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("4242\n")
        held.flush()
        result = run_job("--lock", str(lock_path), *no_tor_settings(tmp_path / "warcs"))
    assert result.returncode == EXIT_LOCKED
    assert f"another run (pid 4242) holds the lock {lock_path}; not starting" in result.stderr
    assert "running scrapy" not in result.stdout


def test_tor_preflight_failure_exits_69_with_the_reason(tmp_path: Path) -> None:
    result = run_job(*no_tor_settings(tmp_path / "warcs"))
    assert result.returncode == EXIT_TOR_UNAVAILABLE, result.stdout + result.stderr
    assert "onion-archiver job: Tor preflight failed (scrapy torcheck exit 1): " in result.stderr
    assert "cannot connect to Tor's control port" in result.stderr.splitlines()[-1]
    assert "running scrapy crawl" not in result.stdout  # nothing crawled without Tor
    assert not list((tmp_path / "warcs").glob("*.warc*"))
    # whatever this process's umask, the job's files are not for others
    assert (tmp_path / "warcs").stat().st_mode & 0o777 == 0o750
    assert (tmp_path / "warcs" / ".onion-archiver-job.lock").stat().st_mode & 0o777 == 0o640
    # The lock was released: the next run gets past it (and fails the same way).
    assert run_job(*no_tor_settings(tmp_path / "warcs")).returncode == EXIT_TOR_UNAVAILABLE


def test_bad_arguments_are_a_usage_error(tmp_path: Path) -> None:
    result = run_job("-s", "WARC_DIR")
    assert result.returncode == 2
    assert "expected NAME=VALUE, got 'WARC_DIR'" in result.stderr


def test_outside_the_project_directory_is_a_usage_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "crawler.job"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert f"no scrapy.cfg in {tmp_path}: run it in the project" in result.stderr


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_running_step_keeps_the_lock_and_stops_gracefully_once(tmp_path: Path) -> None:
    """The step inherits the lock: a second run is refused even after the wrapper's own file
    descriptor is closed, until the step ends; a stop request reaches the step once."""
    spider = tmp_path / "sleepy.py"
    spider.write_text(SLEEPY_SPIDER)
    lock = JobLock(tmp_path / "job.lock")
    lock.acquire()
    output = io.StringIO()
    runner = StepRunner(output, lock)
    outcome: list[BaseException | None] = []

    def run_step() -> None:
        try:
            runner.run(["runspider", str(spider), "-s", "ADDONS={}"], timeout=90)
            outcome.append(None)
        except JobFailed as failure:
            outcome.append(failure)

    thread = threading.Thread(target=run_step)
    thread.start()
    deadline = time.monotonic() + 60
    while "sleepy started" not in output.getvalue():
        assert time.monotonic() < deadline, output.getvalue()
        time.sleep(0.2)
    wrapper_fd = lock.fd
    lock.fd = None
    os.close(wrapper_fd)  # the step still holds the lock it inherited
    second = run_job("--lock", str(lock.path), *no_tor_settings(tmp_path / "warcs"))
    assert second.returncode == EXIT_LOCKED, second.stdout + second.stderr

    runner.request_stop(signal.SIGTERM, None)
    thread.join(timeout=90)
    assert not thread.is_alive()
    [failure] = outcome
    assert isinstance(failure, JobFailed)
    assert failure.exit_status == 128 + signal.SIGTERM
    assert str(failure) == "stopped by SIGTERM during scrapy runspider"
    log = output.getvalue()
    assert "Received SIGTERM, shutting down gracefully" in log
    assert "forcefully" not in log  # one stop request, not two
    assert "Spider closed (shutdown)" in log
    third = run_job("--lock", str(lock.path), *no_tor_settings(tmp_path / "warcs"))
    assert third.returncode == EXIT_TOR_UNAVAILABLE  # the lock was free again


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")
def test_the_systemd_units_run_the_wrapper_and_verify(tmp_path: Path) -> None:
    """docs/systemd/*: systemd-analyze accepts them once pointed at this checkout, and the
    service runs the wrapper that the cron line of docs/scheduling.md runs too."""
    units = REPO_ROOT / "docs" / "systemd"
    for unit in ("onion-archiver.service", "onion-archiver.timer"):
        text = (units / unit).read_text().replace("/opt/onion-archiver", str(REPO_ROOT))
        text = text.replace("=onion-archiver\n", "=root\n")  # User=, Group= that exist here
        (tmp_path / unit).write_text(text)
    service = (tmp_path / "onion-archiver.service").read_text()
    assert f"ExecStart={sys.executable.rsplit('/bin/', 1)[0]}/bin/python -m crawler.job" in service
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", "onion-archiver.service", "onion-archiver.timer"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "onion-archiver" not in result.stderr, result.stderr  # no warning about our units
    cron = [
        line.strip()
        for line in (REPO_ROOT / "docs" / "scheduling.md").read_text().splitlines()
        if line.startswith("    15 */6 * * * ")
    ]
    assert cron == [
        "15 */6 * * * cd /opt/onion-archiver && .venv/bin/python -m crawler.job "
        ">> warc_output/job.log 2>&1"
    ]


@pytest.mark.tor
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_crawl_that_reaches_nothing_exits_70_after_the_preflight_passed(
    onion_mirror, tor_network, tmp_path: Path
) -> None:
    """Tor is fine (the preflight fetches the mirror), but the crawl's only start URL is on a
    valid onion that no one hosts: every request fails, the spider still "finishes"."""
    key = Ed25519PrivateKey.generate().public_key()
    unhosted = onion_address_from_public_key(
        key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    onion_map = {**MIRROR_ONION_MAP, "example.org": unhosted}
    result = run_job(
        "-s", f"WARC_DIR={tmp_path / 'warcs'}",
        "-s", f"CAPTURE_INDEX={tmp_path / 'capture-index.sqlite3'}",
        "-s", f"TOR_SOCKS_URL={tor_network.socks_url}",
        "-s", f"TOR_CONTROL_URL={tor_network.control_url}",
        "-s", f"ONION_MAP={json.dumps(onion_map)}",
        "-s", "RETRY_TIMES=1",
        "-a", "start_urls=https://www.example.org/",
        timeout=240,
    )  # fmt: skip
    assert "OK: Tor is bootstrapped" in result.stdout, result.stdout[-3000:]
    assert result.returncode == EXIT_CRAWL_FAILED, result.stdout[-3000:] + result.stderr
    verdict = result.stderr.strip().splitlines()[-1]
    assert verdict.startswith("onion-archiver job: crawl failed: no response was received")
    assert "running scrapy extract" not in result.stdout
