"""Run one Scrapy crawl of given requests and dump what happened as JSON.

Used by the handler and leak tests as a subprocess (a fresh reactor per crawl)::

    python tests/torcrawl.py CONFIG.json

CONFIG: ``{"settings": {...}, "requests": [{"url": ..., "meta": {...}}], "output": PATH,
"project": false, "audit": false}``; a request with ``"after_previous": true`` is only
handed to Scrapy once every request before it has its result (e.g. after a warm-up).
With ``project`` the project's settings are the base,
else Scrapy's defaults, the project's ``TOR_*`` settings and the Tor add-on. With ``audit``
every ``socket.connect`` / name lookup of this process is recorded (after the loopback
guard allowed it) and dumped.
OUTPUT gets ``{"results": [...], "exchanges": [...], "stats": {...}, "reason": ...,
"circuit_failed": [[url, error class]], "downloader": [[index, event, seconds]], "audit":
[...]}``; each result is in request order; ``downloader`` has the ``time.monotonic()`` when a
request reached Scrapy's downloader (``"reached"``) and left it (``"left"``), by its index.
"""

from __future__ import annotations

import base64
import json
import sys
import time
from pathlib import Path

AUDITED = {
    "socket.connect",
    "socket.getaddrinfo",
    "socket.gethostbyname",
    "socket.gethostbyname_ex",
}
audit_events: list[list] = []


def _record_audit(event: str, args: tuple) -> None:
    if event in AUDITED:
        target = args[-1] if event == "socket.connect" else args[0]
        audit_events.append([event, repr(target)])


def main(config_path: str) -> None:
    config = json.loads(Path(config_path).read_text())
    if config.get("audit"):
        sys.addaudithook(_record_audit)

    import scrapy
    from scrapy.crawler import CrawlerProcess
    from scrapy.settings import Settings
    from scrapy.utils.defer import maybe_deferred_to_future
    from scrapy.utils.project import get_project_settings
    from twisted.internet.defer import Deferred

    from crawler.tor.signals import circuit_failed
    from crawler.warc.exchange import exchange_recorded

    results: list[dict] = [{} for _ in config["requests"]]
    downloader: list[list] = []
    pending: set[int] = set()
    all_done: list[Deferred] = []
    exchanges: list[dict] = []
    outcome: dict = {"circuit_failed": []}

    class ProbeSpider(scrapy.Spider):
        name = "probe"

        @classmethod
        def from_crawler(cls, crawler, *args, **kwargs):
            spider = super().from_crawler(crawler, *args, **kwargs)
            crawler.signals.connect(spider.exchange_recorded, signal=exchange_recorded)
            crawler.signals.connect(spider.closed_with, signal=scrapy.signals.spider_closed)
            crawler.signals.connect(spider.circuit_failed, signal=circuit_failed)
            crawler.signals.connect(
                spider.reached_downloader, signal=scrapy.signals.request_reached_downloader
            )
            crawler.signals.connect(
                spider.left_downloader, signal=scrapy.signals.request_left_downloader
            )
            return spider

        async def start(self):
            for index, spec in enumerate(config["requests"]):
                if spec.get("after_previous") and pending:
                    all_done.append(Deferred())
                    await maybe_deferred_to_future(all_done[-1])
                pending.add(index)
                yield scrapy.Request(
                    spec["url"],
                    meta={**spec.get("meta", {}), "probe": index},
                    dont_filter=True,
                    callback=self.parse,
                    errback=self.failed,
                )

        def reached_downloader(self, request):
            downloader.append([request.meta["probe"], "reached", time.monotonic()])

        def left_downloader(self, request):
            downloader.append([request.meta["probe"], "left", time.monotonic()])

        def done(self, probe):
            pending.discard(probe)
            if not pending:
                while all_done:
                    all_done.pop().callback(None)

        def parse(self, response):
            self.done(response.meta["probe"])
            results[response.meta["probe"]].update(
                url=response.url,
                status=response.status,
                headers={
                    k.decode(): [v.decode() for v in vs] for k, vs in response.headers.items()
                },
                body=base64.b64encode(response.body).decode(),
                flags=response.flags,
                protocol=response.protocol,
                clearnet_url=response.meta.get("clearnet_url"),
                redirect_urls=response.meta.get("redirect_urls"),
                certificate=response.certificate is not None,
            )

        def failed(self, failure):
            meta = failure.request.meta
            self.done(meta["probe"])
            results[meta["probe"]].update(
                url=failure.request.url,
                error=type(failure.value).__name__,
                error_mro=[c.__name__ for c in type(failure.value).__mro__],
                message=str(failure.value),
            )

        def exchange_recorded(self, exchange, request):
            response = exchange.response.read() if exchange.response is not None else None
            exchanges.append(
                {
                    "url": exchange.url,
                    "probe": request.meta.get("probe"),
                    "request": base64.b64encode(exchange.request).decode(),
                    "response": None if response is None else base64.b64encode(response).decode(),
                    "response_length": exchange.response_length,
                    "started": exchange.started.isoformat(),
                    "chunked": exchange.chunked,
                    "truncated": exchange.truncated,
                    "error": exchange.error,
                    "isolation": exchange.isolation,
                    "timings": exchange.timings,
                }
            )

        def circuit_failed(self, request, error):
            outcome["circuit_failed"].append([request.url, type(error).__name__])

        def closed_with(self, reason):
            outcome["reason"] = reason
            outcome["stats"] = {
                key: value
                for key, value in self.crawler.stats.get_stats().items()
                if isinstance(value, (int, float, str))
            }

    if config.get("project"):
        settings = get_project_settings()
    else:
        import settings as project

        tor_defaults = {k: v for k, v in vars(project).items() if k.startswith("TOR_")}
        settings = Settings({**tor_defaults, "ADDONS": {"crawler.tor.addon.TorAddon": 0}})
    settings.setdict(config.get("settings", {}), priority="cmdline")
    process = CrawlerProcess(settings, install_root_handler=True)
    process.crawl(ProbeSpider)
    process.start()
    output = {
        "results": results,
        "exchanges": exchanges,
        **outcome,
        "downloader": downloader,
        "audit": audit_events,
    }
    Path(config["output"]).write_text(json.dumps(output))


if __name__ == "__main__":
    main(sys.argv[1])
