"""The NYT parser on synthetic pages of each markup era (invented text, real NYT structure)."""

from __future__ import annotations

import json
import re
from datetime import datetime

import pytest
from extract_helpers import ONIONS, mirror_site

from crawler.extract.evaluate import eotk_rewrite
from crawler.extract.extractor import article_from_html
from crawler.extract.output import render_markdown
from crawler.extract.page import NotAnArticle
from crawler.extract.record import Post
from crawler.tor.onion import OnionMap
from settings import ONION_MAP

WWW = ONIONS.to_onion_host("www.nytimes.com")
STATIC = ONIONS.to_onion_host("static01.nyt.com")
GRAPHICS = ONIONS.to_onion_host("graphics8.nytimes.com")
CLUTTER = (
    "Advertisement",
    "Continue reading the main story",
    "Supported by",
    "Sign up for the Daily Brief",
    "Related coverage",
    "is a reporter who writes about spoons",
    "Site Index",
    "Share this article",
    "You have 2 free articles remaining",
    "A recirculated update",
    "Is this helpful?",
)


def parse(html: str, path: str = "/2013/03/04/us/spoon-makers.html"):
    return article_from_html(html, f"https://{WWW}{path}", ONIONS)


def assert_no_clutter(article) -> None:
    text = json.dumps(article.to_dict())
    for needle in CLUTTER:
        assert needle not in text


LEGACY = f"""<html><head><title>Spoon Makers Unite - NYTimes.com</title>
<meta name="hdl" content="Spoon Makers Unite (SEO headline)">
<meta name="byl" content="By JANE DOE and JOHN ROE">
<meta name="pdate" content="20120126"><meta name="CG" content="us">
<meta name="description" content="A dek about spoons.">
</head><body><div id="shell"><div id="main"><div class="spanAB">
<div id="article"><h1 class="articleHeadline" itemprop="headline">Spoon Makers Unite</h1>
<h6 class="byline">By JANE DOE and JOHN ROE</h6>
<div class="articleSpanImage"><span><img width="600" height="400"
src="http://{GRAPHICS}/images/2012/01/27/us/spoons.jpg"></span>
<span class="caption">Spoons on a table.</span>
<span class="credit">Ann Lens for The New York Times</span></div>
<div class="articleBody"><p itemprop="articleBody">SPOONVILLE — The first paragraph, with a
<a href="http://{WWW}/2012/01/01/us/forks.html">link to forks</a>.</p>
<p itemprop="articleBody">The second paragraph.</p></div>
<div class="adWrapper"><div class="ad"><p>Advertisement</p></div></div>
<div class="articleBody"><p itemprop="articleBody">The third paragraph.</p>
<nyt_author_id><div class="authorIdentification"><p>Sam Poe contributed reporting.</p></div>
</nyt_author_id></div></div>
<div class="columnGroup"><h3>Related coverage</h3><p>Share this article</p></div>
</div></div><div id="siteIndex"><p>Site Index</p></div></div></body></html>"""


def test_legacy_template():
    article = parse(LEGACY, "/2012/01/27/us/spoon-makers.html")
    assert article.title == "Spoon Makers Unite"
    assert article.authors == ["JANE DOE", "JOHN ROE"]
    assert article.published == "2012-01-26T00:00:00-05:00"
    assert article.paragraphs == [
        "SPOONVILLE — The first paragraph, with a link to forks.",
        "The second paragraph.",
        "The third paragraph.",
        "Sam Poe contributed reporting.",
    ]
    assert [(link.url, link.text) for link in article.links] == [
        ("http://www.nytimes.com/2012/01/01/us/forks.html", "link to forks")
    ]
    assert article.images[0].url == "http://graphics8.nytimes.com/images/2012/01/27/us/spoons.jpg"
    assert article.images[0].caption == "Spoons on a table."
    assert article.images[0].credit == "Ann Lens for The New York Times"
    assert article.description == "A dek about spoons."
    assert_no_clutter(article)


