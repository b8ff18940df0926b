"""The New York Times parser: every markup era from the 2010 desktop template to 2021+.

Metadata comes from JSON-LD and ``<meta>`` tags first, the visible markup second; the body
(paragraphs, captions, credits, links) always from the markup. Era markers (see
``../shared/nyt-pages/README.md``):

- legacy pre-2014: ``div.articleBody`` / ``p[itemprop=articleBody]``, meta ``hdl``/``byl``/``pdate``
- blogs (WordPress, 2011): ``.entry-content``
- 2014-2017: ``p.story-body-text``, ``span.byline-author``, ``figure.media``
- 2018 React: ``div.StoryBodyCompanionColumn``
- 2019+ / 2021+ React: ``section[name=articleBody]``, JSON-LD ``NewsArticle``
- live blogs: JSON-LD ``LiveBlogPosting`` (its ``liveBlogUpdate`` posts) or post markup;
  ``posts`` keeps each post, ``paragraphs`` has them flattened
- interactive features: title, authors and dates from metadata; body when recognisable
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from lxml import html

from crawler.extract.metadata import clean_text, iso_datetime, ld_types
from crawler.extract.page import NotAnArticle, Page
from crawler.extract.record import Article, Image, Link, Post

ARTICLE_TYPES = {
    "Article",
    "NewsArticle",
    "ReportageNewsArticle",
    "AnalysisNewsArticle",
    "OpinionNewsArticle",
    "BackgroundNewsArticle",
    "ReviewNewsArticle",
    "BlogPosting",
    "LiveBlogPosting",
    "Report",
}
NON_ARTICLE_TYPES = {"CollectionPage", "WebSite", "SearchResultsPage", "ProfilePage", "ItemList"}
NON_ARTICLE_PAGE_TYPES = {"collection", "homepage", "section", "sectionfront", "search", "topic"}
# Subtrees of a body that are never article text.
CLUTTER_TAGS = {
    "figure",
    "aside",
    "nav",
    "header",
    "footer",
    "form",
    "button",
    "script",
    "style",
    "noscript",
    "svg",
    "iframe",
    "template",
    "figcaption",
}
CLUTTER_CLASSES = {
    "ad",
    "ad-wrapper",
    "story-ad",
    "interactive-body",
    "interactive-content",
    "interactive-graphic",
    "ai2html",
    "bottom-of-article",
    "newsletter-signup",
    "related-links",
    "story-footer",
    "supported-by",
    "story-info",
    "comments",
}
CLUTTER_CLASS_PREFIXES = ("InlineMessage", "ad-", "Ad-", "Newsletter", "RelatedLinks")
STORYLINE_MODULES = "//*[starts-with(@id, 'storyline-')]/.. | //*[contains(@class, 'styln-')]"
CLUTTER_FLAG = "data-extract-clutter"
CLUTTER_TESTIDS = ("ad", "share-tools", "newsletter", "related", "inline-message", "brand-")
BOILERPLATE = {
    "advertisement",
    "continue reading the main story",
    "supported by",
    "site index",
    "site information navigation",
    "skip to content",
    "skip to site index",
}
TITLE_SUFFIX = re.compile(r"\s+[-|\u2013\u2014]\s+(The New York Times|NYTimes\.com)$", re.I)
BYLINE_PREFIX = re.compile(r"^\s*by\s+", re.I)
BYLINE_SPLIT = re.compile(r"\s*(?:,\s*and\s+|\s+and\s+|,\s*|\s*&\s*)", re.I)
CREDIT_PREFIX = re.compile(r"^(\s*credit(\.\.\.|…|:)?\s*)+", re.I)
CREDIT_IN_CAPTION = re.compile(r"\s*Credit(?:\.\.\.|…)\s*")
# Site-wide placeholder images (logos, icons) that are no article's image.
DEFAULT_IMAGE = re.compile(r"/icons/|defaultPromoCrop|/vi-assets/images/share/|t_logo_")
DATED_PATH = re.compile(r"^https?://[^/]+/(\d{4}/\d{2}/\d{2}|interactive)/")
NYT_HOST = re.compile(r"(^|\.)(nytimes\.com|nyt\.com)$")


def is_nyt(page: Page) -> bool:
    """True for pages of the NYT's sites (by their clearnet host)."""
    return bool(NYT_HOST.search(page.host))


