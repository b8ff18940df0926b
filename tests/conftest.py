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
