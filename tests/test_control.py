"""Tor control (crawler/tor/control.py) against real tor processes: the private network's
client, and single tors launched with ``launch_tor`` (no network) for auth and bootstrap cases."""

from __future__ import annotations

import json
import queue
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from stem.control import Controller, EventType

from crawler.tor.control import (
    BootstrapPhase,
    LaunchedTor,
    TorControlError,
    TorController,
    launch_tor,
)

pytestmark = [pytest.mark.tor, pytest.mark.slow, pytest.mark.timeout(120)]

REPO_ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse"


def _installed_tor_version() -> str:
    banner = subprocess.run(["tor", "--version"], capture_output=True, text=True, timeout=30)
    return re.search(r"Tor version (\S+?)\.?$", banner.stdout, re.MULTILINE).group(1)


def _hashed(password: str) -> str:
    done = subprocess.run(
        ["tor", "--quiet", "--hash-password", password], capture_output=True, text=True, timeout=30
    )
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture
def offline_tor(tmp_path) -> Iterator[tuple[LaunchedTor, Path]]:
    """A launched tor that never bootstraps (DisableNetwork), with cookie AND password auth
    and its cookie file at a known path."""
    cookie = tmp_path / "cookie"
    tor = launch_tor(
        tmp_path / "tor",
        {
            "DisableNetwork": "1",
            "CookieAuthFile": str(cookie),
            "HashedControlPassword": _hashed(PASSWORD),
        },
    )
    yield tor, cookie
    tor.stop()


def test_version_and_bootstrap_of_the_private_network(tor_network):
    controller = TorController(tor_network.control_url)
    try:
        assert controller.version() == _installed_tor_version()
        phases: list[BootstrapPhase] = []
        phase = controller.wait_bootstrapped(10, phases.append)
    finally:
        controller.close()
    assert phase.progress == 100 and phase.tag == "done"
    assert phases == [phase]


def test_bootstrap_wait_is_bounded_and_reports_progress(offline_tor):
    tor, _ = offline_tor
    controller = TorController(tor.control_url, password=PASSWORD)
    phases: list[BootstrapPhase] = []
    try:
        with pytest.raises(TorControlError, match=r"did not bootstrap within 1\.5 s: at \d+%"):
            controller.wait_bootstrapped(1.5, phases.append)
    finally:
        controller.close()
    assert phases and all(phase.progress < 100 for phase in phases)


def test_launched_tor_stops_by_pid(offline_tor):
    tor, _ = offline_tor
    assert tor.process.poll() is None
    tor.stop()
    assert tor.process.poll() is not None
    tor.stop()  # idempotent


def test_unreadable_cookie_is_a_clear_error(offline_tor):
    tor, cookie = offline_tor
    cookie.unlink()  # as root, permissions would not stop the read: remove it instead
    with pytest.raises(TorControlError, match=f"cannot read Tor's auth cookie {cookie}"):
        TorController(tor.control_url).version()


def test_wrong_password_is_a_clear_error_without_the_password(offline_tor):
    tor, cookie = offline_tor
    cookie.unlink()
    with pytest.raises(TorControlError, match="Tor rejected TOR_CONTROL_PASSWORD") as failure:
        TorController(tor.control_url, password="wrong horse").version()
    assert "wrong horse" not in str(failure.value)
    right = TorController(tor.control_url, password=PASSWORD)
    try:
        assert right.version() == _installed_tor_version()
    finally:
        right.close()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections and never answers."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(5)
    for connection in accepted:
        connection.close()
    server.close()


@pytest.mark.timeout(30)
def test_control_port_that_never_answers_fails_within_the_timeout(silent_port):
    controller = TorController(f"tcp://127.0.0.1:{silent_port}", timeout=1)
    with pytest.raises(TorControlError, match=r"did not answer the connection within 1 s"):
        controller.version()


def test_closed_control_port_is_a_clear_error():
    with socket.create_server(("127.0.0.1", 0)) as placeholder:
        port = placeholder.getsockname()[1]
    with pytest.raises(
        TorControlError, match=f"cannot connect to Tor's control port at tcp://127.0.0.1:{port}"
    ):
        TorController(f"tcp://127.0.0.1:{port}").version()


@pytest.mark.parametrize(
    "url", ["127.0.0.1:9051", "http://127.0.0.1:9051", "tcp://host", "unix:rel"]
)
def test_bad_control_url_is_rejected(url):
    with pytest.raises(TorControlError, match="TOR_CONTROL_URL"):
        TorController(url)


def test_newnym_never_faster_than_tor_allows(tor_network):
    signals: queue.Queue = queue.Queue()
    sends: queue.Queue = queue.Queue()
    with Controller.from_port(address="127.0.0.1", port=tor_network.control_port) as watcher:
        watcher.authenticate()
        watcher.add_event_listener(lambda event: signals.put(event.signal), EventType.SIGNAL)
        controller = TorController(
            tor_network.control_url,
            on_newnym=lambda outcome: sends.put((outcome, time.monotonic())),
        )
        try:
            assert controller.request_newnym() == "scheduled"
            assert controller.request_newnym() == "coalesced"
            first, first_at = sends.get(timeout=15)
            assert first == "sent"
            assert signals.get(timeout=5) == "NEWNYM"
            assert controller.request_newnym() == "scheduled"  # held back until 10 s have passed
            assert controller.request_newnym() == "coalesced"
            with pytest.raises(queue.Empty):
                signals.get(timeout=3)
            second, second_at = sends.get(timeout=15)
            assert second == "sent"
            assert signals.get(timeout=5) == "NEWNYM"
            assert second_at - first_at >= 9.9
            assert signals.empty() and sends.empty()
        finally:
            controller.close()


