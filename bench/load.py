"""Load benchmark: a whole crawl of a large mirror through Tor, WARC writing and extraction on.

    .venv/bin/python bench/load.py [--articles 20000] [--per-host 8] [--interval 2]

Boots the test mirror with ARTICLES articles and a private Tor network on loopback serving it
as onion services (tests/tornet), runs ``scrapy crawl nytimes`` (the project's settings:
SOCKS handler, WARC writer, capture index, crawl report; at most PER_HOST requests at once per
host) under the tests' audit recorder, and samples the crawl process every INTERVAL seconds:
pages archived (response records the WARC writer reported in its stats), RSS and open file
descriptors. Then ``scrapy extract`` turns the WARCs into article records.

Prints throughput over time and the ratios of the last quarter of the crawl to its first
quarter (the baseline of the same run) for pages/s, RSS and file descriptors, and exits
non-zero, saying why, when memory or descriptors grow without bound, throughput collapses,
anything was contacted but Tor's ports, or what was captured differs from the mirror: every
article URL exactly once in the WARCs, every article in the crawl report and in the extracted
records. Results go to bench/results/load-<articles>.json.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TESTS_DIR = REPO_ROOT / "tests"
NETGUARD_DIR = TESTS_DIR / "netguard"
# Limits of the flatness check: last quarter against first quarter of the same crawl.
RSS_GROWTH_MAX_MB = 96.0  # absolute allowance on top of ...
RSS_GROWTH_MAX_RATIO = 1.5  # ... this ratio
FD_GROWTH_MAX = 24
THROUGHPUT_MIN_RATIO = 0.4


@dataclass
class Sample:
    seconds: float
    pages: int
    rss_mb: float
    fds: int


@dataclass
class LoadResult:
    articles: int
    samples: list[Sample]
    crawl_seconds: float
    problems: list[str]
    figures: dict


def _pages(log_path: Path) -> int:
    """Pages crawled so far, from the last LogStats line (``Crawled N pages ...``)."""
    with open(log_path, "rb") as log:
        log.seek(max(0, log_path.stat().st_size - 65536))
        tail = log.read().decode(errors="replace")
    found = re.findall(r"Crawled (\d+) pages", tail)
    return int(found[-1]) if found else 0


def crawl_and_sample(
    workdir: Path, settings: dict, interval: float, timeout: float
) -> tuple[list[Sample], object, float]:
    """Run ``scrapy crawl nytimes`` with *settings* under the audit recorder, sampling it."""
    import psutil
    from auditcrawl import finish, start_scrapy

    settings = {**settings, "LOGSTATS_INTERVAL": interval}
    process, log_path = start_scrapy(workdir, ["crawl", "nytimes"], settings)
    watched = psutil.Process(process.pid)
    samples: list[Sample] = []
    started = time.monotonic()
    while process.poll() is None and time.monotonic() - started < timeout:
        try:
            rss = watched.memory_info().rss / 2**20
            fds = watched.num_fds()
        except psutil.NoSuchProcess:
            break
        # the count only grows; at close the final stats dump can push the last LogStats
        # line out of the tail that _pages reads
        pages = max(_pages(log_path), samples[-1].pages if samples else 0)
        samples.append(Sample(time.monotonic() - started, pages, rss, fds))
        time.sleep(interval)
    run = finish(process, log_path, timeout=max(1.0, timeout - (time.monotonic() - started)))
    return samples, run, time.monotonic() - started


def flatness(samples: list[Sample]) -> tuple[dict, list[str]]:
    """Ratios of the last quarter of the crawl (by pages) to the first; problems found."""
    total = samples[-1].pages if samples else 0
    if total < 40 or len(samples) < 8:
        return {}, [f"too few samples to judge ({len(samples)} samples, {total} pages)"]
    warm = [s for s in samples if s.pages >= total * 0.05]  # start-up (imports, preflight) aside
    quarter = max(2, len(warm) // 4)
    first, last = warm[:quarter], warm[-quarter:]

    def rate(part: list[Sample]) -> float:
        seconds = part[-1].seconds - part[0].seconds
        return (part[-1].pages - part[0].pages) / seconds if seconds > 0 else 0.0

    figures = {
        "pages_per_s_first": rate(first),
        "pages_per_s_last": rate(last),
        "rss_mb_first": statistics.median(s.rss_mb for s in first),
        "rss_mb_last": statistics.median(s.rss_mb for s in last),
        "rss_mb_peak": max(s.rss_mb for s in samples),
        "fds_first": max(s.fds for s in first),
        "fds_last": max(s.fds for s in last),
        "fds_peak": max(s.fds for s in samples),
    }
    problems = []
    rss_limit = figures["rss_mb_first"] * RSS_GROWTH_MAX_RATIO + RSS_GROWTH_MAX_MB
    if figures["rss_mb_last"] > rss_limit:
        problems.append(
            f"RSS grows: {figures['rss_mb_first']:.0f} MB -> {figures['rss_mb_last']:.0f} MB "
            f"(limit {rss_limit:.0f} MB)"
        )
    if figures["fds_last"] > figures["fds_first"] + FD_GROWTH_MAX:
        problems.append(f"open files grow: {figures['fds_first']} -> {figures['fds_last']}")
    first_rate = figures["pages_per_s_first"]
    if first_rate and figures["pages_per_s_last"] < first_rate * THROUGHPUT_MIN_RATIO:
        problems.append(
            f"throughput collapses: {first_rate:.1f} -> {figures['pages_per_s_last']:.1f} pages/s"
        )
    return figures, problems


def capture_problems(site, warc_dir: Path, extracted: Path) -> tuple[dict, list[str]]:
    """Compare what was captured and extracted with the mirror's ground truth."""
    from warcio.archiveiterator import ArchiveIterator

    # Fetches per URL: response records and revisits (WARC_DEDUP=url, the default, writes a
    # second fetch of an unchanged page as a revisit), so that any refetch is seen.
    fetches: Counter = Counter()
    for path in sorted(warc_dir.glob("*.warc.gz")):
        with open(path, "rb") as stream:
            for record in ArchiveIterator(stream):
                if record.rec_type in ("response", "revisit"):
                    fetches[record.rec_headers.get_header("WARC-Target-URI")] += 1
    articles = set(site.all_article_urls(clearnet=False))
    report_path = max(warc_dir.glob("*-report.json"), default=None)
    report = json.loads(report_path.read_text()) if report_path else {}
    records = [json.loads(line) for line in extracted.open()] if extracted.exists() else []
    extracted_urls = {record["capture_url"] for record in records}
    figures: dict = {
        "articles": len(articles),
        "captured_articles": len(articles & set(fetches)),
        "pages": sum(fetches.values()),
        "extracted": len(records),
        "extracted_articles": len(extracted_urls & articles),
        "report_articles_found": report.get("articles", {}).get("found"),
    }
    problems = []
    if missing := articles - set(fetches):
        problems.append(f"{len(missing)} articles never captured, e.g. {sorted(missing)[:3]}")
    if twice := [uri for uri, n in fetches.items() if n > 1]:
        problems.append(f"{len(twice)} URLs fetched more than once, e.g. {twice[:3]}")
    if figures["report_articles_found"] != len(articles):
        problems.append(f"crawl report found {figures['report_articles_found']} articles")
    if extracted_urls != articles:
        others = sorted(extracted_urls - articles)
        problems.append(
            f"extracted {len(extracted_urls & articles)} of {len(articles)} articles "
            f"(+{len(others)} others, e.g. {others[:3]})"
        )
    return figures, problems


