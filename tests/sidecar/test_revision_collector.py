"""A new revision costs the worker no full garbage collection (pdp/collector.py): the
revision it leaves is freed by reference counting alone (no reference cycle among what a switch
drops: the registry, the views, the policy tables), so the worker's once-a-second collector
step only freezes what the revision brought, and a settle (every container walked, 0.2 s at
100,000 tables, in which the worker answers nothing) still waits for growth and a quiet second."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pdp.core.model import PolicyGrants, Registry, View
from sidecar.answers import Prepared, Views
from sidecar.app import Sidecar
from sidecar.config import SidecarConfig
from tests.sidecar.delta_world import World, edit, following, replaced_policy
from tests.support.gcwatch import (  # noqa: F401  (a fixture, by name)
    collector_restored,
    tracked_outside_permanent,
)

# a table added, one dropped, a group's policy moved, the mapping changed (a full flush)
CHANGES = (
    ("add", "s1", "t2", frozenset(), False),
    ("drop", 2),
    ("policy-g1",),
    ("mapping", True),
)


def changed(world: World, change: tuple[Any, ...]) -> None:
    if change == ("policy-g1",):
        replaced_policy(world, "g1", schemas=frozenset({"s2"}))
    else:
        edit(world, change)


@pytest.fixture
def settles() -> Iterator[list[int]]:
    """The full collections that walk everything, frozen objects included: a settle's."""
    seen: list[int] = []

    def callback(phase: str, info: dict[str, Any]) -> None:
        if phase == "start" and info["generation"] == 2 and gc.get_freeze_count() == 0:
            seen.append(1)

    gc.callbacks.append(callback)
    yield seen
    gc.callbacks.remove(callback)


async def test_a_new_revision_is_frozen_without_a_settle(settles):
    world = World()
    async with following(world) as follower:
        answers = follower.answers
        sidecar = Sidecar(
            SidecarConfig(file=Path("sidecar.yaml")), answers._client, answers, (), None
        )
        sidecar._frozen.settle()  # as the worker's start does
        stats = asyncio.create_task(sidecar._save_stats())
        try:
            await follower.ask_everything()
            await asyncio.sleep(1.1)  # the collector's step has seen the revision held
            settles.clear()
            changed(world, CHANGES[0])
            follower.publish(world)
            await follower.caught_up()
            await asyncio.sleep(1.1)  # its next step
            assert settles == []
            registry = answers.known()[1]
            assert registry is not None and registry[0].tables == follower.snapshot.registry.tables
            assert not tracked_outside_permanent(registry[0])  # frozen by the step
        finally:
            stats.cancel()


async def test_what_a_revision_drops_is_freed_without_a_collection():
    """Every object a revision drops is freed by reference counting: a full collection after
    the revisions finds none of the sidecar's registries, views or policy tables unreachable
    (with DEBUG_SAVEALL, what a collection finds stays in gc.garbage to be looked at)."""
    gc.unfreeze()
    gc.collect()
    world = World()
    async with following(world) as follower:
        await follower.ask_everything()
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.garbage.clear()
        for change in CHANGES:
            changed(world, change)
            follower.publish(world)
            await follower.caught_up()
            await follower.ask_everything()
        gc.unfreeze()
        gc.collect()
        kinds = (Registry, View, PolicyGrants, Views, Prepared)
        assert [type(o).__name__ for o in gc.garbage if isinstance(o, kinds)] == []