def test_cookie_is_read_again_after_tor_restarts(tor_network):
    controller = TorController(tor_network.control_url)
    try:
        assert controller.version()
        old_cookie = tor_network.client_cookie_path.read_bytes()
        tor_network.stop_client()
        try:
            with pytest.raises(TorControlError, match="cannot connect"):
                controller.version()
        finally:
            tor_network.start_client(timeout=60)
        assert tor_network.client_cookie_path.read_bytes() != old_cookie
        assert controller.version() == _installed_tor_version()
    finally:
        controller.close()


# -- the Scrapy extension, in a real `scrapy runspider` subprocess ----------------------------

PROBE_SPIDER = """
import scrapy


class Probe(scrapy.Spider):
    name = "probe"

    async def start(self):
        return
        yield
"""


def _runspider(tmp_path: Path, *settings: str, spider: Path | None = None) -> str:
    if spider is None:
        spider = tmp_path / "probe.py"
        spider.write_text(PROBE_SPIDER)
    extension = json.dumps({"crawler.tor.control.TorControl": 100})
    command = [sys.executable, "-m", "scrapy", "runspider", str(spider), "-s", "ADDONS={}"]
    command += ["-s", f"EXTENSIONS={extension}", "-s", "LOG_LEVEL=INFO"]
    for setting in settings:
        command += ["-s", setting]
    done = subprocess.run(
        command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=90, check=False
    )
    return done.stderr


def _stat(log: str, name: str) -> str | None:
    match = re.search(rf"'{re.escape(name)}': '?([^',}}]*)'?", log)
    return match.group(1) if match else None


def test_preflight_records_the_version(tor_network, tmp_path):
    log = _runspider(tmp_path, f"TOR_CONTROL_URL={tor_network.control_url}")
    assert _stat(log, "tor/version") == _installed_tor_version(), log
    assert _stat(log, "finish_reason") == "finished", log
    assert "Tor bootstrap: 100% (Done)" in log


def test_preflight_failure_closes_the_spider_with_a_reason(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as placeholder:
        port = placeholder.getsockname()[1]
    log = _runspider(tmp_path, f"TOR_CONTROL_URL=tcp://127.0.0.1:{port}")
    assert _stat(log, "finish_reason") == "tor_preflight_failed", log
    assert (
        f"Tor preflight failed: cannot connect to Tor's control port at tcp://127.0.0.1:{port}"
        in log
    )


def test_tor_launch_starts_bootstraps_and_stops_a_private_tor(tor_network, tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as placeholder:
        port = placeholder.getsockname()[1]
    launch_config = {"TestingTorNetwork": "1", "DirAuthority": tor_network.dir_authorities}
    log = _runspider(
        tmp_path,
        "TOR_LAUNCH=1",
        f"TOR_CONTROL_URL=tcp://127.0.0.1:{port}",
        f"TOR_LAUNCH_DIR={tmp_path / 'launched'}",
        f"TOR_LAUNCH_CONFIG={json.dumps(launch_config)}",
        "TOR_BOOTSTRAP_TIMEOUT=60",
    )
    assert f"nothing answered at tcp://127.0.0.1:{port}; launched tor (pid" in log, log
    assert _stat(log, "tor/version") == _installed_tor_version(), log
    assert _stat(log, "finish_reason") == "finished", log
    pid = int(re.search(r"stopped the launched tor \(pid (\d+)\)", log).group(1))
    assert not Path(f"/proc/{pid}").exists()
    assert (tmp_path / "launched").stat().st_mode & 0o777 == 0o700


TRIGGER_SPIDER = """
import scrapy
from scrapy import signals
from scrapy.http import Request, Response
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet import reactor, task

from crawler.tor.signals import circuit_failed


class Triggers(scrapy.Spider):
    name = "triggers"

    async def start(self):
        send = self.crawler.signals.send_catch_log
        request = Request("http://example.invalid/")

        def fail():
            send(circuit_failed, request=request, error=OSError("circuit"))

        def respond(status):
            response = Response(request.url, status=status, request=request)
            send(signals.response_received, response=response, request=request, spider=self)

        fail(); fail(); respond(200); fail(); fail()
        self.logger.info("MARK: next failure is the 3rd in a row")
        fail()
        await maybe_deferred_to_future(task.deferLater(reactor, 2, lambda: None))
        respond(429); respond(429)
        return
        yield
"""


def test_newnym_triggers_consecutive_circuit_failures_and_429(tor_network, tmp_path):
    spider = tmp_path / "triggers.py"
    spider.write_text(TRIGGER_SPIDER)
    log = _runspider(
        tmp_path,
        f"TOR_CONTROL_URL={tor_network.control_url}",
        "TOR_NEWNYM_AFTER_FAILURES=3",
        spider=spider,
    )
    mark = log.index("MARK: next failure is the 3rd in a row")
    assert "new identity requested (3 consecutive circuit failures): scheduled" in log[mark:], log
    assert "new identity requested" not in log[:mark]
    assert _stat(log, "tor/newnym/sent") == "1", log
    assert _stat(log, "tor/newnym/scheduled") == "2", log  # the 429's is cancelled at close
    assert _stat(log, "tor/newnym/coalesced") == "1", log
