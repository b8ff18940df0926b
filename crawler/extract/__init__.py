"""WARC to cleaned article records."""
