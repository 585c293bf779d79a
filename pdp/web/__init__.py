"""Serving small ASGI apps inside a running PDP: its monitoring endpoint, the development
token issuer, the admin API."""

from pdp.web.embedded import serve_asgi

__all__ = ["serve_asgi"]
