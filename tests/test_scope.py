"""Onion scope (clearnet -> onion mapping, everything else dropped), isolation policy, the
SOCKS URL setting and the Tor add-on's settings. No network."""

from __future__ import annotations

import json

import pytest
from onions import MIRROR_ONION_MAP
from scrapy import Request
from scrapy.exceptions import IgnoreRequest, NotConfigured
from scrapy.settings import Settings
from scrapy.utils.test import get_crawler

from crawler.tor.addon import TorAddon
from crawler.tor.handler import IsolationPolicy, parse_socks_url
from crawler.tor.middleware import OffOnionScope, OnionScopeMiddleware

ONION_A = MIRROR_ONION_MAP["nytimes.com"]
ONION_B = MIRROR_ONION_MAP["nyt.com"]


@pytest.fixture
def scope():
    crawler = get_crawler(settings_dict={"ONION_MAP": json.dumps(MIRROR_ONION_MAP)})
    crawler.stats.open_spider()
    return OnionScopeMiddleware.from_crawler(crawler)


@pytest.mark.parametrize(
    ("url", "onion_url"),
    [
        ("https://www.nytimes.com/section/world", f"https://www.{ONION_A}/section/world"),
        ("http://static01.nyt.com/a.jpg?x=1", f"http://static01.{ONION_B}/a.jpg?x=1"),
        ("https://NYTIMES.com:8443/", f"https://{ONION_A}:8443/"),
    ],
)
def test_clearnet_urls_of_the_map_are_replaced_by_their_onion_form(scope, url, onion_url):
    request = Request(url, meta={"depth": 2})
    mapped = scope.process_request(request)
    assert mapped.url == onion_url
    assert mapped.meta == {"depth": 2, "clearnet_url": request.url}
    assert scope.crawler.stats.get_value("tor/scope/mapped") == 1
    assert scope.process_request(mapped) is None


def test_the_first_clearnet_url_is_kept_along_a_redirect_chain(scope):
    request = Request("https://nytimes.com/b", meta={"clearnet_url": "https://nytimes.com/a"})
    assert scope.process_request(request).meta["clearnet_url"] == "https://nytimes.com/a"


def test_onion_urls_pass_unchanged(scope):
    for url in (f"https://www.{ONION_A}/x", f"http://{ONION_B}/"):
        assert scope.process_request(Request(url)) is None


@pytest.mark.parametrize(
    "url",
    [
        "https://www.example.com/",
        "http://127.0.0.1/",
        "http://[::1]:8080/",
        "http://localhost/",
        "https://nytimes.com.evil.example/",
        "https://user:pw@www.nytimes.com/",
        f"https://www.{ONION_A[:-7]}x.onion/",  # checksum broken: not an onion address
        "file:///etc/passwd",
        "ftp://www.nytimes.com/",
    ],
)
def test_everything_else_is_dropped_and_counted(scope, url, caplog):
    with pytest.raises(OffOnionScope):
        scope.process_request(Request(url))
    assert issubclass(OffOnionScope, IgnoreRequest)
    assert scope.crawler.stats.get_value("tor/scope/dropped") == 1
    assert "Dropped" in caplog.text


def test_a_dropped_redirect_names_where_it_came_from(scope, caplog):
    request = Request("http://127.0.0.1/", meta={"redirect_urls": [f"http://{ONION_A}/r"]})
    with pytest.raises(OffOnionScope):
        scope.process_request(request)
    assert f"redirected from http://{ONION_A}/r" in caplog.text


def test_isolation_policies():
    host = f"static01.{ONION_B}"
    policy = IsolationPolicy.from_settings(Settings({"TOR_ISOLATION": "host"}))
    assert policy.label(host) == f"host:{ONION_B}"
    assert policy.label(host, "g") == f"host:{ONION_B}/group:g"
    shared = IsolationPolicy.from_settings(Settings({"TOR_ISOLATION": "none"}))
    assert shared.label(host) == "shared"
    assert shared.label(host, "g") == "shared/group:g"
    job = IsolationPolicy.from_settings(Settings({"TOR_ISOLATION": "job", "JOBDIR": "/j/night/"}))
    assert job.label(host) == f"job:night/host:{ONION_B}"
    named = Settings({"TOR_ISOLATION": "job", "JOBDIR": "/j/x", "TOR_ISOLATION_JOB": "n1"})
    assert IsolationPolicy.from_settings(named).label(host) == f"job:n1/host:{ONION_B}"
    fresh = [IsolationPolicy.from_settings(Settings({"TOR_ISOLATION": "job"})) for _ in "ab"]
    assert fresh[0].job.startswith("run-") and fresh[0].job != fresh[1].job


@pytest.mark.parametrize(
    "settings",
    [
        {"TOR_ISOLATION": "circuit"},
        {"TOR_ISOLATION": "job", "TOR_ISOLATION_JOB": "x" * 65},
    ],
)
def test_bad_isolation_settings_are_refused(settings):
    with pytest.raises(NotConfigured, match="TOR_ISOLATION"):
        IsolationPolicy.from_settings(Settings(settings))


def test_socks_url():
    assert parse_socks_url("socks5h://127.0.0.1:9050") == ("127.0.0.1", 9050)
    assert parse_socks_url("socks5h://localhost:9150") == ("127.0.0.1", 9150)
    assert parse_socks_url("socks5h://[::1]:9050") == ("::1", 9050)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("socks5://127.0.0.1:9050", "only socks5h://"),
        ("http://127.0.0.1:9050", "only socks5h://"),
        ("socks5h://u:p@127.0.0.1:9050", "credentials"),
        ("socks5h://tor.example:9050", "does not appear to be an IPv4 or IPv6"),
        ("socks5h://127.0.0.1", "no port"),
        ("", "only socks5h://"),
    ],
)
def test_bad_socks_urls_are_refused(url, reason):
    with pytest.raises(NotConfigured, match=reason):
        parse_socks_url(url)


def test_the_addon_installs_the_handler_middlewares_and_retry():
    settings = Settings()
    TorAddon().update_settings(settings)
    for scheme in ("http", "https"):
        assert settings["DOWNLOAD_HANDLERS"][scheme] == "crawler.tor.handler.TorDownloadHandler"
    middlewares = settings["DOWNLOADER_MIDDLEWARES"]
    assert middlewares["crawler.tor.middleware.OnionScopeMiddleware"] == 40
    assert middlewares["scrapy.downloadermiddlewares.httpproxy.HttpProxyMiddleware"] is None
    assert settings["EXTENSIONS"]["crawler.tor.control.TorControl"] == 100
    assert "crawler.tor.socks.CircuitError" in settings.getlist("RETRY_EXCEPTIONS")


def test_project_settings_enable_the_addon():
    import settings as project_settings

    assert "crawler.tor.addon.TorAddon" in project_settings.ADDONS
