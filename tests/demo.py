"""`make demo`: the whole job offline, through a private Tor network on this machine.

    PYTHONPATH=tests .venv/bin/python tests/demo.py [--articles 200] [--warc-root warc_output]

1. starts the synthetic NYT mirror (tests/mirror) on 127.0.0.1, HTTP and HTTPS;
2. boots a private Tor network (tests/tornet) on loopback that serves the mirror as the v3
   onion services of ``MIRROR_ONION_MAP``, printing Tor's progress while it waits;
3. runs the scheduled-job wrapper (``python -m crawler.job``): ``scrapy torcheck``, then
   ``scrapy crawl nytimes`` through Tor (Scrapy's stats every 10 s as pages/min), then
   ``scrapy extract`` of the WARCs it wrote;
4. packages WARCs, CDXJ and articles into a WACZ (``scrapy wacz``);
5. prints where everything is and how to replay it, and stops everything it started (also on
   Ctrl-C, SIGTERM or an error).

Everything goes to a new ``<warc-root>/demo-<UTC time>/`` (its own capture index, so a second
demo captures everything again). Every wait is bounded: Tor's boot by ``--tor-timeout``, the
crawl by ``--crawl-timeout``. Exits with the job's status when a step fails.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from mirror import MirrorServer, MirrorSite
from onions import MIRROR_ONION_MAP
from tornet import TorNetwork, TorNetworkError

REPO_ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
COLLECTION = "demo"
#: How long the job wrapper may take to stop after Ctrl-C before it is killed.
STOP_GRACE = 150.0


class Progress:
    """Prints a step or progress line with the seconds since the demo started."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def __call__(self, message: str) -> None:
        print(f"[demo {time.monotonic() - self.started:5.1f} s] {message}", flush=True)


def interrupt(signum: int, _frame: FrameType | None) -> None:
    """SIGTERM stops the demo like Ctrl-C: everything started is stopped on the way out."""
    raise KeyboardInterrupt


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__.split("\n")[0])
    parser.add_argument("--articles", type=int, default=200, help="articles on the mirror")
    parser.add_argument(
        "--warc-root", default=str(REPO_ROOT / "warc_output"), help="demo-*/ is made here"
    )
    parser.add_argument("--tor-timeout", type=float, default=180, help="Tor boot bound (s)")
    parser.add_argument("--crawl-timeout", type=float, default=600, help="crawl bound (s)")
    return parser.parse_args(argv)


def crawl_settings(network: TorNetwork, demo_dir: Path, crawl_timeout: float) -> list[str]:
    """`-s` settings of the demo job: the private network, the mirror's onions, the demo dir."""
    settings = {
        "TOR_SOCKS_URL": network.socks_url,
        "TOR_CONTROL_URL": network.control_url,
        "ONION_MAP": json.dumps(MIRROR_ONION_MAP),
        "WARC_DIR": str(demo_dir),
        "CAPTURE_INDEX": str(demo_dir / "capture-index.sqlite3"),
        "CLOSESPIDER_TIMEOUT": str(int(crawl_timeout)),
        "LOGSTATS_INTERVAL": "10",
    }
    return [arg for name, value in settings.items() for arg in ("-s", f"{name}={value}")]


def run(name: str, command: list[str], timeout: float) -> int:
    """Run *command* (*name* in messages) in the repository root, its output shown as it
    comes, for at most *timeout* seconds (then it is asked to stop: SIGTERM). On Ctrl-C, wait
    for it to stop (it got the same Ctrl-C). Either way it is killed after :data:`STOP_GRACE`
    more seconds."""
    process = subprocess.Popen(command, cwd=REPO_ROOT)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        print(f"{name} ran past {timeout:g} s: stopping it", flush=True)
        process.terminate()
        stop(process)
        return 1
    except BaseException:
        stop(process)
        raise


def stop(process: subprocess.Popen) -> None:
    """Wait up to :data:`STOP_GRACE` s for *process* to end, then kill it."""
    try:
        process.wait(timeout=STOP_GRACE)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_GRACE)


def rel(path: Path) -> Path:
    """*path* relative to the working directory when it is under it (shorter to read)."""
    return path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path