def parse(page: Page) -> Article | None:
    """The article of an NYT page; None when its body markup is not one this parser knows.

    :raises NotAnArticle: for NYT pages that are not articles (section fronts, indexes).
    """
    article_ld = _article_ld(page)
    if article_ld is None and _is_listing(page):
        raise NotAnArticle("not-article")
    live = article_ld is not None and "LiveBlogPosting" in ld_types(article_ld)
    interactive = "/interactive/" in page.url
    posts: list[Post] = []
    if live:
        posts, links = _live_posts(page, article_ld)
        paragraphs, body = _flatten_posts(posts), None
    else:
        paragraphs, links, body = _body(page)
    if body is None and not live and not interactive:
        if not _claims_article(page, article_ld):
            raise NotAnArticle("not-article")
        return None
    if not paragraphs and not interactive:
        raise NotAnArticle("empty-article")
    return Article(
        url=_canonical_url(page),
        capture_url=page.capture_url,
        title=_title(page, article_ld),
        authors=_authors(page, article_ld),
        published=_first_date(page, article_ld, "datePublished", PUBLISHED_META),
        modified=_first_date(page, article_ld, "dateModified", MODIFIED_META),
        section=_section(page, article_ld),
        description=_description(page, article_ld),
        paragraphs=paragraphs,
        images=_images(page, body),
        links=links,
        language=page.language or _ld_str(article_ld, "inLanguage"),
        extractor="nyt",
        posts=posts,
    )


# --- metadata ------------------------------------------------------------------------------


def _article_ld(page: Page) -> dict | None:
    for obj in page.json_ld:
        if ld_types(obj) & ARTICLE_TYPES:
            return obj
    return None


def _claims_article(page: Page, article_ld: dict | None) -> bool:
    """The page says it is an article (structured data, meta, or a dated article path)."""
    return (
        article_ld is not None
        or page.meta.get("og:type", "").lower() == "article"
        or page.meta.get("PT", "").lower() in ("article", "blogs")
        or bool(DATED_PATH.search(page.url))
    )


def _is_listing(page: Page) -> bool:
    if any(ld_types(obj) & NON_ARTICLE_TYPES for obj in page.json_ld):
        return True
    return page.meta.get("PT", "").lower() in NON_ARTICLE_PAGE_TYPES


def _ld_str(obj: dict | None, key: str) -> str | None:
    value = (obj or {}).get(key)
    if isinstance(value, dict):
        value = value.get("name")
    return clean_text(value) or None if isinstance(value, str) else None


def _canonical_url(page: Page) -> str:
    for href in [*page.doc.xpath("//link[@rel='canonical']/@href"), page.meta.get("og:url")]:
        url = page.clearnet_url(href)
        if url and NYT_HOST.search(url.split("/")[2] if url.count("/") >= 2 else ""):
            return url
    return page.url


def _title(page: Page, article_ld: dict | None) -> str:
    for xpath in (
        "//h1[@itemprop='headline' or @data-testid='headline' or @id='headline']",
        "//h1[contains(@class,'articleHeadline') or contains(@class,'entry-title')]",
        "//nyt_headline",
        "//article//h1 | //*[@id='story']//h1",
    ):
        for heading in page.doc.xpath(xpath):
            text = visible_text(heading)
            if text:
                return text
    for candidate in (
        _ld_str(article_ld, "headline"),
        page.meta.get("og:title"),
        page.meta.get("hdl"),
        clean_text(page.doc.findtext(".//title")),
    ):
        text = TITLE_SUFFIX.sub("", clean_text(candidate))
        if text:
            return text
    return ""


