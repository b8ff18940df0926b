"""WARC files: names, permissions, rotation, repair of ``.open`` leftovers, SIGKILL, disk full."""

from __future__ import annotations

import errno
import gzip
import hashlib
import logging
import os
import random
import select
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from warc_samples import (
    assert_valid_warc,
    make_exchange,
    make_writer,
    warc_files,
)

import crawler.warc.files as files_module
from crawler.warc.files import WarcWriteError, repair, validate_prefix

TESTS_DIR = Path(__file__).parent
BIN = Path(sys.executable).parent
NAME = r"test-\d{17}-\d{5}-[0-9a-f]{8}\.warc\.gz"


def write_some(writer, count: int, body_size: int = 1000) -> None:
    for n in range(count):
        body = os.urandom(body_size)
        raw = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        writer.write_exchange(make_exchange(raw, path=f"/p{n}"))


def test_names_permissions_and_rename_on_close(tmp_path: Path) -> None:
    directory = tmp_path / "warcs"
    writer = make_writer(directory)
    write_some(writer, 2)
    (open_file,) = directory.iterdir()
    assert open_file.name.endswith(".warc.gz.open")
    writer.close()
    (path,) = directory.iterdir()
    assert path.name == open_file.name.removesuffix(".open")
    import re

    assert re.fullmatch(NAME, path.name)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert stat.S_IMODE(directory.stat().st_mode) == 0o750
    assert assert_valid_warc(path) == 1 + 2 * 2


@pytest.mark.parametrize("prefix", ["../evil", "a/b", ".hidden", "", "x" * 101, "a b", "é"])
def test_unsafe_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="WARC_PREFIX"):
        validate_prefix(prefix)


def test_rotation_by_size(tmp_path: Path) -> None:
    writer = make_writer(tmp_path, max_size=8000)
    write_some(writer, 30)
    writer.close()
    paths = warc_files(tmp_path)
    assert len(paths) >= 4
    assert not list(tmp_path.glob("*.open"))
    total = 0
    for path in paths:
        total += assert_valid_warc(path) - 1  # minus warcinfo
    assert total == 2 * 30
    for path in paths[:-1]:
        # closed by the write that crossed the limit: less than one exchange beyond it
        assert 8000 <= path.stat().st_size < 8000 + 3000
    serials = [int(p.name.split("-")[2]) for p in paths]
    assert serials == list(range(len(paths)))


def _leave_open_file(directory: Path, count: int) -> Path:
    writer = make_writer(directory)
    write_some(writer, count)
    open_path = writer.files.current.open_path
    os.close(writer.files.current._fd)  # crash: no finish
    return open_path


