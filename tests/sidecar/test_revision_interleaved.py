"""Checks answered while a worker follows a revision (`Answers._follow`: the registry moved,
then the switch prepared a chunk at a time, the loop serving checks before each chunk, then
the switch): every answer equals a fresh decision on the snapshot of the revision the worker
held when it was asked or when it was answered (before the switch: the old revision's
answer, as before the event came; never one from a view the delta should have dropped), and
once the switch is made, only the new revision's; what is cached meanwhile is kept by the
switch only where the new revision decides alike. Chunks of one item, so that checks fall
between every two steps."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pdp.core import decide
from pdp.policy import PolicySnapshot
from sidecar import answers as answers_module
from tests.sidecar.delta_world import (
    IDENTITIES,
    Follower,
    World,
    edit,
    following,
    fresh_view,
    requests,
)
from tests.sidecar.test_revision_delta import CHANGES

ASKED = [(identity, request, key) for identity in IDENTITIES for request, key in requests(identity)]


@pytest.fixture(autouse=True)
def chunks_of_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(answers_module, "PREPARE_CHUNK", 1)
    monkeypatch.setattr(answers_module, "PREPARE_SLICE_SECONDS", 0.0)


async def checked_while_following(
    follower: Follower, snapshots: dict[str, PolicySnapshot], until: str
) -> list[str]:
    """Ask every check again and again until the worker serves `until` and one more round
    is done; the answers that no fresh decision of the revisions held around them gives."""
    answers, wrong, rounds_after = follower.answers, [], 0
    for _ in range(500):
        rounds_after += answers.revision == until
        if rounds_after > 2:
            return wrong
        for _, request, key in ASKED:
            asked_at = answers.revision
            got = await answers.decide(request, key)
            answered_at = answers.revision
            fresh = {
                decide(fresh_view(snapshots[r], request.identity), request)
                for r in {asked_at, answered_at}
                if r is not None
            }
            if got not in fresh:
                wrong.append(f"{request} at {asked_at}..{answered_at}: {got}, fresh {fresh}")
            await asyncio.sleep(0)
    raise AssertionError(f"the worker did not reach {until}")


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(CHANGES, min_size=1, max_size=4))
def test_checks_answered_during_a_follow_answer_at_the_revision_held(changes: list[Any]) -> None:
    async def scenario() -> list[str]:
        world = World()
        async with following(world) as follower:
            snapshots = {follower.snapshot.revision: follower.snapshot}
            await follower.ask_everything()
            wrong = []
            for change in changes:
                # the views held, their decisions not: the checks meanwhile decide on them
                # and cache what the switch must look at again
                follower.answers._decisions.clear()
                edit(world, change)
                revision = follower.publish(world)
                snapshots[revision] = follower.snapshot
                wrong += await checked_while_following(follower, snapshots, revision)
                await follower.caught_up()
                wrong += follower.wrong_in_memory()
            return wrong

    assert asyncio.run(scenario()) == []
