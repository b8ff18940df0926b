"""Fallback for pages the NYT parser does not recognise: trafilatura's extraction."""

from __future__ import annotations

import trafilatura
from lxml import html

from crawler.extract.metadata import clean_text, iso_datetime
from crawler.extract.page import NotAnArticle, Page
from crawler.extract.record import Article, Image


def parse(page: Page) -> Article:
    """The main text and metadata trafilatura finds, marked ``extractor: generic``.

    :raises NotAnArticle: ``not-article`` when trafilatura finds no main text.
    """
    source = html.tostring(page.doc, encoding="unicode")
    result = trafilatura.bare_extraction(
        source,
        url=page.url,
        with_metadata=True,
        include_comments=False,
        include_tables=False,
    )
    paragraphs = [clean_text(line) for line in (result.text or "").split("\n")] if result else []
    paragraphs = [p for p in paragraphs if p]
    title = clean_text(result.title) if result else ""
    if paragraphs and paragraphs[0] == title:  # the headline is the title, not body text
        paragraphs = paragraphs[1:]
    if not paragraphs:
        raise NotAnArticle("not-article")
    image = page.clearnet_url(result.image)
    return Article(
        url=page.url,
        capture_url=page.capture_url,
        title=title,
        authors=[a for a in (clean_text(n) for n in (result.author or "").split(";")) if a],
        published=iso_datetime(result.date),
        modified=None,
        section=None,
        description=clean_text(result.description) or None,
        paragraphs=paragraphs,
        images=[Image(url=image)] if image else [],
        links=[],
        language=page.language or result.language,
        extractor="generic",
    )
