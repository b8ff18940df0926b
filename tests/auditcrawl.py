"""Run a real ``scrapy`` command with every connect and name lookup of the process recorded.

    AUDIT_OUTPUT=events.jsonl python tests/auditcrawl.py crawl nytimes -s NAME=VALUE ...

The recorder is the one of tests/torcrawl.py (the same audited events); each event is appended
to ``AUDIT_OUTPUT`` as one JSON line ``[event, repr(target)]`` the moment it happens, so a
process killed with SIGKILL leaves every event up to its death. The loopback guard
(sitecustomize on PYTHONPATH) still blocks anything off 127.0.0.1 first.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from torcrawl import AUDITED

TESTS_DIR = Path(__file__).parent
REPO_ROOT = TESTS_DIR.parent


def main() -> None:
    log = open(os.environ["AUDIT_OUTPUT"], "a", buffering=1)  # noqa: SIM115 - lives with us

    def record(event: str, args: tuple) -> None:
        if event in AUDITED:
            target = args[-1] if event == "socket.connect" else args[0]
            log.write(json.dumps([event, repr(target)]) + "\n")

    sys.addaudithook(record)
    from scrapy.cmdline import execute

    execute(["scrapy", *sys.argv[1:]])


def read_events(path: str | os.PathLike) -> list[tuple[str, str]]:
    """The events recorded in *path* (none when the process never started)."""
    if not os.path.exists(path):
        return []
    with open(path) as lines:
        return [tuple(json.loads(line)) for line in lines if line.endswith("\n")]


@dataclass
class Run:
    """A finished (or killed) audited ``scrapy`` run."""

    returncode: int
    log: str
    events: list[tuple[str, str]]
    elapsed: float

    def connects(self) -> set[str]:
        return {target for event, target in self.events if event == "socket.connect"}

    def lookups(self) -> list[str]:
        return [target for event, target in self.events if event != "socket.connect"]


def setting_args(settings: dict) -> list[str]:
    """``-s NAME=VALUE`` arguments; dicts and lists as JSON."""
    args = []
    for name, value in settings.items():
        text = json.dumps(value) if isinstance(value, (dict, list, bool)) else str(value)
        args += ["-s", f"{name}={text}"]
    return args


def start_scrapy(workdir: Path, args: list[str], settings: dict) -> tuple[subprocess.Popen, Path]:
    """Start ``scrapy ARGS -s ...`` under the recorder; its log goes to a file in *workdir*.
    Returns the process and that log file; :func:`finish` waits for it."""
    stamp = time.monotonic_ns()
    log_path = workdir / f"scrapy-{stamp}.log"
    env = {**os.environ, "AUDIT_OUTPUT": str(workdir / f"scrapy-{stamp}.audit.jsonl")}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS_DIR), env.get("PYTHONPATH", "")])
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, str(TESTS_DIR / "auditcrawl.py"), *args, *setting_args(settings)],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    process.started = time.monotonic()  # type: ignore[attr-defined]
    return process, log_path


def finish(process: subprocess.Popen, log_path: Path, timeout: float) -> Run:
    """Wait up to *timeout* s (then SIGKILL) and collect the run."""
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)
    audit = log_path.with_suffix(".audit.jsonl")
    return Run(
        process.returncode,
        log_path.read_text(errors="replace"),
        read_events(audit),
        time.monotonic() - process.started,  # type: ignore[attr-defined]
    )


def run_scrapy(workdir: Path, args: list[str], settings: dict, timeout: float = 120) -> Run:
    """Run ``scrapy ARGS`` to its end (at most *timeout* s) under the recorder."""
    process, log_path = start_scrapy(workdir, args, settings)
    return finish(process, log_path, timeout)


def seeded_onion(seed: bytes) -> tuple[str, str]:
    """The v3 address of the real ed25519 key ``SHA-256(seed)`` and its ``ADD_ONION`` key
    (``ED25519-V3`` expanded secret key, base64). Unpublished, it answers 0xF0."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from tornet.keys import expanded_key

    from crawler.tor.onion import onion_address_from_public_key

    private = hashlib.sha256(seed).digest()
    public = (
        Ed25519PrivateKey.from_private_bytes(private)
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    return onion_address_from_public_key(public), base64.b64encode(expanded_key(private)).decode()


@contextlib.contextmanager
def onion_services(tor_network, seeds: list[bytes], ports: Mapping[int, int]) -> Iterator[list]:
    """Publish one onion service per seed on the network's service tor (``ADD_ONION``),
    each forwarding *ports* (onion port -> local port), once its descriptor is at every HSDir
    it was sent to; removed on exit. Yields the addresses (``<56>.onion``)."""
    with contextlib.ExitStack() as stack:
        addresses = []
        for seed in seeds:
            expected, key = seeded_onion(seed)
            address = stack.enter_context(tor_network.ephemeral_onion(ports, key=key))
            assert address == expected, (address, expected)
            addresses.append(address)
        yield addresses


if __name__ == "__main__":
    main()
