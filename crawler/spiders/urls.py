"""Which onion URLs are worth fetching: canonical form, exclusions, page kinds, dates.

:class:`UrlPolicy` turns any link found on the mirror (clearnet or onion form) into the one
canonical onion URL the spider requests, or ``None`` when the link is off the hosts of
``ONION_MAP`` or excluded (login, subscription, account, ad and tracking endpoints). The
canonical form makes one article one URL: fragments and tracking parameters go, an article's
query string goes entirely, ``.amp.html``, ``/index.html`` and trailing-slash variants fold,
and an article's ``http``, bare-domain, ``mobile.`` and ``m.`` forms fold into
``https://www.<onion>``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from crawler.tor.onion import OnionMap

#: Query parameters that only track where a click came from (NYT's and the usual ones).
TRACKING_PARAMS = frozenset(
    {
        "smid", "smtyp", "smvar", "action", "module", "pgtype", "region", "ref", "rref",
        "src", "partner", "emc", "_r", "hp", "mtrref", "mwrsm", "nl", "campaign_id",
        "instance_id", "segment_id", "user_id", "regi_id", "te", "contentcollection",
        "contentplacement", "version", "sgrp", "impression_id", "unlocked_article_code",
        "gclid", "fbclid", "mc_cid", "mc_eid", "ito", "ocid", "_ga", "referringsource",
        "referer", "login", "auth", "trk", "cid",
    }
)  # fmt: skip
TRACKING_PREFIXES = ("utm_", "wt.", "ga_")

#: Host labels (left of the mapped domain) of login, account, ad and tracking services.
EXCLUDED_HOST_LABELS = frozenset(
    {
        "myaccount", "account", "accounts", "login", "auth", "secure", "subscribe",
        "subscription", "subscriptions", "ads", "ad", "adx", "pubads", "securepubads",
        "pixel", "track", "tracking", "et", "a.et", "b.et", "meter-svc", "samizdat-graphql",
        "purr", "als-svc", "collect", "analytics", "beacon",
    }
)  # fmt: skip

#: First path segments of login, subscription, account, ad and tracking endpoints.
EXCLUDED_PATH_SEGMENTS = frozenset(
    {
        "login", "logout", "signin", "signup", "register", "auth", "account", "accounts",
        "myaccount", "subscription", "subscriptions", "subscribe", "activate-access",
        "gift", "ads", "adx", "ad", "paidpost", "marketing", "track", "tracking", "pixel",
        "beacon", "svc", "api", "graphql", "log", "collect", "cdn-cgi",
    }
)  # fmt: skip

#: Host labels (left of the mapped domain) that serve the same articles as ``www``.
ARTICLE_HOST_ALIASES = frozenset({"", "www", "mobile", "m"})

_DEFAULT_PORTS = {"http": 80, "https": 443}
_ARTICLE_PATH = re.compile(
    r"^/(?:(?:interactive|live|athletic)/)?(?P<y>(?:19|20)\d\d)/(?P<m>[01]\d)/(?P<d>[0-3]\d)/"
    r"(?P<rest>[^?#]+)$"
)
_FRONT_PATH = re.compile(r"^/(?:section/[a-z0-9/_-]+|international|pages/[a-z0-9/_-]+)?/?$")
_FEED_PATH = re.compile(r"(?:/services/xml/rss/|\.rss$|/rss\.xml$|/feed/?$|\.atom$)")
_SITEMAP_PATH = re.compile(r"sitemap[^/]*\.xml(?:\.gz)?$")


class UrlPolicy:
    """Canonical onion URLs of the hosts in an :class:`OnionMap`, with exclusions.

    :param onion_map: the hosts in scope (their onion forms).
    :param extra_exclusions: further regular expressions; a URL (clearnet or onion form)
        matching any of them is excluded.
    :raises re.error: when an extra exclusion is not a valid regular expression.
    """

    def __init__(self, onion_map: OnionMap, extra_exclusions: Iterable[str] = ()):
        self.onion_map = onion_map
        self.extra_exclusions = [re.compile(pattern) for pattern in extra_exclusions]

    def canonical(self, url: str) -> str | None:
        """The canonical onion form of *url*, or None when it is off scope, excluded or no
        URL at all (an unbalanced ``[``, a port that is not a number from 0 to 65535).

        An article (a dated path) on a host of :data:`ARTICLE_HOST_ALIASES` and its scheme's
        default port is always ``https://www.<onion>/...``; other hosts (``static01.``) and
        ports keep theirs.
        """
        try:
            return self._canonical(url)
        except ValueError:  # raised by urlsplit and SplitResult.port for malformed netlocs
            return None

    def _canonical(self, url: str) -> str | None:
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return None
        onion_url = self.onion_map.to_onion_url(url.strip())
        if onion_url is None:
            return None
        parts = urlsplit(onion_url)
        scheme, host = parts.scheme, parts.hostname or ""
        if self.onion_map.to_clearnet_host(host) is None:
            return None  # a valid onion host, but not one of the mirror's
        port = None if parts.port == _DEFAULT_PORTS[scheme] else parts.port
        path = _fold_path(parts.path or "/")
        article = _ARTICLE_PATH.match(path) is not None
        labels = host.split(".")  # [subdomain labels..., <56 chars>, "onion"]
        if article and port is None and ".".join(labels[:-2]) in ARTICLE_HOST_ALIASES:
            scheme, host = "https", ".".join(["www", *labels[-2:]])
        query = "" if article else _clean_query(parts.query)
        netloc = host if port is None else f"{host}:{port}"
        canonical = urlunsplit((scheme, netloc, path, query, ""))
        return None if self.is_excluded(canonical) else canonical

    def is_excluded(self, onion_url: str) -> bool:
        """True for login, subscription, account, ad and tracking endpoints."""
        parts = urlsplit(onion_url)
        clearnet_host = self.onion_map.to_clearnet_host(parts.hostname or "") or ""
        labels = clearnet_host.split(".")
        subdomain = ".".join(labels[:-2]) if len(labels) > 2 else ""
        if subdomain in EXCLUDED_HOST_LABELS or subdomain.split(".", 1)[0] in (
            EXCLUDED_HOST_LABELS
        ):
            return True
        first_segment = parts.path.lstrip("/").split("/", 1)[0].lower()
        if first_segment in EXCLUDED_PATH_SEGMENTS:
            return True
        clearnet_url = self.onion_map.to_clearnet_url(onion_url)
        return any(p.search(onion_url) or p.search(clearnet_url) for p in self.extra_exclusions)


def is_article(url: str) -> bool:
    """True for a dated article path (``/YYYY/MM/DD/section/slug.html`` and variants)."""
    return _ARTICLE_PATH.match(urlsplit(url).path) is not None


def is_front(url: str) -> bool:
    """True for the home page and section fronts (``/section/world``)."""
    return _FRONT_PATH.match(urlsplit(url).path) is not None


def is_feed(url: str) -> bool:
    """True for URLs that look like RSS or Atom feeds."""
    return _FEED_PATH.search(urlsplit(url).path) is not None


def is_sitemap(url: str) -> bool:
    """True for URLs that look like sitemaps (``sitemap*.xml``, ``.xml.gz``)."""
    return _SITEMAP_PATH.search(urlsplit(url).path) is not None


def url_date(url: str) -> date | None:
    """The publication date an article URL carries (``/2016/12/10/...``), if any."""
    match = _ARTICLE_PATH.match(urlsplit(url).path)
    if not match:
        return None
    try:
        return date(int(match["y"]), int(match["m"]), int(match["d"]))
    except ValueError:
        return None


def _fold_path(path: str) -> str:
    """*path* without repeated and trailing slashes, ``.amp.html`` as ``.html``, and an
    article's ``/index.html`` dropped (``/x/index.html`` is ``/x/``, which is ``/x``)."""
    path = re.sub(r"/{2,}", "/", path)
    if len(path) > 1:
        path = path.rstrip("/")
    if path.endswith(".amp.html"):
        path = path[: -len(".amp.html")] + ".html"
    if path.endswith("/index.html") and _ARTICLE_PATH.match(path):
        return _fold_path(path[: -len("/index.html")])
    return path


def _clean_query(query: str) -> str:
    kept = [
        (name, value)
        for name, value in parse_qsl(query, keep_blank_values=True)
        if name.lower() not in TRACKING_PARAMS and not name.lower().startswith(TRACKING_PREFIXES)
    ]
    return urlencode(sorted(kept))
