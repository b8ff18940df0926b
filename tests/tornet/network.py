"""A private Tor network on 127.0.0.1: 3 directory authorities, 2 relays, 1 onion service tor
and 1 client tor (how it boots and what it measured: docs/tornet.md).

Every tor is owned (``__OwningControllerProcess``) by a small watchdog process that lives as long
as the process that started the network: if that process dies without cleaning up, the tors
exit by themselves within about 15 s.
"""

from __future__ import annotations

import atexit
import math
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path

import onions
import socks
import stem
from stem import Signal
from stem.control import Controller, EventType
from stem.response.events import HSDescEvent

from tornet.fetch import http_get, open_stream
from tornet.keys import AuthorityKeys, authority_keys, empty_torrc, write_hidden_service_keys

AUTHORITIES = ("auth0", "auth1", "auth2")
RELAYS = ("relay0", "relay1")
SERVICE = "service"
CLIENT = "client"
TOR_ENV = {
    "MALLOC_ARENA_MAX": "1",
    "MALLOC_MMAP_THRESHOLD_": "131072",
    "MALLOC_TRIM_THRESHOLD_": "131072",
}
VOTING_INTERVAL = 10
VOTE_AND_DIST_DELAY = 4  # V3AuthVoteDelay + V3AuthDistDelay: a vote precedes valid-after by this
# The first vote is scheduled this many seconds after launch, then moved to just after every
# authority holds every relay's descriptor (2-4 s): a relay missing from the first consensus
# costs a whole voting interval.
FIRST_VOTE_AFTER = 8
VOTE_MOVE_MARGIN = 0.5
POLL_INTERVAL = 0.2
STOP_GRACE = 5.0
LOG_TAIL_LINES = 25
BOOT_ATTEMPTS = 2
PORT_TAKEN = "Address already in use"  # in tor's log when a port was taken before it bound
_BOOTSTRAP_PROGRESS = re.compile(r"PROGRESS=(\d+)")
_ROUTER_LINE = re.compile(r"^router ", re.MULTILINE)
_WATCHDOG = "import sys; sys.stdin.buffer.read()"

Progress = Callable[[str], object]


class TorNetworkError(RuntimeError):
    """The private network did not come up (or a tor died); the message ends with the tail
    of the failing tor's log."""


def _silent(message: str) -> None:
    pass


class _Node:
    """One tor process: its directory, torrc, log and control port."""

    def __init__(self, root: Path, nickname: str, control_port: int) -> None:
        self.nickname = nickname
        self.data_dir = root / nickname
        shutil.rmtree(self.data_dir, ignore_errors=True)  # state of an earlier boot
        self.data_dir.mkdir(mode=0o700)
        self.torrc = self.data_dir / "torrc"
        self.log = self.data_dir / "notice.log"
        self.control_port = control_port
        self.process: subprocess.Popen | None = None

    def launch(self, config: str, defaults_torrc: Path) -> None:
        self.torrc.write_text(config)
        # Warnings before the torrc's Log line takes effect (a port already taken) go to
        # stdout: append them to the same log.
        with self.log.open("ab") as console:
            self.process = subprocess.Popen(
                ["tor", "-f", str(self.torrc), "--defaults-torrc", str(defaults_torrc), "--hush"],
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                env={**os.environ, **TOR_ENV},
                start_new_session=True,  # a Ctrl-C meant for the harness does not reach tor
            )

    def check_alive(self) -> None:
        """:raises TorNetworkError: the process has exited."""
        if self.process is not None and self.process.poll() is not None:
            raise self.error(f"tor exited with status {self.process.returncode}")

    def error(self, message: str) -> TorNetworkError:
        return TorNetworkError(
            f"{self.nickname}: {message}\n--- {self.log} (tail) ---\n{self.tail()}"
        )

    def tail(self) -> str:
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError as exc:
            return f"(no log: {exc})"
        return "\n".join(lines[-LOG_TAIL_LINES:])

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after :data:`STOP_GRACE` seconds; by pid, idempotent."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_GRACE)
        self.process = None


