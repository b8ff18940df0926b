"""Byte-faithful WARC capture and writing."""
