"""Replay with pywb: a wb-manager collection over our WARCs and our CDXJ serves each capture
under its onion URL and its clearnet URL, revisits resolved to the original payload."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from services import free_port, running
from warc_samples import BODY, ONION, ONION_MAP, RESPONSES, make_exchange, make_writer, warc_files

from crawler.warc.cdxj import write_cdxj
from crawler.warc.index import CaptureIndex

BIN = Path(sys.executable).parent
COLLECTION = "onions"
#: path -> (raw response, chunked); "/again" repeats "/plain"'s payload: a revisit.
CAPTURES = {
    "/plain": RESPONSES["odd-header-case"],
    "/chunked-gzip": RESPONSES["chunked-gzip"],
}


def fetch(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.fixture(scope="module")
def pywb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not (BIN / "wb-manager").exists():
        pytest.skip("pywb is not installed (the `archive` extra: pip install -e .[archive])")
    warc_dir = tmp_path_factory.mktemp("warcs")
    index = CaptureIndex(warc_dir / "index.sqlite3")
    for run in range(2):  # the second run's identical payloads become revisits
        writer = make_writer(
            warc_dir, index=index, dedup="url", on_finished=lambda p: write_cdxj(p, ONION_MAP)
        )
        for path, (raw, chunked) in CAPTURES.items():
            capture = writer.write_exchange(make_exchange(raw, chunked, path=path))
            assert capture.record_type == ("response" if run == 0 else "revisit")
            time.sleep(1.1)  # distinct 14-digit timestamps per capture
        writer.close()
    index.close()

    home = tmp_path_factory.mktemp("pywb")
    run = {"cwd": home, "capture_output": True, "text": True, "timeout": 120, "check": True}
    subprocess.run([BIN / "wb-manager", "init", COLLECTION], **run)
    subprocess.run([BIN / "wb-manager", "add", COLLECTION, *warc_files(warc_dir)], **run)
    # pywb's own index of the WARCs (onion URLs only) is replaced by ours: replay rests on it.
    indexes = home / "collections" / COLLECTION / "indexes"
    (indexes / "index.cdxj").unlink()
    for cdxj in warc_dir.glob("*.cdxj"):
        shutil.copy(cdxj, indexes)
    port = free_port()
    base = f"http://127.0.0.1:{port}/{COLLECTION}"
    with running(
        [BIN / "wayback", "--bind", "127.0.0.1", "--port", str(port)],
        lambda: urllib.request.urlopen(f"{base}/cdx?url=x", timeout=5).close(),
        home / "pywb.log",
        name="pywb",
        timeout=60,
        cwd=home,
    ):
        yield base


def decoded(headers: dict[str, str], body: bytes) -> bytes:
    return gzip.decompress(body) if headers.get("Content-Encoding") == "gzip" else body


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize("path", CAPTURES)
@pytest.mark.parametrize("host", [f"www.{ONION}", "www.nytimes.com"])
@pytest.mark.parametrize("when", ["2000", "2100"])  # nearest the first / the revisit
def test_capture_replays_under_onion_and_clearnet_urls(pywb: str, path, host, when) -> None:
    status, headers, body = fetch(f"{pywb}/{when}id_/https://{host}{path}")
    assert status == 200, body[:500]
    assert decoded(headers, body) == BODY


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_uncaptured_url_is_not_replayed(pywb: str) -> None:
    status, _, _ = fetch(f"{pywb}/id_/https://www.nytimes.com/never-captured")
    assert status == 404


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize("host", [f"www.{ONION}", "www.nytimes.com"])
def test_both_captures_are_indexed_under_either_url(pywb: str, host: str) -> None:
    status, _, body = fetch(f"{pywb}/cdx?output=json&url=https://{host}/plain")
    assert status == 200
    lines = [json.loads(line) for line in body.decode().splitlines()]
    assert sorted(line["mime"] for line in lines) == ["text/html", "warc/revisit"]
    assert len({(line["filename"], line["offset"]) for line in lines}) == 2
