"""Page metadata: JSON-LD objects, ``<meta>`` tags and date normalisation.

Readers here never raise on malformed input: a JSON-LD block that does not parse is
ignored, a date that does not parse gives ``None``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from lxml import html

NEW_YORK = ZoneInfo("America/New_York")
_CDATA = re.compile(r"^\s*(?://)?\s*<!\[CDATA\[|(?://)?\s*\]\]>\s*$")


def json_ld_objects(doc: html.HtmlElement) -> list[dict]:
    """Every JSON-LD object of *doc*, top-level lists and ``@graph`` flattened, in page order."""
    objects: list[dict] = []
    for script in doc.iterfind(".//script[@type='application/ld+json']"):
        source = _CDATA.sub("", script.text or "")
        try:
            data = json.loads(source)
        except ValueError:
            continue
        objects.extend(_flatten(data))
    return objects


def _flatten(data: object) -> Iterator[dict]:
    if isinstance(data, list):
        for item in data:
            yield from _flatten(item)
    elif isinstance(data, dict):
        yield data
        if "@graph" in data:
            yield from _flatten(data["@graph"])


def ld_types(obj: dict) -> set[str]:
    """The ``@type`` values of a JSON-LD object as a set."""
    kind = obj.get("@type")
    if isinstance(kind, str):
        return {kind}
    return {k for k in kind if isinstance(k, str)} if isinstance(kind, list) else set()


def meta_tags(doc: html.HtmlElement) -> dict[str, str]:
    """``<meta>`` contents keyed by ``name``, ``property`` or ``itemprop`` (first one wins)."""
    tags: dict[str, str] = {}
    for meta in doc.iterfind(".//meta"):
        key = meta.get("name") or meta.get("property") or meta.get("itemprop")
        content = meta.get("content")
        if key and content is not None and key not in tags:
            tags[key] = content.strip()
    return tags


def iso_datetime(value: object) -> str | None:
    """ISO 8601 with offset for an ISO string or an NYT compact stamp; None when unparseable.

    ISO strings without an offset are taken as UTC; NYT's compact ``YYYYMMDD[hhmmss]``
    stamps (meta ``pdate``/``ptime``) are New York local time, as the site writes them.
    """
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if re.fullmatch(r"\d{8}(\d{6})?", text):
        fmt = "%Y%m%d%H%M%S" if len(text) == 14 else "%Y%m%d"
        try:
            stamp = datetime.strptime(text, fmt).replace(tzinfo=NEW_YORK)
        except ValueError:
            return None
        return stamp.isoformat()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.replace(microsecond=0).isoformat()


def clean_text(text: str | None) -> str:
    """*text* with runs of whitespace (incl. non-breaking spaces) collapsed to one space."""
    return " ".join((text or "").split())
