"""WARC side of the extractor: decoding, provenance, revisits, and damaged input."""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter

import pytest
from extract_helpers import ONIONS, Page, mirror_pages, mirror_site, write_warc

from crawler.extract import extractor as extractor_module
from crawler.extract.decode import DecodeError, decode_html
from crawler.extract.extractor import ExtractOptions, FileExtractor
from crawler.extract.output import JsonLinesSink
from crawler.extract.run import extract
from crawler.extract.warcread import UnreadableInput, read_captures

OPTIONS = ExtractOptions(onion_map=ONIONS.as_dict())


def run(path, options: ExtractOptions = OPTIONS):
    records: list[dict] = []
    result = FileExtractor(options).run(str(path), lambda a: records.append(a.to_dict()))
    return records, result.stats


def without_provenance(record: dict) -> dict:
    return {k: v for k, v in record.items() if not k.startswith(("warc_", "capture_", "payload"))}


@pytest.mark.parametrize("gz", [True, False], ids=["warc.gz", "warc"])
@pytest.mark.parametrize("encoding", ["gzip", "br", "deflate", None])
def test_mirror_articles_match_ground_truth(tmp_path, gz, encoding):
    site, pages = mirror_site()
    path = tmp_path / ("a.warc.gz" if gz else "a.warc")
    ids = write_warc(path, mirror_pages(site, pages, range(6), encoding=encoding), gz=gz)
    records, stats = run(path)
    assert stats["records"] == 6 and len(records) == 6
    for index, record in enumerate(records):
        truth = site.article(index)
        want = truth.record()
        assert {k: record[k] for k in want} == want
        assert record["capture_url"] == site.onion_url(truth.onion_path)
        assert ".onion" not in json.dumps(without_provenance(record) | {"capture_url": ""})
        assert record["warc_filename"] == path.name
        assert record["warc_record_id"] == ids[record["capture_url"]]
        assert record["payload_digest"].startswith("sha1:")
        assert record["capture_time"] == "2026-01-01T00:00:00Z"
        assert record["extractor"] == "nyt"


def test_a_parser_failure_costs_one_record_and_says_where(tmp_path, monkeypatch, caplog):
    """Fault injection: no known page crashes the parsers (tests/test_fuzz.py looks for one)."""
    site, pages = mirror_site()
    path = tmp_path / "a.warc.gz"
    write_warc(path, mirror_pages(site, pages, range(4)))
    parse = extractor_module.article_from_html
    doomed = site.onion_url(site.article(1).onion_path)

    def failing_on_one(text, capture_url, onion_map):
        if capture_url == doomed:
            raise RecursionError("maximum recursion depth exceeded")
        return parse(text, capture_url, onion_map)

    monkeypatch.setattr(extractor_module, "article_from_html", failing_on_one)
    records, stats = run(path)
    assert [r["capture_url"] for r in records] == [
        site.onion_url(site.article(i).onion_path) for i in (0, 2, 3)
    ]
    assert stats["parser-error"] == 1 and stats["records"] == 3
    assert f"extraction failed on {doomed} (a.warc.gz at offset" in caplog.text


def test_offset_leads_back_to_the_record(tmp_path):
    site, pages = mirror_site()
    path = tmp_path / "a.warc.gz"
    write_warc(path, mirror_pages(site, pages, range(4)))
    records, _ = run(path)
    for record in records:
        capture = next(read_captures(path, Counter(), 10**7, start=record["warc_offset"]))
        assert capture.provenance.warc_record_id == record["warc_record_id"]


@pytest.mark.parametrize("jobs", [1, 2])
def test_revisits_resolve_within_and_across_files(tmp_path, jobs):
    site, pages = mirror_site()
    first, second = mirror_pages(site, pages, range(2))
    key = f"{first.url} {first.date}"
    write_warc(tmp_path / "1.warc.gz", [first, ("revisit", first.url, "2026-01-02T00:00:00Z", key)])
    write_warc(tmp_path / "2.warc.gz", [second])
    # a revisit whose original is in a later file: resolved at the end of the run
    later = Page(url=second.url, body=b"", date="2026-01-03T00:00:00Z")
    write_warc(
        tmp_path / "0.warc.gz",
        [later, ("revisit", second.url, "2026-01-04T00:00:00Z", f"{later.url} {later.date}")],
    )
    out = tmp_path / "out.jsonl"
    sink = JsonLinesSink(out)
    files = [str(tmp_path / n) for n in ("0.warc.gz", "1.warc.gz", "2.warc.gz")]
    summary = extract(files, OPTIONS, sink, jobs=jobs)
    sink.close()
    records = [json.loads(line) for line in out.read_text().splitlines()]
    times = sorted((r["url"], r["capture_time"]) for r in records)
    assert times == sorted(
        [
            (site.article(0).url, "2026-01-01T00:00:00Z"),
            (site.article(0).url, "2026-01-02T00:00:00Z"),
            (site.article(1).url, "2026-01-01T00:00:00Z"),
        ]
    )
    revisit = next(r for r in records if r["capture_time"] == "2026-01-02T00:00:00Z")
    assert revisit["paragraphs"] == site.article(0).paragraphs
    # the empty page of 0.warc.gz has no body; its revisit copies that empty payload
    assert summary.stats["no-body"] == 2


