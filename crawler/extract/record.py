"""The Article record: the public output of ``scrapy extract`` (docs/interfaces.md)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Image:
    url: str
    caption: str | None = None
    credit: str | None = None


@dataclass
class Link:
    url: str
    text: str


@dataclass
class Provenance:
    """Where a record came from: enough to seek to the response record and re-extract it."""

    warc_filename: str
    warc_offset: int
    warc_record_id: str
    payload_digest: str | None
    capture_time: str


@dataclass
class Article:
    """One article capture. Field names and types are a public interface: keep them."""

    url: str
    capture_url: str
    title: str
    authors: list[str] = field(default_factory=list)
    published: str | None = None
    modified: str | None = None
    section: str | None = None
    description: str | None = None
    paragraphs: list[str] = field(default_factory=list)
    images: list[Image] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    language: str | None = None
    extractor: str = "nyt"
    provenance: Provenance | None = None

    @property
    def text(self) -> str:
        return "\n\n".join(self.paragraphs)

    def to_dict(self) -> dict:
        """The JSON Lines object, fields in the documented order."""
        data = asdict(self)
        provenance = data.pop("provenance") or {}
        extractor = data.pop("extractor")
        data["text"] = self.text
        # keep the documented order: ..., text after paragraphs
        ordered = {key: data[key] for key in _FIELD_ORDER}
        ordered.update(provenance)
        ordered["extractor"] = extractor
        return ordered


_FIELD_ORDER = (
    "url",
    "capture_url",
    "title",
    "authors",
    "published",
    "modified",
    "section",
    "description",
    "paragraphs",
    "text",
    "images",
    "links",
    "language",
)
