"""Property-based fuzzing (hypothesis) of what reads untrusted bytes: the onion-address parser
and mapping, the WARC reader, the payload decoder and the article extractor.

Each target may reject an input only with its documented error (``OnionAddressError``,
``UnreadableInput``, ``DecodeError``, ``NotAnArticle``); anything else is a crash and fails the
test. Inputs tried and rejections are counted per target and reported at the end of the module
(``-rA`` or the terminal summary). ``FUZZ_EXAMPLES`` (default 200) sets the examples per test;
a long campaign is ``FUZZ_EXAMPLES=20000 pytest tests/test_fuzz.py``.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import random
import subprocess
import sys
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import brotli
import pytest
from extract_helpers import ONIONS, mirror_pages, mirror_site, write_warc
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from warcio.archiveiterator import ArchiveIterator

from crawler.extract.decode import DecodeError, decode_html, read_payload
from crawler.extract.extractor import article_from_html
from crawler.extract.page import NotAnArticle
from crawler.extract.warcread import UnreadableInput, read_captures
from crawler.tor.onion import (
    OnionAddressError,
    is_onion_host,
    onion_address_from_public_key,
    parse_onion_address,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "200"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
MAX_BODY = 2_000_000
SITE, PAGES = mirror_site(articles=12)
BASE32 = "abcdefghijklmnopqrstuvwxyz234567"


class Tally:
    """Inputs tried, clean rejections and failures, per fuzz target."""

    def __init__(self) -> None:
        self.tried: Counter = Counter()
        self.rejected: Counter = Counter()
        self.failed: Counter = Counter()

    @contextlib.contextmanager
    def trying(self, target: str, inputs: int = 1) -> Iterator[None]:
        """Count *inputs* tried on *target*, and one failure if an exception escapes the block
        (a crash, or a broken property's AssertionError; once for a block of several inputs);
        the exception goes on."""
        self.tried[target] += inputs
        try:
            yield
        except Exception:
            self.failed[target] += 1
            raise

    def lines(self) -> list[str]:
        return [
            f"fuzz {target}: {self.tried[target]} inputs, {self.rejected[target]} rejected "
            f"cleanly, {self.failed[target]} failed (crashed or broke a property)"
            for target in sorted(self.tried)
        ]


@pytest.fixture(scope="module")
def tally(request):
    counts = Tally()
    yield counts
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():  # shown whatever -s/-q say
        print("\n" + "\n".join(counts.lines()))


# --- onion addresses -------------------------------------------------------------------------


@st.composite
def mutated_onions(draw) -> str:
    """A valid v3 address (any 32-byte key), then edited: characters replaced, inserted or
    dropped, case changed, subdomains, dots and spaces added."""
    label = onion_address_from_public_key(draw(st.binary(min_size=32, max_size=32)))[:-6]
    chars = list(label)
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["replace", "insert", "delete", "upper"]))
        position = draw(st.integers(0, max(len(chars) - 1, 0)))
        alphabet = st.sampled_from(BASE32 + "018=-._ \u00e9\x00")
        if kind == "replace" and chars:
            chars[position] = draw(alphabet)
        elif kind == "insert":
            chars.insert(position, draw(alphabet))
        elif kind == "delete" and chars:
            del chars[position]
        elif chars:
            chars[position] = chars[position].upper()
    prefix = draw(st.sampled_from(["", "www.", "static01.", "a.b.", "."]))
    suffix = draw(st.sampled_from([".onion", ".onion.", ".ONION", ".onion ", ".onio", ""]))
    return prefix + "".join(chars) + suffix


@FUZZ
@given(st.one_of(st.text(max_size=120), mutated_onions()))
def test_onion_parser_accepts_only_round_tripping_addresses(tally, address):
    with tally.trying("onion-parser"):
        try:
            key = parse_onion_address(address)
        except OnionAddressError as exc:
            tally.rejected["onion-parser"] += 1
            assert str(exc), "the error says why"
            return
        assert len(key) == 32
        label = address.strip().rstrip(".").lower().rsplit(".", 2)[-2]
        assert onion_address_from_public_key(key) == label + ".onion"


@FUZZ
@given(
    st.one_of(
        st.text(max_size=200),
        st.builds(
            lambda scheme, host, rest: f"{scheme}://{host}{rest}",
            st.sampled_from(["http", "https", "ftp", "HTTPS"]),
            st.one_of(
                st.sampled_from(
                    [
                        "www.nytimes.com",
                        "static01.nyt.com",
                        "nytimes.com.evil.example",
                        "evilnytimes.com",
                        "127.0.0.1",
                        "[::1]",
                        "user:pw@www.nytimes.com",
                        "www.nytimes.com:443",
                        "www.nytimes.com.",
                        "WWW.NYTIMES.COM",
                    ]
                ),
                mutated_onions(),
                st.text(max_size=40),
            ),
            st.text(max_size=60),
        ),
    )
)
def test_onion_mapping_never_yields_a_non_onion_host(tally, url):
    with tally.trying("onion-map"):
        try:
            onion_url = ONIONS.to_onion_url(url)
            clearnet_url = ONIONS.to_clearnet_url(url)
        except ValueError:  # urlsplit's own rejection (e.g. an unbalanced '['), before any mapping
            tally.rejected["onion-map"] += 1
            return
        assert isinstance(clearnet_url, str)
        if onion_url is None:
            tally.rejected["onion-map"] += 1
            return
        host = urlsplit(onion_url).hostname
        parse_onion_address(host)  # raises if the mapping produced anything but an onion host
        if not is_onion_host(urlsplit(url).hostname):
            clearnet_host = ONIONS.to_clearnet_host(host)
            assert clearnet_host is not None, "clearnet maps only to the map's onions"


# --- the WARC reader -------------------------------------------------------------------------


def _sample_warc(directory: Path, gz: bool) -> tuple[bytes, list[tuple[int, int, str, bytes]]]:
    """A WARC of five mirror articles (mixed content codings) and, per record, its
    (start, end, target URI, decoded body)."""
    pages = mirror_pages(SITE, PAGES, range(5))
    for page, coding in zip(pages, ["gzip", "br", None, "deflate", "gzip"], strict=True):
        page.encoding = coding
    path = directory / ("sample.warc.gz" if gz else "sample.warc")
    write_warc(path, pages, gz=gz)
    data = path.read_bytes()
    bodies = {page.url: page.body for page in pages}
    spans: list[tuple[int, int, str, bytes]] = []
    with open(path, "rb") as stream:
        iterator = ArchiveIterator(stream)
        for record in iterator:
            uri = record.rec_headers.get_header("WARC-Target-URI")
            iterator.read_to_end()
            start, length = iterator.member_info
            spans.append((start, start + length, uri, b""))
    return data, [(start, end, uri, bodies[uri]) for start, end, uri, _ in spans]


class SampleWarc:
    def __init__(self, gz: bool, directory: Path):
        self.gz = gz
        self.data, self.spans = _sample_warc(directory, gz)

    def __repr__(self) -> str:  # hypothesis prints it with a failing example
        return f"SampleWarc(gz={self.gz}, {len(self.data)} bytes, {len(self.spans)} records)"


@pytest.fixture(scope="module", params=[True, False], ids=["warc.gz", "warc"])
def sample_warc(request, tmp_path_factory):
    return SampleWarc(request.param, tmp_path_factory.mktemp("fuzz-warc"))


@st.composite
def damage(draw, size: int) -> list[tuple[str, int, bytes]]:
    """One to four edits of a file of *size* bytes: (kind, position, bytes)."""
    edits = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "zero"]))
        position = draw(st.integers(0, max(size - 1, 0)))
        junk = draw(
            st.one_of(
                st.binary(min_size=1, max_size=64),
                st.sampled_from([b"\x1f\x8b\x08", b"\nWARC/1.1\r\n", b"\r\n\r\n", b"\x00" * 512]),
            )
        )
        edits.append((kind, position, junk))
    return edits


def _apply(data: bytes, edits: list[tuple[str, int, bytes]]) -> tuple[bytes, int]:
    """The damaged bytes and the first position where they differ from *data*."""
    out = bytearray(data)
    first = len(data)
    for kind, position, junk in edits:
        position = min(position, len(out))
        first = min(first, position)
        if kind == "flip" and position < len(out):
            out[position] ^= junk[0] or 0xFF
        elif kind == "truncate":
            del out[position:]
        elif kind == "insert":
            out[position:position] = junk
        elif kind == "delete":
            del out[position : position + len(junk)]
        elif kind == "zero":
            out[position : position + len(junk)] = bytes(len(junk))
    return bytes(out), first


@FUZZ
@given(data=st.data())
def test_warc_reader_survives_damage_and_keeps_records_before_it(
    tally, sample_warc, tmp_path_factory, data
):
    gz, original, spans = sample_warc.gz, sample_warc.data, sample_warc.spans
    edits = data.draw(damage(len(original)))
    damaged, first = _apply(original, edits)
    assume(damaged != original)
    name = "damaged.warc.gz" if gz else "damaged.warc"
    path = tmp_path_factory.mktemp("fuzz-input", numbered=True) / name
    path.write_bytes(damaged)
    stats: Counter = Counter()
    target = f"warc-reader ({name.split('.', 1)[1]})"
    with tally.trying(target):
        unreadable = False
        try:
            captures = list(read_captures(path, stats, MAX_BODY))
        except UnreadableInput as exc:  # the caller reports the whole file as unreadable
            assert str(exc).startswith(str(path))
            captures, unreadable = [], True
        finally:
            path.unlink()
        bodies = {capture.target_uri: capture.body for capture in captures}
        ends = {end for _start, end, _uri, _body in spans}
        trailer = 0 if gz else 4  # a plain record ends with CRLF CRLF after its block
        for _start, end, uri, body in spans:
            if end + trailer <= first:
                assert bodies.get(uri) == body, f"a record before the damage at {first} was lost"
        if gz:  # gzip's CRC guards each member: a damaged 200 never passes for the original
            originals = {uri: body for _s, _e, uri, body in spans}
            for capture in captures:
                if capture.status == 200 and capture.target_uri in originals:
                    assert capture.body == originals[capture.target_uri]
        kept = sum(bodies.get(uri) == body for _s, _e, uri, body in spans)
        cut_at_boundary = len(edits) == 1 and edits[0][0] == "truncate" and first in {0} | ends
        if kept < len(spans):
            tally.rejected[target] += 1
            # only gzip members carry a checksum; in a plain .warc an edited header can hide the
            # records after it (reported, not asserted: the writer always writes .warc.gz)
            if gz and not (unreadable or cut_at_boundary):
                assert sum(stats.values()), f"lost records are counted, stats={dict(stats)}"


# --- payload decoding and extraction ---------------------------------------------------------

CODINGS = ["gzip", "x-gzip", "deflate", "br", "identity", "gzip, br", "compress", "", "GZIP"]


@st.composite
def coded_payloads(draw) -> tuple[bytes, str]:
    body = draw(st.binary(max_size=4096))
    coding = draw(st.sampled_from(CODINGS))
    encoders = {
        "gzip": lambda b: gzip.compress(b, mtime=0),
        "br": brotli.compress,
        "deflate": zlib.compress,
    }
    if draw(st.booleans()) and coding in encoders:
        body = encoders[coding](body)
        if draw(st.booleans()) and body:  # cut short, or one byte flipped
            cut = draw(st.integers(0, len(body) - 1))
            body = body[:cut] if draw(st.booleans()) else body[:cut] + b"\xa5" + body[cut + 1 :]
    return body, coding


@FUZZ
@given(coded_payloads(), st.integers(0, 8192))
def test_payload_decoder_returns_bounded_bytes_or_a_reason(tally, payload, limit):
    body, coding = payload
    with tally.trying("payload-decoder"):
        try:
            decoded = read_payload(io.BytesIO(body), coding, limit)
        except DecodeError as exc:
            tally.rejected["payload-decoder"] += 1
            assert exc.reason in ("bad-content-encoding", "unsupported-content-encoding")
            return
        assert decoded is None or len(decoded) <= limit


CHARSETS = ["utf-8", "UTF8", "latin1", "shift_jis", "utf-16", "x-nonsense", "", '"utf-8"', "\u00e9"]
TAGS = ["html", "head", "body", "article", "section", "div", "p", "h1", "span", "a", "script"]
TAGS += ["style", "meta", "figure", "figcaption", "time", "header", "main", "table", "svg"]


def _html_tree(leaves):
    return st.recursive(
        leaves,
        lambda children: st.builds(
            lambda tag, attrs, kids: f"<{tag}{attrs}>{''.join(kids)}</{tag}>",
            st.sampled_from(TAGS),
            st.sampled_from(
                [
                    "",
                    ' class="StoryBodyCompanionColumn"',
                    ' itemprop="articleBody"',
                    ' name="articleBody"',
                    ' data-testid="headline"',
                    ' charset="x-bogus"',
                    ' type="application/ld+json"',
                    ' href="https://www.nytimes.com/2020/01/01/world/x.html"',
                    ' href="javascript:alert(1)"',
                ]
            ),
            st.lists(children, max_size=5),
        ),
        max_leaves=40,
    )


@st.composite
def html_bodies(draw) -> bytes:
    """Random markup, or a mirror article page with slices deleted, duplicated or replaced."""
    if draw(st.booleans()):
        leaves = st.one_of(
            st.text(max_size=80),
            st.sampled_from(['{"@type":"NewsArticle","headline":', "<p>", "</div>", "&#0;"]),
        )
        text = draw(_html_tree(leaves))
        encoding = draw(st.sampled_from(["utf-8", "utf-16", "cp1252", "latin-1"]))
        return text.encode(encoding, errors="replace")
    page = PAGES.article(SITE.article(draw(st.integers(0, 11)))).encode()
    for _ in range(draw(st.integers(1, 5))):
        start = draw(st.integers(0, len(page)))
        end = min(len(page), start + draw(st.integers(0, 4000)))
        kind = draw(st.sampled_from(["delete", "duplicate", "replace"]))
        if kind == "delete":
            page = page[:start] + page[end:]
        elif kind == "duplicate":
            page = page[:end] + page[start:end] + page[end:]
        else:
            page = page[:start] + draw(st.binary(max_size=200)) + page[end:]
    return page


@FUZZ
@given(html_bodies(), st.sampled_from(CHARSETS), st.booleans())
def test_extractor_returns_an_article_or_a_reason(tally, body, charset, declare):
    content_type = f"text/html; charset={charset}" if declare else "text/html"
    url = SITE.onion_url(SITE.article(0).onion_path)
    with tally.trying("extractor"):
        try:
            text = decode_html(body, content_type)
            article = article_from_html(text, url, ONIONS)
        except (DecodeError, NotAnArticle) as exc:
            tally.rejected["extractor"] += 1
            assert exc.reason
            return
        assert isinstance(article.title, str)
        assert all(isinstance(p, str) for p in article.paragraphs)
        for link in article.links:
            assert ".onion" not in (urlsplit(link.url).hostname or ""), "links are in clearnet form"


# --- the whole command, in its own process ---------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_scrapy_extract_survives_a_directory_of_damaged_warcs(tally, tmp_path):
    """``scrapy extract`` over 40 randomly damaged WARCs: it exits normally (0), skips and
    counts the damage, and writes every record it could read."""
    rng = random.Random(9)
    originals = {gz: _sample_warc(tmp_path, gz) for gz in (True, False)}
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for n in range(40):
        gz = n % 2 == 0
        data = bytearray(originals[gz][0])
        for _ in range(rng.randint(1, 4)):
            position = rng.randrange(len(data) // 4, len(data))
            if rng.random() < 0.5:
                data[position] ^= 0x5A
            else:
                del data[position : position + rng.randint(1, 300)]
        (inputs / f"damaged-{n:02d}.warc{'.gz' if gz else ''}").write_bytes(bytes(data))
    # one run over the 40 files: a failure of it counts once
    with tally.trying("scrapy extract (files)", inputs=40):
        out = tmp_path / "out.jsonl"
        result = subprocess.run(
            [sys.executable, "-m", "scrapy", "extract", str(inputs), "-o", str(out)],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=100,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert "Traceback" not in result.stderr, result.stderr[-3000:]
        assert "  damaged: none" not in result.stderr, "the damage is counted and reported"
        files_with_records = {json.loads(line)["warc_filename"] for line in out.open()}
        assert files_with_records, "the undamaged first quarter of the files still gives articles"
        tally.rejected["scrapy extract (files)"] += 40 - len(files_with_records)
