"""The mirror's content: articles generated on the fly from ``(seed, index)``, plus ground truth.

Article *i* is published in hour slot *i* after :data:`BASE` (one article an hour, a minute
offset drawn from its seed), so its date, and therefore which sitemap and which day it falls
in, follows from its index alone. Nothing is kept per article: a path is resolved back to an
index by generating the 24 candidates of the path's day.

Editions model later days for incremental crawls: edition *k* (1, 2, ...) adds
``new_articles`` articles after the existing ones and revises ``updated_articles`` existing
ones (new body, ``dateModified``, ETag, Last-Modified). Everything an edition does not touch
renders byte for byte as in edition 0.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cached_property

from crawler.tor.onion import OnionMap

from . import words

TZ = timezone(timedelta(hours=-5))
BASE = datetime(2015, 1, 1, tzinfo=TZ)
SLOT = timedelta(hours=1)
SLOTS_PER_DAY = 24
STYLES = ("story-body", "react", "nytapp")
SITE_DOMAIN = "nytimes.com"
STATIC_DOMAIN = "nyt.com"


@dataclass(frozen=True)
class Section:
    path: str  # "world/middleeast"
    name: str  # "Middle East"
    rss: str  # "MiddleEast": /services/xml/rss/nyt/MiddleEast.xml


SECTIONS = (
    Section("world", "World", "World"),
    Section("world/middleeast", "Middle East", "MiddleEast"),
    Section("world/europe", "Europe", "Europe"),
    Section("world/asia", "Asia Pacific", "AsiaPacific"),
    Section("world/africa", "Africa", "Africa"),
    Section("us", "U.S.", "US"),
    Section("us/politics", "Politics", "Politics"),
    Section("nyregion", "New York", "NYRegion"),
    Section("business", "Business", "Business"),
    Section("business/dealbook", "DealBook", "Dealbook"),
    Section("technology", "Technology", "Technology"),
    Section("science", "Science", "Science"),
    Section("health", "Health", "Health"),
    Section("sports", "Sports", "Sports"),
    Section("arts", "Arts", "Arts"),
    Section("opinion", "Opinion", "Opinion"),
)
SECTIONS_BY_PATH = {s.path: s for s in SECTIONS}
SECTIONS_BY_RSS = {s.rss: s for s in SECTIONS}

_ARTICLE_PATH = re.compile(r"^/(\d{4})/(\d{2})/(\d{2})/([a-z/]+)/([a-z0-9-]+)\.html$")
_IMAGE_PATH = re.compile(
    r"^/images/(\d{4})/(\d{2})/(\d{2})/([a-z/]+)/([a-z0-9-]+)/[a-z0-9-]+-articleLarge\.jpg$"
)


@dataclass(frozen=True)
class Link:
    """A link inside the article body: clearnet URL and anchor text (the ground truth)."""

    url: str
    text: str
    clearnet_in_page: bool = False
    """The page keeps this link in clearnet form (as EOTK mirrors sometimes do)."""


@dataclass(frozen=True)
class Article:
    """Ground truth of one article, in the shape of the extractor's article record."""

    index: int
    url: str
    """Canonical clearnet URL (``https://www.nytimes.com/2016/...html``)."""
    onion_path: str
    """Path on the onion host (the same path as on clearnet)."""
    title: str
    authors: tuple[str, ...]
    published: str
    """ISO 8601 with offset."""
    modified: str
    section: str
    """Display name, e.g. ``Middle East``."""
    section_path: str
    description: str
    body: tuple[tuple[str | Link, ...], ...]
    """Paragraphs as runs of text and links (rendering input)."""
    image_url: str
    """Lead image, clearnet URL."""
    image_caption: str
    image_credit: str
    style: str
    """Markup style: ``story-body`` (2014-2017), ``react`` (2019+), ``nytapp`` (2021+)."""
    revision: int
    """0, or the edition that last revised this article."""
    author_bio: str
    language: str = "en"

    @property
    def paragraphs(self) -> list[str]:
        return ["".join(run if isinstance(run, str) else run.text for run in p) for p in self.body]

    @property
    def text(self) -> str:
        return "\n\n".join(self.paragraphs)

    @property
    def links(self) -> list[Link]:
        return [run for p in self.body for run in p if isinstance(run, Link)]

    @property
    def published_datetime(self) -> datetime:
        return datetime.fromisoformat(self.published)

    @property
    def modified_datetime(self) -> datetime:
        return datetime.fromisoformat(self.modified)

    def record(self) -> dict:
        """The content fields an extractor should produce for this article."""
        return {
            "url": self.url,
            "title": self.title,
            "authors": list(self.authors),
            "published": self.published,
            "modified": self.modified,
            "section": self.section,
            "description": self.description,
            "paragraphs": self.paragraphs,
            "text": self.text,
            "images": [
                {"url": self.image_url, "caption": self.image_caption, "credit": self.image_credit}
            ],
            "links": [{"url": link.url, "text": link.text} for link in self.links],
            "language": self.language,
        }


