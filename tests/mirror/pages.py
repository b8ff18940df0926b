"""HTML, feeds, sitemaps and robots.txt of the mirror, rendered for one request scheme.

Links are EOTK-style rewritten to the onion hosts, with the exceptions real mirrors show:
some links stay in clearnet form, off-site links (social media, reports) stay as they are,
and the gzipped monthly sitemaps carry clearnet ``<loc>`` URLs (a rewriting proxy does not
look inside gzip files). Login, subscription, ad, tracking and ``?smid=`` share links are
there for scope tests.
"""

from __future__ import annotations

import gzip
import json
from datetime import datetime, timedelta
from email.utils import format_datetime
from html import escape
from urllib.parse import quote

from . import media
from .site import SECTIONS, SITE_DOMAIN, SLOT, TZ, Article, Link, MirrorSite, Section

ROBOTS_DISALLOW = ("/svc/", "/search", "/subscription", "/auth/", "/ads/")
SITEMAP_INDEX = "/sitemaps/sitemap.xml"
NEWS_SITEMAP = "/sitemaps/news.xml"
RSS_PREFIX = "/services/xml/rss/nyt/"


def _e(text: str) -> str:
    return escape(text, quote=True)


class Pages:
    """Renders every page of *site* with absolute links in *scheme* (``http`` or ``https``)."""

    def __init__(self, site: MirrorSite, scheme: str):
        self.site = site
        self.scheme = scheme

    # --- URLs ---------------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return f"{self.scheme}://{self.site.www_host}{path}"

    def static(self, path: str) -> str:
        return f"{self.scheme}://{self.site.static_host}{path}"

    def href(self, clearnet_url: str) -> str:
        """*clearnet_url* as the mirror writes it: onion form for mapped hosts."""
        onion = self.site.onions.to_onion_url(clearnet_url)
        if onion is None:
            return clearnet_url
        return self.scheme + onion[onion.index(":") :]

    def article_href(self, index: int, form: int) -> str:
        """Link to an article in form 0 (absolute onion), 1 (relative) or 2 (clearnet)."""
        path = self.site.article_path(index)
        return (self.url(path), path, self.site.clearnet_url(path))[form]

    def login(self) -> str:
        return (
            f"{self.scheme}://myaccount.{self.site.site_onion}/auth/login"
            "?response_type=cookie&client_id=vi&redirect_uri=%2F"
        )

    # --- shared chrome ------------------------------------------------------------------------

    def head(self, title: str, extra: str = "") -> str:
        return (
            f'<meta charset="utf-8"><title>{_e(title)}</title>\n'
            f'<link rel="stylesheet" href="{self.static(media.STYLESHEET_PATH)}">\n'
            f'<link rel="icon" href="{self.static(media.LOGO_PATH)}">\n{extra}'
            f'<script async src="https://www.googletagmanager.com/gtm.js?id=GTM-MIRROR"></script>\n'
        )

    def script(self) -> str:
        return f'<script src="{self.static(media.SCRIPT_PATH)}"></script>\n'

    def masthead(self) -> str:
        nav = "".join(
            f'<li><a href="{self.url("/section/" + s.path)}">{_e(s.name)}</a></li>'
            for s in SECTIONS
            if "/" not in s.path
        )
        return (
            '<header id="masthead" class="masthead">'
            '<a class="skip" href="#site-content">Skip to content</a>'
            '<a class="skip" href="#site-index">Skip to site index</a>'
            f'<a href="{self.url("/")}"><img src="{self.static(media.LOGO_PATH)}" '
            'alt="The New York Times"></a>'
            f'<a class="search" href="{self.url("/search?query=")}">Search</a>'
            f'<a class="login" href="{self.login()}">Log in</a>'
            f'<a class="subscribe" href="{self.url("/subscription?campaignId=MIRROR")}">'
            "Subscribe for $1 a week</a>"
            f'<a href="{self.url("/section/todayspaper")}">Today\u2019s Paper</a>'
            f'<nav class="sections"><ul>{nav}</ul></nav></header>\n'
        )

    def ad(self, slot: str, css: str) -> str:
        return (
            f'<div id="{slot}-wrapper" class="ad {css}"><div class="ad-header">'
            "<p>Advertisement</p></div>"
            f'<div id="{slot}" class="ad-slot" data-src="{self.url("/ads/slot/" + slot)}">'
            '<iframe src="https://securepubads.example-ads.net/gampad/ads?sz=300x250" '
            'title="ad"></iframe></div>'
            f'<a href="#after-{slot}" class="continue">Continue reading the main story</a>'
            f'</div><div id="after-{slot}"></div>\n'
        )

    def site_index(self) -> str:
        items = "".join(
            f'<li><a href="{self.url("/section/" + s.path)}">{_e(s.name)}</a></li>'
            for s in SECTIONS
        )
        return (
            '<nav id="site-index" aria-labelledby="site-index-label"><h2 id="site-index-label">'
            f"Site Index</h2><ul>{items}</ul>"
            f'<a href="{self.site.clearnet_url("/section/todayspaper")}">Today\u2019s Paper</a> '
            f'<a href="https://help.{SITE_DOMAIN}/hc/en-us">Help</a> '
            f'<a href="{self.url("/subscription/terms")}">Subscriptions</a></nav>\n'
            '<footer id="page-footer"><p>\u00a9 The Mirror Times Company (synthetic test site)'
            f'</p><img src="{self.url("/svc/collect/pixel.gif?v=1")}" alt="" width="1" '
            'height="1"></footer>\n'
        )

    def newsletter(self) -> str:
        return (
            '<div class="newsletter-signup"><h3>Sign up for The Morning Mirror</h3>'
            "<p>Context on the day\u2019s news, delivered to your inbox.</p>"
            f'<form action="{self.url("/svc/newsletters/signup")}" method="post">'
            '<input type="email" name="email"><button>Sign Up</button></form></div>\n'
        )

    def share_bar(self, article: Article) -> str:
        onion = self.url(article.onion_path)
        return (
            '<ul class="sharetools" aria-label="Share this page">'
            f'<li><a href="mailto:?subject={quote(article.title)}&amp;body={quote(onion)}">'
            "Email</a></li>"
            f'<li><a href="https://www.facebook.com/dialog/feed?link={quote(onion, safe="")}">'
            "Facebook</a></li>"
            f'<li><a href="https://twitter.com/intent/tweet?url={quote(onion, safe="")}'
            '&amp;text=share">Twitter</a></li>'
            f'<li><a href="{onion}?smid=url-share">Share link</a></li>'
            f'<li><a href="{self.url("/svc/comments/" + str(article.index))}">Comments</a></li>'
            "</ul>\n"
        )

    def related(self, article: Article) -> str:
        earlier = range(article.index - 1, max(-1, article.index - 4), -1)
        items = "".join(
            f'<li><a href="{self.article_href(i, i % 3)}">{_e(self.site.headline(i))}</a></li>'
            for i in earlier
        )
        return (
            f'<aside class="related-links"><h2>More in {_e(article.section)}</h2>'
            f"<ul>{items}</ul></aside>\n"
        )

    # --- articles -----------------------------------------------------------------------------

    def paragraph_html(self, paragraph: tuple[str | Link, ...]) -> str:
        parts = []
        for run in paragraph:
            if isinstance(run, str):
                parts.append(_e(run))
            else:
                href = run.url if run.clearnet_in_page else self.href(run.url)
                parts.append(f'<a href="{_e(href)}">{_e(run.text)}</a>')
        return "".join(parts)

    def article(self, article: Article) -> str:
        return {
            "story-body": self._story_body,
            "react": self._react,
            "nytapp": self._nytapp,
        }[article.style](article)

    def _meta(self, article: Article) -> str:
        published = article.published_datetime
        byline = "By " + _and(article.authors)
        return (
            f'<meta name="description" content="{_e(article.description)}">\n'
            f'<meta property="og:title" content="{_e(article.title)}">\n'
            f'<meta property="og:url" content="{article.url}">\n'
            f'<meta property="og:image" content="{self.href(article.image_url)}">\n'
            f'<meta property="article:published_time" content="{article.published}">\n'
            f'<meta property="article:modified_time" content="{article.modified}">\n'
            f'<meta property="article:section" content="{_e(article.section)}">\n'
            f'<meta name="byl" content="{_e(byline)}">\n'
            f'<meta name="ptime" content="{published:%Y%m%d%H%M%S}">\n'
            f'<meta name="pdate" content="{published:%Y%m%d}">\n'
            f'<link rel="canonical" href="{self.url(article.onion_path)}">\n'
        )

    def _story_body(self, a: Article) -> str:
        authors = " and ".join(
            f'<span class="byline-author" data-byline-name="{_e(name)}" itemprop="name">'
            f"{_e(name)}</span>"
            for name in a.authors
        )
        half = (len(a.body) + 1) // 2
        blocks = [
            "".join(
                '<p class="story-body-text story-content" '
                f'data-para-count="{len(self.paragraph_html(p))}">{self.paragraph_html(p)}</p>\n'
                for p in part
            )
            for part in (a.body[:half], a.body[half:])
        ]
        published = a.published_datetime
        return (
            '<!DOCTYPE html>\n<html lang="en" class="no-js" itemscope '
            'itemtype="http://schema.org/NewsArticle">\n<head>\n'
            + self.head(f"{a.title} - The New York Times", self._meta(a))
            + '</head>\n<body>\n<div id="shell">\n'
            + self.masthead()
            + self.ad("top-ad", "top-ad")
            + '<main id="main"><article id="story" class="story theme-main">\n'
            '<header class="story-header"><p class="supported-by">Supported by</p>'
            f'<h1 id="headline" class="headline" itemprop="headline">{_e(a.title)}</h1>'
            '<div class="byline-dateline"><p class="byline" itemprop="author creator">'
            f"By {authors}</p>"
            f'<time class="dateline" datetime="{a.published}">'
            f"{published:%b}. {published.day}, {published.year}</time></div>"
            + self.share_bar(a)
            + "</header>\n"
            '<figure class="media photo lede layout-large-horizontal" itemprop="associatedMedia" '
            f'itemscope itemid="{self.href(a.image_url)}" itemtype="http://schema.org/ImageObject">'
            '<span class="visually-hidden">Photo</span><div class="image">'
            f'<img src="{self.href(a.image_url)}" alt="" itemprop="url"></div>'
            '<figcaption class="caption" itemprop="caption description">'
            f'<span class="caption-text">{_e(a.image_caption)}</span>'
            '<span class="credit" itemprop="copyrightHolder">'
            f'<span class="visually-hidden">Credit </span>{_e(a.image_credit)}</span>'
            "</figcaption></figure>\n"
            f'<div class="story-body story-body-1">\n{blocks[0]}</div>\n'
            + self.ad("story-ad-1", "story-interrupter")
            + f'<div class="story-body story-body-2">\n{blocks[1]}</div>\n'
            '<footer class="story-footer"><div class="story-print-citation">'
            f"A version of this article appears in print on {published:%B} {published.day}, "
            f"{published.year}, on Page A{a.index % 20 + 1} of the New York edition with the "
            f"headline: {_e(a.title)}.</div>"
            f'<a href="{self.url("/svc/reprints")}">Order Reprints</a></footer>\n'
            "</article>\n"
            + self.related(a)
            + "</main>\n"
            + self.newsletter()
            + self.site_index()
            + self.script()
            + "</div>\n</body>\n</html>\n"
        )

    def _react_byline(self, a: Article) -> str:
        people = " and ".join(
            f'<a href="{self.url("/by/" + _slug(name))}" class="css-mrorfa e1jsehar0">'
            f'<span class="css-1baulvz" itemprop="name">{_e(name)}</span></a>'
            for name in a.authors
        )
        return (
            '<div class="css-xt80pu eaw6sut0"><p class="css-aknsld e1jsehar1" '
            f'itemprop="author"><span class="css-1baulvz last-byline">By {people}</span></p>'
            f'<ul class="css-1w5cs23"><li><time class="css-1sbuyqj e16638kd3" '
            f'datetime="{a.published}">Published {_long_date(a.published_datetime)}</time></li>'
            + (
                f'<li><time class="css-x7rtpa" datetime="{a.modified}">Updated '
                f"{_long_date(a.modified_datetime)}</time></li>"
                if a.modified != a.published
                else ""
            )
            + "</ul></div>"
        )

    def _react_figure(self, a: Article) -> str:
        return (
            '<figure class="css-1sjbgrr e1g7ppur0 sizeLarge" aria-label="media" role="group">'
            '<div data-testid="photoviewer-wrapper" class="css-1a48zt4">'
            '<div data-testid="photoviewer-children" class="css-1a48zt4"><picture>'
            f'<img alt="" class="css-rq4mmj" src="{self.href(a.image_url)}" '
            f'srcset="{self.href(a.image_url)}?quality=75&amp;auto=webp 600w, '
            f'{self.href(a.image_url)}?quality=90&amp;auto=webp 1200w"></picture></div></div>'
            '<figcaption class="css-1l44abu e1ynyjfe0">'
            f'<span class="css-16f3y1r e13ogyst0">{_e(a.image_caption)}</span>'
            '<span class="css-cnj6d5 e1z0qqy90"><span class="css-1ly73wi e1tej78p0">Credit...'
            f"</span><span>{_e(a.image_credit)}</span></span></figcaption></figure>\n"
        )

    def _react_body(self, a: Article, paragraph_css: str) -> str:
        columns = []
        for n in range(0, len(a.body), 3):
            paragraphs = "".join(
                f'<p class="{paragraph_css}">{self.paragraph_html(p)}</p>'
                for p in a.body[n : n + 3]
            )
            columns.append(
                '<div class="css-1fanzo5 StoryBodyCompanionColumn"><div class="css-53u6y8">'
                f'{paragraphs}</div><aside class="css-ew4tgv"></aside></div>\n'
            )
            if n == 3:
                columns.append(self.ad("story-ad-1", "css-9tf9ac"))
        return (
            '<section name="articleBody" itemprop="articleBody" class="meteredContent '
            f'css-1r7ky0e">\n{"".join(columns)}</section>\n'
        )

    def _react(self, a: Article) -> str:
        preloaded = json.dumps({"initialState": {"article": {"id": a.index, "type": "Article"}}})
        return (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n'
            + self.head(f"{a.title} - The New York Times", self._meta(a))
            + f"<script>window.__preloadedData = {preloaded};</script>\n"
            '</head>\n<body>\n<div id="app"><div class="css-1q2w90k">\n'
            + self.masthead()
            + self.ad("top-ad", "css-1aor85t")
            + '<main id="site-content"><div><article id="story" class="css-1vxca1d e1qksbhf0">\n'
            '<header class="css-d92687 e1xdpqjp0"><p class="css-1ly73wi">Supported by</p>'
            f'<div class="css-1kj7lfb"><a href="{self.url("/section/" + a.section_path)}">'
            f"{_e(a.section)}</a></div>"
            f'<h1 id="link-{a.index:x}" class="css-rsa88z e1h9rw200" data-testid="headline">'
            f"{_e(a.title)}</h1>"
            f'<p id="article-summary" class="css-w6ymp8 e1wiw3jv0">{_e(a.description)}</p>\n'
            + self._react_figure(a)
            + self._react_byline(a)
            + self.share_bar(a)
            + "</header>\n"
            + self._react_body(a, "css-axufdj evys1bk0")
            + '<div class="bottom-of-article"><p class="css-1ubp8k9">A version of this article '
            "appears in print, Section A, Page 8 of the New York edition.</p>"
            f'<a href="{self.url("/svc/reprints")}">Order Reprints</a> | '
            f'<a href="{self.url("/section/todayspaper")}">Today\u2019s Paper</a> | '
            f'<a href="{self.url("/subscription")}">Subscribe</a></div>\n'
            "</article></div>\n"
            + self.related(a)
            + "</main>\n"
            + self.site_index()
            + "</div></div>\n"
            + self.script()
            + "</body>\n</html>\n"
        )

    def _json_ld(self, a: Article) -> str:
        data = {
            "@context": "https://schema.org",
            "@type": "NewsArticle",
            "headline": a.title,
            "description": a.description,
            "author": [
                {"@type": "Person", "name": name, "url": self.url("/by/" + _slug(name))}
                for name in a.authors
            ],
            "datePublished": a.published,
            "dateModified": a.modified,
            "articleSection": a.section,
            "image": [
                {
                    "@type": "ImageObject",
                    "url": self.href(a.image_url),
                    "caption": a.image_caption,
                    "creditText": a.image_credit,
                }
            ],
            "mainEntityOfPage": self.url(a.onion_path),
            "url": a.url,
            "inLanguage": a.language,
            "publisher": {"@type": "NewsMediaOrganization", "name": "The New York Times"},
        }
        return json.dumps(data, ensure_ascii=False).replace("</", "<\\/")

    def _nytapp(self, a: Article) -> str:
        return (
            '<!DOCTYPE html>\n<html lang="en" class="story nytapp-vi-article" '
            'xmlns:og="http://opengraphprotocol.org/schema/">\n<head>\n'
            + self.head(f"{a.title} - The New York Times", self._meta(a))
            + f'<script type="application/ld+json">{self._json_ld(a)}</script>\n'
            '</head>\n<body>\n<div id="app"><div class="css-ulaknb">\n'
            + self.masthead()
            + self.ad("top-wrapper", "css-1a4n3uk")
            + '<main id="site-content"><div class="css-1jdoiwt">'
            '<article id="story" class="css-1ibr8dv">\n'
            '<header class="css-1c9pb6n e1h9rw201"><p class="css-14iumbz">Supported by</p>'
            f'<h1 class="css-88wicj" data-testid="headline">{_e(a.title)}</h1>'
            f'<p id="article-summary" class="css-79rysd e1wiw3jv0">{_e(a.description)}</p>\n'
            + self.share_bar(a)
            + self._react_figure(a)
            + self._react_byline(a)
            + "</header>\n"
            + self._react_body(a, "css-at9mc1 evys1bk0")
            + self.newsletter()
            + '<div class="css-1vm5oi9 author-bio"><p class="css-1ug9uvi">'
            f"{_e(a.author_bio)}</p></div>\n"
            '<div class="bottom-of-article css-1hn0tbt">'
            f'<a href="{self.login()}">Log in to comment</a></div>\n'
            "</article></div>\n"
            + self.related(a)
            + "</main>\n"
            + self.site_index()
            + "</div></div>\n"
            + self.script()
            + "</body>\n</html>\n"
        )

    # --- fronts, feeds, sitemaps ----------------------------------------------------------------

    def _story_list(self, indices: list[int]) -> str:
        items = []
        for n, index in enumerate(indices):
            form = 2 if n % 7 == 6 else n % 2  # absolute onion, relative, sometimes clearnet
            items.append(
                f'<li class="css-ye6x8s"><a href="{self.article_href(index, form)}">'
                f"<h2>{_e(self.site.headline(index))}</h2></a>"
                f'<img src="{self.static(self.site.image_path(index))}" alt=""></li>'
            )
        return "<ol>" + "".join(items) + "</ol>\n"

    def front(self, section: Section | None) -> str:
        title = f"{section.name} - The New York Times" if section else "The New York Times"
        prefix = section.path if section else ""
        indices = self.site.latest(30 if section else 50, prefix)
        feed = self.url(f"{RSS_PREFIX}{section.rss if section else 'HomePage'}.xml")
        alternate = f'<link rel="alternate" type="application/rss+xml" href="{feed}">\n'
        subsections = "".join(
            f'<a href="{self.url("/section/" + s.path)}">{_e(s.name)}</a> '
            for s in SECTIONS
            if section and s.path.startswith(section.path + "/")
        )
        return (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n'
            + self.head(title, alternate)
            + '</head>\n<body>\n<div id="app">\n'
            + self.masthead()
            + self.ad("top-ad", "css-1aor85t")
            + '<main id="site-content"><p class="supported">Supported by</p>'
            f"<h1>{_e(section.name if section else 'Today')}</h1>"
            f'<div class="subsections">{subsections}</div>\n'
            + self._story_list(indices)
            + "</main>\n"
            + self.newsletter()
            + self.site_index()
            + "</div>\n</body>\n</html>\n"
        )

    def rss(self, section: Section | None) -> str:
        prefix = section.path if section else ""
        items = []
        for index in self.site.latest(20, prefix):
            path = self.site.article_path(index)
            published = format_datetime(self.site.published(index))
            items.append(
                f"<item><title>{_e(self.site.headline(index))}</title>"
                f"<link>{self.url(path)}</link>"
                f'<guid isPermaLink="true">{self.site.clearnet_url(path)}</guid>'
                f"<category>{_e(self.site.section_of(index).name)}</category>"
                f"<pubDate>{published}</pubDate></item>\n"
            )
        name = section.name if section else "Home Page"
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0" '
            'xmlns:atom="http://www.w3.org/2005/Atom">\n<channel>\n'
            f"<title>NYT &gt; {_e(name)}</title>\n"
            f"<link>{self.url('/section/' + prefix if prefix else '/')}</link>\n"
            "<description>Synthetic mirror feed</description>\n<language>en-us</language>\n"
            + "".join(items)
            + "</channel>\n</rss>\n"
        )

    def robots(self) -> str:
        disallow = "".join(f"Disallow: {path}\n" for path in ROBOTS_DISALLOW)
        return (
            f"User-agent: *\n{disallow}Allow: /ads/public/\n\n"
            "User-agent: mirror-banned-bot\nDisallow: /\n\n"
            f"Sitemap: {self.url(SITEMAP_INDEX)}\nSitemap: {self.url(NEWS_SITEMAP)}\n"
        )

    def sitemap_index(self) -> str:
        entries = "".join(
            f"<sitemap><loc>{self.url(month_sitemap_path(month))}</loc>"
            f"<lastmod>{self.month_lastmod(month)}</lastmod></sitemap>\n"
            for month in self.site.months()
        )
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n'
            f"{entries}</sitemapindex>\n"
        )

    def month_lastmod(self, month: datetime) -> str:
        """Latest change in *month*'s sitemap: its last article's slot end, or an edition."""
        indices = self.site.indices_between(month, _next_month(month))
        lastmod = self.site.published(indices[-1]).replace(minute=0) + SLOT
        for edition in range(1, self.site.edition + 1):
            if any(i in indices for i in self.site.updated_indices(edition)):
                lastmod = max(lastmod, self.site.edition_time(edition))
        return lastmod.isoformat(timespec="seconds")

    def month_sitemap(self, month: datetime) -> bytes | None:
        """The gzipped sitemap of *month* (clearnet URLs), None when it has no articles."""
        indices = self.site.indices_between(month, _next_month(month))
        if not indices:
            return None
        entries = "".join(
            f"<url><loc>{self.site.clearnet_url(self.site.article_path(i))}</loc>"
            f"<lastmod>{self.site.modified(i)}</lastmod></url>\n"
            for i in indices
        )
        xml = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n'
            f"{entries}</urlset>\n"
        )
        return gzip.compress(xml.encode(), mtime=0)

    def news_sitemap(self) -> str:
        entries = "".join(
            f"<url><loc>{self.url(self.site.article_path(i))}</loc><news:news>"
            "<news:publication><news:name>The New York Times</news:name>"
            "<news:language>en</news:language></news:publication>"
            f"<news:publication_date>{self.site.published(i).isoformat()}"
            f"</news:publication_date><news:title>{_e(self.site.headline(i))}</news:title>"
            "</news:news></url>\n"
            for i in range(
                self.site.total_articles - 1, max(-1, self.site.total_articles - 101), -1
            )
        )
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
            'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">\n'
            f"{entries}</urlset>\n"
        )


def month_sitemap_path(month: datetime) -> str:
    return f"/sitemaps/sitemap-{month:%Y-%m}.xml.gz"


def parse_month_sitemap_path(path: str) -> datetime | None:
    """The month of ``/sitemaps/sitemap-YYYY-MM.xml.gz``; None for any other path."""
    prefix, suffix = "/sitemaps/sitemap-", ".xml.gz"
    if not (path.startswith(prefix) and path.endswith(suffix)):
        return None
    try:
        year, month = path[len(prefix) : -len(suffix)].split("-")
        return datetime(int(year), int(month), 1, tzinfo=TZ)
    except ValueError:
        return None


def _next_month(month: datetime) -> datetime:
    return (month + timedelta(days=32)).replace(day=1)


def _and(names: tuple[str, ...]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _slug(name: str) -> str:
    return name.lower().replace(" ", "-")


def _long_date(moment: datetime) -> str:
    return f"{moment:%B} {moment.day}, {moment.year}, {moment:%-I:%M} {moment:%p}".replace(
        "AM", "a.m."
    ).replace("PM", "p.m.")