def _authors(page: Page, article_ld: dict | None) -> list[str]:
    names = _ld_authors(page, article_ld)
    if names:
        return names
    marked = page.doc.xpath(
        "//*[contains(concat(' ', normalize-space(@itemprop), ' '), ' author ')]"
        "//*[@itemprop='name'] | //*[contains(@class, 'byline-author')]"
        " | //address[contains(@class, 'byline')]//*[contains(concat(' ', @class, ' '), ' fn ')]"
    )
    names = _unique(
        clean_text(el.get("data-byline-name") or el.get("content") or el.text_content())
        for el in marked
        if not _in_clutter(el)
    )
    if names:
        return names
    byline = page.meta.get("byl") or page.meta.get("author") or ""
    if byline.startswith(("http://", "https://")):
        return []
    return _unique(BYLINE_SPLIT.split(BYLINE_PREFIX.sub("", clean_text(byline))))


def _ld_authors(page: Page, obj: dict | None, nested: dict[str, dict] | None = None) -> list[str]:
    """Names of a JSON-LD node's ``author``s (``@id`` references resolved); people first,
    the publishing organisation only when no person is named."""
    authors = (obj or {}).get("author")
    if isinstance(authors, dict):
        authors = [authors]
    if not isinstance(authors, list):
        return []
    authors = [_ld_resolve(page, a, nested) for a in authors if isinstance(a, dict)]
    people = [a for a in authors if not ld_types(a) & {"Organization", "NewsMediaOrganization"}]
    return _unique(clean_text(a.get("name")) for a in people or authors)


def visible_text(element: html.HtmlElement) -> str:
    """Text of *element* without ``aria-hidden`` copies (React headlines carry a ghost copy)."""
    parts: list[str] = []

    def walk(el: html.HtmlElement) -> None:
        if el.get("aria-hidden") == "true":
            return
        parts.append(el.text or "")
        for child in el:
            if isinstance(child.tag, str):
                walk(child)
            parts.append(child.tail or "")

    walk(element)
    return clean_text("".join(parts))


def _ld_resolve(page: Page, node: dict, nested: dict[str, dict] | None = None) -> dict:
    """A JSON-LD node that is only an ``@id`` reference, resolved within the page: to a
    top-level (or ``@graph``) object, else to a node of *nested* (see :func:`_ld_id_index`)."""
    if set(node) != {"@id"}:
        return node
    found = next(
        (obj for obj in page.json_ld if obj.get("@id") == node["@id"] and obj is not node), None
    )
    if found is None and nested:
        found = nested.get(node["@id"]) if isinstance(node["@id"], str) else None
    return found or node


def _ld_id_index(objects: list[dict]) -> dict[str, dict]:
    """``@id`` -> the first node, nested ones included, that is more than a reference (live
    blogs describe a post's authors once, inside the LiveBlogPosting, and refer to them by
    ``@id``). One pass, iterative: a hostile page's deep nesting cannot exhaust the stack."""
    index: dict[str, dict] = {}
    stack: list[object] = [objects]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ident = item.get("@id")
            if isinstance(ident, str) and set(item) != {"@id"}:
                index.setdefault(ident, item)
            stack.extend(reversed([v for v in item.values() if isinstance(v, (list, dict))]))
        elif isinstance(item, list):
            stack.extend(reversed(item))
    return index


def _unique(names: Iterator[str] | list[str]) -> list[str]:
    seen: list[str] = []
    for name in names:
        name = BYLINE_PREFIX.sub("", name).strip(" ,")
        if name and name not in seen:
            seen.append(name)
    return seen


PUBLISHED_META = ("article:published_time", "datePublished", "ptime", "pdate")
MODIFIED_META = ("article:modified_time", "dateModified", "utime")