REACT_2018 = """<html lang="en"><head>
<meta name="byl" content="By Jane Doe and John Roe">
<meta name="ptime" content="20180612123500"><meta name="utime" content="20180613070000">
<meta property="article:section" content="U.S."><meta property="og:type" content="article">
</head><body><div id="app"><main id="site-content">
<article id="story" class="Story-story--2QyGh">
<div id="top-wrapper"><div id="top-slug">Advertisement</div>
<a href="#after-top">Continue reading the main story</a></div>
<header><p>Supported by</p>
<h1 class="css-1dbjv5l" itemprop="headline"><span class="ghost" aria-hidden="true">Spoons,
Again</span><span class="balancedHeadline">Spoons, Again</span></h1>
<p itemprop="author creator"><span itemprop="name">Jane Doe</span> and
<span itemprop="name">John Roe</span></p>
<div role="toolbar" data-testid="share-tools"><p>Share this article</p></div></header>
<div class="StoryBodyCompanionColumn css-1"><div><p class="css-1cy1v93">First paragraph.</p>
<p class="css-1cy1v93">Second paragraph.</p>
<div class="InlineMessage-inline--2ysnq"><p>You have 2 free articles remaining</p></div></div></div>
<div class="css-ad"><div id="mid1-wrapper"><p>Advertisement</p></div></div>
<div class="StoryBodyCompanionColumn css-1"><div><p class="css-1cy1v93">Third paragraph.</p>
</div></div>
<div class="bottom-of-article"><div><div><strong>Correction<!-- -->:</strong>
<p>An earlier version misstated the number of spoons.</p></div></div>
<div><p>Jane Doe is a reporter who writes about spoons.</p></div>
<div class="NewsletterSignup-x"><p>Sign up for the Daily Brief</p></div></div>
</article></main></div></body></html>"""


def test_react_2018_template():
    article = parse(REACT_2018, "/2018/06/12/us/spoons-again.html")
    assert article.title == "Spoons, Again"
    assert article.authors == ["Jane Doe", "John Roe"]
    assert article.published == "2018-06-12T12:35:00-04:00"
    assert article.modified == "2018-06-13T07:00:00-04:00"
    assert article.section == "U.S."
    assert article.paragraphs == [
        "First paragraph.",
        "Second paragraph.",
        "Third paragraph.",
        "Correction: An earlier version misstated the number of spoons.",
    ]
    assert_no_clutter(article)


def react_2019(extra_ld: dict | None = None) -> str:
    ld = {
        "@context": "http://schema.org",
        "@type": "NewsArticle",
        "headline": "Spoons in the Digital Age (SEO)",
        "datePublished": "2020-07-29T18:51:51.000Z",
        "dateModified": "2020-08-13T10:48:19.000Z",
        "author": [
            {"@type": "Person", "name": "Ana Ruiz"},
            {"@type": "Person", "name": "Bo Li"},
        ],
        "inLanguage": "en",
        **(extra_ld or {}),
    }
    return f"""<html lang="en-US"><head>
<script type="application/ld+json"><![CDATA[{json.dumps(ld)}]]></script>
<meta property="og:image" content="https://{STATIC}/images/2020/07/29/us/29spoons-facebookJumbo.jpg">
</head><body><div id="app"><main id="site-content"><article id="story">
<header><h1 data-testid="headline">Spoons in the Digital Age</h1>
<figure><div data-testid="photoviewer-wrapper"><picture><img
src="https://{STATIC}/images/2020/07/29/us/29spoons/29spoons-articleLarge.jpg?quality=75"></picture>
</div><figcaption><span>A spoon in a phone.</span>
<span itemprop="copyrightHolder"><span>Credit</span>
<span>Cam Era/Agency</span></span></figcaption></figure></header>
<section name="articleBody" itemprop="articleBody">
<div class="StoryBodyCompanionColumn"><div><p>Para one links
<a href="/2020/07/01/us/forks.html">forks</a> and <a href="https://example.org/x">a report</a>.</p>
<ul><li>A listed speaker</li><li>Another speaker</li></ul>
<div class="interactive-body"><p>Updated Sept. 2, 2020</p></div>
<div><h2 id="storyline-latest-updates">Latest Updates</h2><ul><li>A recirculated update</li></ul>
<div class="styln-survey-component"><p>Is this helpful?</p></div></div>
<aside><p>Related coverage</p></aside>
<div data-testid="StandardAd"><p>Advertisement</p></div>
<figure><img src="https://{STATIC}/images/2020/07/29/us/29spoons2/29spoons2-articleLarge.jpg">
<figcaption><span>A second spoon.</span><span>Credit...Dee Photo</span></figcaption></figure>
<p>Para two.</p></div></div></section>
<div class="bottom-of-article"><p>Ana Ruiz is a reporter who writes about spoons.</p></div>
</article></main><nav id="site-index"><p>Site Index</p></nav></div></body></html>"""