def test_revisit_without_original_is_counted(tmp_path):
    site, pages = mirror_site()
    (page,) = mirror_pages(site, pages, [0])
    write_warc(tmp_path / "x.warc.gz", [page])
    # a WARC holding only the revisit: its original is not among the inputs
    write_warc(
        tmp_path / "r.warc.gz",
        [page, ("revisit", page.url, "2026-02-01T00:00:00Z", f"{page.url} {page.date}")],
    )
    data = (tmp_path / "r.warc.gz").read_bytes()
    first_member_end = _member_ends(data)[0]
    (tmp_path / "only-revisit.warc.gz").write_bytes(data[first_member_end:])
    records, stats = run(tmp_path / "only-revisit.warc.gz")
    assert records == [] and stats["revisit-unresolved"] == 0  # pending, not lost yet
    summary = extract([str(tmp_path / "only-revisit.warc.gz")], OPTIONS, _ListSink())
    assert summary.stats["revisit-unresolved"] == 1


class _ListSink:
    def __init__(self):
        self.records: list[dict] = []

    def write(self, record: dict) -> None:
        self.records.append(record)

    def close(self) -> None:
        pass


def _member_ends(data: bytes) -> list[int]:
    """End offsets of the gzip members of *data* (one per WARC record)."""
    import zlib

    ends, position = [], 0
    while position < len(data):
        decomp = zlib.decompressobj(31)
        decomp.decompress(data[position:])
        position = len(data) - len(decomp.unused_data)
        ends.append(position)
    return ends


def test_skips_are_counted_by_reason(tmp_path):
    site, pages = mirror_site()
    good = mirror_pages(site, pages, range(2))
    front = Page(url=good[0].url.rsplit("/", 5)[0] + "/", body=pages.front(None).encode())
    write_warc(
        tmp_path / "a.warc.gz",
        [
            good[0],
            Page(url=good[0].url + ".css", body=b"body{}", content_type="text/css"),
            Page(url=good[0].url + "?x", body=b"gone", status="404 Not Found"),
            Page(url=good[0].url + "?empty", body=b"<html><head></head></html>"),
            Page(url=good[0].url + "?bad", body=b"<html><body><p>caf\xe9</p></body></html>"),
            Page(
                url=good[0].url + "?cut",
                body=b"<html><body><p>Half",
                encoding=None,
                warc_headers={"WARC-Truncated": "disconnect"},
            ),
            front,
            good[1],
        ],
    )
    records, stats = run(tmp_path / "a.warc.gz")
    assert [r["url"] for r in records] == [site.article(0).url, site.article(1).url]
    assert stats["not-html"] == 1
    assert stats["http-status"] == 1
    assert stats["no-body"] == 1
    assert stats["invalid-utf-8"] == 1
    assert stats["not-article"] == 1
    assert stats["truncated-capture"] == 1


def test_oversized_page_is_skipped_without_loading_it(tmp_path):
    site, pages = mirror_site()
    good = mirror_pages(site, pages, range(2))
    big = b"<html><body>" + b"<p>" + b"x" * (50 * 1024 * 1024) + b"</p></body></html>"
    huge = Page(url=good[0].url + "?big", body=big, encoding=None)
    write_warc(tmp_path / "a.warc", [good[0], huge, good[1]], gz=False)
    records, stats = run(tmp_path / "a.warc")
    assert len(records) == 2 and stats["too-large"] == 1


def test_truncated_gzip_member_resynchronises(tmp_path):
    site, pages = mirror_site()
    path = tmp_path / "a.warc.gz"
    write_warc(path, mirror_pages(site, pages, range(5)))
    data = path.read_bytes()
    ends = _member_ends(data)
    # cut the third record's member in half: records 0, 1, 3, 4 must survive
    start, end = ends[1], ends[2]
    damaged = data[:start] + data[start : start + (end - start) // 2] + data[end:]
    path.write_bytes(damaged)
    records, stats = run(path)
    assert [r["url"] for r in records] == [site.article(i).url for i in (0, 1, 3, 4)]
    assert stats["damaged:gzip"] == 1


def test_file_truncated_at_the_end_keeps_what_came_before(tmp_path):
    site, pages = mirror_site()
    path = tmp_path / "a.warc.gz"
    write_warc(path, mirror_pages(site, pages, range(3)))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 500])
    records, stats = run(path)
    assert [r["url"] for r in records] == [site.article(i).url for i in (0, 1)]
    # a cut gzip member either fails to inflate or ends early, depending on where it is cut
    damage = {k: n for k, n in stats.items() if k.startswith("damaged:")}
    assert damage in ({"damaged:gzip": 1}, {"damaged:truncated": 1})


