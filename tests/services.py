"""Run a real service (scrapyd, pywb) for a test: a free loopback port, a bounded wait until it
answers, and a clean stop."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running(
    command: Sequence[str | Path],
    ready: Callable[[], object],
    log_path: Path,
    *,
    name: str,
    timeout: float,
    cwd: Path | None = None,
) -> Iterator[subprocess.Popen]:
    """Run *command* until the block ends, once *ready()* stops raising OSError.

    :raises AssertionError: the process exits, or is not ready within *timeout* seconds
        (the message carries its log).
    """
    with log_path.open("w") as log:
        process = subprocess.Popen(command, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while True:
                assert process.poll() is None, f"{name} exited:\n{log_path.read_text()}"
                try:
                    ready()
                    break
                except OSError:
                    assert time.monotonic() < deadline, f"{name} did not answer within {timeout} s"
                    time.sleep(0.3)
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)
