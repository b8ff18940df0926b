"""``scrapy torcheck`` in a subprocess (under the network guard) against the private network."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from onions import MIRROR_ONION_MAP

from crawler.tor.onion import onion_address_from_public_key

pytestmark = [pytest.mark.tor, pytest.mark.slow, pytest.mark.timeout(180)]

REPO_ROOT = Path(__file__).resolve().parent.parent


def _torcheck(network, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "scrapy", "torcheck", *args]
    command += ["-s", f"TOR_SOCKS_URL={network.socks_url}"]
    command += ["-s", f"TOR_CONTROL_URL={network.control_url}"]
    command += ["-s", f"ONION_MAP={json.dumps(MIRROR_ONION_MAP)}"]
    return subprocess.run(
        command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def _last_line(done: subprocess.CompletedProcess) -> str:
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


def test_passes_against_the_private_network(onion_mirror, tor_network):
    done = _torcheck(tor_network)
    assert done.returncode == 0, done.stdout + done.stderr
    www = f"https://www.{MIRROR_ONION_MAP['nytimes.com']}/"
    assert "bootstrap 100% (Done)" in done.stdout
    assert f"fetched {www}: HTTP 200," in done.stdout
    assert _last_line(done) == "OK: Tor is bootstrapped and the onion answered"


def test_clearnet_url_is_fetched_in_its_onion_form(onion_mirror, tor_network):
    done = _torcheck(tor_network, "--url", "http://www.nytimes.com/robots.txt")
    assert done.returncode == 0, done.stdout + done.stderr
    onion = f"http://www.{MIRROR_ONION_MAP['nytimes.com']}/robots.txt"
    assert f"fetched {onion}: HTTP 200," in done.stdout


def test_unknown_onion_fails_with_the_socks_reason(tor_network):
    public = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    url = f"http://{onion_address_from_public_key(public)}/"
    done = _torcheck(tor_network, "--url", url, "--timeout", "30")
    assert done.returncode == 1, done.stdout + done.stderr
    assert _last_line(done).startswith(f"FAIL: {url} through {tor_network.socks_url}: ")
    assert "(SOCKS reply 0xF0)" in _last_line(done)


def test_off_map_url_is_a_usage_error(tor_network):
    done = _torcheck(tor_network, "--url", "https://example.com/")
    assert done.returncode == 2
    assert "not an onion URL and not covered by ONION_MAP" in done.stderr


def test_fails_clearly_when_the_client_tor_is_stopped(onion_mirror, tor_network):
    tor_network.stop_client()
    try:
        done = _torcheck(tor_network)
    finally:
        tor_network.start_client(timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    assert _last_line(done) == (
        f"FAIL: cannot connect to Tor's control port at {tor_network.control_url}: "
        "[Errno 111] Connection refused"
    )
