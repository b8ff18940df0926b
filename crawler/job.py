"""The scheduled job: Tor preflight, crawl, extraction, under a lock so two runs never overlap.

    python -m crawler.job [-s NAME=VALUE ...] [-a NAME=VALUE ...] [--lock PATH]
                          [--crawl-timeout SECONDS] [--articles OUT.jsonl]

Run from the project directory (the one with ``scrapy.cfg``), as the systemd service and the
cron line in ``docs/scheduling.md`` do. Steps, each a Scrapy command in a subprocess whose
output is passed through line by line (so journald or cron's mail shows the crawl's own log):

1. ``scrapy torcheck``: Tor answers, is bootstrapped and reaches the mirror;
2. ``scrapy crawl nytimes``, judged by the crawl report it writes (``CRAWL_REPORT`` is forced
   on): it must close with reason ``finished`` (or a ``closespider_*`` limit) having received
   at least one response. A whole site's sitemaps take longer than any schedule allows, so
   unless ``-s CLOSESPIDER_TIMEOUT`` is given the crawl gets one a little under
   ``--crawl-timeout`` (:func:`crawl_budget`): it closes on its own, its WARCs finished, and
   the next run goes on from the capture index; ``--crawl-timeout`` stops it only if that
   graceful close hangs;
3. ``scrapy extract`` of the WARC files the report lists, into ``--articles`` (default
   ``<WARC_DIR>/articles-<UTC time>.jsonl``).

``-s`` settings go to every step, ``-a`` spider arguments to the crawl. The lock is an
exclusive ``flock`` on ``--lock`` (default ``<WARC_DIR>/.onion-archiver-job.lock``), held for
the whole run; the steps inherit it, so it is released (by the kernel) only when the wrapper
and its running step have both ended, however they end. Each step runs in its own session, so
a Ctrl-C reaches only the wrapper, which asks the step to stop exactly once.

Exit status (a one-line ``onion-archiver job: ...`` message on stderr says why):
0 done; 2 bad arguments, or not run from the project directory; 75 another run holds the
lock (nothing was started); 69 the Tor preflight failed; 70 the crawl failed or ran past
``--crawl-timeout``; 65 the extraction failed; 128 + N when signal N (SIGTERM, SIGINT) stopped
the job: the running step is asked to stop gracefully (Scrapy closes its WARC files), no
further step starts.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import IO

from scrapy.settings import Settings
from scrapy.utils.project import get_project_settings, inside_project

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_EXTRACT_FAILED = 65
EXIT_TOR_UNAVAILABLE = 69
EXIT_CRAWL_FAILED = 70
EXIT_LOCKED = 75

SPIDER = "nytimes"
#: Close reasons of a crawl that did its job: it ran out of URLs or hit a configured limit.
SUCCESS_REASONS = frozenset(
    {"finished", "closespider_pagecount", "closespider_timeout", "closespider_itemcount"}
)
REPORT_GLOB = "*-report.json"  # crawler.report.CrawlReport's files in WARC_DIR
#: After a graceful stop is asked for, how long a step may take to finish before it is killed.
STOP_GRACE = 120.0
#: Permission bits the job and its steps never grant (group write, anything for others).
JOB_UMASK = 0o027
#: Longest time kept back from ``--crawl-timeout`` for the crawl's own graceful close.
CLOSE_MARGIN_MAX = 600.0


class JobFailed(Exception):
    """A step failed; ``exit_status`` is the job's exit status, the message says why."""

    def __init__(self, exit_status: int, message: str):
        super().__init__(message)
        self.exit_status = exit_status


@dataclass
class StepResult:
    """What a step's subprocess did: its exit status and its last lines of output."""

    returncode: int
    last_lines: list[str] = field(default_factory=list)
    timed_out: bool = False


