"""The extractor against the real NYT pages (../shared/nyt-pages): the issue's targets."""

from __future__ import annotations

import pytest

from crawler.extract.evaluate import evaluate, main
from crawler.tor.onion import OnionMap
from settings import ONION_MAP


@pytest.fixture(scope="module")
def report(nyt_pages, tmp_path_factory):
    warc = tmp_path_factory.mktemp("eval") / "nyt-pages.warc.gz"
    return evaluate(nyt_pages, OnionMap(ONION_MAP), warc)


@pytest.mark.slow
def test_targets_on_the_real_pages(report):
    details = "\n".join(report.failures)
    assert report.rate("title") == 1.0, details
    assert report.rate("date") == 1.0, details
    assert report.rate("authors") >= 0.95, details
    assert report.rate("paragraph") == 1.0, details
    assert report.rate("must_not_contain") == 1.0, details
    assert report.rate("page_type") == 1.0, details
    assert report.totals["paragraph"] >= 50  # the manifest's assertions were all read


@pytest.mark.slow
def test_better_than_trafilatura_on_the_same_pages(report):
    assert report.overall(report.ours) > report.overall(report.theirs)


@pytest.mark.slow
def test_cli_prints_the_side_by_side_table(nyt_pages, capsys):
    assert main([str(nyt_pages)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["field", "checks", "nyt", "trafilatura"]
    assert any(line.startswith("overall") for line in out.splitlines())
