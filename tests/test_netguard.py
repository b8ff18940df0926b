"""The guard really blocks off-loopback lookups and connections, and allows loopback."""

import socket

import netguard
import pytest


def test_lookup_of_a_public_name_is_blocked():
    with pytest.raises(netguard.NetworkLeak):
        socket.getaddrinfo("www.nytimes.com", 443)


def test_connect_off_loopback_is_blocked():
    with socket.socket() as sock, pytest.raises(netguard.NetworkLeak):
        sock.connect(("192.0.2.1", 9))  # TEST-NET-1: never routed


def test_loopback_connect_is_allowed():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=5):
            pass


def test_subprocesses_are_guarded_too():
    import subprocess
    import sys

    code = "import socket; socket.getaddrinfo('example.org', 80)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "NetworkLeak" in proc.stderr
