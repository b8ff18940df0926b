"""Where article records go: JSON Lines, one Markdown file per article, newest-capture filter.

Every sink writes as records arrive (a line, or a file, at a time, flushed), so output
already written survives a crash or an interrupt.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import IO, Protocol


class Sink(Protocol):
    def write(self, record: dict) -> None: ...

    def close(self) -> None: ...


def _open_private(path: str | os.PathLike, file_mode: int) -> IO[str]:
    """*path* truncated and opened for writing text, with permissions *file_mode* whatever
    the umask (or the mode of the file it replaces)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, file_mode)
    os.fchmod(fd, file_mode)
    return open(fd, "w", encoding="utf-8")


class JsonLinesSink:
    """One JSON object per line in *path* (permissions *file_mode*), flushed after each
    record."""

    def __init__(self, path: str | os.PathLike, file_mode: int = 0o640):
        self._file = _open_private(path, file_mode)

    def write(self, record: dict) -> None:
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class MarkdownSink:
    """One readable Markdown file per article in *directory* (created when missing, with
    permissions *dir_mode*; files with *file_mode*).

    Files are named ``<date>-<slug>-<capture time>.md``, so captures of one article sort
    together and never overwrite each other.
    """

    def __init__(self, directory: str | os.PathLike, file_mode: int = 0o640, dir_mode: int = 0o750):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True, mode=dir_mode)
        self.file_mode = file_mode

    def write(self, record: dict) -> None:
        path = self.directory / markdown_filename(record)
        temporary = path.with_suffix(".md.tmp")
        with _open_private(temporary, self.file_mode) as out:
            out.write(render_markdown(record))
        temporary.replace(path)

    def close(self) -> None:
        pass


def markdown_filename(record: dict) -> str:
    """``2016-12-10-aleppo-syria-evacuation-20260101T000000Z.md`` for a record."""
    path = record["url"].split("?", 1)[0].rstrip("/")
    slug = re.sub(r"\.html?$", "", path.rsplit("/", 1)[-1])
    slug = re.sub(r"[^A-Za-z0-9]+", "-", slug).strip("-")[:80] or "article"
    date = re.sub(r"[^0-9-]", "", (record.get("published") or "")[:10]) or "undated"
    captured = re.sub(r"[^0-9TZ]", "", record.get("capture_time") or "") or "unknown"
    return f"{date}-{slug}-{captured}.md"


def render_markdown(record: dict) -> str:
    """The article as Markdown: headline, byline, date, lead image, text, then provenance.

    A live blog's text is its posts, each under its own ``###`` headline with its byline,
    time and link, instead of the flattened ``paragraphs``."""
    lines = [f"# {_md(record['title'] or record['url'])}", ""]
    if record.get("description"):
        lines += [f"*{_md(record['description'])}*", ""]
    byline = ", ".join(record.get("authors") or [])
    facts = [f"By {byline}" if byline else "", record.get("published") or ""]
    if any(facts):
        lines += [" · ".join(f for f in facts if f), ""]
    for image in (record.get("images") or [])[:1]:
        caption = " ".join(x for x in (image.get("caption"), image.get("credit")) if x)
        lines += [f"![{_md(caption)}]({image['url']})", ""]
    if record.get("posts"):
        lines += _render_posts(record["posts"])
    else:
        for paragraph in record.get("paragraphs") or []:
            lines += [_md(paragraph), ""]
    lines += [
        "---",
        "",
        f"- URL: <{record['url']}>",
        f"- Captured: {record.get('capture_time')} from <{record.get('capture_url')}>",
        f"- WARC: {record.get('warc_filename')} @ {record.get('warc_offset')}"
        f" ({record.get('warc_record_id')})",
        "",
    ]
    return "\n".join(lines)


def _render_posts(posts: list[dict]) -> list[str]:
    """Markdown lines for live-blog posts: ``### headline``, an italic line of byline, time
    (and update time) and link, then the paragraphs; posts without a headline are set off by
    a ``* * *`` break."""
    lines: list[str] = []
    for number, post in enumerate(posts):
        if post.get("headline"):
            lines += [f"### {_md(post['headline'])}", ""]
        elif number:
            lines += ["* * *", ""]
        byline = ", ".join(post.get("authors") or [])
        facts = [f"By {_md(byline)}" if byline else "", post.get("published") or ""]
        if post.get("modified") and post.get("modified") != post.get("published"):
            facts.append(f"updated {post['modified']}")
        if post.get("url"):
            facts.append(f"<{post['url']}>")
        facts = [f for f in facts if f]
        if facts:
            lines += [f"*{' · '.join(facts)}*", ""]
        for paragraph in post.get("paragraphs") or []:
            lines += [_md(paragraph), ""]
    return lines


def _md(text: str) -> str:
    """Escape what Markdown would read as markup at the start of a line or inline."""
    text = re.sub(r"([\\`*_\[\]<>])", r"\\\1", text)
    return re.sub(r"^(#|\d+\.|[-+] )", r"\\\1", text)


class LatestOnlySink:
    """Keeps only the newest capture (by ``capture_time``) of each article ``url``.

    Records are spooled to a temporary file as they arrive; :meth:`close` passes the chosen
    ones, in arrival order, to *inner*. Memory holds one small entry per distinct URL.
    """

    def __init__(self, inner: Sink, spool_dir: str | os.PathLike | None = None):
        self.inner = inner
        self._spool = tempfile.TemporaryFile("w+", encoding="utf-8", dir=spool_dir)  # noqa: SIM115
        self._newest: dict[str, tuple[str, int, int]] = {}  # url -> (time, order, offset)
        self._count = 0

    def write(self, record: dict) -> None:
        offset = self._spool.tell()
        self._spool.write(json.dumps(record, ensure_ascii=False) + "\n")
        key = (record.get("capture_time") or "", self._count, offset)
        self._count += 1
        if record["url"] not in self._newest or key[0] >= self._newest[record["url"]][0]:
            self._newest[record["url"]] = key

    def close(self) -> None:
        self._spool.flush()
        for _time, _order, offset in sorted(self._newest.values(), key=lambda k: k[1]):
            self._spool.seek(offset)
            self.inner.write(json.loads(self._spool.readline()))
        self._spool.close()
        self.inner.close()
