"""URL canonicalisation, exclusions and page kinds of the spider (crawler/spiders/urls.py)."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st
from onions import MIRROR_ONION_MAP

from crawler.spiders.urls import UrlPolicy, is_article, is_feed, is_front, is_sitemap, url_date
from crawler.tor.onion import OnionMap

ONION = MIRROR_ONION_MAP["nytimes.com"]
WWW = "www." + ONION
STATIC = "static01." + MIRROR_ONION_MAP["nyt.com"]
ARTICLE = f"https://{WWW}/2016/12/10/world/middleeast/aleppo-syria.html"


@pytest.fixture
def policy() -> UrlPolicy:
    return UrlPolicy(OnionMap(MIRROR_ONION_MAP))


@pytest.mark.parametrize(
    "url",
    [
        "https://www.nytimes.com/2016/12/10/world/middleeast/aleppo-syria.html",
        "https://WWW.NYTIMES.COM/2016/12/10/world/middleeast/aleppo-syria.html#comments",
        "https://www.nytimes.com/2016/12/10/world/middleeast/aleppo-syria.html?smid=tw-share",
        "https://www.nytimes.com/2016/12/10/world/middleeast/aleppo-syria.html?_r=0&hp",
        f"https://{WWW}/2016/12/10/world/middleeast/aleppo-syria.html?action=click&pgtype=Hp",
        f"https://{WWW}/2016/12/10/world/middleeast/aleppo-syria.amp.html",
        f"https://{WWW}/2016/12/10/world/middleeast/aleppo-syria.html/",
        f"https://{WWW}//2016/12/10/world/middleeast/aleppo-syria.html",
        # scheme and the hosts that serve the same articles as www, clearnet or onion
        "http://www.nytimes.com/2016/12/10/world/middleeast/aleppo-syria.html",
        "https://nytimes.com/2016/12/10/world/middleeast/aleppo-syria.html",
        "http://mobile.nytimes.com/2016/12/10/world/middleeast/aleppo-syria.amp.html",
        "https://m.nytimes.com/2016/12/10/world/middleeast/aleppo-syria.html?smid=nytcore",
        "https://www.nytimes.com:443/2016/12/10/world/middleeast/aleppo-syria.html",
        f"http://{ONION}/2016/12/10/world/middleeast/aleppo-syria.html",
        f"https://mobile.{ONION}/2016/12/10/world/middleeast/aleppo-syria.html",
        f"http://m.{ONION}:80/2016/12/10/world/middleeast/aleppo-syria.html",
    ],
)
def test_article_variants_fold_into_one_onion_url(policy: UrlPolicy, url: str) -> None:
    assert policy.canonical(url) == ARTICLE


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        # other hosts are other sites, whatever their path
        (
            "http://static01.nyt.com/2016/12/10/world/a.html",
            f"http://{STATIC}/2016/12/10/world/a.html",
        ),
        (
            "https://cooking.nytimes.com/2016/12/10/recipes/a.html",
            f"https://cooking.{ONION}/2016/12/10/recipes/a.html",
        ),
        # an explicit port is another service
        (
            "http://www.nytimes.com:8080/2016/12/10/world/a.html",
            f"http://{WWW}:8080/2016/12/10/world/a.html",
        ),
        # only articles fold: other pages are fetched from the host they were found on
        ("http://nytimes.com/section/world", f"http://{ONION}/section/world"),
        ("https://mobile.nytimes.com/", f"https://mobile.{ONION}/"),
    ],
)
def test_other_hosts_ports_and_non_articles_keep_scheme_and_host(
    policy: UrlPolicy, url: str, canonical: str
) -> None:
    assert policy.canonical(url) == canonical


def test_an_article_index_html_folds_into_its_directory(policy: UrlPolicy) -> None:
    live = f"https://{WWW}/live/2024/11/05/us/election-results"
    for variant in (f"{live}/index.html", f"{live}/", f"{live}/index.amp.html", f"{live}//"):
        assert policy.canonical(variant) == live
    # /x and /x.html are not folded: a server may serve only one of them (live pages have no
    # .html, classic articles only .html), and its redirect, if any, is followed anyway.
    assert policy.canonical(ARTICLE.removesuffix(".html")) == ARTICLE.removesuffix(".html")
    # index.html of other pages is a page of its own
    assert policy.canonical(f"https://{WWW}/pages/world/index.html") == (
        f"https://{WWW}/pages/world/index.html"
    )


def test_fronts_keep_meaningful_query_and_drop_tracking(policy: UrlPolicy) -> None:
    url = "https://www.nytimes.com/section/world/?utm_source=x&page=2&smid=fb&a=1#top"
    assert policy.canonical(url) == f"https://{WWW}/section/world?a=1&page=2"
    assert policy.canonical("https://www.nytimes.com") == f"https://{WWW}/"


def test_subdomains_map_to_their_onion(policy: UrlPolicy) -> None:
    url = "https://static01.nyt.com/images/2016/12/10/a.jpg?quality=75&auto=webp"
    assert policy.canonical(url) == f"https://{STATIC}/images/2016/12/10/a.jpg?auto=webp&quality=75"


@pytest.mark.parametrize(
    "url",
    [
        "https://www.example.com/2016/12/10/world/x.html",  # not in ONION_MAP
        "https://nytimes.com.evil.example/",  # suffix trick
        # a valid onion that is not one of the mirror's
        "http://aaaqeayeaudaocajbifqydiob4ibceqtcqkrmfyydenbwha5dyp3kead.onion/",
        "mailto:letters@nytimes.com",
        "javascript:void(0)",
        "ftp://www.nytimes.com/file",
        "https://user:pw@www.nytimes.com/",
        "/relative/only",
        # no URLs at all: found in real pages' hrefs, they must not end a page's link-following
        "https://www.nytimes.com:abc/2016/12/10/world/x.html",
        "https://www.nytimes.com:99999/",
        "https://[www.nytimes.com/",
    ],
)
def test_off_scope_urls_have_no_canonical_form(policy: UrlPolicy, url: str) -> None:
    assert policy.canonical(url) is None


@pytest.mark.parametrize(
    "url",
    [
        "https://myaccount.nytimes.com/auth/login?response_type=cookie",
        "https://www.nytimes.com/login",
        "https://www.nytimes.com/subscription/all-access?campaignId=X",
        "https://www.nytimes.com/subscriptions/Multiproduct/lp8HYKU.html",
        "https://www.nytimes.com/account",
        "https://www.nytimes.com/activate-access/access-code",
        "https://www.nytimes.com/ads/marketing/index.html",
        "https://www.nytimes.com/adx/bin/adx_click.html?type=goto",
        "https://a.et.nytimes.com/track",
        "https://ads.nytimes.com/",
        "https://pubads.nyt.com/gampad/ads?iu=/29390238/nyt",
        "https://www.nytimes.com/svc/collections/v1/publish/x.json",
        f"https://{WWW}/paidpost/brand/story.html",
    ],
)
def test_login_subscription_account_ad_and_tracking_are_excluded(
    policy: UrlPolicy, url: str
) -> None:
    assert policy.canonical(url) is None


def test_extra_exclusions_match_clearnet_or_onion_form() -> None:
    policy = UrlPolicy(OnionMap(MIRROR_ONION_MAP), [r"nytimes\.com/crosswords", r"/video/"])
    assert policy.canonical("https://www.nytimes.com/crosswords/game") is None
    assert policy.canonical(f"https://{WWW}/video/world/123") is None
    assert policy.canonical("https://www.nytimes.com/section/world") is not None


def test_page_kinds_and_dates() -> None:
    assert is_article(ARTICLE) and url_date(ARTICLE) == date(2016, 12, 10)
    assert url_date(f"https://{WWW}/interactive/2020/03/01/us/x.html") == date(2020, 3, 1)
    assert url_date(f"https://{WWW}/2016/13/40/world/x.html") is None
    assert not is_article(f"https://{WWW}/section/world")
    assert is_front(f"https://{WWW}/") and is_front(f"https://{WWW}/section/world/middleeast")
    assert not is_front(f"https://{WWW}/crosswords")
    assert is_feed(f"https://rss.{WWW}/services/xml/rss/nyt/World.xml")
    assert is_sitemap(f"https://{WWW}/sitemaps/new/sitemap-2016-12.xml.gz")
    assert is_sitemap(f"https://{WWW}/sitemap.xml")


_paths = st.lists(
    st.sampled_from(["2016", "12", "10", "world", "a.html", "a.amp.html", "", "index.html"])
)
_hosts = st.sampled_from(
    ["www.nytimes.com", "nytimes.com", "mobile.nytimes.com", "m.nytimes.com", "static01.nyt.com"]
)
_queries = st.lists(
    st.tuples(st.sampled_from(["smid", "utm_x", "page", "q", "hp"]), st.text("ab1", max_size=3))
)


@given(
    scheme=st.sampled_from(["http", "https"]),
    host=_hosts,
    path=_paths,
    query=_queries,
    fragment=st.text("xyz", max_size=3),
)
def test_canonical_form_is_idempotent(
    scheme: str, host: str, path: list[str], query: list, fragment: str
) -> None:
    policy = UrlPolicy(OnionMap(MIRROR_ONION_MAP))
    qs = "&".join(f"{k}={v}" for k, v in query)
    url = f"{scheme}://{host}/{'/'.join(path)}?{qs}#{fragment}"
    canonical = policy.canonical(url)
    assert canonical is not None
    assert policy.canonical(canonical) == canonical
    assert "#" not in canonical and "smid" not in canonical and "utm_" not in canonical
