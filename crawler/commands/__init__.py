"""Scrapy subcommands of onion-archiver (torcheck, extract, wacz)."""
