"""The README documents every setting of the project's settings module."""

import re

from conftest import REPO_ROOT

import settings

SCRAPY_PLUMBING = {
    "BOT_NAME",
    "SPIDER_MODULES",
    "NEWSPIDER_MODULE",
    "COMMANDS_MODULE",
    "ADDONS",
    "DOWNLOADER_MIDDLEWARES",
    "DUPEFILTER_CLASS",
    "EXTENSIONS",
    "USER_AGENT",
    "FEED_EXPORT_ENCODING",
    "LOG_LEVEL",
    "AUTOTHROTTLE_START_DELAY",
    "AUTOTHROTTLE_TARGET_CONCURRENCY",
}


def test_every_setting_is_in_the_readme():
    readme = (REPO_ROOT / "README.md").read_text()
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", readme))
    names = {n for n in vars(settings) if re.fullmatch(r"[A-Z][A-Z0-9_]+", n)}
    assert names - SCRAPY_PLUMBING - documented == set()


def test_readme_opens_with_the_two_setup_commands():
    readme = (REPO_ROOT / "README.md").read_text()
    first_block = readme.split("```", 2)[1]
    assert "make demo" in first_block and "make test" in first_block
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
