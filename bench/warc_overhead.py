"""Benchmark: what WARC writing costs a crawl. The same mirror pages are crawled through one
private Tor network on loopback (tests/tornet, tests/mirror) by the Tor download handler, with
the WARC add-on off and on, alternating, in the same run.

    .venv/bin/python bench/warc_overhead.py [--pages 5000] [--concurrency 16] [--rounds 2]

Prints pages/s and peak RSS of each crawl (a Scrapy crawl with the project's settings, only the
add-ons switched, in a subprocess: a fresh reactor), the RSS at each quarter of the crawl (flat
means nothing grows with the page count), the WARC bytes written, and the on/off throughput
ratio of each back-to-back pair; their median is the verdict (on a shared machine the load
drifts between rounds more than between a pair's runs), and the on/off ratio of the crawl
process's CPU time per page. Target: on/off throughput >= 0.90 with RSS flat.
Loopback only: the tests' network guard is installed here and in the crawl subprocesses.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TESTS_DIR = REPO_ROOT / "tests"
NETGUARD_DIR = TESTS_DIR / "netguard"
WARMUP_PAGES = 16
RUN_TIMEOUT = 1800


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def crawl_worker(config_path: str) -> None:
    """Subprocess side: crawl the URLs, write throughput and memory figures as JSON."""
    import resource

    import scrapy
    from scrapy.crawler import CrawlerProcess
    from scrapy.utils.project import get_project_settings

    config = json.loads(Path(config_path).read_text())
    total = len(config["urls"])
    outcome = {"ok": 0, "errors": 0, "rss_quarters": []}

    class PagesSpider(scrapy.Spider):
        name = "bench"

        async def start(self):
            outcome["started"] = time.monotonic()
            for url in config["urls"]:
                yield scrapy.Request(url, dont_filter=True, errback=self.failed)

        def parse(self, response):
            outcome["ok" if response.status == 200 else "errors"] += 1
            self.progress()

        def failed(self, failure):
            outcome["errors"] += 1
            self.progress()

        def progress(self) -> None:
            done = outcome["ok"] + outcome["errors"]
            outcome["finished"] = time.monotonic()
            if done % max(1, total // 4) == 0:
                outcome["rss_quarters"].append(rss_kib())

    addons = {"crawler.tor.addon.TorAddon": 0}
    if config["warc"]:
        addons["crawler.warc.addon.WarcAddon"] = 10
    concurrency = config["concurrency"]
    settings = get_project_settings()
    settings.setdict(
        {
            "ADDONS": addons,
            "TOR_SOCKS_URL": config["socks_url"],
            "TOR_CONTROL_URL": config["control_url"],
            "ONION_MAP": config["onion_map"],
            "WARC_DIR": config["warc_dir"],
            "CAPTURE_INDEX": str(Path(config["warc_dir"]) / "index.sqlite3"),
            "CONCURRENT_REQUESTS": concurrency,
            "CONCURRENT_REQUESTS_PER_DOMAIN": concurrency,
            "AUTOTHROTTLE_ENABLED": False,
            "RETRY_ENABLED": False,
            "ROBOTSTXT_OBEY": False,
            "COOKIES_ENABLED": False,
            "TELNETCONSOLE_ENABLED": False,
            "LOG_LEVEL": "WARNING",
        },
        priority="cmdline",
    )
    process = CrawlerProcess(settings)
    process.crawl(PagesSpider)
    process.start()
    result = {
        "wall": outcome["finished"] - outcome["started"],
        "ok": outcome["ok"],
        "errors": outcome["errors"],
        "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "cpu_s": sum(os.times()[:2]),
        "rss_quarters": outcome["rss_quarters"],
    }
    Path(config["output"]).write_text(json.dumps(result))


def run_crawl(urls: list[str], network, concurrency: int, warc: bool, workdir: Path) -> dict:
    name = f"crawl-{time.monotonic_ns()}"
    config = workdir / f"{name}.json"
    output = workdir / f"{name}-out.json"
    warc_dir = workdir / f"{name}-warcs"
    from onions import MIRROR_ONION_MAP

    config.write_text(
        json.dumps(
            {
                "urls": urls,
                "socks_url": network.socks_url,
                "control_url": network.control_url,
                "concurrency": concurrency,
                "warc": warc,
                "warc_dir": str(warc_dir),
                "onion_map": json.dumps(MIRROR_ONION_MAP),
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
    result = json.loads(output.read_text())
    result["warc_bytes"] = sum(p.stat().st_size for p in warc_dir.glob("*.warc.gz"))
    return result


def report(name: str, result: dict) -> tuple[float, float]:
    """Print one crawl's figures; return (pages/s, CPU seconds per page of the crawl process)."""
    pages_per_s = result["ok"] / result["wall"]
    quarters = " ".join(f"{kib / 1024:.0f}" for kib in result["rss_quarters"])
    print(
        f"{name:4} {result['ok']:5} ok {result['errors']:3} errors {result['wall']:7.2f} s "
        f"{pages_per_s:7.1f} pages/s  CPU {result['cpu_s'] * 1000 / result['ok']:5.2f} ms/page"
        f"  peak RSS {result['peak_rss_kib'] / 1024:6.1f} MiB "
        f"(quarters: {quarters} MiB)  WARC {result['warc_bytes'] / 1e6:7.1f} MB",
        flush=True,
    )
    return pages_per_s, result["cpu_s"] / result["ok"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--crawl-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.crawl_worker:
        crawl_worker(args.crawl_worker)
        return

    sys.path[:0] = [str(NETGUARD_DIR), str(TESTS_DIR)]
    import netguard

    netguard.install()
    from mirror import MirrorServer, MirrorSite
    from onions import MIRROR_ONION_MAP
    from tornet import TorNetwork

    site = MirrorSite(articles=max(args.pages, 100), onion_map=MIRROR_ONION_MAP, seed=0, edition=0)
    urls = [site.onion_url(path) for path in site.article_paths()][: args.pages]
    speeds: dict[bool, list[float]] = {False: [], True: []}
    cpu: dict[bool, list[float]] = {False: [], True: []}
    with tempfile.TemporaryDirectory(prefix="bench-warc-") as tmp:
        workdir = Path(tmp)
        with MirrorServer(site) as mirror:
            tornet = workdir / "tornet"
            with TorNetwork.in_front_of(mirror.http_port, mirror.https_port, tornet) as network:
                network.start(timeout=120, progress=print)
                print(f"{args.pages} https pages, concurrency {args.concurrency}", flush=True)
                run_crawl(urls[:WARMUP_PAGES], network, 1, True, workdir)
                for _ in range(args.rounds):
                    for warc in (False, True):
                        result = run_crawl(urls, network, args.concurrency, warc, workdir)
                        pages_per_s, cpu_per_page = report("on" if warc else "off", result)
                        speeds[warc].append(pages_per_s)
                        cpu[warc].append(cpu_per_page)
    paired = sorted(on / off for on, off in zip(speeds[True], speeds[False], strict=True))
    best = max(speeds[True]) / max(speeds[False])
    print(
        f"WARC on/off: throughput x{statistics.median(paired):.3f} (median of {args.rounds} "
        f"back-to-back pairs: {', '.join(f'{r:.3f}' for r in paired)}; best/best x{best:.3f}); "
        "target >= 0.90"
    )
    cpu_ratio = statistics.median(cpu[True]) / statistics.median(cpu[False])
    print(
        f"WARC on/off: crawl-process CPU per page x{cpu_ratio:.3f} (medians; less load-sensitive)"
    )


if __name__ == "__main__":
    main()