class TorNetwork:
    """A private Tor network whose onion service tor hosts *services*.

    *services* maps an onion address of ``tests/onions.py`` (whose fixed key the harness
    knows) to ``{onion_port: local_port}``, e.g. ``{80: http_port, 443: https_port}``.
    *workdir* holds the tors' data directories; None makes a temporary one, removed by
    :meth:`stop`. A given *workdir* is left in place (logs stay inspectable).
    """

    def __init__(
        self,
        workdir: str | os.PathLike | None = None,
        services: Mapping[str, Mapping[int, int]] | None = None,
    ) -> None:
        known = {onions.onion_address(domain): domain for domain in onions.SEEDS}
        self.services = {address: dict(ports) for address, ports in (services or {}).items()}
        for address in self.services:
            if address not in known:
                raise ValueError(
                    f"{address} has no fixed key in tests/onions.py; add a seed there, or add "
                    "the service to the running network with ADD_ONION on service_control_port"
                )
        self._service_keys = {address: onions.private_key(known[address]) for address in known}
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir is not None else None
        self._nodes: dict[str, _Node] = {}
        self._watchdog: subprocess.Popen | None = None
        self._dir_authority_lines: list[str] = []
        self._entry_nodes = ""
        self._voting_offset = 0
        self._first_vote_at = 0.0
        self.socks_port = 0
        self._lock = threading.Lock()
        atexit.register(self.stop)

    @classmethod
    def in_front_of(
        cls, http_port: int, https_port: int, workdir: str | os.PathLike | None = None
    ) -> TorNetwork:
        """A network serving the mirror's onions (``MIRROR_ONION_MAP``): port 80 -> *http_port*,
        443 -> *https_port* on 127.0.0.1."""
        ports = {80: http_port, 443: https_port}
        return cls(workdir, services={onions.onion_address(d): ports for d in onions.SEEDS})

    # -- public surface --------------------------------------------------------------------

    @property
    def control_port(self) -> int:
        """The client tor's control port (cookie auth: :attr:`client_cookie_path`)."""
        return self._nodes[CLIENT].control_port

    @property
    def service_control_port(self) -> int:
        """The onion service tor's control port (for ADD_ONION / DEL_ONION)."""
        return self._nodes[SERVICE].control_port

    @property
    def client_data_dir(self) -> Path:
        return self._nodes[CLIENT].data_dir

    @property
    def client_cookie_path(self) -> Path:
        return self.client_data_dir / "control_auth_cookie"

    @property
    def dir_authorities(self) -> list[str]:
        """The network's ``DirAuthority`` values: a tor given these (and ``TestingTorNetwork
        1``) bootstraps from this network."""
        return [line.removeprefix("DirAuthority ") for line in self._dir_authority_lines]

    @property
    def socks_url(self) -> str:
        return f"socks5h://127.0.0.1:{self.socks_port}"

    @property
    def control_url(self) -> str:
        return f"tcp://127.0.0.1:{self.control_port}"

    def start(self, timeout: float = 90, progress: Progress | None = None) -> None:
        """Boot the network and return once every service answers through the SOCKS port.

        Readiness, in order: a consensus on the authorities; bootstrap 100% on client and
        service; ``HS_DESC UPLOADED`` for every service; one HTTP fetch (or, for services
        without port 80, one stream) per service through the client's SOCKS port.

        :raises TorNetworkError: a tor died, or a stage did not finish within *timeout*
            seconds in all; the network is stopped before it is raised. A port taken by
            another process between picking and binding it gives one more boot on new ports.
        :raises stem.SocketError: a control port could not be reached.
        """
        say = progress or _silent
        deadline = time.monotonic() + timeout
        started = time.monotonic()
        for attempt in range(1, BOOT_ATTEMPTS + 1):
            try:
                self._boot(deadline, say)
                break
            except TorNetworkError as exc:
                self.stop()
                if PORT_TAKEN not in str(exc) or attempt == BOOT_ATTEMPTS:
                    raise
                say("a port was taken before tor could bind it: booting again on new ports")
            except BaseException:
                self.stop()
                raise
        say(f"tor network ready in {time.monotonic() - started:.1f} s: {self.socks_url}")

    def _boot(self, deadline: float, say: Progress) -> None:
        self._launch(say)
        with ExitStack() as stack:
            service = stack.enter_context(self._controller(SERVICE, deadline))
            uploads = self._watch_uploads(service)
            self._wait_consensus(deadline, say)
            client = stack.enter_context(self._controller(CLIENT, deadline))
            for controller in (client, service):
                controller.set_conf("DisableNetwork", "0")
            self._wait_bootstrap(client, CLIENT, deadline, say)
            self._wait_bootstrap(service, SERVICE, deadline, say)
            self._wait_uploads(uploads, set(self.services), deadline, say)
        self._check_hostnames()
        self._wait_fetches(deadline, say)

    @contextmanager
    def ephemeral_onion(
        self, ports: Mapping[int, int], key: str | None = None, timeout: float = 60
    ) -> Iterator[str]:
        """A v3 onion service (``ADD_ONION`` on the service tor) for *ports* (virtual ->
        local port on 127.0.0.1), with a new key or *key* (base64 expanded ED25519-V3 key),
        yielded once its descriptor is at every HSDir it was sent to, as the network's own
        services are at boot; removed on exit.

        :raises TorNetworkError: a tor died, or the descriptor was not uploaded in *timeout* s.
        """
        deadline = time.monotonic() + timeout
        with self._controller(SERVICE, deadline) as service:
            uploads = self._watch_uploads(service)
            created = service.create_ephemeral_hidden_service(
                dict(ports),
                key_type="ED25519-V3" if key else "NEW",
                key_content=key or "ED25519-V3",
            )
            address = f"{created.service_id}.onion"
            try:
                self._wait_uploads(uploads, {address}, deadline, _silent)
                yield address
            finally:
                service.remove_ephemeral_hidden_service(created.service_id)

    def stop_client(self) -> None:
        """Stop only the client tor (SIGTERM, then SIGKILL)."""
        self._nodes[CLIENT].stop()

    def start_client(self, timeout: float = 60, progress: Progress | None = None) -> None:
        """Start the client tor again, same ports and data directory (a new control cookie).

        :raises TorNetworkError: it did not bootstrap or fetch within *timeout* seconds.
        """
        say = progress or _silent
        deadline = time.monotonic() + timeout
        node = self._nodes[CLIENT]
        node.stop()
        node.launch(self._client_config(disable_network=False), self._defaults_torrc)
        with self._controller(CLIENT, deadline) as client:
            self._wait_bootstrap(client, CLIENT, deadline, say)
        self._wait_fetches(deadline, say)

    def stop(self) -> None:
        """Stop every tor and the watchdog (by pid); remove a temporary workdir. Idempotent."""
        with self._lock:
            for node in reversed(list(self._nodes.values())):
                node.stop()
            if self._watchdog is not None:
                self._watchdog.stdin.close()
                try:
                    self._watchdog.wait(STOP_GRACE)
                except subprocess.TimeoutExpired:
                    self._watchdog.kill()
                    self._watchdog.wait(STOP_GRACE)
                self._watchdog = None
            if self._own_workdir and self.workdir is not None:
                shutil.rmtree(self.workdir, ignore_errors=True)
                self.workdir = None

    def __enter__(self) -> TorNetwork:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- boot ------------------------------------------------------------------------------

    def _launch(self, say: Progress) -> None:
        if self._own_workdir:
            self.workdir = Path(tempfile.mkdtemp(prefix="tornet-"))
        assert self.workdir is not None
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._defaults_torrc = empty_torrc(self.workdir)
        self._nodes = {}
        keys = self._authority_keys(say)
        nicknames = (*AUTHORITIES, *RELAYS, SERVICE, CLIENT)
        # ORPort + DirPort per authority, ORPort per relay, SocksPort, a ControlPort each.
        ports = iter(free_ports(2 * len(AUTHORITIES) + len(RELAYS) + 1 + len(nicknames)))
        for nickname in nicknames:
            self._nodes[nickname] = _Node(self.workdir, nickname, next(ports))
        or_ports = {nickname: next(ports) for nickname in (*AUTHORITIES, *RELAYS)}
        dir_ports = {nickname: next(ports) for nickname in AUTHORITIES}
        self.socks_port = next(ports)
        self._dir_authority_lines = [
            f"DirAuthority {k.nickname} orport={or_ports[k.nickname]} v3ident={k.v3ident} "
            f"127.0.0.1:{dir_ports[k.nickname]} {k.fingerprint}"
            for k in keys
        ]
        self._entry_nodes = ",".join(f"${k.fingerprint}" for k in keys)
        for address in self.services:
            written = write_hidden_service_keys(
                self._service_dir(address), self._service_keys[address]
            )
            assert written == address
        self._watchdog = subprocess.Popen(
            [sys.executable, "-c", _WATCHDOG], stdin=subprocess.PIPE, start_new_session=True
        )
        self._voting_offset, self._first_vote_at = _voting_offset(FIRST_VOTE_AFTER)
        say(f"launching 7 tors in {self.workdir}")
        for k in keys:
            shutil.copytree(k.keys_dir, self._nodes[k.nickname].data_dir / "keys")
            self._nodes[k.nickname].data_dir.joinpath("keys").chmod(0o700)
            self._nodes[k.nickname].launch(
                self._authority_config(k.nickname, or_ports, dir_ports), self._defaults_torrc
            )
        for nickname in RELAYS:
            self._nodes[nickname].launch(
                self._relay_config(nickname, or_ports), self._defaults_torrc
            )
        self._nodes[SERVICE].launch(self._service_config(), self._defaults_torrc)
        self._nodes[CLIENT].launch(self._client_config(disable_network=True), self._defaults_torrc)

    def _authority_keys(self, say: Progress) -> list[AuthorityKeys]:
        results: dict[str, AuthorityKeys | BaseException] = {}

        def make(nickname: str) -> None:
            try:
                results[nickname] = authority_keys(nickname)
            except BaseException as exc:
                results[nickname] = exc

        threads = [threading.Thread(target=make, args=(n,)) for n in AUTHORITIES]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        keys = [results[nickname] for nickname in AUTHORITIES]
        for item in keys:
            if isinstance(item, BaseException):
                raise item
        say("authority keys ready")
        return keys  # type: ignore[return-value]

    # -- configuration ---------------------------------------------------------------------

    def _common_config(self, nickname: str) -> list[str]:
        node = self._nodes[nickname]
        assert self._watchdog is not None
        return [
            "TestingTorNetwork 1",
            f"DataDirectory {node.data_dir}",
            f"Nickname {nickname}",
            f"Log notice file {node.log}",
            f"ControlPort 127.0.0.1:{node.control_port}",
            "CookieAuthentication 1",
            f"GeoIPFile {self._defaults_torrc}",
            f"GeoIPv6File {self._defaults_torrc}",
            f"__OwningControllerProcess {self._watchdog.pid}",
            "V3AuthVotingInterval 10",
            "V3AuthVoteDelay 2",
            "V3AuthDistDelay 2",
            "TestingV3AuthInitialVotingInterval 10",
            "TestingV3AuthInitialVoteDelay 2",
            "TestingV3AuthInitialDistDelay 2",
            "V3AuthNIntervalsValid 2",
            f"TestingV3AuthVotingStartOffset {self._voting_offset}",
            *self._dir_authority_lines,
        ]

    def _relay_lines(self, nickname: str, or_ports: Mapping[str, int]) -> list[str]:
        return [
            "SocksPort 0",
            f"ORPort 127.0.0.1:{or_ports[nickname]}",
            "Address 127.0.0.1",
            "AssumeReachable 1",
            "ExitPolicy reject *:*",
        ]

    def _authority_config(
        self, nickname: str, or_ports: Mapping[str, int], dir_ports: Mapping[str, int]
    ) -> str:
        return _torrc(
            *self._common_config(nickname),
            *self._relay_lines(nickname, or_ports),
            f"DirPort 127.0.0.1:{dir_ports[nickname]}",
            "AuthoritativeDirectory 1",
            "V3AuthoritativeDirectory 1",
        )

    def _relay_config(self, nickname: str, or_ports: Mapping[str, int]) -> str:
        return _torrc(*self._common_config(nickname), *self._relay_lines(nickname, or_ports))

    def _user_lines(self, disable_network: bool) -> list[str]:
        return [
            f"EntryNodes {self._entry_nodes}",
            "LearnCircuitBuildTimeout 0",
            "CircuitBuildTimeout 10",
            f"DisableNetwork {int(disable_network)}",
        ]

    def _service_config(self) -> str:
        lines = [*self._common_config(SERVICE), "SocksPort 0", *self._user_lines(True)]
        for address, ports in self.services.items():
            lines += [f"HiddenServiceDir {self._service_dir(address)}", "HiddenServiceVersion 3"]
            lines += [
                f"HiddenServicePort {port} 127.0.0.1:{local}" for port, local in ports.items()
            ]
        return _torrc(*lines)

    def _client_config(self, disable_network: bool) -> str:
        return _torrc(
            *self._common_config(CLIENT),
            f"SocksPort 127.0.0.1:{self.socks_port} ExtendedErrors",
            *self._user_lines(disable_network),
        )

    def _service_dir(self, address: str) -> Path:
        assert self.workdir is not None
        return self.workdir / SERVICE / f"hs-{address[:16]}"

    # -- readiness -------------------------------------------------------------------------

    def _check_alive(self) -> None:
        for node in self._nodes.values():
            node.check_alive()

    def _controller(self, nickname: str, deadline: float) -> Controller:
        """An authenticated controller of *nickname*, retried until its port listens."""
        node = self._nodes[nickname]
        while True:
            self._check_alive()
            try:
                controller = Controller.from_port(address="127.0.0.1", port=node.control_port)
            except stem.SocketError:
                if time.monotonic() > deadline:
                    raise node.error("control port never opened") from None
                time.sleep(POLL_INTERVAL)
                continue
            try:
                controller.authenticate()
            except BaseException:
                controller.close()
                raise
            return controller

    def _wait_consensus(self, deadline: float, say: Progress) -> None:
        """Move the first vote to when every authority holds every relay's descriptor, then
        wait for a consensus listing all relays."""
        relays = len(AUTHORITIES) + len(RELAYS)
        with ExitStack() as stack:
            authorities = [stack.enter_context(self._controller(a, deadline)) for a in AUTHORITIES]
            while min(_descriptor_count(authority) for authority in authorities) < relays:
                self._wait_step(deadline, AUTHORITIES[0], f"relay descriptors ({relays} wanted)")
            if self._first_vote_at - time.monotonic() > VOTE_MOVE_MARGIN + 1:
                self._voting_offset, self._first_vote_at = _voting_offset(VOTE_MOVE_MARGIN)
                for authority in authorities:
                    authority.set_conf("TestingV3AuthVotingStartOffset", str(self._voting_offset))
            say(f"all {relays} relay descriptors at the authorities: first vote moved to now")
            while _consensus_size(authorities[0]) < relays:
                self._wait_step(deadline, AUTHORITIES[0], f"a consensus listing {relays} relays")
            say(f"consensus lists {relays} relays")
            # The plain relays backed off after failing to fetch a consensus at start, and
            # circuits through them stall until they have one: HUP makes them fetch now.
            for nickname in RELAYS:
                relay = stack.enter_context(self._controller(nickname, deadline))
                relay.signal(Signal.RELOAD)
                while _consensus_size(relay) < relays:
                    self._wait_step(deadline, nickname, "the consensus at the relay")
            say("the relays have the consensus")

    def _wait_step(self, deadline: float, nickname: str, waiting_for: str) -> None:
        """Sleep one poll interval. :raises TorNetworkError: a tor died, or past *deadline*."""
        self._check_alive()
        if time.monotonic() > deadline:
            raise self._nodes[nickname].error(f"timed out waiting for {waiting_for}")
        time.sleep(POLL_INTERVAL)

    def _wait_bootstrap(
        self, controller: Controller, nickname: str, deadline: float, say: Progress
    ) -> None:
        last = -1
        while True:
            self._check_alive()
            phase = controller.get_info("status/bootstrap-phase")
            match = _BOOTSTRAP_PROGRESS.search(phase)
            percent = int(match.group(1)) if match else 0
            if percent != last:
                say(f"{nickname} bootstrap {percent}%")
                last = percent
            if percent >= 100:
                return
            if time.monotonic() > deadline:
                raise self._nodes[nickname].error(f"bootstrap stuck: {phase}")
            time.sleep(POLL_INTERVAL)

    def _watch_uploads(self, service: Controller) -> queue.Queue:
        events: queue.Queue = queue.Queue()
        service.add_event_listener(events.put, EventType.HS_DESC)
        return events

    def _wait_uploads(
        self, events: queue.Queue, addresses: set[str], deadline: float, say: Progress
    ) -> None:
        """Wait for an UPLOADED per service of *addresses* and no upload still in flight (a
        client asking an HSDir still waiting for it would get 'descriptor not found')."""
        uploaded: set[str] = set()
        pending: dict[str, set[str]] = {address: set() for address in addresses}
        while not (uploaded == addresses and not any(pending.values())):
            self._check_alive()
            try:
                event: HSDescEvent = events.get(timeout=POLL_INTERVAL)
            except queue.Empty:
                if time.monotonic() > deadline:
                    raise self._nodes[SERVICE].error(
                        f"descriptors not uploaded for {sorted(addresses - uploaded)}"
                    ) from None
                continue
            address = f"{event.address}.onion"
            if address not in pending:
                continue
            if event.action == "UPLOAD":
                pending[address].add(event.directory_fingerprint)
            elif event.action in ("UPLOADED", "FAILED"):
                pending[address].discard(event.directory_fingerprint)
                if event.action == "UPLOADED":
                    uploaded.add(address)
        say(f"descriptors uploaded for {len(uploaded)} onion service(s)")

    def _check_hostnames(self) -> None:
        for address in self.services:
            hostname = (self._service_dir(address) / "hostname").read_text().strip()
            if hostname != address:
                raise self._nodes[SERVICE].error(f"hosts {hostname}, expected {address}")

    def _wait_fetches(self, deadline: float, say: Progress) -> None:
        """One real fetch per service through the client's SOCKS port, retried until then."""
        for address, ports in self.services.items():
            attempt = 0
            while True:
                self._check_alive()
                attempt += 1
                try:
                    self._probe(address, ports, deadline)
                    break
                except (socks.ProxyError, OSError) as exc:
                    if time.monotonic() > deadline:
                        raise self._nodes[CLIENT].error(
                            f"no fetch through {address} after {attempt} attempts: {exc}"
                        ) from exc
                    time.sleep(POLL_INTERVAL)
            say(f"fetched through {address}")

    def _probe(self, address: str, ports: Mapping[int, int], deadline: float) -> None:
        timeout = max(1.0, deadline - time.monotonic())
        if 80 in ports:
            response = http_get(self.socks_port, address, 80, "/", timeout=timeout)
            if not response.startswith(b"HTTP/"):
                raise OSError(f"not an HTTP response from {address}: {response[:60]!r}")
        else:
            open_stream(self.socks_port, address, next(iter(ports)), timeout).close()


def _voting_offset(vote_in: float) -> tuple[int, float]:
    """``(TestingV3AuthVotingStartOffset, monotonic time of the vote)`` for a first vote
    *vote_in* seconds from now, or up to a second later."""
    now = time.time()
    valid_after = math.ceil(now + vote_in + VOTE_AND_DIST_DELAY)
    vote_at = time.monotonic() + (valid_after - VOTE_AND_DIST_DELAY - now)
    return valid_after % VOTING_INTERVAL, vote_at


def _consensus_size(tor: Controller) -> int:
    """How many relays the consensus *tor* holds lists (0: it has none)."""
    return tor.get_info("dir/status-vote/current/consensus", "").count("\nr ")


def _descriptor_count(authority: Controller) -> int:
    """How many relays' server descriptors *authority* holds."""
    return len(_ROUTER_LINE.findall(authority.get_info("desc/all-recent", "")))


def _torrc(*lines: str) -> str:
    return "\n".join(lines) + "\n"


def free_ports(count: int) -> list[int]:
    """*count* distinct TCP ports free on 127.0.0.1 right now."""
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports
