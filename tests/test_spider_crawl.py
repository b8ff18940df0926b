"""Whole crawls of the 1,000-article mirror through the private Tor network (the SOCKS path).

Each crawl is ``scrapy crawl nytimes`` in a subprocess with the project's settings (Tor
add-on, WARC writer, spider middlewares), politeness tuned down for speed. What the crawler
fetched is read on the mirror's side, from its exchange log: every request that reached it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from mirror import MirrorServer, MirrorSite
from mirror.app import MirrorApp
from onions import MIRROR_ONION_MAP

from crawler.spiders.urls import UrlPolicy
from crawler.tor.onion import OnionMap

pytestmark = [pytest.mark.tor, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRAPY = Path(sys.executable).parent / "scrapy"
CRAWL_TIMEOUT = 240
NEW, UPDATED = 50, 20


@dataclass
class Crawl:
    """One crawl's outputs and the requests the mirror received during it."""

    work: Path
    log: str
    requests: list[tuple[str, str]]  # (host, path) in arrival order
    heads: list[str]  # the requests' heads, lower-cased
    report: dict | None

    def articles(self) -> list[str]:
        return [path for _host, path in self.requests if _is_article_path(path)]


def _is_article_path(path: str) -> bool:
    return path[1:5].isdigit() and path.endswith(".html")


class CrawlRunner:
    """Runs crawls against the session mirror and reads what reached it."""

    def __init__(self, mirror: MirrorServer, tor_network) -> None:
        self.mirror, self.tor_network = mirror, tor_network
        assert mirror.sent_log_dir is not None

    def exchange_count(self) -> int:
        return len(list(self.mirror.sent_log_dir.glob("*.request")))

    def requests_after(self, count: int) -> tuple[list[tuple[str, str]], list[str]]:
        """(Host, path) and the lower-cased head of each request the mirror received after
        its first *count*."""
        files = sorted(self.mirror.sent_log_dir.glob("*.request"), key=lambda p: int(p.stem))
        requests, heads = [], []
        for path in files[count:]:
            head = path.read_bytes().split(b"\r\n\r\n", 1)[0].decode("latin-1")
            lines = head.split("\r\n")
            host = next(h.split(":", 1)[1].strip() for h in lines if h.lower().startswith("host:"))
            requests.append((host, lines[0].split(" ")[1]))
            heads.append(head.lower())
        return requests, heads

    def command(self, work: Path, *extra: str) -> list[str]:
        settings = {
            "TOR_SOCKS_URL": self.tor_network.socks_url,
            "TOR_CONTROL_URL": self.tor_network.control_url,
            "ONION_MAP": json.dumps(MIRROR_ONION_MAP),
            "WARC_DIR": str(work / "warc"),
            "CAPTURE_INDEX": str(work / "capture-index.sqlite3"),
            # politeness tuned down: the mirror is local and the test must stay fast
            "AUTOTHROTTLE_ENABLED": "False",
            "CONCURRENT_REQUESTS_PER_DOMAIN": "8",
            "LOG_LEVEL": "INFO",
        }
        args = [str(SCRAPY), "crawl", "nytimes"]
        for name, value in settings.items():
            args += ["-s", f"{name}={value}"]
        return args + list(extra)

    def run(self, work: Path, *extra: str, log_name: str = "crawl.log") -> Crawl:
        before = self.exchange_count()
        log_path = work / log_name
        with log_path.open("wb") as log:
            subprocess.run(
                self.command(work, *extra),
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=CRAWL_TIMEOUT,
                check=False,
            )
        return self.finished(work, before, log_path)

    def finished(self, work: Path, before: int, log_path: Path) -> Crawl:
        log = log_path.read_text(errors="replace")
        reports = sorted((work / "warc").glob("*-report.json"), key=lambda p: p.stat().st_mtime)
        report = json.loads(reports[-1].read_text()) if reports else None
        return Crawl(work, log, *self.requests_after(before), report)


@contextmanager
def mirror_edition(mirror: MirrorServer, edition: int) -> Iterator[MirrorSite]:
    """Serve a later edition of the session mirror's site for the duration, then restore it."""
    site = MirrorSite(
        articles=mirror.site.base_articles,
        onion_map=MIRROR_ONION_MAP,
        seed=mirror.site.seed,
        edition=edition,
        new_articles=NEW,
        updated_articles=UPDATED,
    )
    previous = mirror.site, mirror.app
    mirror.site, mirror.app = site, MirrorApp(site)
    try:
        yield site
    finally:
        mirror.site, mirror.app = previous


@pytest.fixture(scope="module")
def runner(onion_mirror: MirrorServer, tor_network) -> CrawlRunner:
    return CrawlRunner(onion_mirror, tor_network)


@pytest.fixture(scope="module")
def first_crawl(runner: CrawlRunner, tmp_path_factory: pytest.TempPathFactory) -> Crawl:
    return runner.run(tmp_path_factory.mktemp("crawl"))


@pytest.fixture(scope="module")
def second_crawl(
    first_crawl: Crawl, runner: CrawlRunner, onion_mirror: MirrorServer
) -> tuple[Crawl, MirrorSite]:
    """A run against edition 1 (50 new, 20 updated articles) with the first run's index."""
    with mirror_edition(onion_mirror, 1) as site:
        return runner.run(first_crawl.work, log_name="second.log"), site


def assert_in_scope(crawl: Crawl) -> None:
    policy = UrlPolicy(OnionMap(MIRROR_ONION_MAP))
    hosts = {f"www.{MIRROR_ONION_MAP['nytimes.com']}", f"static01.{MIRROR_ONION_MAP['nyt.com']}"}
    for host, path in crawl.requests:
        assert host in hosts, f"off-scope host {host} requested"
        assert not policy.is_excluded(f"https://{host}{path}"), f"excluded {path} requested"
        assert "smid=" not in path and "utm_" not in path, path
    assert "tor/scope/dropped" not in crawl.report["stats"]  # the spider asked for none


def article_paths(site: MirrorSite, indices) -> set[str]:
    return {site.article_path(i) for i in indices}


@pytest.mark.timeout(400)
def test_crawl_finds_every_article_once_and_nothing_excluded(
    first_crawl: Crawl, onion_mirror: MirrorServer
) -> None:
    crawl = first_crawl
    assert "Spider closed (finished)" in crawl.log, crawl.log[-3000:]
    expected = set(onion_mirror.site.article_paths())
    fetched = Counter(crawl.articles())
    assert set(fetched) == expected, f"missing {sorted(expected - set(fetched))[:5]}"
    assert max(fetched.values()) == 1, [p for p, n in fetched.items() if n > 1][:5]
    assert_in_scope(crawl)
    assert {host for host, _path in crawl.requests} == {f"www.{MIRROR_ONION_MAP['nytimes.com']}"}
    paths = Counter(path for _host, path in crawl.requests)
    # discovery went through robots.txt, the sitemap index, gzipped monthly sitemaps,
    # the news sitemap, section fronts and RSS
    assert paths["/sitemaps/sitemap.xml"] == 1 and paths["/sitemaps/news.xml"] == 1
    assert sum(p.endswith(".xml.gz") for p in paths) == len(onion_mirror.site.months())
    assert paths["/section/world/middleeast"] == 1
    assert paths["/services/xml/rss/nyt/HomePage.xml"] == 1
    # robots.txt too: its Sitemap lines come from RobotsTxtMiddleware's fetch
    assert {p for p, n in paths.items() if n > 1} == set()
    report = crawl.report
    assert report["articles"] == {"found": 1000, "new": 1000, "updated": 0, "unchanged": 0}
    assert report["pages_by_status"]["200"] >= 1000
    assert report["bytes"]["received"] > 0
    assert report["warc_files"] and all(
        (crawl.work / "warc" / name).exists() for name in report["warc_files"]
    )
    assert report["robots_txt_obeyed"] is True


@pytest.mark.timeout(400)
def test_second_run_fetches_new_and_updated_articles_and_few_others(
    second_crawl: tuple[Crawl, MirrorSite],
) -> None:
    crawl, site = second_crawl
    assert "Spider closed (finished)" in crawl.log, crawl.log[-3000:]
    new = article_paths(site, range(site.base_articles, site.total_articles))
    updated = article_paths(site, site.updated_indices(1))
    fetched = Counter(crawl.articles())
    assert max(fetched.values()) == 1
    assert new <= set(fetched), f"new articles missed: {sorted(new - set(fetched))[:5]}"
    assert updated <= set(fetched), f"updates missed: {sorted(updated - set(fetched))[:5]}"
    others = set(fetched) - new - updated
    assert len(others) <= 5, sorted(others)
    # Non-article requests: robots, fronts, feeds, the sitemap index, the news sitemap and
    # the monthly sitemaps that changed; bounded by the site's structure, not its size.
    non_articles = [p for _h, p in crawl.requests if not _is_article_path(p)]
    assert len(non_articles) <= 60, Counter(non_articles)
    assert_in_scope(crawl)
    articles = crawl.report["articles"]
    assert articles["new"] == NEW and articles["updated"] == UPDATED
    assert articles["unchanged"] >= 100  # undated on fronts/feeds, skipped without a request


