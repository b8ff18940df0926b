"""Spider middleware that reports the outlinks of each archived response.

The metadata record of a capture lists the URLs of the Requests the spider yielded from the
response, so it can only be written once the spider's callback has run. This middleware
(on the spider side of Scrapy's own, so it sees the callback's output before depth or
offsite filtering) collects those URLs and sends :data:`capture_parsed` when the callback's
output is exhausted, fails, or never runs because an earlier middleware rejected the
response (e.g. ``HttpError``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

from scrapy import Request
from scrapy.http import Response
from scrapy.spidermiddlewares.base import BaseSpiderMiddleware

#: Scrapy signal: ``capture_parsed(response: Response, outlinks: list[str])``.
capture_parsed = object()


class OutlinksMiddleware(BaseSpiderMiddleware):
    """Collects the URLs of Requests yielded from archived responses."""

    def process_spider_output(
        self, response: Response | None, result: Iterable[Any]
    ) -> Iterable[Any]:
        outlinks: list[str] = []
        try:
            for output in result:
                if isinstance(output, Request):
                    outlinks.append(output.url)
                yield output
        finally:
            self._parsed(response, outlinks)

    async def process_spider_output_async(
        self, response: Response | None, result: AsyncIterator[Any]
    ) -> AsyncIterator[Any]:
        outlinks: list[str] = []
        try:
            async for output in result:
                if isinstance(output, Request):
                    outlinks.append(output.url)
                yield output
        finally:
            self._parsed(response, outlinks)

    def process_spider_exception(self, response: Response, exception: Exception) -> None:
        self._parsed(response, [])

    def _parsed(self, response: Response | None, outlinks: list[str]) -> None:
        if response is not None and "warc_record_id" in response.meta:
            self.crawler.signals.send_catch_log(
                capture_parsed, response=response, outlinks=outlinks
            )