def run_load(
    site,
    network,
    onion_map: dict,
    workdir: Path,
    per_host: int,
    interval: float,
    timeout: float,
) -> LoadResult:
    """Crawl *site* (served at the onions of *onion_map* on *network*), sample, extract, check."""
    warc_dir = workdir / "warc"
    settings = {
        "TOR_SOCKS_URL": network.socks_url,
        "TOR_CONTROL_URL": network.control_url,
        "ONION_MAP": onion_map,
        "WARC_DIR": str(warc_dir),
        "CAPTURE_INDEX": str(warc_dir / "index.sqlite3"),
        "AUTOTHROTTLE_ENABLED": False,
        "CONCURRENT_REQUESTS": 2 * per_host,
        "CONCURRENT_REQUESTS_PER_DOMAIN": per_host,
        "LOG_LEVEL": "INFO",
    }
    samples, run, seconds = crawl_and_sample(workdir, settings, interval, timeout)
    problems = []
    if run.returncode != 0 or "'finish_reason': 'finished'" not in run.log:
        problems.append(f"the crawl did not finish (exit {run.returncode}): {run.log[-2000:]}")
    socks_port = int(network.socks_url.rsplit(":", 1)[1])
    allowed = {repr(("127.0.0.1", port)) for port in (socks_port, network.control_port)}
    if stray := run.connects() - allowed:
        problems.append(f"contacted something but Tor: {sorted(stray)}")
    extracted = workdir / "articles.jsonl"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "scrapy",
            "extract",
            str(warc_dir),
            "-o",
            str(extracted),
            "-s",
            f"ONION_MAP={json.dumps(onion_map)}",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    flat, flat_problems = flatness(samples)
    captured, capture_issues = capture_problems(site, warc_dir, extracted)
    figures = {**flat, **captured, "crawl_seconds": seconds}
    return LoadResult(
        len(site.all_article_urls()),
        samples,
        seconds,
        problems + flat_problems + capture_issues,
        figures,
    )