def _rng(seed: int, *parts: object) -> random.Random:
    # str seeds are hashed with SHA-512: the same in every process, unlike hash().
    return random.Random(":".join(map(str, (seed, *parts))))


def _slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower().replace("'", "")).strip("-")


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


class MirrorSite:
    """A deterministic NYT-style site of *articles* articles (plus edition changes).

    :param articles: articles in edition 0 (1 to 1,000,000).
    :param onion_map: ``{"nytimes.com": onion A, "nyt.com": onion B}``; default
        ``MIRROR_ONION_MAP`` of ``tests/onions.py``.
    :param seed: changes every generated text, date minute and markup style choice.
    :param edition: 0, or a later "day": see the module docstring.
    :param new_articles: articles each edition >= 1 adds.
    :param updated_articles: existing articles each edition >= 1 revises.
    :raises ValueError: for counts out of range or an onion map without both domains.
    """

    def __init__(
        self,
        articles: int = 1000,
        onion_map: Mapping[str, str] | None = None,
        seed: int = 0,
        edition: int = 0,
        new_articles: int = 0,
        updated_articles: int = 0,
    ):
        if not 1 <= articles <= 1_000_000:
            raise ValueError(f"articles must be 1 to 1,000,000, got {articles}")
        if edition < 0 or new_articles < 0 or updated_articles < 0:
            raise ValueError("edition, new_articles and updated_articles must be >= 0")
        if onion_map is None:
            from onions import MIRROR_ONION_MAP

            onion_map = MIRROR_ONION_MAP
        self.onions = OnionMap(onion_map)
        missing = {SITE_DOMAIN, STATIC_DOMAIN} - set(self.onions.as_dict())
        if missing:
            raise ValueError(f"onion_map needs entries for {sorted(missing)}")
        self.base_articles = articles
        self.seed = seed
        self.edition = edition
        self.new_articles = new_articles
        self.updated_articles = updated_articles
        self.site_onion = self.onions.to_onion_host(SITE_DOMAIN)
        self.static_onion = self.onions.to_onion_host(STATIC_DOMAIN)
        self.www_host = "www." + self.site_onion
        self.static_host = "static01." + self.static_onion

    # --- size and time ----------------------------------------------------------------------

    @property
    def total_articles(self) -> int:
        """Articles in this edition."""
        return self.base_articles + self.edition * self.new_articles

    def _existing_before(self, edition: int) -> int:
        return self.base_articles + (edition - 1) * self.new_articles

    @cached_property
    def _updates(self) -> tuple[frozenset[int], ...]:
        """The indices each edition 1..edition revises (small sets, never one entry per article)."""
        picks = []
        for k in range(1, self.edition + 1):
            population = self._existing_before(k)
            count = min(self.updated_articles, population)
            picks.append(frozenset(_rng(self.seed, "update", k).sample(range(population), count)))
        return tuple(picks)

    def revision(self, index: int) -> int:
        """The latest edition that revised article *index*, 0 if none did."""
        for k in range(self.edition, 0, -1):
            if index in self._updates[k - 1]:
                return k
        return 0

    def updated_indices(self, edition: int | None = None) -> frozenset[int]:
        """Indices revised by *edition* (default: this one); empty for edition 0."""
        edition = self.edition if edition is None else edition
        return self._updates[edition - 1] if 1 <= edition <= self.edition else frozenset()

    def edition_time(self, edition: int | None = None) -> datetime:
        """The moment an edition was published: the slot after its last article."""
        edition = self.edition if edition is None else edition
        return BASE + SLOT * (self.base_articles + edition * self.new_articles)

    def published(self, index: int) -> datetime:
        """Publication time of article *index*: in the first half hour of its slot."""
        minute = _rng(self.seed, index, "minute").randrange(30)
        return BASE + SLOT * index + timedelta(minutes=minute)

    def modified(self, index: int) -> str:
        """dateModified of article *index*: its last revision, or within its own slot.

        So edition *k*'s time (:meth:`edition_time`) is after every change it contains and
        before every article a later edition adds.
        """
        revision = self.revision(index)
        if revision:
            return _iso(self.edition_time(revision))
        delay = _rng(self.seed, index, "modified").choice((0, 0, 4, 12, 21, 29))
        return _iso(self.published(index) + timedelta(minutes=delay))

    def indices_between(self, start: datetime, end: datetime) -> range:
        """Indices of the articles published in ``[start, end)`` (slot granularity)."""
        first = max(0, -((BASE - start) // SLOT))
        last = max(0, -((BASE - end) // SLOT))
        return range(min(first, self.total_articles), min(last, self.total_articles))

    # --- articles ---------------------------------------------------------------------------

    def section_of(self, index: int) -> Section:
        return _rng(self.seed, index, "section").choice(SECTIONS)

    def place(self, index: int) -> str:
        """The article's place: a different one for each hour slot of a day (unique slugs)."""
        return words.PLACES[(index % SLOTS_PER_DAY * 7 + self.seed) % len(words.PLACES)]

    def headline(self, index: int) -> str:
        rng = _rng(self.seed, index, "headline")
        subject, verb, thing = (
            rng.choice(pool) for pool in (words.SUBJECTS, words.VERBS, words.OBJECTS)
        )
        return f"In {self.place(index)}, {subject} {verb} {thing}"

    def article_path(self, index: int) -> str:
        self._check_index(index)
        day = self.published(index)
        slug = _slugify(self.headline(index))
        return f"/{day:%Y/%m/%d}/{self.section_of(index).path}/{slug}.html"

    def article_paths(self) -> Iterator[str]:
        """Every article path of this edition, oldest first."""
        return (self.article_path(i) for i in range(self.total_articles))

    def all_article_urls(self, clearnet: bool = True, scheme: str = "https") -> list[str]:
        """Every article URL, clearnet (``https://www.nytimes.com/...``) or onion form."""
        host = f"www.{SITE_DOMAIN}" if clearnet else self.www_host
        return [f"{scheme}://{host}{path}" for path in self.article_paths()]

    def clearnet_url(self, path: str) -> str:
        return f"https://www.{SITE_DOMAIN}{path}"

    def onion_url(self, path: str, scheme: str = "https") -> str:
        return f"{scheme}://{self.www_host}{path}"

    def image_path(self, index: int) -> str:
        day = self.published(index)
        section = self.section_of(index).path
        stem = f"{day:%d}" + _slugify(self.headline(index)).split("-")[1]
        slug = _slugify(self.headline(index))
        return f"/images/{day:%Y/%m/%d}/{section}/{slug}/{stem}-articleLarge.jpg"

    def article(self, index: int) -> Article:
        """Ground truth of article *index* as this edition renders it.

        :raises IndexError: when *index* is not an article of this edition.
        """
        self._check_index(index)
        rng = _rng(self.seed, index, "article")
        section = self.section_of(index)
        path = self.article_path(index)
        place = self.place(index)
        authors = tuple(
            f"{rng.choice(words.FIRST_NAMES)} {rng.choice(words.LAST_NAMES)}"
            for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4)))
        )
        authors = tuple(dict.fromkeys(authors))  # a name twice in one byline reads as a bug
        published = self.published(index)
        revision = self.revision(index)
        fill = {
            "place": place,
            "org": rng.choice(words.ORGS),
            "role": rng.choice(words.OFFICIAL_ROLES),
            "person": authors[0].split()[0] + " " + rng.choice(words.LAST_NAMES),
            "day": words.WEEKDAYS[published.weekday()],
            "topic": rng.choice(words.TOPICS),
        }

        def sentences(r: random.Random, count: int) -> str:
            chosen = r.sample(words.SENTENCES, count)
            return " ".join(s.format(number=r.randrange(2, 90), **fill) for s in chosen)

        description = sentences(rng, 1)
        caption = rng.choice(words.CAPTIONS).format(place=place)
        credit = rng.choice(words.PHOTOGRAPHERS) + " for The New York Times"
        bio = f"{authors[0]} " + rng.choice(words.BIO_ROLES).format(place=place) + "."
        paragraphs = [sentences(rng, rng.randrange(2, 5)) for _ in range(rng.randrange(5, 13))]
        if revision:
            revised = _rng(self.seed, index, "revision", revision)
            paragraphs[0] = sentences(revised, 3)
            paragraphs.append(
                f"This article was updated in edition {revision} with new details from {place}."
            )
        if section.path != "opinion":
            paragraphs[0] = f"{place.upper()} \u2014 {paragraphs[0]}"  # the dateline
        body = [self._with_link(rng, index, n, text) for n, text in enumerate(paragraphs)]
        image_path = self.image_path(index)
        return Article(
            index=index,
            url=self.clearnet_url(path),
            onion_path=path,
            title=self.headline(index),
            authors=authors,
            published=_iso(published),
            modified=self.modified(index),
            section=section.name,
            section_path=section.path,
            description=description,
            body=tuple(body),
            image_url=f"https://static01.{STATIC_DOMAIN}{image_path}",
            image_caption=caption,
            image_credit=credit,
            style=STYLES[_rng(self.seed, index, "style").randrange(len(STYLES))],
            revision=revision,
            author_bio=bio,
        )

    def _with_link(
        self, rng: random.Random, index: int, n: int, text: str
    ) -> tuple[str | Link, ...]:
        """Put a link on a few words of some paragraphs: an earlier article or an off-site page."""
        if n % 3 != 1:
            return (text,)
        tokens = text.split(" ")
        start = rng.randrange(0, max(1, len(tokens) - 4))
        length = rng.randrange(2, 5)
        before = " ".join(tokens[:start])
        anchor = " ".join(tokens[start : start + length]).rstrip(".,;:\u201d")
        after = " ".join(tokens[start : start + length])[len(anchor) :]
        after += "".join(" " + t for t in tokens[start + length :])
        if index > 0 and rng.random() < 0.75:
            target = rng.randrange(max(0, index - 200), index)
            link = Link(self.clearnet_url(self.article_path(target)), anchor, rng.random() < 0.2)
        else:
            url = rng.choice(words.EXTERNAL_LINKS)
            slug = _slugify(self.headline(index))[:40].rstrip("-")
            link = Link(url.format(handle=slug.split("-")[1], slug=slug), anchor)
        return tuple(run for run in (before + " " if before else "", link, after) if run)

    def _check_index(self, index: int) -> None:
        if not 0 <= index < self.total_articles:
            raise IndexError(f"no article {index}: this edition has {self.total_articles}")

    def resolve_article(self, path: str) -> int | None:
        """Index of the article at *path* (or whose lead image is at *path*), else None."""
        match = _ARTICLE_PATH.match(path) or _IMAGE_PATH.match(path)
        if not match:
            return None
        year, month, day, section, slug = match.groups()
        try:
            start = datetime(int(year), int(month), int(day), tzinfo=TZ)
        except ValueError:
            return None
        for index in self.indices_between(start, start + timedelta(days=1)):
            if self.section_of(index).path == section and _slugify(self.headline(index)) == slug:
                return index
        return None

    def latest(self, count: int, section_prefix: str = "") -> list[int]:
        """The *count* newest article indices, optionally of a section and its subsections."""
        found = []
        index = self.total_articles - 1
        budget = count * len(SECTIONS) * 8  # bounded scan, even for a rarely drawn section
        while index >= 0 and len(found) < count and budget > 0:
            path = self.section_of(index).path
            if (
                not section_prefix
                or path == section_prefix
                or path.startswith(section_prefix + "/")
            ):
                found.append(index)
            index -= 1
            budget -= 1
        return found

    def months(self) -> list[datetime]:
        """First day of each month that has articles, oldest first."""
        last = self.published(self.total_articles - 1)
        month = BASE.replace(day=1)
        months = []
        while month <= last:
            months.append(month)
            month = (month + timedelta(days=32)).replace(day=1)
        return months