def _first_date(page: Page, article_ld: dict | None, ld_key: str, meta_keys) -> str | None:
    stamp = _ld_date(article_ld, ld_key)
    if stamp:
        return stamp
    for value in [page.meta.get(k) for k in meta_keys]:
        stamp = iso_datetime(value)
        if stamp:
            return stamp
    if ld_key == "datePublished":
        for value in page.doc.xpath(
            "//time/@datetime | //*[contains(concat(' ', @class, ' '), ' published ')]/@title"
        ):
            stamp = iso_datetime(value)
            if stamp:
                return stamp
    return None


def _ld_date(obj: dict | None, key: str) -> str | None:
    """A JSON-LD node's date *key* as ISO 8601 with offset (UTC when none is given)."""
    return iso_datetime((obj or {}).get(key))


def _section(page: Page, article_ld: dict | None) -> str | None:
    return (
        clean_text(page.meta.get("article:section"))
        or _ld_str(article_ld, "articleSection")
        or None
    )


def _description(page: Page, article_ld: dict | None) -> str | None:
    for value in (
        page.meta.get("description"),
        page.meta.get("og:description"),
        _ld_str(article_ld, "description"),
    ):
        text = clean_text(value)
        if text:
            return text
    return None


# --- body ------------------------------------------------------------------------------------


def _body_containers(doc: html.HtmlElement) -> list[html.HtmlElement]:
    for xpath in (
        "//section[@name='articleBody']",
        "//div[contains(concat(' ', @class, ' '), ' StoryBodyCompanionColumn ')]",
        "//p[contains(concat(' ', @class, ' '), ' story-body-text ')]",
        "//div[contains(concat(' ', @class, ' '), ' articleBody ')]",
        "//*[@itemprop='articleBody']",
        "//div[contains(concat(' ', @class, ' '), ' entry-content ')]",
    ):
        found = doc.xpath(xpath)
        if found:
            # drop containers nested in another found one (each text once)
            return [el for el in found if not any(a in found for a in el.iterancestors())]
    return []


def _mark_modules(doc: html.HtmlElement) -> None:
    """Flag recirculation modules set inside the body (2020+ "storyline" blocks: latest
    updates, surveys) so that :func:`_is_clutter` skips them."""
    for module in doc.xpath(STORYLINE_MODULES):
        module.set(CLUTTER_FLAG, "1")


def _body(page: Page) -> tuple[list[str], list[Link], html.HtmlElement | None]:
    _mark_modules(page.doc)
    containers = _body_containers(page.doc)
    if not containers:
        return [], [], None
    blocks: list[html.HtmlElement] = []
    for container in containers:
        blocks.extend(_blocks(container))
    blocks.extend(_corrections(page.doc))
    paragraphs, links = _texts_and_links(page, blocks)
    return paragraphs, links, _common_root(containers)


def _blocks(element: html.HtmlElement) -> Iterator[html.HtmlElement]:
    """Paragraph-level elements under *element* in order, clutter subtrees skipped."""
    if element.tag == "p":
        yield element
        return
    for child in element:
        if not isinstance(child.tag, str) or _is_clutter(child):
            continue
        if child.tag == "p" or (child.tag == "li" and not child.xpath(".//p|.//li")):
            yield child
        else:
            yield from _blocks(child)


def _is_clutter(element: html.HtmlElement) -> bool:
    if element.tag in CLUTTER_TAGS or element.get(CLUTTER_FLAG):
        return True
    classes = (element.get("class") or "").split()
    if CLUTTER_CLASSES.intersection(classes) or any(
        c.startswith(CLUTTER_CLASS_PREFIXES) for c in classes
    ):
        return True
    testid = (element.get("data-testid") or "").lower()
    ident = (element.get("id") or "").lower()
    return testid.startswith(CLUTTER_TESTIDS) or ident.startswith(("ad-", "story-ad", "mid"))


def _in_clutter(element: html.HtmlElement) -> bool:
    return any(
        a.tag in ("aside", "nav", "footer") or (_is_clutter(a) and a.tag != "header")
        for a in element.iterancestors()
    )


