"""The persistent capture index: which URL was archived when, where, and with what payload.

One sqlite database (``CAPTURE_INDEX``) shared by the WARC writer (dedup into revisit records)
and the spider (incremental crawling: ``latest(url).etag`` / ``last_modified``). It is opened
in WAL mode with a busy timeout, so several processes (concurrent crawl jobs) can use the same
file; every method is safe to call from any thread of one process.

Besides the captures, it lists the WARC files whose captures are all in it
(:meth:`CaptureIndex.mark_indexed`), so that a start-up reads only the others (see
:meth:`crawler.warc.writer.CaptureWriter.catch_up`). An index made before that list existed
gets it empty.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

from scrapy.settings import BaseSettings

#: The index's file name in ``WARC_DIR`` when ``CAPTURE_INDEX`` is not set.
DEFAULT_INDEX_NAME = "capture-index.sqlite3"

#: Seconds a writer waits for another process's lock before sqlite raises ``OperationalError``.
BUSY_TIMEOUT = 30.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS captures (
    id INTEGER PRIMARY KEY,
    url TEXT NOT NULL,
    clearnet_url TEXT NOT NULL,
    payload_digest TEXT NOT NULL,
    record_id TEXT NOT NULL UNIQUE,
    warc_filename TEXT NOT NULL,
    warc_offset INTEGER NOT NULL,
    capture_time TEXT NOT NULL,
    status INTEGER NOT NULL,
    etag TEXT,
    last_modified TEXT,
    refers_to TEXT,
    sort_time TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS captures_url ON captures (url, sort_time);
CREATE INDEX IF NOT EXISTS captures_clearnet_url ON captures (clearnet_url, sort_time);
CREATE INDEX IF NOT EXISTS captures_digest ON captures (payload_digest, sort_time);
CREATE TABLE IF NOT EXISTS indexed_files (
    warc_filename TEXT PRIMARY KEY
);
"""


@dataclass(frozen=True)
class Capture:
    """One archived response (or revisit) record."""

    url: str
    """The URL fetched (onion form): the record's WARC-Target-URI."""
    clearnet_url: str
    """The same URL in clearnet form (equal to ``url`` when it has no clearnet form)."""
    payload_digest: str
    """WARC-Payload-Digest, labelled (``sha1:BASE32`` or ``sha256:BASE32``)."""
    record_id: str
    """WARC-Record-ID, ``<urn:uuid:...>``."""
    warc_filename: str
    """Name of the finished WARC file holding the record (no directory)."""
    warc_offset: int
    """Byte offset of the record's gzip member in that file."""
    capture_time: str
    """WARC-Date of the record (``YYYY-MM-DDThh:mm:ss[.ffffff]Z``)."""
    status: int
    """HTTP status code."""
    etag: str | None
    """The response's ETag header, if any."""
    last_modified: str | None
    """The response's Last-Modified header, if any."""
    refers_to: str | None = None
    """For a revisit record: the WARC-Record-ID of the record holding the payload."""


_FIELD_NAMES = [f.name for f in fields(Capture)]
_COLUMNS = ", ".join(_FIELD_NAMES)
_INTO_CAPTURES = (
    f"INTO captures ({_COLUMNS}, sort_time) VALUES ({', '.join('?' * (len(_FIELD_NAMES) + 1))})"
)
_INSERT = "INSERT " + _INTO_CAPTURES
_INSERT_MISSING = "INSERT OR IGNORE " + _INTO_CAPTURES


_WARC_DATE = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z")


def capture_index_path(settings: BaseSettings) -> Path:
    """``CAPTURE_INDEX``, or ``capture-index.sqlite3`` in ``WARC_DIR`` when it is not set, so
    the index travels with the WARCs its revisit records point into."""
    configured = settings.get("CAPTURE_INDEX")
    if configured:
        return Path(configured)
    return Path(settings.get("WARC_DIR") or "warc_output") / DEFAULT_INDEX_NAME


def _row(capture: Capture) -> list:
    """The values of ``capture`` for :data:`_INSERT` (raises ``ValueError`` as
    :func:`_sort_time`)."""
    return [*(getattr(capture, name) for name in _FIELD_NAMES), _sort_time(capture.capture_time)]


def _sort_time(capture_time: str) -> str:
    """Normalise a WARC-Date so that captures sort by time whatever its precision.

    Raises :class:`ValueError` if ``capture_time`` is not a WARC-Date.
    """
    match = _WARC_DATE.fullmatch(capture_time)
    if not match:
        raise ValueError(f"not a WARC-Date: {capture_time!r}")
    return f"{match[1]}.{(match[2] or '').ljust(9, '0')}"


