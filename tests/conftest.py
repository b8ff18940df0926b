"""Shared fixtures. Every test runs under the loopback-only network guard."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

NETGUARD_DIR = Path(__file__).parent / "netguard"
sys.path.insert(0, str(NETGUARD_DIR))
import netguard  # noqa: E402

netguard.install()
# Python subprocesses started by tests (scrapy crawl, scrapyd, pywb) get the guard too.
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(NETGUARD_DIR), os.environ.get("PYTHONPATH")) if p
)

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DIR = REPO_ROOT.parent / "shared"
NYT_PAGES = SHARED_DIR / "nyt-pages"


@pytest.fixture(scope="session")
def nyt_pages() -> Path:
    """The real NYT pages of ../shared/nyt-pages (copyrighted: read, never copy)."""
    if not (NYT_PAGES / "manifest.json").exists():
        pytest.skip(f"{NYT_PAGES} is absent: the real-page tests need ../shared/nyt-pages")
    return NYT_PAGES


@pytest.fixture(scope="session")
def mirror(tmp_path_factory):
    """The synthetic NYT mirror (tests/mirror): 1000 articles, HTTP and HTTPS on 127.0.0.1,
    every response's bytes kept (``mirror.sent_bytes(id)``); ``mirror.site`` is the ground truth."""
    from mirror import MirrorServer, MirrorSite
    from onions import MIRROR_ONION_MAP

    site = MirrorSite(articles=1000, onion_map=MIRROR_ONION_MAP, seed=0, edition=0)
    server = MirrorServer(site, sent_log_dir=tmp_path_factory.mktemp("mirror-sent")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tor_network(mirror, tmp_path_factory):
    """ONE private Tor network per session (tests/tornet), hosting the mirror's fixed onions
    (``MIRROR_ONION_MAP``) on ports 80 -> mirror HTTP and 443 -> mirror HTTPS."""
    import shutil

    from tornet import TorNetwork

    if shutil.which("tor") is None or shutil.which("tor-gencert") is None:
        pytest.skip("the tor binary (Debian package `tor`) is not installed; `make setup` adds it")
    network = TorNetwork.in_front_of(
        mirror.http_port, mirror.https_port, tmp_path_factory.mktemp("tornet")
    )
    network.start(timeout=120, progress=print)
    yield network
    network.stop()


@pytest.fixture(scope="session")
def onion_mirror(mirror, tor_network):
    """The ``mirror`` server, reachable through ``tor_network.socks_url`` at the onions of
    ``MIRROR_ONION_MAP`` (``www.<onion A>``, ``static01.<onion B>``)."""
    return mirror
