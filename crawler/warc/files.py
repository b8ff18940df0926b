"""WARC files on disk: naming, one gzip member per record, rotation, ``.open`` repair.

A file is written as ``{prefix}-{timestamp17}-{serial:05}-{random}.warc.gz.open`` and renamed
without ``.open`` once complete (fsync'd first). Every record is one gzip member written whole
with ``os.write`` before the next starts, so a crash leaves at most one incomplete member at
the end of an ``.open`` file; :func:`repair` truncates it away. A failed write (disk full)
truncates the file back to where the failed records started and raises
:class:`WarcWriteError`; finished files are never opened for writing again.

The writing process holds an exclusive ``flock`` on its ``.open`` file from creation until
the file is renamed (or, after a failed write, closed); the kernel drops it when the process
dies, even by SIGKILL. :func:`repair` takes the same lock without waiting and leaves alone a
file whose lock another process holds: several crawl processes can share one directory.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import secrets
import zlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from warcio.recordloader import ArcWarcRecord
from warcio.warcwriter import WARCWriter

logger = logging.getLogger(__name__)

OPEN_SUFFIX = ".open"
WARC_SUFFIX = ".warc.gz"
PREFIX_PATTERN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")
#: What follows ``{prefix}`` in a file name, up to ``.warc.gz``.
NAME_PATTERN = r"-\d{17}-\d{5,}-[0-9a-f]{8}"
READ_SIZE = 64 * 1024
#: Compressed bytes gathered before an ``os.write``.
WRITE_BUFFER = 1024 * 1024
COMPRESSION_LEVEL = 6


#: (offset, compressed length) of each record written.
Spans = list[tuple[int, int]]


class WarcWriteError(OSError):
    """Records could not be written (typically ENOSPC); the file holds only whole records."""


def permission_mode(value: int | str) -> int:
    """A permission setting (``WARC_FILE_MODE``, ``WARC_DIR_MODE``): an int, or an octal
    string from ``-s`` (``"640"``, ``"0o640"``).

    :raises ValueError: if a string is not octal.
    """
    return int(value, 8) if isinstance(value, str) else int(value)


def validate_prefix(prefix: str) -> str:
    """Return ``prefix`` if it is a safe file name start, else raise :class:`ValueError`.

    Letters, digits, ``-``, ``_`` and ``.`` only, not starting with ``.``, at most 100
    characters: no path separator, so files cannot land outside ``WARC_DIR``.
    """
    if not PREFIX_PATTERN.fullmatch(prefix):
        raise ValueError(
            f"WARC_PREFIX {prefix!r} is not allowed: use 1-100 letters, digits, '-', '_' "
            "or '.', not starting with '.'"
        )
    return prefix


class _GzipMembers:
    """The file-like warcio writes a record to: one gzip member, finished at ``flush()``.

    warcio's ``WARCWriter(gzip=False)`` calls ``write`` for the record's parts and ``flush``
    once at its end.
    """

    def __init__(self, fd: int, position: int) -> None:
        self._fd = fd
        self.position = position
        self._buffer = bytearray()
        self._compressor = self._new_compressor()

    @staticmethod
    def _new_compressor():
        return zlib.compressobj(COMPRESSION_LEVEL, zlib.DEFLATED, zlib.MAX_WBITS | 16)

    def write(self, data: bytes) -> None:
        self._buffer += self._compressor.compress(data)
        if len(self._buffer) >= WRITE_BUFFER:
            self._drain()

    def flush(self) -> None:
        self._buffer += self._compressor.flush()
        self._compressor = self._new_compressor()
        self._drain()

    def rewind(self, position: int) -> None:
        """Drop everything after ``position`` (raises ``OSError`` if truncation fails)."""
        self._buffer.clear()
        self._compressor = self._new_compressor()
        os.ftruncate(self._fd, position)
        os.lseek(self._fd, position, os.SEEK_SET)
        self.position = position

    def _drain(self) -> None:
        view = memoryview(self._buffer)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
                self.position += written
        finally:
            view.release()
        self._buffer.clear()


def _create_locked(path: Path, file_mode: int) -> int:
    """Create ``path`` for writing and take its exclusive ``flock``; return the descriptor.

    Another process's :func:`repair` may open the new, still empty file before it is locked
    and remove it (it holds no whole record); the file is then created again.

    :raises OSError: ``FileExistsError`` if ``path`` exists, or why creating or locking failed.
    """
    while True:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, file_mode)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # waits only while such a repair holds it
            if os.fstat(fd).st_nlink:
                return fd
        except OSError:
            os.close(fd)
            raise
        os.close(fd)


class WarcFile:
    """One ``.open`` WARC file being written, locked (see the module docstring) until
    :meth:`finish` renames it to ``final_path``.

    :raises OSError: if the file cannot be created and locked.
    """

    def __init__(self, final_path: Path, file_mode: int) -> None:
        self.final_path = final_path
        self.open_path = final_path.with_name(final_path.name + OPEN_SUFFIX)
        self._fd = _create_locked(self.open_path, file_mode)
        os.fchmod(self._fd, file_mode)
        self._out = _GzipMembers(self._fd, 0)
        self._writer = WARCWriter(self._out, gzip=False)
        self.failed = False

    @property
    def size(self) -> int:
        return self._out.position

    def write(self, records: Sequence[ArcWarcRecord]) -> Spans:
        """Append ``records`` whole: (offset, compressed length) of each.

        :raises WarcWriteError: if a write fails; the file then ends where ``records`` began
            (or, if even truncating failed, is left for :func:`repair`), and takes no more writes.
        """
        if self.failed:
            raise WarcWriteError(f"{self.open_path} had a failed write; it takes no more")
        start = self._out.position
        spans = []
        try:
            for record in records:
                offset = self._out.position
                self._writer.write_record(record)
                spans.append((offset, self._out.position - offset))
        except OSError as exc:
            self.failed = True
            try:
                self._out.rewind(start)
            except OSError as rewind_exc:
                logger.error(
                    "cannot truncate %s after a failed write: %s", self.open_path, rewind_exc
                )
            raise WarcWriteError(
                exc.errno, f"writing {self.open_path} failed: {exc.strerror or exc}"
            ) from exc
        return spans

    def finish(self) -> Path | None:
        """fsync, rename to the final name (still locked: no repair can take the file
        meanwhile) and close; a failed file stays ``.open``, unlocked.

        Returns the final path, or None if the file was left ``.open`` for :func:`repair`.
        """
        try:
            os.fsync(self._fd)
            if self.failed:
                return None
            os.rename(self.open_path, self.final_path)
            _fsync_dir(self.final_path.parent)
            return self.final_path
        finally:
            os.close(self._fd)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _member_end(stream, start: int) -> int | None:
    """End offset of the gzip member at ``start`` if it is complete and holds a whole
    WARC record (starts ``WARC/``, ends with the record's CRLF CRLF); else None."""
    stream.seek(start)
    decompressor = zlib.decompressobj(zlib.MAX_WBITS | 16)
    read_total = 0
    pending = b""
    first = b""
    last = b""
    while not decompressor.eof:
        if not pending:
            pending = stream.read(READ_SIZE)
            read_total += len(pending)
            if not pending:
                return None
        try:
            out = decompressor.decompress(pending, READ_SIZE)
        except zlib.error:
            return None
        pending = decompressor.unconsumed_tail
        first = (first + out[:5])[:5]
        last = (last + out)[-4:]
    if first != b"WARC/" or last != b"\r\n\r\n":
        return None
    return start + read_total - len(decompressor.unused_data) - len(pending)


def complete_length(path: Path) -> int:
    """Bytes of ``path`` made of whole gzip members each holding a whole WARC record."""
    with open(path, "rb") as stream:
        end = 0
        while (member_end := _member_end(stream, end)) is not None:
            end = member_end
        return end


def repair(open_path: Path) -> Path | None:
    """Truncate a leftover ``.open`` file to its last whole record and rename it, holding
    its lock throughout.

    Returns the finished path, or None when the file was left alone or removed: left alone
    (logged at info) when another process holds its lock, i.e. is still writing it, or when
    another process's repair finished or removed it first; removed when no whole record was
    left (it held nothing readable).

    :raises OSError: if the file cannot be read, truncated or renamed.
    """
    try:
        stream = open(open_path, "r+b")  # noqa: SIM115 - closed (and unlocked) by the with
    except FileNotFoundError:
        logger.info("not repairing %s: another process did", open_path)
        return None
    with stream:
        fd = stream.fileno()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("not repairing %s: another process is writing it", open_path)
            return None
        if not _is_at(fd, open_path):
            logger.info("not repairing %s: another process did", open_path)
            return None
        end = complete_length(open_path)
        size = os.fstat(fd).st_size
        if end == 0:
            logger.warning("removing %s: no complete WARC record in its %d bytes", open_path, size)
            open_path.unlink()
            return None
        stream.truncate(end)
        os.fsync(fd)
        final_path = open_path.with_name(open_path.name[: -len(OPEN_SUFFIX)])
        os.rename(open_path, final_path)
        _fsync_dir(final_path.parent)
    logger.warning(
        "repaired %s: kept %d of %d bytes (whole records), renamed to %s",
        open_path,
        end,
        size,
        final_path.name,
    )
    return final_path


def _is_at(fd: int, path: Path) -> bool:
    """Whether the file open as ``fd`` is still the one named ``path``."""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


class WarcFiles:
    """Rotating WARC files in ``directory``: each starts with the record from ``warcinfo``.

    :param warcinfo: builds the warcinfo record for a new file, given its final name.
    :param on_finished: called with each finished file's path, repaired ones included (e.g.
        to index it).
    :raises ValueError: if ``prefix`` is unsafe (see :func:`validate_prefix`).
    """

    def __init__(
        self,
        directory: str | Path,
        prefix: str,
        max_size: int,
        warcinfo: Callable[[str], ArcWarcRecord],
        on_finished: Callable[[Path], None] = lambda path: None,
        file_mode: int = 0o640,
        dir_mode: int = 0o750,
    ) -> None:
        self.directory = Path(directory)
        self.prefix = validate_prefix(prefix)
        self.max_size = max_size
        self.file_mode = file_mode
        self.dir_mode = dir_mode
        self._warcinfo = warcinfo
        self._on_finished = on_finished
        self._serial = 0
        self.current: WarcFile | None = None
        self.records_written = 0
        self.bytes_written = 0

    def repair_leftovers(self) -> list[Path]:
        """Repair and finish (see :func:`repair`) this prefix's ``.open`` files in the
        directory that no process is writing; returns the finished paths.

        :raises OSError: if the directory cannot be listed or a file cannot be repaired.
        """
        finished = []
        for open_path in self._own(WARC_SUFFIX + OPEN_SUFFIX):
            if path := repair(open_path):
                self._on_finished(path)
                finished.append(path)
        return finished

    def finished_files(self) -> list[Path]:
        """This prefix's finished files in the directory (by any process), oldest first.

        :raises OSError: if the directory cannot be listed.
        """
        return self._own(WARC_SUFFIX)

    def write(self, records: Sequence[ArcWarcRecord]) -> tuple[str, Spans]:
        """Write ``records`` together into the current file, first finishing it if it
        reached ``max_size`` (a new one is opened as needed).

        Returns the final file name and the (offset, length) of each record. A file is thus
        finished at the first write after it reached ``max_size``, once its writer has dealt
        with its last records (e.g. indexed them), or by :meth:`close`.

        :raises WarcWriteError: if writing failed (see :meth:`WarcFile.write`).
        """
        if self.current is not None and self.current.size >= self.max_size:
            self.close()
        warc_file = self.current or self._open()
        spans = self._write(warc_file, records)
        return warc_file.final_path.name, spans

    def close(self) -> None:
        """Finish the current file, if any."""
        warc_file, self.current = self.current, None
        if warc_file and (path := warc_file.finish()):
            self._on_finished(path)

    def _own(self, suffix: str) -> list[Path]:
        """The files named ``{prefix}{NAME_PATTERN}{suffix}`` in the directory, by name."""
        if not self.directory.is_dir():
            return []
        pattern = re.compile(re.escape(self.prefix) + NAME_PATTERN + re.escape(suffix))
        return sorted(path for path in self.directory.iterdir() if pattern.fullmatch(path.name))

    def _open(self) -> WarcFile:
        now = datetime.now(UTC)
        name = (
            f"{self.prefix}-{now:%Y%m%d%H%M%S}{now.microsecond // 1000:03}"
            f"-{self._serial:05}-{secrets.token_hex(4)}{WARC_SUFFIX}"
        )
        self._serial += 1
        try:
            if not self.directory.exists():
                self.directory.mkdir(parents=True, mode=self.dir_mode)
                os.chmod(self.directory, self.dir_mode)
            warc_file = WarcFile(self.directory / name, self.file_mode)
        except OSError as exc:
            raise WarcWriteError(
                exc.errno, f"cannot create {self.directory / name}: {exc.strerror or exc}"
            ) from exc
        self.current = warc_file
        self._write(warc_file, [self._warcinfo(name)])
        return warc_file

    def _write(
        self, warc_file: WarcFile, records: Sequence[ArcWarcRecord]
    ) -> list[tuple[int, int]]:
        spans = warc_file.write(records)
        self.records_written += len(spans)
        self.bytes_written += sum(length for _, length in spans)
        return spans
