"""The synthetic NYT mirror (tests/mirror), over plain sockets, http.client and ssl on 127.0.0.1."""

from __future__ import annotations

import http.client
import ssl

import pytest
from mirror import MirrorServer, MirrorSite
from onions import MIRROR_ONION_MAP


def get(server: MirrorServer, path: str, host: str | None = None, scheme: str = "http", **headers):
    """One request on a fresh connection; returns (response, body)."""
    if scheme == "https":
        context = ssl.create_default_context(cadata=server.certificate_pem.decode())
        context.check_hostname = False
        connection = http.client.HTTPSConnection(
            "127.0.0.1", server.https_port, timeout=10, context=context
        )
    else:
        connection = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=10)
    try:
        connection.request("GET", path, headers={"Host": host or server.site.www_host, **headers})
        response = connection.getresponse()
        return response, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_serves_home_and_an_article(mirror, scheme):
    site = mirror.site
    response, body = get(mirror, "/", scheme=scheme)
    assert response.status == 200
    assert site.www_host.encode() in body
    article = site.article(7)
    response, body = get(mirror, article.onion_path, scheme=scheme)
    assert response.status == 200
    assert article.title.encode() in body
    exchange = response.getheader("X-Mirror-Exchange")
    assert mirror.sent_bytes(exchange).endswith(body)


def test_other_hosts_get_421(mirror):
    response, _ = get(mirror, "/", host="www.nytimes.com")
    assert response.status == 421


def test_article_paths_resolve_back(mirror):
    site = MirrorSite(articles=100, onion_map=MIRROR_ONION_MAP)
    paths = list(site.article_paths())
    assert len(set(paths)) == 100
    assert [site.resolve_article(p) for p in paths] == list(range(100))
