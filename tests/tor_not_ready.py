"""A Scrapy extension standing in for a Tor that answers on its SOCKS port again after an
outage but never finishes bootstrapping (what ``TorControl.tor_available`` reports as False).

The real case needs a tor whose SOCKS port is up while it cannot bootstrap, swapped in under
a running crawl; this stand-in gives the Tor availability middleware the same answer.
"""

from __future__ import annotations

from scrapy.crawler import Crawler

from crawler.tor.signals import tor_available


class TorNeverReady:
    @classmethod
    def from_crawler(cls, crawler: Crawler) -> TorNeverReady:
        extension = cls()
        crawler.signals.connect(extension.tor_available, tor_available)
        return extension

    def tor_available(self) -> bool:
        return False
