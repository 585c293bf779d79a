"""The worker's long-lived objects stay out of garbage collections (pdp/collector.py): a
large body is parsed without starting one and into frozen objects, a batch's slice starts with
everything alive frozen, and a reference cycle that turns to garbage while frozen is reclaimed
by the next settle, which waits for a quiet worker (no batch in progress, no request
answered since the last tick) unless overdue."""

from __future__ import annotations

import asyncio
import gc
import threading
import weakref

import orjson
import pytest

from pdp import collector
from pdp.collector import Frozen, Pauses, made_frozen
from pdp.wire.trino import parse
from sidecar.turns import Turns
from tests.support.gcwatch import (  # noqa: F401  (fixtures, by name)
    collector_restored,
    tracked_outside_permanent,
    watched_collections,
)

BODY = orjson.dumps(
    {
        "input": {
            "context": {"identity": {"user": "carol", "groups": []}},
            "action": {
                "operation": "FilterTables",
                "filterResources": [
                    {"table": {"catalogName": "hive", "schemaName": "s", "tableName": f"t{i}"}}
                    for i in range(5_000)
                ],
            },
        }
    }
)


def test_a_body_is_parsed_without_a_collection_into_frozen_objects(collections):
    gc.collect()  # young counts left by earlier tests would start one before `made_frozen`
    collections.clear()
    gc.set_threshold(10)  # a collection every 10 new containers
    document = made_frozen(parse, BODY)
    assert collections == []
    items = document["input"]["action"]["filterResources"]
    assert len(items) == 5_000 and gc.is_tracked(items[0])
    assert not tracked_outside_permanent(items[0])
    assert gc.isenabled()  # on again


def test_a_body_that_is_refused_leaves_the_collector_on():
    with pytest.raises(Exception, match=r"duplicate|twice|key"):
        made_frozen(parse, b'{"input": {}, "input": {}}')
    assert gc.isenabled()


def test_overlapping_makes_in_two_threads_leave_the_collector_on():
    """A worker's loop parses a body while a thread moves the registry: the one that began
    second must not see "off" and restore it once the first has turned it back on."""
    begun, first_may_end, second_may_end = (threading.Event() for _ in range(3))

    def first() -> None:
        begun.set()
        assert first_may_end.wait(10)

    thread = threading.Thread(target=made_frozen, args=(first,))
    thread.start()
    assert begun.wait(10) and not gc.isenabled()

    def second() -> None:
        first_may_end.set()
        thread.join(10)  # the first ends while this one is being made
        assert not gc.isenabled()
        second_may_end.set()

    made_frozen(second)
    assert second_may_end.is_set() and gc.isenabled()


def test_a_turn_starts_with_what_is_alive_frozen():
    alive = [{"decided": i} for i in range(100)]
    assert tracked_outside_permanent(alive)

    async def batch() -> bool:
        async with Turns().take():
            return tracked_outside_permanent(alive) or tracked_outside_permanent(alive[0])

    assert asyncio.run(batch()) is False


class Node:
    itself: Node


def frozen_cycle() -> weakref.ref[Node]:
    """A reference cycle, frozen while alive, then garbage."""
    node = Node()
    node.itself = node
    gc.freeze()
    return weakref.ref(node)


def test_a_frozen_cycle_turned_garbage_is_reclaimed_by_the_next_settle():
    gone = frozen_cycle()
    gc.collect()
    assert gone() is not None  # frozen: no collection sees it
    Frozen().settle()
    assert gone() is None
    assert gc.get_freeze_count() > 0  # what lives is frozen again


def test_settle_waits_for_growth_and_for_batches_unless_overdue(monkeypatch):
    frozen = Frozen()
    frozen.settle()
    assert frozen.settle_if_grown(busy=False) is False  # nothing new
    kept = [[i] for i in range(frozen.blocks + 1)]  # more than doubles the allocated blocks
    gc.freeze()
    assert frozen.settle_if_grown(busy=True) is False
    monkeypatch.setattr(collector, "SETTLE_SECONDS", 0.0)
    assert frozen.settle_if_grown(busy=True) is True
    assert frozen.count >= len(kept)


def test_a_settle_for_growth_waits_for_a_second_without_requests(monkeypatch):
    """A settle pauses the worker for as long as its full collection walks every container
    (55-70 ms with caches filled by new bodies): while requests are answered it waits, for a
    tick that saw none (or SETTLE_SECONDS), so a flood of new bodies is not paused by the
    caches it fills."""
    frozen = Frozen()
    frozen.settle()
    kept = [[i] for i in range(frozen.blocks + 1)]  # more than doubles the allocated blocks
    assert frozen.tick(in_progress=False, answered=500) is False  # answering
    assert frozen.tick(in_progress=False, answered=9_000) is False  # still answering
    assert frozen.tick(in_progress=True, answered=9_000) is False  # a batch's turns
    assert frozen.tick(in_progress=False, answered=9_000) is True  # a quiet second
    assert frozen.count >= len(kept)
    more = [[i] for i in range(2 * frozen.blocks + 1)]
    monkeypatch.setattr(collector, "SETTLE_SECONDS", 0.0)
    assert frozen.tick(in_progress=False, answered=20_000) is True  # overdue
    assert frozen.count >= len(more)


def test_a_tick_never_counts_the_frozen_objects(monkeypatch):
    """Counting walks every frozen object (a full decision cache: 0.1 s in which the worker
    answers nothing), so the once-a-second look must not count them; a settle does, once."""
    frozen = Frozen()
    frozen.settle()
    counts = []
    real = gc.get_freeze_count
    monkeypatch.setattr(gc, "get_freeze_count", lambda: counts.append(1) or real())
    for _ in range(10):
        frozen.tick(in_progress=False, answered=0)
    assert counts == []
    frozen.settle()
    assert len(counts) == 1


def test_a_tick_freezes_what_lives():
    """Checks of bodies never seen fill the decision cache without any batch's turn freezing
    it; the tick keeps it out of full collections all the same."""
    frozen = Frozen()
    frozen.settle()
    kept = [[i] for i in range(10_000)]
    before = gc.get_freeze_count()
    frozen.tick(in_progress=False, answered=0)
    assert gc.get_freeze_count() >= before + len(kept)


def test_pauses_are_counted_by_generation():
    pauses = Pauses((0.5, 1.0))
    pauses.start()
    try:
        gc.collect(0)
        gc.collect(2)
    finally:
        pauses.stop()
    gc.collect(2)  # no longer counted
    counts = pauses.snapshot()["counts"]
    assert [sum(row) for row in counts] == [1, 0, 1]
