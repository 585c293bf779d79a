"""What the collector tests watch (pdp/collector.py): the collections that start while a test
runs, whether a full collection would walk an object, and the collector left as it was found.
A test module imports the fixtures it uses by name."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def collector_restored() -> Iterator[None]:
    """The thresholds, debug flags, frozen objects and on/off state a test changed, undone."""
    thresholds = gc.get_threshold()
    yield
    gc.set_threshold(*thresholds)
    gc.set_debug(0)
    gc.garbage.clear()
    gc.unfreeze()
    gc.enable()


@pytest.fixture(name="collections")  # imported as `watched_collections`: a test asks `collections`
def watched_collections() -> Iterator[list[int]]:
    """The generations of the collections that start meanwhile."""
    seen: list[int] = []

    def callback(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            seen.append(info["generation"])

    gc.callbacks.append(callback)
    yield seen
    gc.callbacks.remove(callback)


def tracked_outside_permanent(thing: object) -> bool:
    """Whether a generation-2 collection would walk `thing` (frozen objects are skipped)."""
    return any(o is thing for o in gc.get_objects())
