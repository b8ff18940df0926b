"""Scrapy add-on switching on the Tor layer: ``ADDONS = {"crawler.tor.addon.TorAddon": 0}``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scrapy.settings import BaseSettings

HANDLER = "crawler.tor.handler.TorDownloadHandler"
MIDDLEWARES = {
    "crawler.tor.middleware.OnionScopeMiddleware": 40,
    "crawler.tor.middleware.TorAvailabilityMiddleware": 45,
    # Requests never go to an HTTP proxy, and Proxy-Authorization must not reach onions.
    "scrapy.downloadermiddlewares.httpproxy.HttpProxyMiddleware": None,
}
#: Tor preflight (version, bootstrap) and NEWNYM after circuit failures, through stem.
EXTENSIONS = {"crawler.tor.control.TorControl": 100}
#: Tor errors worth another try: a circuit that failed, or a backend briefly down (0x01).
RETRY_EXCEPTIONS = [
    "crawler.tor.socks.CircuitError",
    "crawler.tor.socks.GeneralFailure",
]


def keep_cookie_domains_offline() -> None:
    """Make Scrapy's cookie middleware use tldextract's bundled public suffix list.

    By default tldextract downloads the list from publicsuffix.org on first use: a direct
    connection outside Tor, made by the first response that sets a cookie.
    """
    from scrapy.downloadermiddlewares import cookies
    from tldextract import TLDExtract

    cookies._split_domain = TLDExtract(suffix_list_urls=(), include_psl_private_domains=True)


class TorAddon:
    """Installs the Tor download handler for http and https, the onion scope and Tor
    availability middlewares and the Tor control extension, and adds the retryable Tor
    errors to ``RETRY_EXCEPTIONS`` (whichever retry middleware is enabled retries them).
    Settings given with a higher priority (e.g. ``-s``) win as usual."""

    def update_settings(self, settings: BaseSettings) -> None:
        for scheme in ("http", "https"):
            settings["DOWNLOAD_HANDLERS"].set(scheme, HANDLER, "addon")
        for path, order in MIDDLEWARES.items():
            settings["DOWNLOADER_MIDDLEWARES"].set(path, order, "addon")
        for path, order in EXTENSIONS.items():
            settings["EXTENSIONS"].set(path, order, "addon")
        if settings.getbool("COOKIES_ENABLED"):
            keep_cookie_domains_offline()
        retry_exceptions = settings.getlist("RETRY_EXCEPTIONS")
        settings.set(
            "RETRY_EXCEPTIONS",
            retry_exceptions + [e for e in RETRY_EXCEPTIONS if e not in retry_exceptions],
            "addon",
        )
