"""Crawlers: list a platform's databases, schemas and tables for object sync."""