def test_react_2019_template_uses_json_ld_first():
    article = parse(react_2019(), "/2020/07/29/us/spoons.html")
    assert article.title == "Spoons in the Digital Age"  # the visible headline
    assert article.authors == ["Ana Ruiz", "Bo Li"]
    assert article.published == "2020-07-29T18:51:51+00:00"
    assert article.modified == "2020-08-13T10:48:19+00:00"
    assert article.language == "en-US"
    assert article.paragraphs == [
        "Para one links forks and a report.",
        "A listed speaker",
        "Another speaker",
        "Para two.",
    ]
    assert [link.url for link in article.links] == [
        "https://www.nytimes.com/2020/07/01/us/forks.html",
        "https://example.org/x",
    ]
    lead, second = article.images
    assert lead.url.startswith("https://static01.nyt.com/images/2020/07/29/us/29spoons/")
    assert (lead.caption, lead.credit) == ("A spoon in a phone.", "Cam Era/Agency")
    assert (second.caption, second.credit) == ("A second spoon.", "Dee Photo")
    assert article.capture_url.startswith(f"https://{WWW}/")
    assert article.url == "https://www.nytimes.com/2020/07/29/us/spoons.html"
    assert "Updated Sept. 2, 2020" not in article.text
    assert_no_clutter(article)


def test_author_given_as_publisher_reference_is_resolved():
    html = react_2019({"author": {"@id": "https://www.nytimes.com/#publisher"}}).replace(
        "</head>",
        '<script type="application/ld+json">{"@type": "NewsMediaOrganization", '
        '"@id": "https://www.nytimes.com/#publisher", "name": "The New York Times"}</script>'
        "</head>",
    )
    assert parse(html, "/2020/07/29/us/spoons.html").authors == ["The New York Times"]


def test_live_blog_is_a_list_of_posts():
    ld = {
        "@type": "LiveBlogPosting",
        "headline": "Spoon Summit: Live Updates",
        "datePublished": "2021-05-01T12:00:00Z",
        "author": [{"@type": "Person", "name": "Ana Ruiz"}],
        "liveBlogUpdate": [
            {"@type": "BlogPosting", "headline": "Post one", "articleBody": "Text one.\n\nMore."},
            {"@type": "BlogPosting", "headline": "Post two", "articleBody": "Text two."},
        ],
    }
    html = (
        f'<html><head><script type="application/ld+json">{json.dumps(ld)}</script></head>'
        "<body><h1>Spoon Summit: Live Updates</h1><div>…</div></body></html>"
    )
    article = parse(html, "/live/2021/05/01/us/spoon-summit")
    assert article.title == "Spoon Summit: Live Updates"
    assert article.paragraphs == ["Post one", "Text one.", "More.", "Post two", "Text two."]
    assert article.authors == ["Ana Ruiz"]
    assert [(p.headline, p.paragraphs) for p in article.posts] == [
        ("Post one", ["Text one.", "More."]),
        ("Post two", ["Text two."]),
    ]


