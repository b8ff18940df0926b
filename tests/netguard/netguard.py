"""A process-wide guard that blocks name lookups and connections off loopback.

Installed by ``tests/conftest.py`` for the test process, and by ``sitecustomize.py`` (this
folder on ``PYTHONPATH``) for every Python subprocess a test starts. It raises
:class:`NetworkLeak` from an audit hook, so the forbidden call never happens: this machine's
resolver is not on loopback, and a leaking test would otherwise send traffic off the machine.

Allowed: numeric loopback addresses (127.0.0.0/8, ::1), the name ``localhost``, passive
lookups (host None), and non-IP sockets (AF_UNIX).
"""

from __future__ import annotations

import ipaddress
import socket
import sys

_LOOKUP_EVENTS = {
    "socket.getaddrinfo",
    "socket.gethostbyname",
    "socket.gethostbyname_ex",
    "socket.gethostbyaddr",
    "socket.getnameinfo",
}
_CONNECT_EVENTS = {"socket.connect", "socket.sendto", "socket.sendmsg"}
_installed = False


class NetworkLeak(RuntimeError):
    """A test tried to resolve a name or reach an address off loopback."""


def is_loopback_host(host: object) -> bool:
    """True for a loopback literal (``127.x``, ``::1``) or the name ``localhost``."""
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    host = host.strip("[]").split("%", 1)[0]
    if host.lower() in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _hook(event: str, args: tuple) -> None:
    if event in _LOOKUP_EVENTS:
        host = args[0]
        if event == "socket.getnameinfo":
            host = host[0] if isinstance(host, tuple) and host else host
        if not is_loopback_host(host):
            raise NetworkLeak(f"{event}({host!r}) blocked: tests may only use loopback")
    elif event in _CONNECT_EVENTS:
        sock, address = args[0], args[-1]
        if getattr(sock, "family", None) not in (socket.AF_INET, socket.AF_INET6):
            return
        host = address[0] if isinstance(address, tuple) and address else address
        if not is_loopback_host(host):
            raise NetworkLeak(f"{event} to {address!r} blocked: tests may only use loopback")


def install() -> None:
    """Install the guard once in this process (audit hooks cannot be removed)."""
    global _installed
    if not _installed:
        sys.addaudithook(_hook)
        _installed = True