class JobLock:
    """An exclusive, non-blocking ``flock`` on *path*; the holder's pid is written into it."""

    def __init__(self, path: Path):
        self.path = path
        self.fd: int | None = None

    def acquire(self) -> None:
        """Take the lock. Raises :class:`JobFailed` (EXIT_LOCKED) naming the holder if taken."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise JobFailed(
                EXIT_LOCKED,
                f"another run (pid {holder}) holds the lock {self.path}; not starting",
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class StepRunner:
    """Runs one Scrapy command at a time in a subprocess, echoing its output, and stops it
    gracefully (SIGTERM, then SIGKILL after :data:`STOP_GRACE`) on timeout or when the job is
    asked to stop."""

    def __init__(self, out: IO[str], lock: JobLock):
        self.out = out
        self.lock = lock
        self.stop_signal: int | None = None
        self._process: subprocess.Popen[str] | None = None

    def request_stop(self, signum: int, _frame: FrameType | None) -> None:
        """Signal handler: forward a graceful stop to the running step."""
        self.stop_signal = signum
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)

    def run(self, args: Sequence[str], timeout: float) -> StepResult:
        """Run ``python -m scrapy ARGS`` until it exits or *timeout* seconds pass. Raises
        :class:`JobFailed` (128 + signal number) when the job was asked to stop."""
        self._raise_if_stopped(args[0])
        command = [sys.executable, "-m", "scrapy", *args]
        print(f"onion-archiver job: running scrapy {args[0]}", file=self.out, flush=True)
        result = StepResult(returncode=-1)
        self._process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,
            pass_fds=() if self.lock.fd is None else (self.lock.fd,),
        )
        reader = threading.Thread(target=self._read, args=(self._process.stdout, result))
        reader.start()
        try:
            result.returncode = self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            result.timed_out = True
            self._process.send_signal(signal.SIGTERM)
            try:
                result.returncode = self._process.wait(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                self._process.kill()
                result.returncode = self._process.wait(timeout=STOP_GRACE)
        finally:
            reader.join(timeout=STOP_GRACE)
            self._process = None
        self._raise_if_stopped(args[0])
        return result

    def _raise_if_stopped(self, step: str) -> None:
        if self.stop_signal is not None:
            name = signal.Signals(self.stop_signal).name
            raise JobFailed(128 + self.stop_signal, f"stopped by {name} during scrapy {step}")

    def _read(self, stream: IO[str], result: StepResult) -> None:
        for line in stream:
            self.out.write(line)
            self.out.flush()
            result.last_lines = [*result.last_lines[-4:], line.rstrip()]


def crawl_budget(crawl_timeout: float) -> float:
    """Seconds the crawl may run before closing itself: *crawl_timeout* less the time its
    close may take (in-flight downloads, WARC and index flush), a tenth, at most
    :data:`CLOSE_MARGIN_MAX`."""
    return crawl_timeout - min(CLOSE_MARGIN_MAX, crawl_timeout / 10)


def setting_args(settings: Sequence[str]) -> list[str]:
    return [arg for setting in settings for arg in ("-s", setting)]


def last_words(result: StepResult) -> str:
    return result.last_lines[-1] if result.last_lines else "no output"


class Job:
    """One scheduled run: preflight, crawl, extraction (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        setting_overrides: Sequence[str],
        spider_args: Sequence[str],
        articles: Path | None,
        crawl_timeout: float,
        runner: StepRunner,
    ):
        self.settings = settings
        self.setting_overrides = list(setting_overrides)
        self.spider_args = list(spider_args)
        self.warc_dir = Path(settings["WARC_DIR"])
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        self.articles = articles or self.warc_dir / f"articles-{stamp}.jsonl"
        self.crawl_timeout = crawl_timeout
        self.runner = runner

    def run(self) -> Path | None:
        """Run every step; returns the articles file (None when no WARC was finished).
        Raises :class:`JobFailed` at the first failing step."""
        self.preflight()
        report = self.crawl()
        warcs = [self.warc_dir / name for name in report["warc_files"]]
        warcs = [warc for warc in warcs if warc.is_file()]
        if not warcs:
            print("onion-archiver job: the crawl finished no WARC file; nothing to extract")
            return None
        return self.extract(warcs)

    def preflight(self) -> None:
        timeout = float(self.settings.getfloat("TOR_BOOTSTRAP_TIMEOUT")) + 60
        result = self.runner.run(["torcheck", *setting_args(self.setting_overrides)], timeout)
        if result.returncode != 0:
            raise JobFailed(
                EXIT_TOR_UNAVAILABLE,
                f"Tor preflight failed (scrapy torcheck exit {result.returncode}): "
                f"{last_words(result)}",
            )

    def crawl_args(self) -> list[str]:
        """``scrapy crawl`` arguments: the ``-s`` and ``-a`` options, the report forced on, and
        a ``CLOSESPIDER_TIMEOUT`` within ``--crawl-timeout`` unless one was given."""
        overrides = [*self.setting_overrides, "CRAWL_REPORT=True"]
        if not any(s.startswith("CLOSESPIDER_TIMEOUT=") for s in self.setting_overrides):
            overrides.append(f"CLOSESPIDER_TIMEOUT={crawl_budget(self.crawl_timeout):g}")
        args = ["crawl", SPIDER, *setting_args(overrides)]
        return args + [arg for spider_arg in self.spider_args for arg in ("-a", spider_arg)]

    def crawl(self) -> dict:
        """Run the crawl; its report (``crawler.report``) when it did its job."""
        before = set(self.warc_dir.glob(REPORT_GLOB))
        result = self.runner.run(self.crawl_args(), self.crawl_timeout)
        reports = sorted(set(self.warc_dir.glob(REPORT_GLOB)) - before)
        report = json.loads(reports[-1].read_text(encoding="utf-8")) if reports else {}
        reason = report.get("finish_reason")
        if result.timed_out:
            failure = f"ran past --crawl-timeout {self.crawl_timeout:g} s and was stopped"
        elif result.returncode != 0:
            failure = f"scrapy crawl exited with status {result.returncode}: {last_words(result)}"
        elif not report:
            failure = f"it wrote no crawl report in {self.warc_dir}: {last_words(result)}"
        elif reason not in SUCCESS_REASONS:
            failure = f"the spider closed with reason {reason} (report {reports[-1]})"
        elif not report["stats"].get("response_received_count"):
            failure = (
                f"no response was received, is the site reachable through Tor? ({reports[-1]})"
            )
        else:
            return report
        raise JobFailed(EXIT_CRAWL_FAILED, f"crawl failed: {failure}")

    def extract(self, warcs: list[Path]) -> Path:
        args = ["extract", *map(str, warcs), "-o", str(self.articles)]
        result = self.runner.run([*args, *setting_args(self.setting_overrides)], 3600.0)
        if result.returncode != 0:
            raise JobFailed(
                EXIT_EXTRACT_FAILED,
                f"extraction failed (scrapy extract exit {result.returncode}): "
                f"{last_words(result)}",
            )
        print(f"onion-archiver job: done; {len(warcs)} WARC file(s), articles in {self.articles}")
        return self.articles


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m crawler.job",
        description="Tor preflight, crawl and extraction under a lock (a scheduled job).",
    )
    parser.add_argument(
        "-s", dest="settings", action="append", default=[], metavar="NAME=VALUE",
        help="a Scrapy setting for every step (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "-a", dest="spider_args", action="append", default=[], metavar="NAME=VALUE",
        help="a spider argument for the crawl (repeatable)",
    )  # fmt: skip
    parser.add_argument("--lock", help="lock file (default <WARC_DIR>/.onion-archiver-job.lock)")
    parser.add_argument("--articles", help="extracted articles (default <WARC_DIR>/articles-*)")
    parser.add_argument(
        "--crawl-timeout", type=float, default=6 * 3600.0,
        help="stop the crawl gracefully after this many seconds (default 6 h)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    for setting in [*args.settings, *args.spider_args]:
        if "=" not in setting:
            parser.error(f"expected NAME=VALUE, got {setting!r}")
    return args


def project_settings(overrides: Sequence[str]) -> Settings:
    """The project's settings with the ``-s`` overrides applied, as the steps will see them."""
    settings = get_project_settings()
    settings.setdict(dict(s.split("=", 1) for s in overrides), priority="cmdline")
    return settings


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not inside_project():
        where = Path.cwd()
        print(
            f"onion-archiver job: no scrapy.cfg in {where}: run it in the project", file=sys.stderr
        )
        return EXIT_USAGE
    # The steps inherit it: JOBDIR, logs, articles and lock are not world-readable, whatever
    # cron's umask (the systemd unit sets UMask=0027 too); a stricter umask stays as it is.
    os.umask(os.umask(0) | JOB_UMASK)
    settings = project_settings(args.settings)
    lock = JobLock(Path(args.lock or Path(settings["WARC_DIR"]) / ".onion-archiver-job.lock"))
    runner = StepRunner(sys.stdout, lock)
    started = time.monotonic()
    try:
        lock.acquire()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, runner.request_stop)
        articles = Path(args.articles) if args.articles else None
        Job(settings, args.settings, args.spider_args, articles, args.crawl_timeout, runner).run()
    except JobFailed as failure:
        print(f"onion-archiver job: {failure}", file=sys.stderr, flush=True)
        return failure.exit_status
    finally:
        lock.release()
    print(f"onion-archiver job: finished in {time.monotonic() - started:.0f} s", flush=True)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
