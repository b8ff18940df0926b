"""Nothing leaves except through Tor: crawls with the project's settings (Tor add-on, WARC
writer, policies) under an audit hook recording every connect and name lookup of the crawling
process (tests/torcrawl.py). The loopback guard would also block anything off 127.0.0.1; the
recorder shows that even on loopback only Tor's SOCKS and control ports are contacted."""

from __future__ import annotations

import json

import pytest
from onions import MIRROR_ONION_MAP
from test_handler import connects, free_port, run_crawl

pytestmark = [pytest.mark.tor, pytest.mark.slow, pytest.mark.timeout(300)]


def project_settings(tmp_path, tor_network, **extra) -> dict:
    return {
        "TOR_SOCKS_URL": tor_network.socks_url,
        "TOR_CONTROL_URL": tor_network.control_url,
        "ONION_MAP": json.dumps(MIRROR_ONION_MAP),
        "WARC_DIR": str(tmp_path / "warc"),
        "CAPTURE_INDEX": str(tmp_path / "warc" / "index.sqlite3"),
        "COOKIES_ENABLED": True,  # Scrapy's cookie middleware must not fetch the suffix list
        "AUTOTHROTTLE_ENABLED": False,
        "DOWNLOAD_TIMEOUT": 30,
        "LOG_LEVEL": "DEBUG",
        **extra,
    }


def lookups(crawl: dict) -> list[str]:
    return [target for event, target in crawl["audit"] if event != "socket.connect"]


def test_a_crawl_contacts_only_tor_and_resolves_nothing(tmp_path, onion_mirror, tor_network):
    site = onion_mirror.site
    www = site.www_host
    requests = [
        f"https://www.nytimes.com{site.article_path(5)}",
        f"https://static01.nyt.com{site.image_path(5)}",
        "https://www.nytimes.com/_test/cookies",
        f"https://{www}/_test/redirect-clearnet",
        f"https://{www}/_test/redirect/302?to=https://www.example.com/",
        f"http://{www}/_test/redirect-local",
        "https://www.example.org/off-the-map",
        f"http://127.0.0.1:{onion_mirror.http_port}/_test/ok",
    ]
    settings = project_settings(tmp_path, tor_network)
    crawl = run_crawl(tmp_path, requests, settings, project=True, audit=True)
    article, image, cookies, mapped_redirect, *dropped = crawl["results"]
    for result in (article, image, cookies, mapped_redirect):
        assert result.get("status") == 200, result
    assert article["clearnet_url"] == requests[0]
    assert article["url"] == site.onion_url(site.article_path(5))
    # the stats snapshot precedes the WARC writer's close: look at the files it wrote
    assert list((tmp_path / "warc").glob("*.warc.gz")), "the WARC writer recorded the exchanges"
    assert mapped_redirect["url"] == f"https://{www}/section/world"
    for result in dropped:
        assert result.get("error") == "OffOnionScope", result
    assert crawl["stats"]["tor/scope/dropped"] == len(dropped)

    socks_port = int(tor_network.socks_url.rsplit(":", 1)[1])
    allowed = {repr(("127.0.0.1", socks_port)), repr(("127.0.0.1", tor_network.control_port))}
    assert set(connects(crawl)) <= allowed, connects(crawl)
    assert repr(("127.0.0.1", socks_port)) in connects(crawl)
    crawled_names = ("onion", "nytimes", "nyt.com", "example", "publicsuffix")
    assert not [name for name in lookups(crawl) if any(n in name for n in crawled_names)]
    assert "NetworkLeak" not in crawl["log"]
    assert onion_mirror.http_port not in {
        int(t.rsplit(", ", 1)[1].rstrip(")")) for t in connects(crawl)
    }


def test_with_the_socks_port_down_nothing_goes_elsewhere(tmp_path, onion_mirror, tor_network):
    dead_port = free_port()
    settings = project_settings(
        tmp_path,
        tor_network,
        TOR_SOCKS_URL=f"socks5h://127.0.0.1:{dead_port}",
        TOR_UNAVAILABLE_TIMEOUT=3,
    )
    requests = [f"https://www.nytimes.com{onion_mirror.site.article_path(7)}"]
    crawl = run_crawl(tmp_path, requests, settings, project=True, audit=True, timeout=90)
    assert crawl["reason"] == "tor_unavailable"
    assert "unreachable for 3" in crawl["log"] and "closing the spider" in crawl["log"]
    allowed = {repr(("127.0.0.1", dead_port)), repr(("127.0.0.1", tor_network.control_port))}
    assert set(connects(crawl)) <= allowed, connects(crawl)
    assert repr(("127.0.0.1", dead_port)) in connects(crawl)
    assert not [name for name in lookups(crawl) if "onion" in name or "nytimes" in name]
    assert crawl["elapsed"] < 60
