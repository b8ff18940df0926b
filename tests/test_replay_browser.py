"""Replay in a browser: pywb (``python -m crawler.replay``) serves a collection straight over a
WARC directory (its WARC files and the CDXJ the WARC writer put next to each), and headless
Chromium (Debian's `chromium`) renders captured articles under their onion and clearnet URLs.

Two sources of captures: a WARC recorded here with warcio from the mirror over loopback HTTPS
(one article per markup era, each with another Content-Encoding: identity, gzip, br; fast, no
Tor), and a real crawl of the onion mirror through the private Tor network (tor, slow). Both
are indexed by the WARC writer's `crawler.warc.cdxj.write_cdxj`, so the clearnet aliases are the
ones a crawl produces.

Chromium is not Python, so the netguard cannot police it: it is only ever pointed at pywb on
127.0.0.1, with no proxy and a host resolver that fails every other name."""

from __future__ import annotations

import http.client
import json
import shutil
import ssl
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path

import pytest
from lxml import html
from onions import MIRROR_ONION_MAP
from services import free_port, running
from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from crawler.tor.onion import OnionMap
from crawler.warc.cdxj import write_cdxj

REPO_ROOT = Path(__file__).resolve().parent.parent
COLLECTION = "crawl"
STYLES = ("story-body", "react", "nytapp")
ENCODINGS = ("identity", "gzip", "br")  # one per style, as Accept-Encoding
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--no-proxy-server",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
)


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.skip("chromium is not installed (Debian package `chromium`; `make setup` adds it)")
    return path


def one_article_per_style(site) -> list:
    found: dict[str, object] = {}
    for index in range(site.total_articles):
        article = site.article(index)
        found.setdefault(article.style, article)
        if len(found) == len(STYLES):
            return [found[style] for style in STYLES]
    raise AssertionError(f"the mirror has articles of styles {sorted(found)} only")


def record_from_mirror(mirror, articles: list, warc: Path) -> None:
    """GET each article from the mirror over loopback HTTPS, as a browser asking for the onion
    host (each with the next of :data:`ENCODINGS`), and write request + response records of
    those exchanges, bodies as received (content-encoded)."""
    host = f"www.{MIRROR_ONION_MAP['nytimes.com']}"
    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE  # the mirror's certificate is self-signed
    with warc.open("wb") as out:
        writer = WARCWriter(out, gzip=True)
        for article, encoding in zip(articles, ENCODINGS, strict=True):
            url = f"https://{host}{article.onion_path}"
            connection = http.client.HTTPSConnection(
                "127.0.0.1", mirror.https_port, timeout=30, context=unverified
            )
            try:
                request_headers = {"Host": host, "Accept-Encoding": encoding}
                connection.request("GET", article.onion_path, headers=request_headers)
                response = connection.getresponse()
                body = response.read()
                assert response.status == 200, (url, response.status)
                assert response.getheader("Content-Encoding", "identity") == encoding
                headers = StatusAndHeaders(
                    f"{response.status} {response.reason}",
                    [(k, v) for k, v in response.getheaders() if k.lower() != "transfer-encoding"],
                    protocol="HTTP/1.1",
                )
            finally:
                connection.close()
            record = writer.create_warc_record(
                url, "response", payload=BytesIO(body), http_headers=headers
            )
            writer.write_record(record)
            request = StatusAndHeaders(f"GET {article.onion_path} HTTP/1.1", [("Host", host)])
            writer.write_record(
                writer.create_warc_record(
                    url, "request", payload=BytesIO(b""), http_headers=request
                )
            )


