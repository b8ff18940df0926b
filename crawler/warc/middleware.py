"""Spider middleware that reports the outlinks of each archived response.

The metadata record of a capture lists the URLs of the Requests the spider yielded from the
response, so it can only be written once the spider's callback has run. This middleware
(on the spider side of Scrapy's own, so it sees the callback's output before depth or
offsite filtering) collects those URLs and sends :data:`capture_parsed` when the callback's
output is exhausted, fails, or never runs because an earlier middleware rejected the
response (e.g. ``HttpError``). It also gives each followed Request its hop path
(:func:`hop_path`) unless the spider set one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

from scrapy import Request
from scrapy.http import Response
from scrapy.spidermiddlewares.base import BaseSpiderMiddleware

#: Scrapy signal: ``capture_parsed(response: Response, outlinks: list[str])``.
capture_parsed = object()


def hop_path(meta: dict) -> str:
    """Heritrix-style path from the seed to a request: ``L`` per link followed, ``R`` per
    redirect (``""`` for a start request). Kept in ``meta["hop_path"]`` by this middleware."""
    return meta.get("hop_path", "") + "R" * len(meta.get("redirect_urls", ()))


class OutlinksMiddleware(BaseSpiderMiddleware):
    """Collects the URLs of Requests yielded from archived responses."""

    def process_spider_output(
        self, response: Response | None, result: Iterable[Any]
    ) -> Iterable[Any]:
        outlinks: list[str] = []
        try:
            for output in result:
                if isinstance(output, Request):
                    self._followed(response, output, outlinks)
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
                    self._followed(response, output, outlinks)
                yield output
        finally:
            self._parsed(response, outlinks)

    @staticmethod
    def _followed(response: Response | None, request: Request, outlinks: list[str]) -> None:
        outlinks.append(request.url)
        if response is not None:
            request.meta.setdefault("hop_path", hop_path(response.meta) + "L")

    def process_spider_exception(self, response: Response, exception: Exception) -> None:
        self._parsed(response, [])

    def _parsed(self, response: Response | None, outlinks: list[str]) -> None:
        if response is not None and "warc_record_id" in response.meta:
            self.crawler.signals.send_catch_log(
                capture_parsed, response=response, outlinks=outlinks
            )
