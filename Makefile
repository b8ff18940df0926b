# onion-archiver. `make demo` and `make test` set up everything they need on a fresh
# Debian machine (the `tor` package via apt-get, a virtualenv in .venv).

VENV ?= .venv
PY := $(VENV)/bin/python
SCRAPY := $(VENV)/bin/scrapy
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SYSTEM_PACKAGES := tor chromium curl
PYTEST_ARGS ?=

.PHONY: setup system-packages demo test test-quick lint crawl torcheck clean

setup: system-packages $(VENV)/.installed

# python3-venv only where python3 cannot make a virtualenv (Debian's own python3 without it).
system-packages:
	@missing=""; for p in $(SYSTEM_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	python3 -c 'import ensurepip, venv' 2>/dev/null || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,archive]'
	# pywb pulls in brotlipy, whose `brotli` package shadows Google's Brotli (Scrapy needs
	# Decompressor.process): remove it and restore Brotli's module.
	$(PY) -m pip uninstall -q -y brotlipy
	$(PY) -m pip install -q --force-reinstall --no-deps 'brotli>=1.2'
	touch $@

# The main job, offline: a private Tor network on loopback serving the local mirror as a
# v3 onion service, crawled through Tor into warc_output/, then extracted.
demo: setup
	PYTHONPATH=tests $(PY) tests/demo.py

# The whole test suite, real tor processes included (about ten minutes on 2 cores).
test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

# Quick run: no tests that start tor processes or take long.
test-quick: setup
	$(PY) -m pytest -m "not tor and not slow" $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# A real crawl of the NYT onion through the system Tor (127.0.0.1:9050 / 9051): the job
# wrapper runs `scrapy torcheck`, `scrapy crawl nytimes`, then `scrapy extract` of its WARCs.
crawl: setup
	$(PY) -m crawler.job

torcheck: setup
	$(SCRAPY) torcheck

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis *.egg-info
