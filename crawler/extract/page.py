"""A parsed HTML capture with what every parser needs: the tree, metadata, URL mapping."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from urllib.parse import urljoin, urlsplit

from lxml import html

from crawler.extract.metadata import json_ld_objects, meta_tags
from crawler.tor.onion import OnionMap


class NotAnArticle(Exception):
    """The page is readable but holds no article; ``reason`` is the counted skip reason."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class Page:
    """One HTML capture: *doc* parsed from the page fetched at *capture_url* (onion form)."""

    doc: html.HtmlElement
    capture_url: str
    onion_map: OnionMap
    _clearnet: dict[str, str | None] = field(default_factory=dict, repr=False)

    @cached_property
    def url(self) -> str:
        """The clearnet form of the capture URL."""
        return self.onion_map.to_clearnet_url(self.capture_url)

    @cached_property
    def host(self) -> str:
        return (urlsplit(self.url).hostname or "").lower()

    @cached_property
    def meta(self) -> dict[str, str]:
        return meta_tags(self.doc)

    @cached_property
    def json_ld(self) -> list[dict]:
        return json_ld_objects(self.doc)

    def clearnet_url(self, href: str | None) -> str | None:
        """*href* made absolute against the capture URL and mapped back to clearnet.

        None for empty, fragment-only, non-HTTP(S) (``javascript:``, ``mailto:``) and
        unparsable links.
        """
        href = (href or "").strip()
        if not href or href.startswith("#"):
            return None
        if href not in self._clearnet:
            try:
                absolute = urljoin(self.capture_url, href)
                in_scheme = urlsplit(absolute).scheme in ("http", "https")
                mapped = self.onion_map.to_clearnet_url(absolute) if in_scheme else None
            except ValueError:  # not a URL at all, e.g. an unbalanced '[' (an IPv6 literal)
                mapped = None
            self._clearnet[href] = mapped
        return self._clearnet[href]

    @cached_property
    def language(self) -> str | None:
        lang = self.doc.get("lang") or self.doc.get("{http://www.w3.org/XML/1998/namespace}lang")
        if not lang:
            lang = self.meta.get("language") or self.meta.get("og:locale")
        return lang.replace("_", "-").strip() if lang and lang.strip() else None
