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
        """The JSON Lines object, fields in the documented order (provenance before
        ``extractor``)."""
        record = {
            "url": self.url,
            "capture_url": self.capture_url,
            "title": self.title,
            "authors": list(self.authors),
            "published": self.published,
            "modified": self.modified,
            "section": self.section,
            "description": self.description,
            "paragraphs": list(self.paragraphs),
            "text": self.text,
            "images": [asdict(image) for image in self.images],
            "links": [asdict(link) for link in self.links],
            "language": self.language,
        }
        if self.provenance is not None:
            record.update(asdict(self.provenance))
        record["extractor"] = self.extractor
        return record