def live_blog_ld() -> list[dict]:
    """A live blog as the 2021+ template describes it: the LiveBlogPosting's posts newest
    first, authors given once (top level or nested) and referred to by ``@id``."""
    ana = {"@type": "Person", "@id": "https://www.nytimes.com/by/ana-ruiz", "name": "Ana Ruiz"}
    return [
        {
            "@context": "https://schema.org",
            "@type": "LiveBlogPosting",
            "@id": f"https://{WWW}/live/2021/05/01/us/spoon-summit",
            "headline": "Spoon Summit: Live Updates",
            "datePublished": "2021-05-01T12:00:00.000Z",
            "dateModified": "2021-05-01T16:30:00.000Z",
            "author": [ana, {"@type": "Person", "name": "Bo Li"}],
            "liveBlogUpdate": [
                {
                    "@type": "BlogPosting",
                    "url": f"https://{WWW}/live/2021/05/01/us/spoon-summit#ladles-arrive",
                    "headline": "Ladles  arrive\n late",
                    "datePublished": "2021-05-01T16:05:00.000Z",
                    "dateModified": "2021-05-01T16:30:00.000Z",
                    "author": [{"@id": "https://www.nytimes.com/by/ana-ruiz"}],
                    "articleBody": "The ladles came by boat.\n\n\n\nThey were   wet.",
                },
                {
                    "@type": "BlogPosting",
                    "@id": "#forks-object",
                    "headline": "Forks object",
                    "datePublished": "2021-05-01T10:15:00-04:00",
                    "author": [
                        {"@id": "https://www.nytimes.com/by/cy-wu"},
                        {"@type": "NewsMediaOrganization", "name": "The New York Times"},
                    ],
                    "articleBody": "A fork spoke first.",
                },
                {"@type": "BlogPosting", "articleBody": "A post without a headline."},
                {"@type": "BlogPosting", "headline": "", "articleBody": ""},  # nothing: dropped
                {"@id": "https://www.nytimes.com/live/2021/05/01/us/spoon-summit#opening"},
            ],
            "mentions": [
                {"@type": "Person", "@id": "https://www.nytimes.com/by/cy-wu", "name": "Cy Wu"}
            ],
        },
        {
            "@context": "https://schema.org",
            "@graph": [
                ana,
                {
                    "@type": "BlogPosting",
                    "@id": "https://www.nytimes.com/live/2021/05/01/us/spoon-summit#opening",
                    "headline": "The summit opens",
                    "datePublished": "20210501080000",
                    "author": {"@type": "Person", "name": "Bo Li"},
                    "articleBody": "Spoons gathered at dawn.",
                },
            ],
        },
    ]


def live_blog_html() -> str:
    scripts = "".join(
        f'<script type="application/ld+json">{json.dumps(obj)}</script>' for obj in live_blog_ld()
    )
    return (
        f'<html lang="en"><head>{scripts}<link rel="canonical" '
        f'href="https://{WWW}/live/2021/05/01/us/spoon-summit"></head><body>'
        "<h1>Spoon Summit: Live Updates</h1><div>…</div></body></html>"
    )


def test_live_blog_posts_keep_their_own_metadata():
    article = parse(live_blog_html(), "/live/2021/05/01/us/spoon-summit")
    page_url = "https://www.nytimes.com/live/2021/05/01/us/spoon-summit"
    assert article.url == page_url
    assert article.published == "2021-05-01T12:00:00+00:00"
    assert article.authors == ["Ana Ruiz", "Bo Li"]
    assert article.posts == [
        Post(
            headline="Ladles arrive late",
            published="2021-05-01T16:05:00+00:00",
            modified="2021-05-01T16:30:00+00:00",
            authors=["Ana Ruiz"],  # @id resolved in the @graph
            url=f"{page_url}#ladles-arrive",  # onion form mapped back to clearnet
            paragraphs=["The ladles came by boat.", "They were wet."],
        ),
        Post(
            headline="Forks object",
            published="2021-05-01T10:15:00-04:00",
            modified=None,
            authors=["Cy Wu"],  # @id resolved to a nested node; the organisation left out
            url=f"{page_url}#forks-object",  # an anchor, on the canonical URL
            paragraphs=["A fork spoke first."],
        ),
        Post(paragraphs=["A post without a headline."]),
        Post(  # the whole post was an @id reference
            headline="The summit opens",
            published="2021-05-01T08:00:00-04:00",  # compact NYT stamp: New York time
            authors=["Bo Li"],
            url=f"{page_url}#opening",
            paragraphs=["Spoons gathered at dawn."],
        ),
    ]
    # the flattened form is unchanged: each post's headline, then its paragraphs
    assert article.paragraphs == [
        text for post in article.posts for text in [post.headline, *post.paragraphs] if text
    ]
    record = json.loads(json.dumps(article.to_dict()))
    assert record["posts"][1] == {
        "headline": "Forks object",
        "published": "2021-05-01T10:15:00-04:00",
        "modified": None,
        "authors": ["Cy Wu"],
        "url": f"{page_url}#forks-object",
        "paragraphs": ["A fork spoke first."],
    }
    assert record["text"] == "\n\n".join(article.paragraphs)
    assert list(record)[:14] == [
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
        "posts",
    ]


