"""The `pdp` command, the entry point above every other layer: it may import anything."""

from pdp.cli.main import main

__all__ = ["main"]