@pytest.fixture(scope="module")
def captured(mirror, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    """A WARC directory as the crawler leaves it: one finished WARC + its CDXJ."""
    warc_dir = tmp_path_factory.mktemp("warc_output")
    articles = one_article_per_style(mirror.site)
    warc = warc_dir / "onion-archiver-20261125000000000-00000-test.warc.gz"
    record_from_mirror(mirror, articles, warc)
    write_cdxj(warc, OnionMap.from_setting(MIRROR_ONION_MAP))
    return warc_dir, articles


@pytest.fixture(scope="module")
def pywb(captured: tuple[Path, list]) -> Iterator[str]:
    """``python -m crawler.replay`` on a free loopback port over the captured WARC directory."""
    warc_dir, articles = captured
    with replay_server(warc_dir, articles[0].url) as base:
        yield base


@contextmanager
def replay_server(warc_dir: Path, probe_url: str) -> Iterator[str]:
    """Run ``python -m crawler.replay WARC_DIR`` until the block ends; its base URL, once
    *probe_url* is found in its index (bounded wait)."""
    port = free_port()
    command = [sys.executable, "-m", "crawler.replay", str(warc_dir), "--port", str(port)]
    base = f"http://127.0.0.1:{port}"
    with running(
        [*command, "--collection", COLLECTION],
        lambda: urllib.request.urlopen(f"{base}/{COLLECTION}/cdx?url={probe_url}", timeout=5),
        warc_dir.parent / f"replay-{port}.log",
        name="pywb",
        timeout=60,
    ):
        yield base


def rendered_dom(url: str, profile: Path) -> html.HtmlElement:
    """*url* (on 127.0.0.1 only) as headless Chromium renders it, scripts run."""
    assert urllib.parse.urlsplit(url).hostname == "127.0.0.1"
    result = subprocess.run(
        [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return html.fromstring(result.stdout)


def onion_url(article) -> str:
    return f"https://www.{MIRROR_ONION_MAP['nytimes.com']}{article.onion_path}"


def cdx(pywb: str, url: str) -> list[dict]:
    query = urllib.parse.urlencode({"url": url, "output": "json"})
    with urllib.request.urlopen(f"{pywb}/{COLLECTION}/cdx?{query}", timeout=30) as response:
        return [json.loads(line) for line in response.read().splitlines() if line.strip()]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_chromium_shows_the_headline_under_onion_and_clearnet_urls(
    pywb: str, captured: tuple[Path, list], tmp_path: Path
) -> None:
    _warc_dir, articles = captured
    for article in articles:
        for url in (onion_url(article), article.url):
            dom = rendered_dom(f"{pywb}/{COLLECTION}/{url}", tmp_path / "profile")
            headlines = [h1.text_content().strip() for h1 in dom.iter("h1")]
            assert article.title in headlines, (article.style, url, headlines)


@pytest.mark.slow
def test_the_clearnet_url_finds_the_same_capture_as_the_onion_url(
    pywb: str, captured: tuple[Path, list]
) -> None:
    _warc_dir, articles = captured
    for article in articles:
        [by_onion] = cdx(pywb, onion_url(article))
        [by_clearnet] = cdx(pywb, article.url)
        same = ("filename", "offset", "length", "digest", "timestamp")
        assert {k: by_onion[k] for k in same} == {k: by_clearnet[k] for k in same}
        bodies = []
        for url in (onion_url(article), article.url):
            raw = f"{pywb}/{COLLECTION}/{by_onion['timestamp']}id_/{url}"
            with urllib.request.urlopen(raw, timeout=30) as response:
                bodies.append(response.read())
        assert bodies[0] == bodies[1] and article.title.encode() in bodies[0]


def crawl_through_tor(tor_network, urls: list[str], warc_dir: Path) -> None:
    """`scrapy crawl nytimes` of *urls* (and a few pages they link to) through Tor."""
    settings = {
        "TOR_SOCKS_URL": tor_network.socks_url,
        "TOR_CONTROL_URL": tor_network.control_url,
        "ONION_MAP": json.dumps(MIRROR_ONION_MAP),
        "WARC_DIR": str(warc_dir),
        "CAPTURE_INDEX": str(warc_dir.parent / "capture-index.sqlite3"),
        "SPIDER_SITEMAPS": "False",
        "CLOSESPIDER_PAGECOUNT": "8",
        "AUTOTHROTTLE_ENABLED": "False",
    }
    command = [sys.executable, "-m", "scrapy", "crawl", "nytimes", "-a"]
    command += [f"start_urls={','.join(urls)}"]
    command += [arg for name, value in settings.items() for arg in ("-s", f"{name}={value}")]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0 and "Spider closed" in result.stderr, result.stderr[-3000:]


@pytest.mark.tor
@pytest.mark.slow
@pytest.mark.timeout(400)
def test_articles_crawled_through_tor_replay_in_chromium(
    onion_mirror, tor_network, tmp_path: Path
) -> None:
    """Captures as the crawler writes them (content-encoded as the mirror sent them, brotli
    included) replay with their headline under the clearnet URL."""
    articles = one_article_per_style(onion_mirror.site)
    warc_dir = tmp_path / "warc_output"
    crawl_through_tor(tor_network, [article.url for article in articles], warc_dir)
    assert list(warc_dir.glob("*.cdxj")), sorted(warc_dir.iterdir())
    encodings = set()
    with replay_server(warc_dir, articles[0].url) as base:
        for article in articles:
            [capture] = [c for c in cdx(base, article.url) if c["status"] == "200"]
            with (warc_dir / capture["filename"]).open("rb") as warc:
                warc.seek(int(capture["offset"]))
                record = next(iter(ArchiveIterator(warc)))
                encodings.add(record.http_headers.get_header("Content-Encoding", "identity"))
            dom = rendered_dom(f"{base}/{COLLECTION}/{article.url}", tmp_path / "profile")
            headlines = [h1.text_content().strip() for h1 in dom.iter("h1")]
            assert article.title in headlines, (article.style, headlines)
    assert "br" in encodings  # the case pywb's own command cannot replay


def test_an_uncaptured_url_is_not_found(pywb: str) -> None:
    missing = "https://www.nytimes.com/2016/12/10/world/never-captured.html"
    assert cdx(pywb, missing) == []
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(f"{pywb}/{COLLECTION}/id_/{missing}", timeout=30)
    assert error.value.code == 404