def test_live_blog_markdown_is_a_sequence_of_posts():
    record = parse(live_blog_html(), "/live/2021/05/01/us/spoon-summit").to_dict()
    page_url = "https://www.nytimes.com/live/2021/05/01/us/spoon-summit"
    markdown = render_markdown(record)
    body = markdown.split("By Ana Ruiz, Bo Li · 2021-05-01T12:00:00+00:00\n\n", 1)[1]
    assert body.split("---\n", 1)[0] == (
        "### Ladles arrive late\n\n"
        "*By Ana Ruiz · 2021-05-01T16:05:00+00:00 · updated 2021-05-01T16:30:00+00:00"
        f" · <{page_url}#ladles-arrive>*\n\n"
        "The ladles came by boat.\n\nThey were wet.\n\n"
        "### Forks object\n\n"
        f"*By Cy Wu · 2021-05-01T10:15:00-04:00 · <{page_url}#forks-object>*\n\n"
        "A fork spoke first.\n\n"
        "* * *\n\n"
        "A post without a headline.\n\n"
        "### The summit opens\n\n"
        f"*By Bo Li · 2021-05-01T08:00:00-04:00 · <{page_url}#opening>*\n\n"
        "Spoons gathered at dawn.\n\n"
    )
    # a record without posts (any other article, or one written before posts existed)
    flat = {**record, "posts": []}
    assert "### " not in render_markdown(flat)
    assert "Ladles arrive late\n\nThe ladles came by boat." in render_markdown(flat)
    del flat["posts"]
    assert "Ladles arrive late\n\nThe ladles came by boat." in render_markdown(flat)


def test_articles_that_are_not_live_blogs_have_no_posts():
    article = parse(react_2019(), "/2020/07/29/us/spoons.html")
    assert article.posts == []
    assert article.to_dict()["posts"] == []


def test_interactive_feature_has_metadata_without_a_known_body():
    html = (
        '<html><head><meta property="og:title" content="How Spoons Move">'
        '<meta name="byl" content="By Ana Ruiz, Bo Li and Cy Wu">'
        '<meta property="article:published_time" content="2019-03-01T10:00:00-05:00">'
        '<meta property="og:type" content="article"></head><body><div class="g-graphic">'
        "<svg></svg></div></body></html>"
    )
    article = parse(html, "/interactive/2019/03/01/science/spoons.html")
    assert article.title == "How Spoons Move"
    assert article.authors == ["Ana Ruiz", "Bo Li", "Cy Wu"]
    assert article.published == "2019-03-01T10:00:00-05:00"


def test_section_front_is_not_an_article():
    html = (
        '<html><head><script type="application/ld+json">{"@type": "CollectionPage"}</script>'
        '</head><body><div><a href="/2020/01/01/us/x.html">A teaser</a><p>By Someone</p>'
        "</div></body></html>"
    )
    with pytest.raises(NotAnArticle) as caught:
        parse(html, "/section/us")
    assert caught.value.reason == "not-article"


def test_unknown_page_elsewhere_goes_to_trafilatura():
    first = " ".join(["A plain article sentence about spoons and forks."] * 12)
    second = " ".join(["Another sentence, this one about knives."] * 12)
    html = (
        "<html><head><title>Elsewhere</title></head><body><article><h1>Elsewhere</h1>"
        f"<p>{first}</p><p>{second}</p></article></body></html>"
    )
    article = article_from_html(html, "https://example.org/2020/spoons.html", ONIONS)
    assert article.extractor == "generic"
    assert article.title == "Elsewhere"
    assert article.paragraphs == [first, second]


@pytest.mark.parametrize("style", ["story-body", "react", "nytapp"])
def test_mirror_styles_match_ground_truth(style):
    site, pages = mirror_site(articles=60)
    indices = [i for i in range(60) if site.article(i).style == style][:8]
    assert indices, f"the mirror rendered no {style} article in 60"
    for index in indices:
        truth = site.article(index)
        article = parse(pages.article(truth), truth.onion_path)
        record = article.to_dict()
        assert {k: record[k] for k in truth.record()} == truth.record()


