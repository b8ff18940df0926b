"""Scrapy add-on switching on WARC writing: ``ADDONS = {"crawler.warc.addon.WarcAddon": 10}``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scrapy.settings import BaseSettings

EXTENSION = "crawler.warc.extension.WarcWriterExtension"
#: On the spider side of Scrapy's spider middlewares, to see the callback's own output.
MIDDLEWARE = "crawler.warc.middleware.OutlinksMiddleware"
MIDDLEWARE_ORDER = 950


class WarcAddon:
    """Installs the WARC writer extension and the outlinks spider middleware. The extension
    checks the WARC_* settings when the crawler starts and raises ``ValueError`` on a bad one.
    """

    def update_settings(self, settings: BaseSettings) -> None:
        settings["EXTENSIONS"].set(EXTENSION, 0, "addon")
        settings["SPIDER_MIDDLEWARES"].set(MIDDLEWARE, MIDDLEWARE_ORDER, "addon")
