"""Scheduled crawls through a real scrapyd on 127.0.0.1: `scrapyd-deploy` builds and uploads the
project's egg (crawler/ + settings/), `schedule.json` starts a crawl of the onion mirror through
the private Tor network, `listjobs.json` follows it, and the WARCs are checked."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from onions import MIRROR_ONION_MAP
from services import free_port, running
from warcio.archiveiterator import ArchiveIterator

REPO_ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
PROJECT = "onion-archiver"
PROJECT_FILES = ("crawler", "settings", "scrapy.cfg", "pyproject.toml", "setup.py", "README.md")


def api(base: str, endpoint: str, data: list[tuple[str, str]] | None = None) -> dict:
    """GET (or POST *data* to) a scrapyd JSON endpoint; fails on a non-"ok" status."""
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    with urllib.request.urlopen(f"{base}/{endpoint}", data=body, timeout=30) as response:
        answer = json.load(response)
    assert answer.get("status") == "ok", answer
    return answer


@pytest.fixture(scope="module")
def scrapyd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real scrapyd on a free loopback port, its eggs/logs/dbs in a temporary directory."""
    home = tmp_path_factory.mktemp("scrapyd")
    port = free_port()
    (home / "scrapyd.conf").write_text(
        "[scrapyd]\n"
        "bind_address = 127.0.0.1\n"
        f"http_port = {port}\n"
        f"eggs_dir = {home / 'eggs'}\n"
        f"logs_dir = {home / 'logs'}\n"
        f"dbs_dir = {home / 'dbs'}\n"
        "items_dir =\n"
        "poll_interval = 0.5\n"
        "max_proc = 1\n"
    )
    base = f"http://127.0.0.1:{port}"
    with running(
        [VENV_BIN / "scrapyd", "--pidfile="],
        lambda: api(base, "daemonstatus.json"),
        home / "scrapyd.log",
        name="scrapyd",
        timeout=30,
        cwd=home,
    ):
        yield base


@pytest.fixture(scope="module")
def deployed(scrapyd: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The project deployed with `scrapyd-deploy`, from a copy of the repository (the egg build
    writes build/ and egg-info into the project directory), its `[deploy]` target pointed at
    the test's scrapyd."""
    project = tmp_path_factory.mktemp("project")
    for name in PROJECT_FILES:
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, project / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.exists():
            shutil.copy2(source, project / name)
    config = (project / "scrapy.cfg").read_text()
    assert "url = http://127.0.0.1:6800/" in config
    (project / "scrapy.cfg").write_text(config.replace("127.0.0.1:6800", scrapyd.split("//")[1]))
    result = subprocess.run(
        [str(VENV_BIN / "scrapyd-deploy"), "--version", "r1"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["status"] == "ok"
    return scrapyd


def test_deploy_uploads_an_egg_with_the_project_spiders(deployed: str) -> None:
    assert PROJECT in api(deployed, "listprojects.json")["projects"]
    assert api(deployed, f"listversions.json?project={PROJECT}")["versions"] == ["r1"]
    spiders = api(deployed, f"listspiders.json?project={PROJECT}")["spiders"]
    assert "nytimes" in spiders


def wait_for_job(base: str, job: str, timeout: float) -> dict:
    """Poll listjobs.json until *job* is finished; its entry."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = api(base, f"listjobs.json?project={PROJECT}")
        for entry in jobs["finished"]:
            if entry["id"] == job:
                return entry
        time.sleep(1)
    raise AssertionError(f"scrapyd job {job} not finished within {timeout} s: {jobs}")


@pytest.mark.tor
@pytest.mark.slow
@pytest.mark.timeout(400)
def test_scheduled_crawl_of_the_onion_mirror_writes_warcs(
    deployed: str, onion_mirror, tor_network, tmp_path: Path
) -> None:
    warc_dir = tmp_path / "warcs"
    onion = MIRROR_ONION_MAP["nytimes.com"]
    settings = {
        "TOR_SOCKS_URL": tor_network.socks_url,
        "TOR_CONTROL_URL": tor_network.control_url,
        "ONION_MAP": json.dumps(MIRROR_ONION_MAP),
        "WARC_DIR": str(warc_dir),
        "CAPTURE_INDEX": str(tmp_path / "capture-index.sqlite3"),
        "CLOSESPIDER_PAGECOUNT": "12",
        "AUTOTHROTTLE_ENABLED": "False",
        "LOG_LEVEL": "INFO",
    }
    data = [("project", PROJECT), ("spider", "nytimes")]
    data += [("setting", f"{name}={value}") for name, value in settings.items()]
    job = api(deployed, "schedule.json", data)["jobid"]

    entry = wait_for_job(deployed, job, timeout=300)
    log_text = urllib.request.urlopen(f"{deployed}{entry['log_url']}", timeout=30).read().decode()
    assert "Spider closed (closespider_pagecount)" in log_text, log_text[-3000:]

    warcs = sorted(warc_dir.glob("*.warc.gz"))
    assert warcs, f"no finished WARC in {warc_dir}: {sorted(warc_dir.iterdir())}"
    assert not list(warc_dir.glob("*.open"))
    responses = []
    for warc in warcs:
        with warc.open("rb") as stream:
            for record in ArchiveIterator(stream):
                if record.rec_type == "response":
                    responses.append(record.rec_headers.get_header("WARC-Target-URI"))
    assert len(responses) >= 10
    assert all(urllib.parse.urlsplit(url).hostname.endswith(".onion") for url in responses)
    assert any(urllib.parse.urlsplit(url).hostname == f"www.{onion}" for url in responses)
    assert all(
        warc.with_name(warc.name.removesuffix(".warc.gz") + ".cdxj").exists() for warc in warcs
    )
