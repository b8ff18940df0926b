"""The synthetic NYT mirror (tests/mirror), over plain sockets, http.client and ssl on 127.0.0.1."""

from __future__ import annotations

import gzip
import http.client
import io
import json
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import tracemalloc
import zlib
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import urlsplit

import brotli
import pytest
from lxml import etree, html
from mirror import MirrorServer, MirrorSite
from mirror.misbehave import payload
from onions import MIRROR_ONION_MAP
from PIL import Image

TESTS_DIR = Path(__file__).parent
SITEMAP_NS = {"s": "http://www.sitemaps.org/schemas/sitemap/0.9"}


def connect(server: MirrorServer, scheme: str = "http") -> http.client.HTTPConnection:
    if scheme == "https":
        context = ssl.create_default_context(cadata=server.certificate_pem.decode())
        context.check_hostname = False
        return http.client.HTTPSConnection(
            "127.0.0.1", server.https_port, timeout=10, context=context
        )
    return http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=10)


def get(
    server: MirrorServer,
    path: str,
    host: str | None = None,
    scheme: str = "http",
    method: str = "GET",
    **headers: str,
) -> tuple[http.client.HTTPResponse, bytes]:
    """One request on a fresh connection; returns (response, body)."""
    connection = connect(server, scheme)
    try:
        headers = {k.replace("_", "-"): v for k, v in headers.items()}
        connection.request(method, path, headers={"Host": host or server.site.www_host, **headers})
        response = connection.getresponse()
        return response, response.read()
    finally:
        connection.close()


def raw(server: MirrorServer, request: bytes, timeout: float = 10) -> bytes:
    """Send *request* bytes over plain HTTP and read until the server closes."""
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def raw_get(server: MirrorServer, path: str, host: str | None = None) -> bytes:
    host = host or server.site.www_host
    return raw(server, f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())