def report(result: LoadResult) -> str:
    f = result.figures
    lines = [f"{result.articles} articles, crawl {result.crawl_seconds:.0f} s"]
    step = max(1, len(result.samples) // 12)
    for sample in result.samples[::step]:
        lines.append(
            f"  t={sample.seconds:6.0f} s  pages={sample.pages:6d}  "
            f"rss={sample.rss_mb:6.0f} MB  fds={sample.fds:4d}"
        )
    if "pages_per_s_first" in f:
        speed = f["pages_per_s_last"] / max(f["pages_per_s_first"], 1e-9)
        lines.append(
            f"last/first quarter: pages/s x{speed:.2f}"
            f" ({f['pages_per_s_first']:.1f} -> {f['pages_per_s_last']:.1f}), "
            f"RSS x{f['rss_mb_last'] / f['rss_mb_first']:.2f} "
            f"({f['rss_mb_first']:.0f} -> {f['rss_mb_last']:.0f} MB, peak {f['rss_mb_peak']:.0f}), "
            f"fds {f['fds_first']} -> {f['fds_last']} (peak {f['fds_peak']})"
        )
    lines.append(
        f"captured {f.get('captured_articles')}/{f.get('articles')} articles, "
        f"{f.get('pages')} pages, extracted {f.get('extracted')} records"
    )
    lines += [f"PROBLEM: {problem}" for problem in result.problems] or ["OK: flat and exact"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=20_000)
    parser.add_argument("--per-host", type=int, default=8)
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--timeout", type=float, default=4 * 3600)
    args = parser.parse_args()

    sys.path[:0] = [str(NETGUARD_DIR), str(TESTS_DIR)]
    import netguard

    netguard.install()
    from mirror import MirrorServer, MirrorSite
    from onions import MIRROR_ONION_MAP
    from tornet import TorNetwork

    site = MirrorSite(articles=args.articles, onion_map=MIRROR_ONION_MAP, seed=0, edition=0)
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        workdir = Path(tmp)
        with MirrorServer(site) as mirror:
            tornet = workdir / "tornet"
            with TorNetwork.in_front_of(mirror.http_port, mirror.https_port, tornet) as network:
                network.start(timeout=120, progress=print)
                result = run_load(
                    site,
                    network,
                    MIRROR_ONION_MAP,
                    workdir,
                    args.per_host,
                    args.interval,
                    args.timeout,
                )
    print(report(result))
    out = REPO_ROOT / "bench" / "results" / f"load-{args.articles}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(asdict(result), indent=1))
    sys.exit(1 if result.problems else 0)


if __name__ == "__main__":
    main()
