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
    commands = [line.split("#")[0].strip() for line in first_block.splitlines()[1:]]
    assert commands[:2] == ["make demo", "make test"], commands
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    ci_commands = [line.strip() for line in ci.splitlines() if line.strip().startswith("make")]
    assert ci_commands == ["make test"], "CI must run exactly the README's test command"
