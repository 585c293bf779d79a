"""Crawlers: list a platform's databases, schemas, tables and columns for object sync."""

from pdp.crawl.base import Check, Crawler, CrawlError, Exclusions, open_crawler

__all__ = ["Check", "CrawlError", "Crawler", "Exclusions", "open_crawler"]