def _corrections(doc: html.HtmlElement) -> list[html.HtmlElement]:
    """Correction notices (2018+ put them after the body, in ``.bottom-of-article``)."""
    notices = doc.xpath(
        "//div[contains(@class,'bottom-of-article')]//*[self::strong or self::span or self::b]"
        "[starts-with(normalize-space(.), 'Correction')]/.."
    )
    return [n for n in notices if n.xpath(".//p")]


def _texts_and_links(page: Page, blocks: list[html.HtmlElement]) -> tuple[list[str], list[Link]]:
    paragraphs: list[str] = []
    links: list[Link] = []
    for block in blocks:
        text = clean_text(block.text_content())
        if not text or text.lower() in BOILERPLATE:
            continue
        paragraphs.append(text)
        for anchor in block.iterfind(".//a[@href]"):
            url = page.clearnet_url(anchor.get("href"))
            if url:
                links.append(Link(url=url, text=clean_text(anchor.text_content())))
    return paragraphs, links


def _common_root(elements: list[html.HtmlElement]) -> html.HtmlElement:
    root = elements[0]
    while root.getparent() is not None and not all(
        root in el.iterancestors() or el is root for el in elements
    ):
        root = root.getparent()
    return root


def _live_posts(page: Page, article_ld: dict) -> tuple[list[Post], list[Link]]:
    """A live blog's posts, in the order the page lists them (the NYT's: newest first), from
    its JSON-LD ``liveBlogUpdate`` entries, else from the post markup."""
    updates = article_ld.get("liveBlogUpdate") or []
    if isinstance(updates, dict):
        updates = [updates]
    updates = [u for u in updates if isinstance(u, dict)]
    nested = _ld_id_index(page.json_ld) if updates else {}
    posts = [
        post
        for post in (_ld_post(page, _ld_resolve(page, u, nested), nested) for u in updates)
        if post.headline or post.paragraphs
    ]
    if posts:
        return posts, []
    posts, links = [], []
    for element in page.doc.xpath(
        "//article[@data-testid='live-blog-post' or contains(@class,'live-blog-post')]"
    ):
        post, post_links = _markup_post(page, element)
        if post.headline or post.paragraphs:
            posts.append(post)
            links.extend(post_links)
    return posts, links


def _ld_post(page: Page, update: dict, nested: dict[str, dict]) -> Post:
    """One ``liveBlogUpdate`` entry (a ``BlogPosting``): its ``articleBody`` paragraphs are
    separated by blank lines."""
    headline = update.get("headline")
    body = update.get("articleBody")
    return Post(
        headline=clean_text(headline) or None if isinstance(headline, str) else None,
        published=_ld_date(update, "datePublished"),
        modified=_ld_date(update, "dateModified"),
        authors=_ld_authors(page, update, nested),
        url=_post_url(page, update),
        paragraphs=[
            p
            for p in (clean_text(t) for t in (body if isinstance(body, str) else "").split("\n\n"))
            if p
        ],
    )


def _post_url(page: Page, update: dict) -> str | None:
    """A post's own URL in clearnet form: its ``url``, else an ``@id`` that is a URL or an
    anchor; an anchor (``#id``) is taken on the article's canonical URL. (Not
    ``mainEntityOfPage``: that is the live blog's page, not the post.)"""
    for value in (update.get("url"), update.get("@id")):
        if not isinstance(value, str) or not value.strip():
            continue
        value = value.strip()
        if value.startswith("#") and len(value) > 1:
            return _canonical_url(page).split("#", 1)[0] + value
        if value.startswith(("http://", "https://", "/")):
            url = page.clearnet_url(value)
            if url:
                return url
    return None