class CaptureIndex:
    """Captures by URL (onion or clearnet form) and by payload digest, in a sqlite file.

    :param path: the database file; it and its directory are created when missing.
    :param file_mode: permissions of a new database file (as WARC_FILE_MODE); *dir_mode*
        those of a directory created for it (as WARC_DIR_MODE).
    :param commit_interval: 0 commits every :meth:`add` at once. Above 0, additions are
        grouped in one transaction committed by the first :meth:`add` at least this many
        seconds after it began, by :meth:`commit` or by :meth:`close` (much faster; other
        connections see the additions, and wait to write, until then).
    :raises sqlite3.Error: if the file cannot be opened or is not a capture index.
    """

    def __init__(
        self,
        path: str | Path,
        commit_interval: float = 0.0,
        file_mode: int = 0o640,
        dir_mode: int = 0o750,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=dir_mode)
        # sqlite creates its file (and its -wal/-shm files, with the same mode) per the umask
        os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, file_mode))
        self.commit_interval = commit_interval
        self._transaction_started: float | None = None
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def latest(self, url: str) -> Capture | None:
        """The newest capture (full or revisit) of ``url``, given in onion or clearnet form,
        that shows the document: a 2xx, or a 304 confirming an earlier one. Error pages and
        redirects are archived and indexed too, but they say nothing of the document.
        """
        return self._one(
            "WHERE (url = ? OR clearnet_url = ?) AND (status BETWEEN 200 AND 299 OR status = 304)"
            " ORDER BY sort_time DESC, id DESC",
            (url, url),
        )

    def by_digest(self, payload_digest: str, url: str | None = None) -> Capture | None:
        """The oldest full (non-revisit) capture with this payload digest.

        With ``url`` (onion or clearnet form), only captures of that URL count.
        """
        where = "WHERE payload_digest = ? AND refers_to IS NULL"
        params: tuple[str, ...] = (payload_digest,)
        if url is not None:
            where += " AND (url = ? OR clearnet_url = ?)"
            params += (url, url)
        return self._one(where + " ORDER BY sort_time, id", params)

    def add(self, capture: Capture) -> None:
        """Record a capture; its ``record_id`` must be new.

        :raises ValueError: if ``capture_time`` is not a WARC-Date.
        :raises sqlite3.IntegrityError: if ``record_id`` is already indexed.
        """
        values = _row(capture)
        with self._lock:
            now = time.monotonic()
            if self.commit_interval > 0 and self._transaction_started is None:
                self._db.execute("BEGIN")
                self._transaction_started = now
            self._db.execute(_INSERT, values)
            started = self._transaction_started
            if started is not None and now - started >= self.commit_interval:
                self._commit()

    def is_indexed(self, warc_filename: str) -> bool:
        """Whether :meth:`mark_indexed` marked the WARC file ``warc_filename`` (no directory)."""
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM indexed_files WHERE warc_filename = ?", (warc_filename,)
            ).fetchone()
        return row is not None

    def mark_indexed(self, warc_filename: str, captures: Sequence[Capture] = ()) -> int:
        """Mark the WARC file ``warc_filename`` (no directory) as having all its captures in
        the index, after adding those of ``captures`` whose ``record_id`` is not indexed yet.

        The additions and the mark are committed together with the additions still pending
        (see ``commit_interval``): the mark is never stored without them, so call this only
        once every capture of the file was added. Returns how many of ``captures`` were new.

        :raises ValueError: if a ``capture_time`` is not a WARC-Date (nothing is added).
        :raises sqlite3.Error: if the database cannot be written (e.g. another process kept
            it locked beyond :data:`BUSY_TIMEOUT`); the additions then stay pending.
        """
        rows = [_row(capture) for capture in captures]
        with self._lock:
            if self._transaction_started is None:
                self._db.execute("BEGIN")
                self._transaction_started = time.monotonic()
            added = self._db.executemany(_INSERT_MISSING, rows).rowcount
            self._db.execute(
                "INSERT OR IGNORE INTO indexed_files (warc_filename) VALUES (?)", (warc_filename,)
            )
            self._commit()
        return added

    def commit(self) -> None:
        """Commit the additions still in an open transaction (see ``commit_interval``)."""
        with self._lock:
            self._commit()

    def close(self) -> None:
        """Commit and close the database; further calls raise ``sqlite3.ProgrammingError``."""
        with self._lock:
            self._commit()
            self._db.close()

    def _commit(self) -> None:
        if self._transaction_started is not None:
            self._db.execute("COMMIT")
            self._transaction_started = None

    def _one(self, clause: str, params: tuple[str, ...]) -> Capture | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM captures {clause} LIMIT 1", params
            ).fetchone()
        return Capture(*row) if row else None
