"""Spiders of onion-archiver."""