def _markup_post(page: Page, element: html.HtmlElement) -> tuple[Post, list[Link]]:
    """A post from its markup: the first heading is its headline (later ones are kept as
    paragraphs), its ``<time>`` its date, its byline its authors, its ``id`` its anchor."""
    headings, links = _texts_and_links(page, element.xpath(".//h2"))
    names = element.xpath(
        ".//*[contains(concat(' ', normalize-space(@itemprop), ' '), ' author ')]"
        "//*[@itemprop='name'] | .//*[contains(@class, 'byline-author')]"
    )
    authors = _unique(clean_text(el.text_content()) for el in names)
    # the byline is the post's authors, not its text
    blocks = [
        b for b in _blocks(element) if not any(n is b or b in n.iterancestors() for n in names)
    ]
    paragraphs, body_links = _texts_and_links(page, blocks)
    stamps = [s for s in (iso_datetime(v) for v in element.xpath(".//time/@datetime")) if s]
    anchor = element.get("id")
    return (
        Post(
            headline=headings[0] if headings else None,
            published=stamps[0] if stamps else None,
            modified=None,
            authors=authors,
            url=_canonical_url(page).split("#", 1)[0] + "#" + anchor if anchor else None,
            paragraphs=headings[1:] + paragraphs,
        ),
        links + body_links,
    )


def _flatten_posts(posts: list[Post]) -> list[str]:
    """The posts as one paragraph list: each post's headline, then its paragraphs."""
    return [text for post in posts for text in [post.headline, *post.paragraphs] if text]


# --- images ----------------------------------------------------------------------------------


def _images(page: Page, body: html.HtmlElement | None) -> list[Image]:
    scope = page.doc.xpath(
        "//*[@id='story'] | //*[@id='article'] | //article[.//section[@name='articleBody']]"
    )
    roots = scope[:1] or ([body] if body is not None else [])
    images: list[Image] = []
    seen: set[str] = set()
    for root in roots:
        holders = root.xpath(".//figure") or root.xpath(
            ".//div[contains(@class,'articleSpanImage')] | "
            "descendant-or-self::div[contains(@class,'entry-content')]//img"
        )
        # the lead ("lede") figure first, then the others in page order
        holders.sort(key=lambda el: "lede" not in (el.get("class") or ""))
        for holder in holders:
            image = _image(page, holder)
            if image and image.url not in seen and not _in_clutter(holder):
                seen.add(image.url)
                images.append(image)
    if not images:
        url = page.clearnet_url(page.meta.get("og:image"))
        if url and not DEFAULT_IMAGE.search(url):
            images.append(Image(url=url))
    return images


def _is_icon(img: html.HtmlElement) -> bool:
    """Logos and column icons: declared smaller than 100 pixels on a side."""
    for side in ("width", "height"):
        value = img.get(side) or ""
        if value.isdigit() and int(value) < 100:
            return True
    return False


def _image(page: Page, holder: html.HtmlElement) -> Image | None:
    imgs = [holder] if holder.tag == "img" else holder.xpath(".//img")
    url = None
    for img in imgs:
        if _is_icon(img):
            continue
        url = page.clearnet_url(
            img.get("data-mediaviewer-src") or img.get("src") or img.get("data-src")
        )
        if url:
            break
    if not url:
        return None
    credit_el = holder.xpath(".//*[@itemprop='copyrightHolder'] | .//*[contains(@class,'credit')]")
    credit = clean_text(credit_el[0].text_content()) if credit_el else ""
    credit = CREDIT_PREFIX.sub("", credit) or None
    caption_el = holder.xpath(
        ".//*[contains(@class,'caption-text')] | .//*[@itemprop='caption'] | .//figcaption"
        " | .//*[contains(@class,'caption')]"
    )
    caption = None
    if caption_el:
        element = caption_el[0]
        caption = clean_text(element.text_content())
        if credit_el and credit_el[0] in element.iterdescendants():
            caption = clean_text(caption.replace(clean_text(credit_el[0].text_content()), ""))
        if not credit_el and CREDIT_IN_CAPTION.search(caption):
            caption, credit = CREDIT_IN_CAPTION.split(caption, maxsplit=1)
        caption = caption or None
    return Image(url=url, caption=caption, credit=credit)
