"""The NYT onion mirror spider (discovery is built in the spider issue)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import scrapy
from scrapy.http import Response

from crawler.tor.onion import OnionMap

DEFAULT_START_URLS = ("https://www.nytimes.com/",)


class NytimesSpider(scrapy.Spider):
    """Crawls the NYT onion mirror; start URLs may be given in clearnet or onion form."""

    name = "nytimes"

    def __init__(self, start_urls: str | None = None, since: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.start_url_args = start_urls.split(",") if start_urls else list(DEFAULT_START_URLS)
        self.since = since

    async def start(self) -> Any:
        onion_map = OnionMap.from_setting(self.settings.get("ONION_MAP"))
        for url in self.start_url_args:
            onion_url = onion_map.to_onion_url(url.strip())
            if onion_url is None:
                self.logger.error("start URL %s is not covered by ONION_MAP; skipped", url)
                continue
            yield scrapy.Request(onion_url, callback=self.parse)

    def parse(self, response: Response) -> Iterator[Any]:
        yield {"url": response.url, "status": response.status}