def test_live_blog_posts_from_markup_when_json_ld_has_none():
    ld = {"@type": "LiveBlogPosting", "headline": "Spoon Summit", "datePublished": "2021-05-01"}
    html = (
        f'<html><head><script type="application/ld+json">{json.dumps(ld)}</script></head><body>'
        "<h1>Spoon Summit</h1>"
        '<article data-testid="live-blog-post"><h2>First post</h2><p>First text.</p>'
        '<div class="ad"><p>Advertisement</p></div></article>'
        '<article data-testid="live-blog-post"><h2>Second post</h2><p>Second text.</p></article>'
        "</body></html>"
    )
    article = parse(html, "/live/2021/05/01/us/spoon-summit")
    assert article.paragraphs == ["First post", "First text.", "Second post", "Second text."]
    assert [(p.headline, p.paragraphs) for p in article.posts] == [
        ("First post", ["First text."]),
        ("Second post", ["Second text."]),
    ]


def test_live_blog_post_markup_gives_times_bylines_and_anchors():
    ld = {"@type": "LiveBlogPosting", "headline": "Spoon Summit", "datePublished": "2021-05-01"}
    html = (
        f'<html><head><script type="application/ld+json">{json.dumps(ld)}</script></head><body>'
        "<h1>Spoon Summit</h1>"
        '<article data-testid="live-blog-post" id="ladles"><h2>Ladles</h2>'
        '<time datetime="2021-05-01T16:05:00Z">12:05 p.m. ET</time>'
        '<p itemprop="author creator"><span itemprop="name">Ana Ruiz</span></p>'
        '<div><p>Ladle text with <a href="/2021/04/30/us/ladles.html">a link</a>.</p></div>'
        "</article></body></html>"
    )
    article = parse(html, "/live/2021/05/01/us/spoon-summit")
    assert article.posts == [
        Post(
            headline="Ladles",
            published="2021-05-01T16:05:00+00:00",
            authors=["Ana Ruiz"],
            url="https://www.nytimes.com/live/2021/05/01/us/spoon-summit#ladles",
            paragraphs=["Ladle text with a link."],  # the byline is not text
        )
    ]
    assert [link.url for link in article.links] == [
        "https://www.nytimes.com/2021/04/30/us/ladles.html"
    ]


# --- the real NYT pages (../shared/nyt-pages: read here, never copied) -----------------------

LIVE_PAGE_TYPE = re.compile(r"\blive[- ]?blog\b", re.I)


@pytest.fixture(scope="module")
def real_pages(nyt_pages):
    """(file, is a live blog, record or None) for every manifest page, captured as the
    crawler sees it (onion URL, EOTK-rewritten). A page is a live blog when the manifest
    says so, its URL is under ``/live/`` or its JSON-LD has a ``LiveBlogPosting``."""
    onion_map = OnionMap(ONION_MAP)
    manifest = json.loads((nyt_pages / "manifest.json").read_text(encoding="utf-8"))
    pages = []
    for item in manifest["entries"]:
        url = item.get("url") or "https://www.nytimes.com/fragment.html"
        raw = (nyt_pages / item["file"]).read_bytes()
        live = bool(
            LIVE_PAGE_TYPE.search(item.get("page_type", ""))
            or "/live/" in url
            or re.search(rb'"@type"\s*:\s*(\[[^\]]*)?"LiveBlogPosting"', raw)
        )
        text = eotk_rewrite(raw, onion_map).decode("utf-8", "replace")
        try:
            article = article_from_html(text, onion_map.to_onion_url(url) or url, onion_map)
        except NotAnArticle:
            article = None
        pages.append((item["file"], live, article))
    return pages


def test_real_live_blogs_are_lists_of_posts(real_pages):
    live = [(name, article) for name, is_live, article in real_pages if is_live]
    if not live:
        pytest.skip(
            "no live blog among ../shared/nyt-pages (no /live/ URL, 'live blog' page type or "
            "JSON-LD LiveBlogPosting): the synthetic live-blog tests above cover posts"
        )
    for name, article in live:
        assert article is not None, name
        assert len(article.posts) > 1, name
        for post in article.posts:
            assert post.paragraphs, name
            for stamp in (post.published, post.modified):
                assert stamp is None or datetime.fromisoformat(stamp).tzinfo, name
        assert any(post.published for post in article.posts), name
        flattened = [t for p in article.posts for t in [p.headline, *p.paragraphs] if t]
        assert flattened == article.paragraphs, name


def test_real_pages_that_are_not_live_blogs_have_no_posts(real_pages):
    others = [(name, article) for name, is_live, article in real_pages if not is_live]
    assert others
    for name, article in others:
        if article is not None:
            assert article.posts == [], name
            assert article.to_dict()["posts"] == [], name
