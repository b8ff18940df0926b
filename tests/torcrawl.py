"""Run one Scrapy crawl of given requests and dump what happened as JSON.

Used by the handler and leak tests as a subprocess (a fresh reactor per crawl)::

    python tests/torcrawl.py CONFIG.json

CONFIG: ``{"settings": {...}, "requests": [{"url": ..., "meta": {...}}], "output": PATH,
"project": false, "audit": false}``. With ``project`` the project's settings are the base,
else Scrapy's defaults, the project's ``TOR_*`` settings and the Tor add-on. With ``audit``
every ``socket.connect`` / name lookup of this process is recorded (after the loopback
guard allowed it) and dumped.
OUTPUT gets ``{"results": [...], "exchanges": [...], "stats": {...}, "reason": ...,
"circuit_failed": [[url, error class]], "audit": [...]}``; each result is in request order.
"""

from __future__ import annotations

import base64
import json
import sys
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
    from scrapy.utils.project import get_project_settings

    from crawler.tor.signals import circuit_failed
    from crawler.warc.exchange import exchange_recorded

    results: list[dict] = [{} for _ in config["requests"]]
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
            return spider

        async def start(self):
            for index, spec in enumerate(config["requests"]):
                yield scrapy.Request(
                    spec["url"],
                    meta={**spec.get("meta", {}), "probe": index},
                    dont_filter=True,
                    callback=self.parse,
                    errback=self.failed,
                )

        def parse(self, response):
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
    output = {"results": results, "exchanges": exchanges, **outcome, "audit": audit_events}
    Path(config["output"]).write_text(json.dumps(output))


if __name__ == "__main__":
    main(sys.argv[1])
