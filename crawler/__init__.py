"""onion-archiver: a Tor-aware archival crawler (Scrapy spiders, WARC capture, extraction)."""

__version__ = "0.1.0"
