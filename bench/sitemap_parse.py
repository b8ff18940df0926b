"""Sitemap parsing: the spider's streaming parser vs Scrapy's ``Sitemap``, on a large sitemap.

    .venv/bin/python bench/sitemap_parse.py [--urls 150000]

Builds a synthetic gzipped URL set of URLS entries (about 10 MB uncompressed at 150,000,
every entry with ``lastmod``), then, each in a fresh process so peak memory is its own:

- ``spider``: :func:`crawler.spiders.sitemaps.iter_entries` over the gzipped body
  (decompressed and parsed as a stream, each element freed once read);
- ``scrapy``: the baseline, what ``SitemapSpider`` does: ``gunzip`` the body whole, then
  ``scrapy.utils.sitemap.Sitemap`` over it.

Prints entries/s (per CPU second), the peak memory allocated by Python beyond the input
(tracemalloc) and the spider/scrapy ratios.
"""

from __future__ import annotations

import argparse
import gzip
import multiprocessing
import time
import tracemalloc


def build(urls: int) -> bytes:
    entries = "".join(
        f"<url><loc>https://www.example.com/{2015 + i // 100000}/01/01/world/story-{i}.html"
        f"</loc><lastmod>2015-01-01T00:{i % 60:02}:00-05:00</lastmod></url>\n"
        for i in range(urls)
    )
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n{entries}</urlset>\n'
    )
    return gzip.compress(xml.encode(), mtime=0)


def run(parser: str, body: bytes, results: multiprocessing.Queue) -> None:
    tracemalloc.start()
    started = time.process_time()
    if parser == "spider":
        from crawler.spiders.sitemaps import iter_entries

        count = sum(1 for _ in iter_entries(body, 0))
    else:
        from scrapy.utils.gz import gunzip
        from scrapy.utils.sitemap import Sitemap

        count = sum(1 for _ in Sitemap(gunzip(body)))
    elapsed = time.process_time() - started
    results.put((parser, count, elapsed, tracemalloc.get_traced_memory()[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--urls", type=int, default=150_000)
    args = parser.parse_args()
    body = build(args.urls)
    size = len(gzip.decompress(body))
    print(f"{args.urls} entries, {size / 1e6:.1f} MB XML, {len(body) / 1e6:.2f} MB gzipped")
    context = multiprocessing.get_context("spawn")
    measured = {}
    for name in ("spider", "scrapy"):
        results = context.Queue()
        process = context.Process(target=run, args=(name, body, results))
        process.start()
        measured[name] = results.get(timeout=600)
        process.join(timeout=60)
    for name, count, elapsed, peak in measured.values():
        assert count == args.urls, f"{name} read {count} of {args.urls} entries"
        print(f"{name:7} {count / elapsed:10.0f} entries/CPU-s  peak {peak / 1e6:7.1f} MB")
    spider, scrapy = measured["spider"], measured["scrapy"]
    print(
        f"spider/scrapy: speed {scrapy[2] / spider[2]:.2f}x, "
        f"peak memory {spider[3] / scrapy[3]:.3f}x"
    )


if __name__ == "__main__":
    main()