@pytest.mark.parametrize(
    "damage",
    [
        b"",
        b"garbage that is not gzip",
        b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff",  # a gzip header, then nothing
        "half-member",
    ],
)
def test_open_leftover_is_repaired_to_its_whole_records(tmp_path: Path, damage) -> None:
    open_path = _leave_open_file(tmp_path, 5)
    whole = open_path.read_bytes()
    if damage == "half-member":  # a record's gzip member cut in the middle
        member = gzip.compress(b"WARC/1.1\r\n" + os.urandom(4000) + b"\r\n\r\n")
        damage = member[: len(member) // 2]
    with open(open_path, "ab") as stream:
        stream.write(damage)
    finished = make_writer(tmp_path).files.repair_leftovers()
    assert finished == [open_path.with_name(open_path.name.removesuffix(".open"))]
    assert finished[0].read_bytes() == whole
    assert assert_valid_warc(finished[0]) == 1 + 2 * 5
    check = subprocess.run(
        [BIN / "warcio", "check", finished[0]], capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_open_leftover_without_a_whole_record_is_removed(tmp_path: Path) -> None:
    path = tmp_path / "test-20260101000000000-00000-00000000.warc.gz.open"
    path.write_bytes(b"\x1f\x8b\x08\x00partial")
    assert repair(path) is None
    assert not path.exists()


def test_repair_leaves_other_prefixes_alone(tmp_path: Path) -> None:
    other = tmp_path / "other-20260101000000000-00000-00000000.warc.gz.open"
    other.write_bytes(b"not ours")
    longer = tmp_path / "test-x-20260101000000000-00000-00000000.warc.gz.open"  # "test-x"'s
    longer.write_bytes(b"not ours either")
    assert make_writer(tmp_path).files.repair_leftovers() == []
    assert other.read_bytes() == b"not ours"
    assert longer.read_bytes() == b"not ours either"


def read_line(process: subprocess.Popen, timeout: float) -> bytes:
    """The next line of ``process``'s stdout, failing after ``timeout`` seconds."""
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    assert ready, f"no output within {timeout} s"
    return process.stdout.readline()


def python_env() -> dict[str, str]:
    """The environment for a Python subprocess that imports the tests' helpers."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), os.environ["PYTHONPATH"]])}


LIVE_WRITER_SCRIPT = """
import sys
from warc_samples import make_exchange, make_writer
writer = make_writer(sys.argv[1])
for n in range(3):
    writer.write_exchange(make_exchange(b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok"))
print("written", flush=True)
sys.stdin.read()  # the file stays open (and locked) until the process is killed
"""


@pytest.mark.timeout(120)
def test_repair_leaves_alone_a_file_another_process_is_writing(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="crawler.warc.files")
    process = subprocess.Popen(
        [sys.executable, "-c", LIVE_WRITER_SCRIPT, str(tmp_path)],
        env=python_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=TESTS_DIR.parent,
    )
    try:
        assert read_line(process, 60) == b"written\n"
        (open_path,) = tmp_path.iterdir()
        whole = open_path.read_bytes()
        member = gzip.compress(b"WARC/1.1\r\n" + os.urandom(4000) + b"\r\n\r\n")
        with open(open_path, "ab") as stream:  # as if that process were writing a record now
            stream.write(member[: len(member) // 2])
        in_progress = open_path.read_bytes()
        assert make_writer(tmp_path).files.repair_leftovers() == []
        assert list(tmp_path.iterdir()) == [open_path]
        assert open_path.read_bytes() == in_progress
        assert f"not repairing {open_path}: another process is writing it" in caplog.text
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        process.stdin.close()
        process.stdout.close()
    assert process.returncode == -signal.SIGKILL
    (finished,) = make_writer(tmp_path).files.repair_leftovers()
    assert finished == open_path.with_name(open_path.name.removesuffix(".open"))
    assert list(tmp_path.iterdir()) == [finished]
    assert finished.read_bytes() == whole
    assert assert_valid_warc(finished) == 1 + 2 * 3


WRITER_SCRIPT = """
import os, sys
from warc_samples import make_exchange, make_writer
writer = make_writer(sys.argv[1], max_size=200000)
n = 0
while True:
    # mostly small; every 7th 1.5 MB, written in several os.write calls (a kill can cut it)
    body = os.urandom(1_500_000 if n % 7 == 6 else 200 + (n * 7919) % 9000)
    raw = b"HTTP/1.1 200 OK\\r\\nContent-Length: %d\\r\\n\\r\\n" % len(body) + body
    writer.write_exchange(make_exchange(raw, path="/p%d" % n))
    n += 1
    if n == 5:
        print("writing", flush=True)
"""


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_sigkill_at_random_points_leaves_only_valid_files(tmp_path: Path) -> None:
    rng = random.Random(20261125)
    env = python_env()
    leftovers_seen = 0
    for trial in range(24):
        directory = tmp_path / f"t{trial}"
        process = subprocess.Popen(
            [sys.executable, "-c", WRITER_SCRIPT, str(directory)],
            env=env,
            stdout=subprocess.PIPE,
            cwd=TESTS_DIR.parent,
        )
        try:
            assert process.stdout.readline() == b"writing\n"
            time.sleep(rng.uniform(0.0, 0.3))
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
            process.stdout.close()
        finished_before = {p: p.read_bytes() for p in warc_files(directory)}
        leftovers = list(directory.glob("*.open"))
        assert len(leftovers) <= 1
        leftovers_seen += len(leftovers)
        make_writer(directory).files.repair_leftovers()
        for path, content in finished_before.items():
            assert path.read_bytes() == content, "a finished file changed"
        for path in warc_files(directory):
            assert assert_valid_warc(path) >= 1
        assert not list(directory.glob("*.open"))
    assert leftovers_seen >= 12  # most kills land while a file is open


def _fill_disk(writer) -> int:
    """Write exchanges until the disk is full; return how many were written."""
    written = 0
    with pytest.raises(WarcWriteError) as failure:
        for _ in range(10_000):
            write_some(writer, 1, body_size=20_000)
            written += 1
    assert failure.value.errno == errno.ENOSPC
    assert ".warc.gz.open" in str(failure.value)
    return written


@pytest.fixture
def small_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A 256 KiB tmpfs; where mounting is not permitted, ENOSPC is simulated instead by
    making ``os.write`` in crawler.warc.files fail once 256 KiB have been written."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    mounted = (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=256k,mode=0755", "tmpfs", str(mount_point)],
            capture_output=True,
            timeout=30,
        ).returncode
        == 0
    )
    if not mounted:
        budget = [256 * 1024]
        real_write = os.write

        def limited_write(fd: int, data) -> int:
            if budget[0] <= 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            written = real_write(fd, bytes(data)[: budget[0]])
            budget[0] -= written
            return written

        monkeypatch.setattr(files_module.os, "write", limited_write)
    try:
        yield mount_point
    finally:
        if mounted:
            subprocess.run(["umount", str(mount_point)], check=True, timeout=30)


def test_disk_full_keeps_finished_files_and_leaves_a_repairable_open_file(small_disk: Path):
    first = make_writer(small_disk)
    write_some(first, 3)
    first.close()
    (finished,) = warc_files(small_disk)
    finished_hash = hashlib.sha256(finished.read_bytes()).hexdigest()

    writer = make_writer(small_disk)
    written = _fill_disk(writer)
    assert written >= 1
    open_path = writer.files.current.open_path
    with pytest.raises(WarcWriteError, match="takes no more"):
        write_some(writer, 1, body_size=10)
    writer.close()  # a failed file stays .open
    assert open_path.exists()
    assert hashlib.sha256(finished.read_bytes()).hexdigest() == finished_hash

    (repaired,) = make_writer(small_disk).files.repair_leftovers()
    assert assert_valid_warc(repaired) == 1 + 2 * written


def test_unusable_directory_is_a_write_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    writer = make_writer(blocker / "warcs")
    with pytest.raises(WarcWriteError, match="cannot create"):
        write_some(writer, 1)