def closed_by_server(sock: socket.socket) -> bool:
    """True when the server has closed *sock* (EOF or reset); our timeout raises instead."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def split_response(data: bytes) -> tuple[str, list[tuple[str, str]], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    return status, [tuple(line.split(": ", 1)) for line in lines], body


def dechunk(body: bytes) -> tuple[bytes, list[bytes]]:
    """Decode chunked framing; returns (payload, chunk-size lines)."""
    out, size_lines, stream = [], [], io.BytesIO(body)
    while True:
        line = stream.readline()
        size_lines.append(line)
        size = int(line.split(b";")[0], 16)
        if size == 0:
            break
        out.append(stream.read(size))
        assert stream.read(2) == b"\r\n"
    return b"".join(out), size_lines


def article_of_style(site: MirrorSite, style: str) -> int:
    return next(i for i in range(site.total_articles) if site.article(i).style == style)


# --- content and ground truth -------------------------------------------------------------------


def test_article_paths_are_unique_and_resolve_back():
    site = MirrorSite(articles=2000, onion_map=MIRROR_ONION_MAP, seed=3)
    paths = list(site.article_paths())
    assert len(set(paths)) == 2000
    assert all(site.resolve_article(path) == i for i, path in enumerate(paths))
    assert site.resolve_article(paths[5].replace(".html", "-x.html")) is None
    assert site.resolve_article("/2015/02/30/world/nothing.html") is None
    with pytest.raises(IndexError):
        site.article(2000)


def test_article_urls_clearnet_and_onion(mirror):
    site = mirror.site
    clearnet = site.all_article_urls(clearnet=True)
    onion = site.all_article_urls(clearnet=False)
    assert len(clearnet) == len(onion) == 1000
    assert all(url.startswith("https://www.nytimes.com/") for url in clearnet)
    assert [urlsplit(u).hostname for u in onion] == [site.www_host] * 1000
    assert [site.onions.to_clearnet_url(u) for u in onion] == clearnet
    truth = site.article(123)
    assert clearnet[123] == truth.url and urlsplit(onion[123]).path == truth.onion_path


def test_generation_is_deterministic_and_seeded():
    one, two = (MirrorSite(articles=50, onion_map=MIRROR_ONION_MAP, seed=1) for _ in range(2))
    other = MirrorSite(articles=50, onion_map=MIRROR_ONION_MAP, seed=2)
    assert one.article(42) == two.article(42)
    assert list(one.article_paths()) == list(two.article_paths())
    assert one.article(42).paragraphs != other.article(42).paragraphs


def test_ground_truth_is_complete():
    site = MirrorSite(articles=300, onion_map=MIRROR_ONION_MAP)
    articles = [site.article(i) for i in range(300)]
    assert {a.style for a in articles} == {"story-body", "react", "nytapp"}
    assert {len(a.authors) for a in articles} == {1, 2, 3, 4}
    for a in articles:
        record = a.record()
        assert record["text"] == "\n\n".join(record["paragraphs"])
        assert a.published_datetime.utcoffset() is not None
        assert a.modified_datetime >= a.published_datetime
        assert record["images"][0]["url"].startswith("https://static01.nyt.com/images/")
        assert all(link.text in a.text for link in a.links)
    linked = [link.url for a in articles for link in a.links]
    assert any(url.startswith("https://www.nytimes.com/") for url in linked)
    assert any("nytimes.com" not in url for url in linked)


def test_a_large_site_costs_no_memory_per_article():
    """100,000 articles: nothing precomputed per article (a list of 100k ints alone is 3.5 MB)."""
    tracemalloc.start()
    try:
        small_site = MirrorSite(articles=10, onion_map=MIRROR_ONION_MAP)
        small_site.article(9)
        small = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        site = MirrorSite(articles=100_000, onion_map=MIRROR_ONION_MAP)
        last = site.article(99_999)
        path = site.article_path(99_999)
        large = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert site.resolve_article(path) == 99_999 and last.onion_path == path
    assert large < small + 1_000_000, (small, large)


# --- pages --------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_serves_home_and_an_article(mirror, scheme):
    site = mirror.site
    response, body = get(mirror, "/", scheme=scheme)
    assert response.status == 200
    assert f"{scheme}://{site.www_host}/".encode() in body
    article = site.article(7)
    response, body = get(mirror, article.onion_path, scheme=scheme)
    assert response.status == 200 and response.getheader("Content-Type").startswith("text/html")
    assert article.title.encode() in body
    assert mirror.sent_bytes(response.getheader("X-Mirror-Exchange")).endswith(body)


def _texts(elements) -> list[str]:
    return [element.text_content() for element in elements]


def test_story_body_markup(mirror):
    site = mirror.site
    truth = site.article(article_of_style(site, "story-body"))
    doc = html.fromstring(get(mirror, truth.onion_path)[1])
    assert len(doc.cssselect("article#story")) == 1
    assert _texts(doc.cssselect("div.story-body p.story-body-text.story-content")) == (
        truth.paragraphs
    )
    bylines = doc.cssselect("span.byline-author[data-byline-name]")
    assert [b.get("data-byline-name") for b in bylines] == list(truth.authors)
    lede = doc.cssselect("figure.media.photo.lede")[0]
    assert lede.cssselect(".caption-text")[0].text_content() == truth.image_caption
    assert lede.cssselect(".credit")[0].text_content().endswith(truth.image_credit)
    published = truth.published_datetime
    assert doc.cssselect('meta[name="pdate"]')[0].get("content") == f"{published:%Y%m%d}"
    assert doc.cssselect('meta[name="ptime"]')[0].get("content") == f"{published:%Y%m%d%H%M%S}"
    assert "Advertisement" in doc.text_content()


def test_react_markup(mirror):
    site = mirror.site
    truth = site.article(article_of_style(site, "react"))
    doc = html.fromstring(get(mirror, truth.onion_path)[1])
    body = doc.cssselect("section[name=articleBody]")[0]
    assert _texts(body.cssselect("div.StoryBodyCompanionColumn p")) == truth.paragraphs
    figure = doc.cssselect("figure:has([data-testid=photoviewer-wrapper])")[0]
    assert figure.cssselect("figcaption span")[0].text_content() == truth.image_caption
    assert truth.image_credit in figure.cssselect("figcaption")[0].text_content()
    assert doc.cssselect("h1[data-testid=headline]")[0].text_content() == truth.title
    assert any(c.startswith("css-") for c in body.get("class").split())
    assert "Continue reading the main story" in body.text_content()


def test_nytapp_markup_and_json_ld(mirror):
    site = mirror.site
    truth = site.article(article_of_style(site, "nytapp"))
    doc = html.fromstring(get(mirror, truth.onion_path, scheme="https")[1])
    assert "nytapp-vi-article" in doc.get("class").split()
    data = json.loads(doc.cssselect('script[type="application/ld+json"]')[0].text)
    assert data["@type"] == "NewsArticle"
    assert data["headline"] == truth.title and data["description"] == truth.description
    assert [a["name"] for a in data["author"]] == list(truth.authors)
    assert (data["datePublished"], data["dateModified"]) == (truth.published, truth.modified)
    assert data["articleSection"] == truth.section
    assert data["image"][0]["caption"] == truth.image_caption
    assert site.onions.to_clearnet_url(data["image"][0]["url"]) == truth.image_url
    paragraphs = doc.cssselect("section[name=articleBody] div.StoryBodyCompanionColumn p")
    assert _texts(paragraphs) == truth.paragraphs
    page_text = doc.text_content()
    for clutter in ("Supported by", "Advertisement", "Sign up for", truth.author_bio, "Site Index"):
        assert clutter in page_text


def test_body_links_match_ground_truth(mirror):
    site = mirror.site
    for index in range(1, 40):
        truth = site.article(index)
        doc = html.fromstring(get(mirror, truth.onion_path, scheme="https")[1])
        paragraphs = doc.cssselect(
            "p.story-body-text, section[name=articleBody] div.StoryBodyCompanionColumn p"
        )
        found = [(a.get("href"), a.text_content()) for p in paragraphs for a in p.iter("a")]
        assert [(site.onions.to_clearnet_url(h), t) for h, t in found] == [
            (link.url, link.text) for link in truth.links
        ]
        for (href, _), link in zip(found, truth.links, strict=True):
            onion = urlsplit(href).hostname.endswith(".onion")
            assert onion == (
                link.url.startswith("https://www.nytimes.com/") and not link.clearnet_in_page
            )


def test_links_are_onion_rewritten_with_realistic_exceptions(mirror):
    site = mirror.site
    hrefs = set()
    for path in ("/", "/section/world", *(site.article(i).onion_path for i in range(30))):
        doc = html.fromstring(get(mirror, path)[1])
        hrefs |= {a.get("href") for a in doc.iter("a")} | {i.get("src") for i in doc.iter("img")}
    hosts = {urlsplit(h).hostname for h in hrefs}
    assert site.www_host in hosts and site.static_host in hosts
    assert "www.nytimes.com" in hosts  # some left in clearnet form
    assert "twitter.com" in hosts and "www.facebook.com" in hosts  # off-site
    assert f"myaccount.{site.site_onion}" in hosts  # login
    assert any(urlsplit(h).path.startswith("/subscription") for h in hrefs)
    assert any("smid=" in h for h in hrefs)
    assert any(urlsplit(h).path.startswith("/svc/") for h in hrefs)  # tracking
    assert any(h.startswith("/20") for h in hrefs)  # relative article links
    assert not any("/_test/" in h for h in hrefs)


def test_robots_txt(mirror):
    response, body = get(mirror, "/robots.txt", scheme="https")
    text = body.decode()
    assert response.status == 200
    for path in ("/svc/", "/search", "/subscription"):
        assert f"Disallow: {path}\n" in text
    sitemaps = [line.split(" ", 1)[1] for line in text.splitlines() if line.startswith("Sitemap:")]
    assert f"https://{mirror.site.www_host}/sitemaps/sitemap.xml" in sitemaps
    assert "/_test/" not in text


def test_sitemaps_list_every_article(mirror):
    site = mirror.site
    index = etree.fromstring(get(mirror, "/sitemaps/sitemap.xml", scheme="https")[1])
    entries = index.findall("s:sitemap", SITEMAP_NS)
    assert len(entries) >= 2
    urls = []
    for entry in entries:
        loc = entry.findtext("s:loc", namespaces=SITEMAP_NS)
        assert urlsplit(loc).hostname == site.www_host and loc.endswith(".xml.gz")
        assert entry.findtext("s:lastmod", namespaces=SITEMAP_NS)
        response, body = get(mirror, urlsplit(loc).path)
        assert response.status == 200 and response.getheader("Content-Encoding") is None
        urlset = etree.fromstring(gzip.decompress(body))
        for url in urlset.findall("s:url", SITEMAP_NS):
            urls.append(url.findtext("s:loc", namespaces=SITEMAP_NS))
            assert url.findtext("s:lastmod", namespaces=SITEMAP_NS)
    assert urls == site.all_article_urls(clearnet=True)
    news = etree.fromstring(get(mirror, "/sitemaps/news.xml")[1])
    locs = [u.findtext("s:loc", namespaces=SITEMAP_NS) for u in news.findall("s:url", SITEMAP_NS)]
    newest = site.article_path(site.total_articles - 1)
    assert locs[0] == site.onion_url(newest, scheme="http") and len(locs) == 100
    assert get(mirror, "/sitemaps/sitemap-2001-01.xml.gz")[0].status == 404


def test_section_fronts_and_feeds(mirror):
    site = mirror.site
    doc = html.fromstring(get(mirror, "/section/world")[1])
    links = [a.get("href") for a in doc.cssselect("main li a")]
    assert len(links) == 30
    indices = [site.resolve_article(urlsplit(h).path) for h in links]
    assert all(site.section_of(i).path.split("/")[0] == "world" for i in indices)
    feed = etree.fromstring(get(mirror, "/services/xml/rss/nyt/MiddleEast.xml")[1])
    items = feed.findall("channel/item")
    assert items and all(i.findtext("category") == "Middle East" for i in items)
    assert get(mirror, "/section/nothing")[0].status == 404
    assert get(mirror, "/services/xml/rss/nyt/Nothing.xml")[0].status == 404


def test_static_host_serves_images_css_and_js(mirror):
    site = mirror.site
    truth = site.article(11)
    image_url = site.onions.to_onion_url(truth.image_url)
    response, body = get(mirror, urlsplit(image_url).path, host=site.static_host)
    assert response.status == 200 and response.getheader("Content-Type") == "image/jpeg"
    image = Image.open(io.BytesIO(body))
    image.load()
    assert image.format == "JPEG" and image.size[0] > 0
    assert get(mirror, urlsplit(image_url).path, host=site.static_host)[1] == body
    doc = html.fromstring(get(mirror, truth.onion_path)[1])
    assets = [e.get("href") or e.get("src") for e in doc.cssselect("link[rel=stylesheet], script")]
    for url in filter(None, assets):
        if urlsplit(url).hostname == site.static_host:
            assert get(mirror, urlsplit(url).path, host=site.static_host)[0].status == 200
    logo = doc.cssselect("link[rel=icon]")[0].get("href")
    response, body = get(mirror, urlsplit(logo).path, host=site.static_host)
    assert Image.open(io.BytesIO(body)).format == "PNG"
    assert get(mirror, truth.onion_path, host=site.static_host)[0].status == 404
    assert get(mirror, "/images/2015/01/01/world/x/x-articleLarge.jpg", host=site.static_host)[
        0
    ].status == (404)


def test_host_dispatch(mirror):
    site = mirror.site
    assert get(mirror, "/robots.txt", host=site.site_onion)[0].status == 200
    assert get(mirror, "/robots.txt", host=f"{site.www_host}:80")[0].status == 200
    for host in ("www.nytimes.com", f"myaccount.{site.site_onion}", "127.0.0.1"):
        response, _ = get(mirror, "/", host=host)
        assert response.status == 421 and response.getheader("X-Mirror-Exchange")
    status, headers, _ = split_response(raw(mirror, b"GET / HTTP/1.1\r\n\r\n"))
    assert status == "HTTP/1.1 400 Bad Request" and ("Connection", "close") in headers


# --- HTTP semantics -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\n bad: fold\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 70000 + b"\r\n\r\n", 431),
        (b"POST /_test/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
        (b"POST /_test/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n", 413),
    ],
)
def test_bad_requests_get_a_clear_error_and_a_close(mirror, request_bytes, status):
    data = raw(mirror, request_bytes)
    status_line, headers, _ = split_response(data)
    assert status_line.startswith(f"HTTP/1.1 {status} ")
    exchange = dict(headers)["X-Mirror-Exchange"]
    assert mirror.sent_bytes(exchange) == data


def test_conditional_requests(mirror):
    path = mirror.site.article(3).onion_path
    response, _ = get(mirror, path)
    etag, last_modified = response.getheader("ETag"), response.getheader("Last-Modified")
    assert etag and last_modified
    response, body = get(mirror, path, If_None_Match=etag)
    assert (response.status, body) == (304, b"") and response.getheader("ETag") == etag
    assert get(mirror, path, If_None_Match='"other"')[0].status == 200
    assert get(mirror, path, If_Modified_Since=last_modified)[0].status == 304
    assert get(mirror, path, If_Modified_Since="Mon, 01 Jan 2001 00:00:00 GMT")[0].status == 200
    assert get(mirror, path, If_None_Match='"other"', If_Modified_Since=last_modified)[
        0
    ].status == (200)  # If-None-Match wins
    gzipped, _ = get(mirror, path, Accept_Encoding="gzip")
    assert get(mirror, path, If_None_Match=gzipped.getheader("ETag"))[0].status == 304


def test_content_encoding_follows_accept_encoding(mirror):
    path = mirror.site.article(4).onion_path
    plain, identity = get(mirror, path)
    assert plain.getheader("Content-Encoding") is None and plain.getheader("Vary")
    response, body = get(mirror, path, Accept_Encoding="gzip, deflate")
    assert response.getheader("Content-Encoding") == "gzip"
    assert gzip.decompress(body) == identity
    response, body = get(mirror, path, Accept_Encoding="gzip, deflate, br")
    assert response.getheader("Content-Encoding") == "br"
    assert brotli.decompress(body) == identity
    response, body = get(mirror, path, Accept_Encoding="br;q=0, gzip;q=0.5")
    assert response.getheader("Content-Encoding") == "gzip"
    assert len({plain.getheader("ETag"), response.getheader("ETag")}) == 2


def test_head_has_no_body(mirror):
    path = mirror.site.article(5).onion_path
    _full, body = get(mirror, path)
    response, empty = get(mirror, path, method="HEAD")
    assert response.status == 200 and empty == b""
    assert response.getheader("Content-Length") == str(len(body))


def test_keep_alive_and_connection_close(mirror):
    site = mirror.site
    connection = connect(mirror)
    try:
        ids = []
        for index in range(5):
            connection.request(
                "GET", site.article(index).onion_path, headers={"Host": site.www_host}
            )
            response = connection.getresponse()
            response.read()
            ids.append(response.getheader("X-Mirror-Exchange"))
            if index == 0:
                sock = connection.sock
            assert connection.sock is sock  # same connection every time
        assert len(set(ids)) == 5
    finally:
        connection.close()
    data = raw_get(mirror, "/robots.txt")  # Connection: close: raw() reads until the server closes
    assert data.startswith(b"HTTP/1.1 200 OK\r\n") and b"\r\nConnection: close\r\n" in data
    data = raw(mirror, f"GET /robots.txt HTTP/1.0\r\nHost: {site.www_host}\r\n\r\n".encode())
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    response, _body = get(mirror, "/_test/close")
    assert response.getheader("Connection") == "close"


def test_idle_connections_are_closed():
    site = MirrorSite(articles=10, onion_map=MIRROR_ONION_MAP)
    with (
        MirrorServer(site, https_port=None, idle_timeout=0.2) as server,
        socket.create_connection(("127.0.0.1", server.http_port), timeout=10) as sock,
    ):
        assert closed_by_server(sock)  # closed by the server, not by our 10 s timeout


def test_sent_and_received_bytes_are_exact(mirror):
    site = mirror.site
    request = (
        f"GET {site.article(8).onion_path} HTTP/1.1\r\nhost: {site.www_host}\r\n"
        "X-Odd:  spaced \r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n"
    ).encode()
    data = raw(mirror, request)
    exchange = dict(split_response(data)[1])["X-Mirror-Exchange"]
    assert mirror.sent_bytes(exchange) == data
    assert mirror.received_bytes(exchange) == request
    with pytest.raises(KeyError):
        mirror.sent_bytes("99999999", timeout=0.1)


def test_serves_on_ipv6_loopback():
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this Python")
    site = MirrorSite(articles=10, onion_map=MIRROR_ONION_MAP)
    try:
        server = MirrorServer(site, host="::1", https_port=None).start()
    except OSError as error:
        pytest.skip(f"::1 cannot be bound here: {error}")
    try:
        with socket.create_connection(("::1", server.http_port), timeout=10) as sock:
            sock.sendall(f"GET /robots.txt HTTP/1.0\r\nHost: {site.www_host}\r\n\r\n".encode())
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK\r\n")
        assert server.origin() == f"http://[::1]:{server.http_port}"
    finally:
        server.stop()


def test_a_busy_port_fails_start_and_leaves_nothing_open(mirror):
    site = MirrorSite(articles=10, onion_map=MIRROR_ONION_MAP)
    server = MirrorServer(site, http_port=0, https_port=mirror.http_port)
    with pytest.raises(OSError):
        server.start()
    assert server.http_port != 0  # it was bound, then closed again:
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.http_port), timeout=5)


def test_sent_bytes_needs_a_log_dir():
    site = MirrorSite(articles=10, onion_map=MIRROR_ONION_MAP)
    with MirrorServer(site, https_port=None) as server, pytest.raises(RuntimeError):
        server.sent_bytes("00000001")


def test_listen_backlog_is_128(mirror):
    ss = shutil.which("ss")
    if ss is None:
        pytest.skip("ss (iproute2) is not installed: cannot read a listener's backlog")
    listing = subprocess.run([ss, "-ltnH"], capture_output=True, text=True, timeout=10).stdout
    backlogs = {
        int(fields[3].rsplit(":", 1)[1]): int(fields[2])
        for fields in (line.split() for line in listing.splitlines())
        if len(fields) >= 4
    }
    assert backlogs[mirror.http_port] >= 128 and backlogs[mirror.https_port] >= 128


def test_many_concurrent_connections(mirror):
    site = mirror.site
    statuses: list[int] = []

    def fetch(index: int) -> None:
        statuses.append(get(mirror, site.article(index).onion_path)[0].status)

    threads = [threading.Thread(target=fetch, args=(i,)) for i in range(64)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert statuses == [200] * 64


def test_stop_closes_everything():
    site = MirrorSite(articles=10, onion_map=MIRROR_ONION_MAP)
    server = MirrorServer(site).start()
    idle = socket.create_connection(("127.0.0.1", server.http_port), timeout=10)
    slow = socket.create_connection(("127.0.0.1", server.http_port), timeout=10)
    for sock in (idle, slow):  # one answered request each: both connections are being served
        sock.sendall(f"GET /_test/ok HTTP/1.1\r\nHost: {site.www_host}\r\n\r\n".encode())
        received = b""
        while not received.endswith(b"\r\n\r\nok\n"):
            received += sock.recv(65536)
    slow.sendall(f"GET /_test/slow?delay=30 HTTP/1.1\r\nHost: {site.www_host}\r\n\r\n".encode())
    before = threading.active_count()
    server.stop()
    assert threading.active_count() <= before - 3  # acceptor and both connection threads
    assert closed_by_server(idle) and closed_by_server(slow)
    idle.close()
    slow.close()
    for port in (server.http_port, server.https_port):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5)


# --- misbehaviour -------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_redirects(mirror, code):
    response, _ = get(mirror, f"/_test/redirect/{code}?to=/section/world")
    assert (response.status, response.getheader("Location")) == (code, "/section/world")


def test_http_to_https_redirect(mirror):
    response, _ = get(mirror, "/_test/https?to=/robots.txt")
    assert response.status == 301
    assert response.getheader("Location") == f"https://{mirror.site.www_host}/robots.txt"
    assert get(mirror, "/_test/https", scheme="https")[0].status == 200


def test_redirect_loop_and_leaving_redirects(mirror):
    location = "/_test/redirect-loop/a"
    seen = []
    for _ in range(4):
        response, _ = get(mirror, location)
        assert response.status == 302
        location = response.getheader("Location")
        seen.append(location)
    assert seen == ["/_test/redirect-loop/b", "/_test/redirect-loop/a"] * 2
    response, _ = get(mirror, "/_test/redirect-clearnet")
    assert urlsplit(response.getheader("Location")).hostname == "www.nytimes.com"
    response, _ = get(mirror, "/_test/redirect-local")
    assert response.getheader("Location") == "http://127.0.0.1/"


@pytest.mark.parametrize("code", [404, 410, 429, 503])
def test_error_statuses(mirror, code):
    response, _ = get(mirror, f"/_test/status/{code}?retry_after=7")
    assert response.status == code
    assert response.getheader("Retry-After") == ("7" if code in (429, 503) else None)


def test_slow_first_byte(mirror):
    with socket.create_connection(("127.0.0.1", mirror.http_port), timeout=10) as sock:
        sock.sendall(
            f"GET /_test/slow?delay=1.0 HTTP/1.1\r\nHost: {mirror.site.www_host}\r\n\r\n".encode()
        )
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.recv(1)  # nothing yet
        sock.settimeout(10)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK\r\n")


def test_slow_trickle(mirror):
    with socket.create_connection(("127.0.0.1", mirror.http_port), timeout=10) as sock:
        sock.sendall(
            (
                f"GET /_test/trickle?size=20&pace=0.02 HTTP/1.1\r\nHost: {mirror.site.www_host}"
                "\r\nConnection: close\r\n\r\n"
            ).encode()
        )
        started = time.monotonic()
        reads = []
        while chunk := sock.recv(65536):
            reads.append(chunk)
        elapsed = time.monotonic() - started
    _status, headers, body = split_response(b"".join(reads))
    assert body == payload(20) and ("Content-Length", "20") in headers
    # A lower bound only (the server sleeps 0.02 s after each of the 20 bytes): never flaky.
    assert elapsed >= 0.9 * 20 * 0.02 and len(reads) >= 2


@pytest.mark.parametrize("coding", [None, "gzip", "br"])
def test_chunked_transfer(mirror, coding):
    query = f"?encoding={coding}" if coding else ""
    _status, headers, body = split_response(raw_get(mirror, f"/_test/chunked{query}"))
    assert ("Transfer-Encoding", "chunked") in headers and "Content-Length" not in dict(headers)
    content, size_lines = dechunk(body)
    assert b"1F\r\n" in size_lines and any(b";mirror-ext=1" in line for line in size_lines)
    assert len({int(line.split(b";")[0], 16) for line in size_lines}) >= 5  # odd sizes
    assert body.endswith(b"0\r\nX-Mirror-Trailer: done\r\n\r\n")
    decode = {None: bytes, "gzip": gzip.decompress, "br": brotli.decompress}[coding]
    assert decode(content) == payload(5000)
    assert dict(headers).get("Content-Encoding") == coding
    assert get(mirror, f"/_test/chunked{query}")[1] == content  # http.client de-chunks it


@pytest.mark.parametrize("coding", ["gzip", "br"])
def test_forced_content_encoding(mirror, coding):
    response, body = get(mirror, f"/_test/encoding/{coding}", Accept_Encoding="identity")
    assert response.getheader("Content-Encoding") == coding
    decoded = gzip.decompress(body) if coding == "gzip" else brotli.decompress(body)
    assert decoded.startswith(b"content-coded body\n")


def test_duplicate_set_cookie(mirror):
    response, _ = get(mirror, "/_test/cookies")
    assert len(response.msg.get_all("Set-Cookie")) == 3


def test_odd_header_case_and_order(mirror):
    _status, headers, body = split_response(raw_get(mirror, "/_test/odd-headers"))
    names = [name for name, _ in headers]
    assert names[0] == "X-Mirror-Exchange"
    assert "x-ODD-case" in names and "content-TYPE" in names
    assert names.index("Date") > names.index("CONTENT-LENGTH")
    assert [v for n, v in headers if n == "X-Repeated"] == ["one", "two"]
    assert ("X-Empty", "") in headers
    assert body == b"odd headers\n"


def test_non_standard_reason_phrase(mirror):
    assert raw_get(mirror, "/_test/reason").startswith(b"HTTP/1.1 200 Fine Thanks\r\n")
    response, _ = get(mirror, "/_test/reason?reason=Quite%20Alright")
    assert (response.status, response.reason) == (200, "Quite Alright")


def test_truncated_body(mirror):
    _status, headers, body = split_response(
        raw_get(mirror, "/_test/truncated?length=1000&sent=100")
    )
    assert ("Content-Length", "1000") in headers and body == payload(100)
    with pytest.raises(http.client.IncompleteRead):
        get(mirror, "/_test/truncated")


def test_oversized_body_is_streamed():
    site = MirrorSite(articles=10, onion_map=MIRROR_ONION_MAP)
    size = 32 << 20
    with MirrorServer(site, https_port=None) as server:
        tracemalloc.start()
        try:
            connection = connect(server)
            connection.request("GET", f"/_test/big?size={size}", headers={"Host": site.www_host})
            response = connection.getresponse()
            assert response.getheader("Content-Length") == str(size)
            received, crc = 0, 0
            while chunk := response.read(1 << 16):
                received += len(chunk)
                crc = zlib.crc32(chunk, crc)
            connection.close()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert received == size and crc == zlib.crc32(payload(size))
    assert peak < 4 << 20, peak  # neither side held the 32 MB body


def test_echo_returns_the_request_as_received(mirror):
    request = (
        f"POST /_test/echo HTTP/1.1\r\nHost: {mirror.site.www_host}\r\nContent-Length: 5\r\n"
        "Connection: close\r\n\r\nhello"
    ).encode()
    assert split_response(raw(mirror, request))[2] == request


# --- editions -----------------------------------------------------------------------------------


def test_edition_adds_and_updates_articles(tmp_path):
    base = MirrorSite(articles=150, onion_map=MIRROR_ONION_MAP)
    later = MirrorSite(
        articles=150, onion_map=MIRROR_ONION_MAP, edition=1, new_articles=30, updated_articles=15
    )
    assert later.total_articles == 180
    updated = later.updated_indices()
    assert len(updated) == 15 and max(updated) < 150
    with MirrorServer(base, https_port=None) as old, MirrorServer(later, https_port=None) as new:
        for index in range(150):
            path = base.article_path(index)
            assert later.article_path(index) == path
            before, old_body = get(old, path)
            after, new_body = get(new, path)
            if index in updated:
                assert new_body != old_body and before.getheader("ETag") != after.getheader("ETag")
                assert later.article(index).modified == later.edition_time().isoformat()
                modified = parsedate_to_datetime(after.getheader("Last-Modified"))
                assert modified == later.edition_time()
                assert get(new, path, If_None_Match=before.getheader("ETag"))[0].status == 200
            else:
                assert new_body == old_body and before.getheader("ETag") == after.getheader("ETag")
                assert get(new, path, If_None_Match=before.getheader("ETag"))[0].status == 304
        for index in range(150, 180):
            assert get(new, later.article_path(index))[0].status == 200
            assert get(old, later.article_path(index))[0].status == 404
        new_paths = {later.article_path(i) for i in range(150, 180)}
        home = get(new, "/")[1].decode()
        assert any(path in home for path in new_paths)
        sitemap_urls = []
        index = etree.fromstring(get(new, "/sitemaps/sitemap.xml")[1])
        for loc in index.iterfind("s:sitemap/s:loc", SITEMAP_NS):
            urlset = etree.fromstring(gzip.decompress(get(new, urlsplit(loc.text).path)[1]))
            sitemap_urls += [u.text for u in urlset.iterfind("s:url/s:loc", SITEMAP_NS)]
        assert sitemap_urls == later.all_article_urls(clearnet=True)


def test_a_running_server_switches_to_a_later_edition():
    base = MirrorSite(articles=20, onion_map=MIRROR_ONION_MAP)
    later = MirrorSite(articles=20, onion_map=MIRROR_ONION_MAP, edition=1, new_articles=5)
    with MirrorServer(base, https_port=None) as server:
        new_path = later.article_path(24)
        assert get(server, new_path)[0].status == 404
        assert server.use_site(later) is base
        assert get(server, new_path)[0].status == 200
        assert server.use_site(base) is later
        assert get(server, new_path)[0].status == 404
        swapped = {
            "nytimes.com": MIRROR_ONION_MAP["nyt.com"],
            "nyt.com": MIRROR_ONION_MAP["nytimes.com"],
        }
        with pytest.raises(ValueError):
            server.use_site(MirrorSite(articles=20, onion_map=swapped))


def test_edition_changes_only_the_sitemaps_it_touches():
    base = MirrorSite(articles=2200, onion_map=MIRROR_ONION_MAP)  # January to early April
    later = MirrorSite(
        articles=2200, onion_map=MIRROR_ONION_MAP, edition=1, new_articles=10, updated_articles=1
    )
    touched = {later.published(i).strftime("%Y-%m") for i in [*later.updated_indices(), 2209]}
    assert 1 <= len(touched) <= 2  # the other months must come out byte-identical
    with MirrorServer(base, https_port=None) as old, MirrorServer(later, https_port=None) as new:
        indexes = [etree.fromstring(get(s, "/sitemaps/sitemap.xml")[1]) for s in (old, new)]
        lastmods = [
            {
                urlsplit(e.findtext("s:loc", namespaces=SITEMAP_NS)).path: e.findtext(
                    "s:lastmod", namespaces=SITEMAP_NS
                )
                for e in index
            }
            for index in indexes
        ]
        assert list(lastmods[0]) == list(lastmods[1]) and len(lastmods[0]) == 4
        for path, lastmod in lastmods[1].items():
            month = path[len("/sitemaps/sitemap-") : -len(".xml.gz")]
            same = get(old, path)[1] == get(new, path)[1]
            assert same == (lastmods[0][path] == lastmod) == (month not in touched), path


# --- command line -------------------------------------------------------------------------------


def test_command_line_prints_ports_and_serves():
    process = subprocess.Popen(
        [sys.executable, "-m", "mirror", "--articles", "10"],
        cwd=TESTS_DIR,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [process.stdout.readline() for _ in range(2)]
        ports = dict(line.split() for line in lines)
        site = MirrorSite(articles=10, onion_map=MIRROR_ONION_MAP)
        with socket.create_connection(("127.0.0.1", int(ports["http_port"])), timeout=10) as sock:
            sock.sendall(f"GET /robots.txt HTTP/1.0\r\nHost: {site.www_host}\r\n\r\n".encode())
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK\r\n")
    finally:
        process.terminate()
        assert process.wait(10) == 0
