"""Extraction throughput and memory: our extractor vs trafilatura on the same WARC.

    .venv/bin/python bench/extract_bench.py [--articles 5000]

Writes a WARC of N mirror articles (tests/mirror, all three markup styles, gzip-encoded as
the crawler captures them), then, each in a fresh process so peak RSS is its own:

- ``nyt``: ``FileExtractor`` over the WARC (read, decode, parse, records as JSON);
- ``trafilatura``: the same WARC read and decoded the same way, each page through
  ``trafilatura.bare_extraction`` (with metadata), which is the baseline.

Prints articles/s (wall clock, and per CPU second, which other load on the machine does not
skew), the ratios to trafilatura (target >= 2x), peak RSS, and RSS sampled every 1000
records (flat when memory does not grow with the number of records).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

SAMPLE_EVERY = 1000


def build_warc(path: Path, articles: int) -> None:
    from mirror.pages import Pages
    from mirror.site import MirrorSite
    from onions import MIRROR_ONION_MAP
    from warcio.warcwriter import WARCWriter

    from crawler.extract.evaluate import write_capture

    site = MirrorSite(articles=articles, onion_map=MIRROR_ONION_MAP)
    pages = Pages(site, "https")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with open(path, "wb") as out:
        writer = WARCWriter(out, gzip=True)
        for index in range(articles):
            article = site.article(index)
            body = pages.article(article).encode("utf-8")
            url = site.onion_url(article.onion_path)
            write_capture(writer, url, body, start + timedelta(seconds=index))


def run_ours(warc: str, queue) -> None:
    from onions import MIRROR_ONION_MAP

    from crawler.extract.extractor import ExtractOptions, FileExtractor

    samples: list[int] = []
    count = 0
    process = psutil.Process()

    def emit(article) -> None:
        nonlocal count
        json.dumps(article.to_dict(), ensure_ascii=False)
        count += 1
        if count % SAMPLE_EVERY == 0:
            samples.append(process.memory_info().rss)

    started, cpu = time.perf_counter(), time.process_time()
    FileExtractor(ExtractOptions(onion_map=MIRROR_ONION_MAP)).run(warc, emit)
    queue.put(_result(count, time.perf_counter() - started, time.process_time() - cpu, samples))


def run_trafilatura(warc: str, queue) -> None:
    import trafilatura

    from crawler.extract.decode import decode_html
    from crawler.extract.warcread import read_captures

    samples: list[int] = []
    count = 0
    process = psutil.Process()
    started, cpu = time.perf_counter(), time.process_time()
    for capture in read_captures(warc, Counter(), 20_000_000):
        text = decode_html(capture.body or b"", capture.content_type)
        result = trafilatura.bare_extraction(
            text, url=capture.target_uri, with_metadata=True, include_comments=False
        )
        if result is not None and result.text:
            count += 1
        if count % SAMPLE_EVERY == 0 and count:
            samples.append(process.memory_info().rss)
    queue.put(_result(count, time.perf_counter() - started, time.process_time() - cpu, samples))


def _result(count: int, seconds: float, cpu: float, samples: list[int]) -> dict:
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "articles": count,
        "seconds": seconds,
        "cpu": cpu,
        "peak_rss": peak_kib * 1024,
        "rss": samples,
    }


def measure(target, warc: Path) -> dict:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=target, args=(str(warc), queue))
    process.start()
    result = queue.get(timeout=3600)
    process.join(timeout=60)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--articles", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="extract-bench-") as tmp:
        warc = Path(tmp) / "mirror.warc.gz"
        started = time.perf_counter()
        build_warc(warc, args.articles)
        size = warc.stat().st_size
        print(
            f"WARC: {args.articles} mirror articles, {size / 1e6:.1f} MB, "
            f"written in {time.perf_counter() - started:.1f} s"
        )
        ours = measure(run_ours, warc)
        theirs = measure(run_trafilatura, warc)
    mib = 1024 * 1024
    for name, result in (("nyt", ours), ("trafilatura", theirs)):
        rate = result["articles"] / result["seconds"]
        samples = ", ".join(f"{r / mib:.0f}" for r in result["rss"])
        print(
            f"{name:<12} {result['articles']:>6} articles in {result['seconds']:7.1f} s = "
            f"{rate:7.1f} articles/s ({result['articles'] / result['cpu']:.1f} per CPU second), "
            f"peak RSS {result['peak_rss'] / mib:.0f} MiB; "
            f"RSS every {SAMPLE_EVERY} records (MiB): {samples}"
        )
    ratio = (ours["articles"] / ours["seconds"]) / (theirs["articles"] / theirs["seconds"])
    cpu_ratio = (ours["articles"] / ours["cpu"]) / (theirs["articles"] / theirs["cpu"])
    growth = (ours["rss"][-1] - ours["rss"][0]) / mib if len(ours["rss"]) > 1 else 0.0
    print(f"throughput ratio nyt / trafilatura: {ratio:.2f}x wall clock, {cpu_ratio:.2f}x CPU time")
    print(f"RSS growth from the first to the last sample (nyt): {growth:+.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
