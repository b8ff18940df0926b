"""Routing: which reply a request gets, by Host header and path.

``www.<onion A>`` and ``<onion A>`` serve the site (pages, feeds, sitemaps, ``/_test/``);
``static01.<onion B>`` serves images, CSS and JS; any other host gets 421. HTML, XML and text
replies are validators-aware (ETag, Last-Modified, 304 on If-None-Match / If-Modified-Since)
and content-coded by Accept-Encoding (br, then gzip, else identity; ``Vary: Accept-Encoding``).
"""

from __future__ import annotations

import gzip
import hashlib
from datetime import datetime
from email.utils import parsedate_to_datetime

import brotli

from . import media, misbehave
from .pages import (
    NEWS_SITEMAP,
    RSS_PREFIX,
    SITEMAP_INDEX,
    Pages,
    parse_month_sitemap_path,
)
from .site import BASE, SECTIONS_BY_PATH, SECTIONS_BY_RSS, MirrorSite
from .wire import SERVER_NAME, Reply, Request, http_date, simple

HTML = "text/html; charset=utf-8"
XML = "application/xml; charset=utf-8"
RSS = "application/rss+xml; charset=utf-8"
ENCODERS = {
    "br": lambda body: brotli.compress(body, quality=5),
    "gzip": lambda body: gzip.compress(body, compresslevel=6, mtime=0),
}


def negotiate_encoding(accept_encoding: str | None) -> str | None:
    """The coding to use: br, else gzip, if accepted (q > 0); None for identity."""
    accepted = {}
    for item in (accept_encoding or "").split(","):
        name, _, params = item.strip().lower().partition(";")
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if name:
            accepted[name.strip()] = quality
    for coding in ("br", "gzip"):
        if accepted.get(coding, accepted.get("*", 0.0)) > 0:
            return coding
    return None


class MirrorApp:
    """Answers requests for *site*; stateless apart from the site itself."""

    def __init__(self, site: MirrorSite):
        self.site = site
        self.site_hosts = {site.www_host, site.site_onion}

    def respond(self, request: Request) -> Reply:
        host = request.host
        if host is None:
            return simple(400, b"Host header required\n", close=True)
        if host not in self.site_hosts and host != self.site.static_host:
            return simple(421, f"This mirror does not serve {host}\n".encode())
        if request.path.startswith("/_test/") and host in self.site_hosts:
            return misbehave.respond(request)
        if request.method not in ("GET", "HEAD"):
            return simple(405, b"Method not allowed\n", headers=[("Allow", "GET, HEAD")])
        if host == self.site.static_host:
            return self.static(request)
        return self.page(request, Pages(self.site, request.scheme))

    def page(self, request: Request, pages: Pages) -> Reply:
        path = request.path
        edition_time = self.site.edition_time()
        if path == "/":
            return self.entity(request, pages.front(None), HTML, edition_time)
        if path == "/robots.txt":
            return self.entity(request, pages.robots(), "text/plain; charset=utf-8", BASE)
        if path.startswith("/section/") and path[len("/section/") :] in SECTIONS_BY_PATH:
            section = SECTIONS_BY_PATH[path[len("/section/") :]]
            return self.entity(request, pages.front(section), HTML, edition_time)
        if path.startswith(RSS_PREFIX) and path.endswith(".xml"):
            name = path[len(RSS_PREFIX) : -len(".xml")]
            if name == "HomePage" or name in SECTIONS_BY_RSS:
                return self.entity(request, pages.rss(SECTIONS_BY_RSS.get(name)), RSS, edition_time)
        if path == SITEMAP_INDEX:
            return self.entity(request, pages.sitemap_index(), XML, edition_time)
        if path == NEWS_SITEMAP:
            return self.entity(request, pages.news_sitemap(), XML, edition_time)
        month = parse_month_sitemap_path(path)
        if month is not None:
            body = pages.month_sitemap(month)
            if body is not None:
                lastmod = datetime.fromisoformat(pages.month_lastmod(month))
                return self.entity(request, body, "application/x-gzip", lastmod, compress=False)
        if path.endswith(".html"):
            index = self.site.resolve_article(path)
            if index is not None:
                article = self.site.article(index)
                return self.entity(request, pages.article(article), HTML, article.modified_datetime)
        return self.not_found(request, pages)

    def static(self, request: Request) -> Reply:
        path = request.path
        if path in media.ASSETS:
            content_type, body = media.ASSETS[path]
            return self.entity(request, body, content_type, BASE)
        if path == media.LOGO_PATH:
            return self.entity(request, media.png(path), "image/png", BASE, compress=False)
        if path.startswith("/images/"):
            index = self.site.resolve_article(path)
            if index is not None and path == self.site.image_path(index):
                body = media.jpeg(path)
                return self.entity(
                    request, body, "image/jpeg", self.site.published(index), compress=False
                )
        return simple(404, b"Not found\n")

    def not_found(self, request: Request, pages: Pages) -> Reply:
        body = (
            '<!DOCTYPE html>\n<html lang="en"><head><title>Page Not Found - The New York Times'
            "</title></head><body>" + pages.masthead() + "<h1>Page Not Found</h1>"
            "<p>We\u2019re sorry, we seem to have lost this page, but we don\u2019t want to lose "
            "you.</p>" + pages.site_index() + "</body></html>\n"
        ).encode()
        return simple(404, body, HTML)

    def entity(
        self,
        request: Request,
        content: str | bytes,
        content_type: str,
        last_modified: datetime,
        compress: bool = True,
    ) -> Reply:
        """A cacheable 200 (or 304) for *content*, content-coded when *compress* allows."""
        body = content.encode() if isinstance(content, str) else content
        tag = hashlib.sha1(body).hexdigest()[:20]
        coding = negotiate_encoding(request.header("Accept-Encoding")) if compress else None
        etag = f'"{tag}-{coding}"' if coding else f'"{tag}"'
        validators = [
            ("ETag", etag),
            ("Last-Modified", http_date(last_modified)),
        ]
        if compress:
            validators.append(("Vary", "Accept-Encoding"))
        if _not_modified(request, tag, last_modified):
            return Reply(304, [("Date", http_date()), ("Server", SERVER_NAME), *validators])
        if coding:
            body = ENCODERS[coding](body)
            validators.append(("Content-Encoding", coding))
        return simple(200, body, content_type, [*validators, ("Cache-Control", "max-age=60")])


def _not_modified(request: Request, tag: str, last_modified: datetime) -> bool:
    if_none_match = request.header("If-None-Match")
    if if_none_match is not None:
        for candidate in if_none_match.split(","):
            candidate = candidate.strip().removeprefix("W/").strip('"')
            if candidate == "*" or candidate.split("-")[0] == tag:
                return True
        return False
    if_modified_since = request.header("If-Modified-Since")
    if if_modified_since is None:
        return False
    try:
        since = parsedate_to_datetime(if_modified_since)
    except (TypeError, ValueError):
        return False
    if since.tzinfo is None:
        return False
    return last_modified.replace(microsecond=0) <= since