def summarize(demo_dir: Path, articles: Path, wacz: Path) -> list[str]:
    """The closing report: what was captured and extracted, where it is, how to replay it."""
    records = [json.loads(line) for line in articles.read_text(encoding="utf-8").splitlines()]
    by_extractor = Counter(record["extractor"] for record in records)
    warcs = sorted(demo_dir.glob("*.warc.gz"))
    size = sum(warc.stat().st_size for warc in warcs)
    lines = [
        "",
        f"Captured through Tor: {len(warcs)} WARC file(s), {size / 1e6:.1f} MB, "
        f"in {rel(demo_dir)}/",
        f"  CDXJ indexes:       {rel(demo_dir)}/*.cdxj (onion and clearnet URLs)",
        f"  Crawl report:       {', '.join(str(rel(p)) for p in demo_dir.glob('*report.json'))}",
        f"Articles extracted:   {len(records)} "
        f"({', '.join(f'{n} {name}' for name, n in by_extractor.most_common())}) "
        f"in {rel(articles)}",
    ]
    lines += [f"    - {record['title']}" for record in records[:3]]
    lines += [
        f"WACZ package:         {rel(wacz)}  (check: .venv/bin/wacz validate -f {rel(wacz)})",
        "",
        "Replay with pywb (reads the WARCs and CDXJ in place; Ctrl-C stops it):",
        f"  {rel(VENV_BIN / 'python')} -m crawler.replay {rel(demo_dir)} --collection {COLLECTION}",
    ]
    if records:
        lines += [
            f"  then open http://127.0.0.1:8080/{COLLECTION}/{records[0]['url']}",
            f"        or http://127.0.0.1:8080/{COLLECTION}/{records[0]['capture_url']}",
        ]
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    say = Progress()
    signal.signal(signal.SIGTERM, interrupt)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    demo_dir = (Path(args.warc_root) / f"demo-{stamp}").resolve()
    demo_dir.mkdir(parents=True)
    articles = demo_dir / "articles.jsonl"
    with ExitStack() as started:
        try:
            say(f"starting the mirror: {args.articles} articles on 127.0.0.1")
            site = MirrorSite(articles=args.articles, onion_map=MIRROR_ONION_MAP)
            mirror = MirrorServer(site).start()
            started.callback(lambda: say("stopping the mirror") or mirror.stop())
            tor_home = started.enter_context(tempfile.TemporaryDirectory(prefix="demo-tornet-"))
            network = TorNetwork.in_front_of(mirror.http_port, mirror.https_port, tor_home)
            started.callback(lambda: say("stopping the Tor network") or network.stop())
            say("booting a private Tor network on loopback (about 15 s)")
            network.start(timeout=args.tor_timeout, progress=lambda m: say(f"tor: {m}"))
            for domain, onion in MIRROR_ONION_MAP.items():
                say(f"{domain} is served as {onion}")

            say("running the job: Tor preflight, crawl through Tor, extraction")
            job = [sys.executable, "-m", "crawler.job", "--articles", str(articles)]
            # CLOSESPIDER_TIMEOUT ends the crawl normally; the wrapper's bound is a backstop.
            job += ["--crawl-timeout", str(args.crawl_timeout + 120)]
            job += crawl_settings(network, demo_dir, args.crawl_timeout)
            status = run("the job", job, timeout=args.crawl_timeout + 900)
            if status != 0:
                say(f"the job failed with status {status} (its last line says why)")
                return status
            if not articles.exists():
                say("the crawl wrote no WARC file: nothing was extracted")
                return 1

            say("packaging WARCs, CDXJ and articles into a WACZ")
            wacz = demo_dir / f"{COLLECTION}.wacz"
            command = [sys.executable, "-m", "scrapy", "wacz", str(demo_dir), "-o", str(wacz)]
            status = run(
                "scrapy wacz", [*command, "--articles", str(articles), "--title", "demo"], 600
            )
            if status != 0:
                say(f"scrapy wacz failed with status {status}")
                return status
        except KeyboardInterrupt:
            say("interrupted: stopping everything the demo started")
            return 130
        except TorNetworkError as exc:
            say(f"the private Tor network did not come up: {exc}")
            return 1
    for line in summarize(demo_dir, articles, wacz):
        print(line)
    say("done; the mirror and the Tor network are stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
