"""Benchmark: the Tor download handler against ``curl --socks5-hostname``, same pages, same
concurrency, through one private Tor network on loopback (tests/tornet) to the test mirror.

    .venv/bin/python bench/tor_fetch.py [--pages 500] [--concurrency 16] [--scheme https]

Boots the network (about 15 s), warms each client's circuit with a short run, then fetches
the mirror's first PAGES article pages with each client and prints pages/s, the median and
p90 latency of each, and the handler/curl ratios. A third run ("direct": Scrapy's own
HTTP/1.1 handler straight to the mirror on loopback, no Tor) shows Scrapy's own ceiling on
this machine. The handler runs in a Scrapy crawl in a
subprocess (a fresh reactor); curl runs as CONCURRENCY processes, each fetching its share of
the URLs over one keep-alive connection, as the handler's pool does. Loopback only: the
tests' network guard is installed in this process and the crawl subprocess.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tornet import TorNetwork

REPO_ROOT = Path(__file__).resolve().parent.parent
TESTS_DIR = REPO_ROOT / "tests"
NETGUARD_DIR = TESTS_DIR / "netguard"
WARMUP_PAGES = 8
RUN_TIMEOUT = 600


def crawl_worker(config_path: str) -> None:
    """Subprocess side: fetch the URLs with the Tor handler, write timings as JSON."""
    import scrapy
    from scrapy.crawler import CrawlerProcess

    config = json.loads(Path(config_path).read_text())
    reached: dict[int, float] = {}
    latencies: list[float] = []
    outcome = {"ok": 0, "errors": 0}

    class FetchSpider(scrapy.Spider):
        name = "bench"

        @classmethod
        def from_crawler(cls, crawler, *args, **kwargs):
            spider = super().from_crawler(crawler, *args, **kwargs)
            crawler.signals.connect(spider.reached, scrapy.signals.request_reached_downloader)
            crawler.signals.connect(spider.downloaded, scrapy.signals.response_downloaded)
            return spider

        async def start(self):
            outcome["started"] = time.monotonic()
            headers = {"Host": config["host"]} if config.get("host") else None
            for url in config["urls"]:
                yield scrapy.Request(url, headers=headers, dont_filter=True, errback=self.failed)

        def reached(self, request):
            reached[id(request)] = time.monotonic()

        def downloaded(self, response, request):
            latencies.append(time.monotonic() - reached.pop(id(request)))

        def parse(self, response):
            outcome["ok" if response.status == 200 else "errors"] += 1
            outcome["finished"] = time.monotonic()

        def failed(self, failure):
            outcome["errors"] += 1
            outcome["finished"] = time.monotonic()

    concurrency = config["concurrency"]
    import settings as project

    tor = {
        **{k: v for k, v in vars(project).items() if k.startswith("TOR_")},
        "ADDONS": {"crawler.tor.addon.TorAddon": 0},
        "TOR_SOCKS_URL": config["socks_url"],
        "TOR_CONTROL_URL": config["control_url"],
    }
    process = CrawlerProcess(
        {
            **({} if config.get("host") else tor),
            "CONCURRENT_REQUESTS": concurrency,
            "CONCURRENT_REQUESTS_PER_DOMAIN": concurrency,
            "AUTOTHROTTLE_ENABLED": False,
            "RETRY_ENABLED": False,
            "ROBOTSTXT_OBEY": False,
            "COOKIES_ENABLED": False,
            "TELNETCONSOLE_ENABLED": False,
            "LOG_LEVEL": "WARNING",
        }
    )
    process.crawl(FetchSpider)
    process.start()
    wall = outcome["finished"] - outcome["started"]
    result = {
        "wall": wall,
        "latencies": latencies,
        "ok": outcome["ok"],
        "errors": outcome["errors"],
    }
    Path(config["output"]).write_text(json.dumps(result))


def run_handler(
    urls: list[str], network: TorNetwork, concurrency: int, workdir: Path, host: str | None = None
) -> dict:
    """Crawl *urls* with the Tor handler; with *host*, with Scrapy's own HTTP/1.1 handler
    straight to the URLs (loopback), sending ``Host: host``."""
    config = workdir / f"crawl-{time.monotonic_ns()}.json"
    output = workdir / f"{config.stem}-out.json"
    config.write_text(
        json.dumps(
            {
                "urls": urls,
                "socks_url": network.socks_url,
                "control_url": network.control_url,
                "concurrency": concurrency,
                "host": host,
                "output": str(output),
            }
        )
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(NETGUARD_DIR), str(REPO_ROOT)])}
    subprocess.run(
        [sys.executable, __file__, "--crawl-worker", str(config)],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        timeout=RUN_TIMEOUT,
    )
    return json.loads(output.read_text())


def run_curl(urls: list[str], socks_url: str, concurrency: int) -> dict:
    proxy = socks_url.removeprefix("socks5h://")
    shares = [urls[i::concurrency] for i in range(concurrency)]

    def fetch(share: list[str]) -> list[tuple[int, float]]:
        command = ["curl", "-sk", "--compressed", "--socks5-hostname", proxy, "--max-time", "60"]
        for url in share:
            command += ["-o", "/dev/null", "-w", "%{http_code} %{time_total}\\n", url]
        lines = subprocess.run(
            command, capture_output=True, text=True, timeout=RUN_TIMEOUT
        ).stdout.split()
        return [
            (int(code), float(seconds))
            for code, seconds in zip(lines[::2], lines[1::2], strict=True)
        ]

    started = time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        results = [item for part in pool.map(fetch, shares) for item in part]
    wall = time.monotonic() - started
    ok = sum(1 for code, _ in results if code == 200)
    return {
        "wall": wall,
        "latencies": [seconds for _, seconds in results],
        "ok": ok,
        "errors": len(urls) - ok,
    }


def summary(name: str, result: dict) -> dict:
    latencies = sorted(result["latencies"])
    figures = {
        "pages_per_s": result["ok"] / result["wall"],
        "median_s": statistics.median(latencies),
        "p90_s": latencies[int(0.9 * (len(latencies) - 1))],
    }
    print(
        f"{name:8} {result['ok']:4} ok {result['errors']:3} errors  {result['wall']:6.2f} s  "
        f"{figures['pages_per_s']:7.1f} pages/s  median {figures['median_s'] * 1000:6.1f} ms  "
        f"p90 {figures['p90_s'] * 1000:6.1f} ms"
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--scheme", choices=("http", "https"), default="https")
    parser.add_argument("--crawl-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.crawl_worker:
        crawl_worker(args.crawl_worker)
        return
    if shutil.which("curl") is None:
        sys.exit("curl is missing (Debian package curl; `make setup` installs it)")

    sys.path[:0] = [str(NETGUARD_DIR), str(TESTS_DIR)]
    import netguard

    netguard.install()
    from mirror import MirrorServer, MirrorSite
    from onions import MIRROR_ONION_MAP
    from tornet import TorNetwork

    site = MirrorSite(articles=max(args.pages, 100), onion_map=MIRROR_ONION_MAP, seed=0, edition=0)
    urls = [site.onion_url(path, args.scheme) for path in site.article_paths()][: args.pages]
    with tempfile.TemporaryDirectory(prefix="bench-tor-") as tmp:
        workdir = Path(tmp)
        with MirrorServer(site) as mirror:
            tornet = workdir / "tornet"
            with TorNetwork.in_front_of(mirror.http_port, mirror.https_port, tornet) as network:
                network.start(timeout=120, progress=print)
                socks_url = network.socks_url
                print(f"{args.pages} {args.scheme} pages, concurrency {args.concurrency}")
                run_curl(urls[:WARMUP_PAGES], socks_url, 1)
                run_handler(urls[:WARMUP_PAGES], network, 1, workdir)
                curl = summary("curl", run_curl(urls, socks_url, args.concurrency))
                handler = summary("handler", run_handler(urls, network, args.concurrency, workdir))
                origin = mirror.origin(args.scheme)
                direct_urls = [
                    url.replace(f"{args.scheme}://{site.www_host}", origin) for url in urls
                ]
                direct = summary(
                    "direct",
                    run_handler(direct_urls, network, args.concurrency, workdir, site.www_host),
                )
    print(
        f"handler/curl: throughput x{handler['pages_per_s'] / curl['pages_per_s']:.2f}, "
        f"median latency x{handler['median_s'] / curl['median_s']:.2f}"
    )
    ratio = handler["pages_per_s"] / direct["pages_per_s"]
    print(f"handler/direct (Scrapy's own ceiling here, no Tor): throughput x{ratio:.2f}")


if __name__ == "__main__":
    main()
