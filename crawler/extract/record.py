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
class Post:
    """One post of a live blog, as the page lists it."""

    headline: str | None = None
    published: str | None = None
    modified: str | None = None
    authors: list[str] = field(default_factory=list)
    url: str | None = None
    paragraphs: list[str] = field(default_factory=list)


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
    # Live blogs only: the posts in page order. ``paragraphs`` still holds them flattened
    # (each post's headline, then its paragraphs), so readers of ``text`` see every post.
    posts: list[Post] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n\n".join(self.paragraphs)

    def to_dict(self) -> dict:
        """The JSON Lines object, fields in the documented order (provenance before
        ``extractor``); ``posts``, an addition, comes after ``language``."""
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
            "posts": [asdict(post) for post in self.posts],
        }
        if self.provenance is not None:
            record.update(asdict(self.provenance))
        record["extractor"] = self.extractor
        return record