@pytest.mark.parametrize("delta", [-40, 40], ids=["too-short", "too-long"])
@pytest.mark.parametrize("gz", [True, False], ids=["warc.gz", "warc"])
def test_wrong_content_length(tmp_path, delta, gz):
    site, pages = mirror_site()
    path = tmp_path / "a.warc"
    write_warc(path, mirror_pages(site, pages, range(3), encoding=None), gz=False)
    # change the WARC Content-Length of the second record only
    records_bytes = re.split(rb"(?=WARC/1\.[01]\r\n)", path.read_bytes())[1:]
    header, _, rest = records_bytes[1].partition(b"Content-Length: ")
    length, _, tail = rest.partition(b"\r\n")
    records_bytes[1] = (
        header + b"Content-Length: " + str(int(length) + delta).encode() + b"\r\n" + tail
    )
    if gz:
        path = tmp_path / "a.warc.gz"
        path.write_bytes(b"".join(gzip.compress(r, mtime=0) for r in records_bytes))
    else:
        path.write_bytes(b"".join(records_bytes))
    records, stats = run(path)
    urls = [r["url"] for r in records]
    assert urls[0] == site.article(0).url and site.article(1).url not in urls
    damaged = sum(n for k, n in stats.items() if k.startswith("damaged:"))
    assert damaged >= 1
    if gz or delta < 0:  # a too-long plain record swallows the next one; gzip members do not
        assert urls[-1] == site.article(2).url


def test_empty_file_is_counted_not_fatal(tmp_path):
    path = tmp_path / "empty.warc.gz"
    path.write_bytes(b"")
    records, stats = run(path)
    assert records == [] and stats["empty-file"] == 1


@pytest.mark.parametrize(
    "content", [b"hello, this is not a WARC\n" * 100, gzip.compress(b"x" * 999)]
)
def test_non_warc_file_is_unreadable(tmp_path, content):
    path = tmp_path / "notes.warc.gz"
    path.write_bytes(content)
    with pytest.raises(UnreadableInput, match="not a WARC"):
        run(path)


def test_missing_file_is_unreadable(tmp_path):
    with pytest.raises(UnreadableInput, match="No such file"):
        run(tmp_path / "missing.warc.gz")


def test_charset_detection():
    assert decode_html("é".encode("cp1252"), "text/html; charset=windows-1252") == "é"
    meta = b'<html><head><meta charset="iso-8859-1"></head><body>\xe9\x93</body></html>'
    assert "é\u201c" in decode_html(meta, "text/html")  # latin-1 label means windows-1252
    assert decode_html("ü".encode(), "text/html") == "ü"  # undeclared, valid UTF-8
    assert decode_html(b"\xfc", "text/html") == "ü"  # undeclared, not UTF-8: windows-1252
    assert decode_html(b"\xef\xbb\xbfok", "text/html; charset=latin-1") == "ok"  # BOM wins
    with pytest.raises(DecodeError, match="invalid-utf-8"):
        decode_html(b"ab\xfa", "text/html; charset=utf-8")
    with pytest.raises(DecodeError, match="unknown-charset"):
        decode_html(b"x", "text/html; charset=x-no-such")


def test_warcs_of_the_project_writer(tmp_path):
    """Chunked, gzip-encoded captures and a revisit as crawler.warc writes them."""
    from warc_samples import chunk, make_exchange, make_writer

    from crawler.warc.index import CaptureIndex

    site, pages = mirror_site()
    raw = {}
    for index in range(3):
        truth = site.article(index)
        body = gzip.compress(pages.article(truth).encode(), mtime=0)
        raw[truth.onion_path] = (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
            b"Content-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk(body, 1000)
        )
    for run in range(2):  # the second run finds every payload archived: revisits
        index = CaptureIndex(tmp_path / "index.sqlite3")
        writer = make_writer(tmp_path / "warcs", index=index, dedup="url", prefix=f"run{run}")
        for path, response in raw.items():
            writer.write_exchange(make_exchange(response, chunked=True, path=path))
        writer.close()
        index.close()
    files = sorted(str(p) for p in (tmp_path / "warcs").glob("*.warc.gz"))
    kinds = Counter(c.record_type for f in files for c in read_captures(f, Counter(), 10**7))
    assert kinds == {"response": 3, "revisit": 3}
    out = tmp_path / "out.jsonl"
    sink = JsonLinesSink(out)
    summary = extract(files, OPTIONS, sink)
    sink.close()
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert summary.records == 6 and not summary.unreadable
    for index in range(3):
        truth = site.article(index).record()
        captures = [r for r in records if r["url"] == truth["url"]]
        assert len(captures) == 2
        assert {r["warc_filename"][:4] for r in captures} == {"run0", "run1"}
        for record in captures:
            assert {k: record[k] for k in truth} == truth
