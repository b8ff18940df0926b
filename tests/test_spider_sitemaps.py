"""The streaming sitemap/feed parser (crawler/spiders/sitemaps.py), good and bad input."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime

import pytest

from crawler.spiders.sitemaps import Entry, ListingError, ListingTooLarge, iter_entries, parse_date

NS = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'
NEWS = 'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9"'
UTC = UTC


def urlset(count: int, start: int = 0) -> bytes:
    urls = "".join(
        f"<url><loc>https://www.nytimes.com/2016/12/10/world/a{i}.html</loc>"
        f"<lastmod>2016-12-10T10:{i % 60:02}:00Z</lastmod></url>"
        for i in range(start, start + count)
    )
    return f'<?xml version="1.0" encoding="UTF-8"?><urlset {NS}>{urls}</urlset>'.encode()


def test_sitemap_index_gives_child_sitemaps_with_lastmod() -> None:
    body = (
        f'<?xml version="1.0"?><sitemapindex {NS}>'
        "<sitemap><loc>https://www.nytimes.com/sitemaps/2016-12.xml.gz</loc>"
        "<lastmod>2016-12-31</lastmod></sitemap>"
        "<sitemap><loc> https://www.nytimes.com/sitemaps/2017-01.xml.gz </loc></sitemap>"
        "</sitemapindex>"
    ).encode()
    assert list(iter_entries(body, 0)) == [
        Entry(
            "https://www.nytimes.com/sitemaps/2016-12.xml.gz",
            is_sitemap=True,
            lastmod=datetime(2016, 12, 31, tzinfo=UTC),
        ),
        Entry("https://www.nytimes.com/sitemaps/2017-01.xml.gz", is_sitemap=True),
    ]


def test_news_sitemap_gives_publication_dates() -> None:
    body = (
        f"<urlset {NS} {NEWS}><url><loc>https://www.nytimes.com/2016/12/10/world/a.html</loc>"
        "<news:news><news:publication><news:name>The New York Times</news:name>"
        "<news:language>en</news:language></news:publication>"
        "<news:publication_date>2016-12-10T09:30:00-05:00</news:publication_date>"
        "<news:title>A</news:title></news:news></url></urlset>"
    ).encode()
    (entry,) = iter_entries(body, 0)
    assert entry.loc.endswith("/a.html") and not entry.is_sitemap
    assert entry.published == datetime(2016, 12, 10, 14, 30, tzinfo=UTC)
    assert entry.lastmod is None


def test_gzipped_sitemap_reads_like_the_plain_one() -> None:
    assert list(iter_entries(gzip.compress(urlset(30)), 0)) == list(iter_entries(urlset(30), 0))
    assert len(list(iter_entries(urlset(30), 0))) == 30


def test_rss_and_atom_feeds() -> None:
    rss = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>World</title>'
        b"<link>https://www.nytimes.com/section/world</link>"
        b"<item><title>A</title><link>https://www.nytimes.com/2016/12/10/world/a.html</link>"
        b"<pubDate>Sat, 10 Dec 2016 09:30:00 -0500</pubDate></item></channel></rss>"
    )
    (item,) = iter_entries(rss, 0)
    assert item.loc == "https://www.nytimes.com/2016/12/10/world/a.html"
    assert item.published == datetime(2016, 12, 10, 14, 30, tzinfo=UTC)
    atom = (
        b'<feed xmlns="http://www.w3.org/2005/Atom"><title>W</title>'
        b'<link rel="self" href="https://www.nytimes.com/feed"/>'
        b'<entry><link rel="alternate" href="https://www.nytimes.com/2016/12/10/world/b.html"/>'
        b"<updated>2016-12-11T00:00:00Z</updated><published>2016-12-10T00:00:00Z</published>"
        b"</entry></feed>"
    )
    (entry,) = iter_entries(atom, 0)
    assert entry.loc.endswith("/b.html")
    assert (entry.lastmod, entry.published) == (
        datetime(2016, 12, 11, tzinfo=UTC),
        datetime(2016, 12, 10, tzinfo=UTC),
    )


def test_html_page_where_xml_was_expected() -> None:
    with pytest.raises(ListingError, match="HTML page"):
        list(iter_entries(b"<!DOCTYPE html><html><head><title>Oops</title></head></html>", 0))
    with pytest.raises(ListingError, match="HTML page"):
        list(iter_entries(b"<html><body><p>unclosed<br></body></html>", 0))


def test_unknown_root_and_non_xml_are_refused() -> None:
    with pytest.raises(ListingError, match="unknown root element <svg>"):
        list(iter_entries(b"<svg/>", 0))
    with pytest.raises(ListingError, match="not XML"):
        list(iter_entries(b'{"json": true}', 0))
    with pytest.raises(ListingError, match="not XML"):
        list(iter_entries(b"", 0))


def test_malformed_sitemap_keeps_the_entries_before_the_damage() -> None:
    body = urlset(10)
    damaged = body[: body.index(b"<url><loc>https://www.nytimes.com/2016/12/10/world/a7")] + (
        b"<url><loc>broken</url"
    )
    entries = []
    with pytest.raises(ListingError, match="malformed XML"):
        for entry in iter_entries(damaged, 0):
            entries.append(entry)
    assert [e.loc[-8:] for e in entries] == [f"/a{i}.html" for i in range(7)]


def test_damaged_gzip_keeps_the_readable_entries() -> None:
    compressed = gzip.compress(urlset(2000))
    entries = []
    with pytest.raises(ListingError):
        for entry in iter_entries(compressed[: len(compressed) // 2], 0):
            entries.append(entry)
    assert 0 < len(entries) < 2000


def test_ten_megabyte_sitemap_is_read_whole_under_the_cap() -> None:
    body = urlset(110_000)
    assert len(body) > 10_000_000
    count = sum(1 for _ in iter_entries(gzip.compress(body), 50_000_000))
    assert count == 110_000


def test_sitemap_over_the_cap_stops_with_too_large() -> None:
    body = urlset(20_000)
    entries = 0
    with pytest.raises(ListingTooLarge, match="1000000 byte cap"):
        for _ in iter_entries(gzip.compress(body), 1_000_000):
            entries += 1
    assert 0 < entries < 20_000


def test_entities_are_not_expanded() -> None:
    body = (
        b'<?xml version="1.0"?><!DOCTYPE urlset [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b"<urlset><url><loc>https://www.nytimes.com/&x;</loc></url></urlset>"
    )
    for entry in iter_entries(body, 0):
        assert "root:" not in entry.loc


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2016-12-10", datetime(2016, 12, 10, tzinfo=UTC)),
        ("2016-12-10T09:30:00Z", datetime(2016, 12, 10, 9, 30, tzinfo=UTC)),
        ("2016-12-10T09:30+01:00", datetime(2016, 12, 10, 8, 30, tzinfo=UTC)),
        ("Sat, 10 Dec 2016 09:30:00 GMT", datetime(2016, 12, 10, 9, 30, tzinfo=UTC)),
        ("2016-12-10T09:30:00", datetime(2016, 12, 10, 9, 30, tzinfo=UTC)),
        ("yesterday", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_date(value: str | None, expected: datetime | None) -> None:
    assert parse_date(value) == expected