@pytest.mark.timeout(500)
def test_sigint_then_resume_with_jobdir_finishes_with_no_page_fetched_twice(
    runner: CrawlRunner, onion_mirror: MirrorServer, tmp_path: Path
) -> None:
    jobdir = ("-s", f"JOBDIR={tmp_path / 'job'}")
    before = runner.exchange_count()
    log_path = tmp_path / "interrupted.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            runner.command(tmp_path, *jobdir), cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + CRAWL_TIMEOUT
            while runner.exchange_count() - before < 400 and process.poll() is None:
                assert time.monotonic() < deadline, "the crawl made no progress"
                time.sleep(0.2)
            process.send_signal(signal.SIGINT)
            process.wait(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
    interrupted = runner.finished(tmp_path, before, log_path)
    assert "Received SIGINT" in interrupted.log, interrupted.log[-3000:]
    assert interrupted.report["finish_reason"] == "shutdown"
    assert len(interrupted.articles()) < 1000

    resumed = runner.run(tmp_path, *jobdir, log_name="resumed.log")
    assert "Resuming crawl" in resumed.log, resumed.log[-3000:]
    assert "Spider closed (finished)" in resumed.log, resumed.log[-3000:]
    fetched = Counter(interrupted.articles() + resumed.articles())
    assert set(fetched) == set(onion_mirror.site.article_paths())
    assert max(fetched.values()) == 1, [p for p, n in fetched.items() if n > 1][:5]
    pages = Counter(p for _h, p in interrupted.requests + resumed.requests)
    # only the robots.txt that the resumed process's RobotsTxtMiddleware needs again
    assert {p for p, n in pages.items() if n > 1} <= {"/robots.txt"}
    assert pages["/robots.txt"] <= 2


@pytest.mark.timeout(300)
def test_misbehaving_pages_are_logged_counted_and_the_crawl_goes_on(
    runner: CrawlRunner, tmp_path: Path
) -> None:
    www = f"https://www.{MIRROR_ONION_MAP['nytimes.com']}"
    starts = [
        f"{www}/_test/redirect-loop/a",
        f"{www}/_test/redirect-local",  # off the onion hosts (a leak attempt)
        f"{www}/_test/redirect/302?to=/login",  # into an excluded endpoint
        f"{www}/_test/status/429?retry_after=1",
        f"{www}/_test/status/500",
        f"{www}/section/world",
    ]
    crawl = runner.run(
        tmp_path,
        *("-a", "start_urls=" + ",".join(starts)),
        *("-s", "SPIDER_SITEMAPS=False", "-s", "DEPTH_LIMIT=1"),
        *("-s", "RETRY_TIMES=2", "-s", "RETRY_BACKOFF_BASE=0.2"),
    )
    assert "Spider closed (finished)" in crawl.log, crawl.log[-3000:]
    stats = crawl.report["stats"]
    assert stats["spider/errors/redirect_loop"] == 1
    assert "redirect loop dropped" in crawl.log
    assert crawl.report["errors"]["redirect_loop"] == 1
    assert stats["tor/scope/dropped"] == 1  # the Tor layer's guard stops the local redirect
    assert stats["policy/excluded"] == 1
    assert stats["retry/retry_after_honoured"] == 2 and stats["spider/errors/http_429"] == 1
    assert stats["spider/errors/http_500"] == 1
    paths = Counter(path for _host, path in crawl.requests)
    assert paths["/_test/status/429?retry_after=1"] == 3  # the first try and two retries
    assert "/login" not in paths
    # ... and the rest of the crawl went on: the front and its articles
    assert paths["/section/world"] == 1
    assert len(crawl.articles()) >= 20


@pytest.mark.timeout(300)
def test_recheck_sends_conditional_requests_and_counts_304_as_unchanged(
    second_crawl: tuple[Crawl, MirrorSite], runner: CrawlRunner, onion_mirror: MirrorServer
) -> None:
    crawl, site = second_crawl
    with mirror_edition(onion_mirror, 1):
        third = runner.run(
            crawl.work,
            *("-s", "SPIDER_SITEMAPS=False", "-s", "DEPTH_LIMIT=1"),
            *("-s", "INCREMENTAL_RECHECK_AFTER=0"),
            log_name="third.log",
        )
    assert "Spider closed (finished)" in third.log, third.log[-3000:]
    home = set(site.article_path(i) for i in site.latest(50))
    assert set(third.articles()) == home
    conditional = [
        path
        for (_host, path), head in zip(third.requests, third.heads, strict=True)
        if "\r\nif-none-match: " in head and "\r\nif-modified-since: " in head
    ]
    assert sorted(conditional) == sorted(home)
    assert third.report["stats"]["incremental/unchanged/article"] == 50
    assert third.report["articles"]["unchanged"] == 50 and third.report["articles"]["new"] == 0


@pytest.mark.timeout(300)
def test_since_limits_articles_by_publication_date(runner: CrawlRunner, onion_mirror, tmp_path):
    site = onion_mirror.site
    since = "2015-02-05"
    expected = {
        site.article_path(i)
        for i in range(site.total_articles)
        if site.published(i).date().isoformat() >= since
    }
    assert 50 < len(expected) < site.total_articles
    crawl = runner.run(
        tmp_path, "-a", f"since={since}", "-a", "start_urls=https://www.nytimes.com/"
    )
    assert "Spider closed (finished)" in crawl.log, crawl.log[-3000:]
    fetched = Counter(crawl.articles())
    assert set(fetched) == expected and max(fetched.values()) == 1
    paths = set(path for _host, path in crawl.requests)
    assert "/sitemaps/sitemap-2015-01.xml.gz" not in paths  # last modified before since
    assert crawl.report["stats"]["spider/since_skipped"] > 0


@pytest.mark.timeout(300)
def test_page_requisites_of_captured_articles_when_switched_on(
    runner: CrawlRunner, onion_mirror, tmp_path
) -> None:
    site = onion_mirror.site
    article = site.onion_url(site.article_path(500))
    crawl = runner.run(
        tmp_path,
        *("-a", f"start_urls={article}"),
        *("-s", "SPIDER_SITEMAPS=False", "-s", "DEPTH_LIMIT=1"),
        *("-s", "SPIDER_PAGE_REQUISITES=True", "-s", "SPIDER_REQUISITE_MAX_SIZE=300"),
    )
    assert "Spider closed (finished)" in crawl.log, crawl.log[-3000:]
    static = [path for host, path in crawl.requests if host.startswith("static01.")]
    assert site.image_path(500) in static
    assert any(path.endswith(".css") for path in static)
    # requisites of the start article only: linked articles are one level deeper
    assert all(site.image_path(i) not in static for i in range(497, 500))
    # the lead image (and its srcset variants) is larger than the 300-byte cap: the
    # download is cut off, logged and counted, and the crawl goes on
    cancelled = crawl.report["errors"]["DownloadCancelledError"]
    assert cancelled >= 1
    assert crawl.log.count("failed (DownloadCancelledError)") == cancelled
    assert f"{site.image_path(500)} failed (DownloadCancelledError)" in crawl.log
