"""The revision switch, step by step, through a real PDP service and a sidecar's Answers
following its watch: a revision whose delta names users the worker holds arrives; their new
views are fetched while the worker still answers at the revision it holds; then it switches at
once, and their next checks need no round trip. A PDP that does not answer the prefetch in time
does not hold the switch back: past the bound the worker switches and drops those views, and
their checks fetch again or are denied, never answered from the revision before."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import grpc
import pytest

from pdp.api import pb
from pdp.core import decide
from pdp.core.model import Basis, Identity, Request, TableRef
from pdp.service.server import PdpServicer
from sidecar.answers import Answers
from tests.sidecar.delta_world import Follower, World, edit, following, fresh_view, request_key

U2 = Identity("u2", frozenset({"g3"}))  # reads s2 through the g3 policy, and nobody else does
READ_S2 = Request(U2, "SelectFromColumns", TableRef("hive", "s2", "t0"))


def noted(follower: Follower, request: Request) -> Request:
    """`request`, known to the follower by its cache key (what `wrong_in_memory` reads)."""
    follower.asked[request_key(request, None)] = request
    return request


class WatchedPdp(PdpServicer):
    """A PDP service that notes, for each entitlements request, who asked and which revision
    the sidecar served at that moment (`sidecar`, set by the test), and that holds the
    requests of the users in `hold` until `release` is set."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.asked: list[tuple[str, str | None]] = []
        self.sidecar = lambda: None
        self.hold: set[str] = set()
        self.release = asyncio.Event()

    async def GetEntitlements(
        self, request: pb.EntitlementsRequest, context: grpc.aio.ServicerContext
    ) -> pb.Entitlements:
        self.asked.append((request.identity.user, self.sidecar()))
        if request.identity.user in self.hold:
            await self.release.wait()
        return await super().GetEntitlements(request, context)


async def test_the_views_a_revision_names_are_fetched_before_the_worker_switches_to_it():
    world = World()
    async with following(world, servicer=WatchedPdp) as follower:
        pdp, answers = follower.servicer, follower.answers
        assert isinstance(pdp, WatchedPdp)
        pdp.sidecar = lambda: answers.revision
        await follower.ask_everything()
        assert (await answers.decide(noted(follower, READ_S2))).allowed
        # step 1: the revision arrives, its delta naming g3 (u2 as Trino sends it)
        world.grants.pop("g3")
        revision = follower.publish(world)
        await follower.caught_up()
        # step 2: u2's new view was asked while the worker still served r1, once
        assert pdp.asked[-1:] == [("u2", "r1")]
        # step 3: the worker switched with u2's new view at hand: no request on u2's next check
        asked = len(pdp.asked)
        assert answers.revision == revision and answers.has_view(U2)
        decision = answers.decided(READ_S2)
        assert decision is not None and not decision.allowed
        assert decision == decide(fresh_view(follower.snapshot, U2), READ_S2)
        assert await follower.ask_everything() == [] and follower.wrong_in_memory() == []
        assert len(pdp.asked) == asked


async def test_a_pdp_that_hangs_during_the_prefetch_lets_the_worker_switch_at_the_bound():
    world = World()
    async with following(world, prefetch_seconds=0.05, servicer=WatchedPdp) as follower:
        pdp, answers = follower.servicer, follower.answers
        assert isinstance(pdp, WatchedPdp)
        await follower.ask_everything()
        assert (await answers.decide(noted(follower, READ_S2))).allowed
        pdp.hold.add("u2")  # the prefetch of u2's view never gets an answer
        world.grants.pop("g3")
        revision = follower.publish(world)
        await follower.caught_up()  # switched at the bound, without u2's view
        assert answers.revision == revision and not answers.has_view(U2)
        assert answers.decided(READ_S2) is None  # nothing of r1 answers for u2 any more
        assert follower.wrong_in_memory() == []
        # u2's check waits for its view at the new revision: denied once the PDP answers
        check = asyncio.create_task(answers.decide(READ_S2))
        await asyncio.sleep(0.1)
        assert not check.done()
        pdp.release.set()
        decision = await check
        assert not decision.allowed and decision.rule is not Basis.PDP_UNAVAILABLE
        assert await follower.ask_everything() == []


async def test_a_pdp_gone_during_the_prefetch_leaves_the_named_users_denied():
    world = World()
    async with following(world, prefetch_seconds=0.05, servicer=WatchedPdp) as follower:
        pdp, answers = follower.servicer, follower.answers
        assert isinstance(pdp, WatchedPdp)
        await follower.ask_everything()
        pdp.hold.add("u2")
        world.grants.pop("g3")
        follower.publish(world)
        await follower.caught_up()
        answers.away = True  # the watch broke meanwhile: a view to fetch is denied at once
        decision = await answers.decide(noted(follower, READ_S2))
        assert (decision.allowed, decision.rule) == (False, Basis.PDP_UNAVAILABLE)
        pdp.release.set()


async def test_a_cold_users_fetch_during_the_prefetch_waits_for_the_switch_not_a_flush():
    world = World()
    # a long bound: the prefetch is held open until the test lets it go
    async with following(world, prefetch_seconds=5.0, servicer=WatchedPdp) as follower:
        pdp, answers = follower.servicer, follower.answers
        assert isinstance(pdp, WatchedPdp)
        await follower.ask_everything()
        held = answers.sizes()["users"]
        pdp.hold.add("u2")
        world.grants.pop("g3")
        asked = len(pdp.asked)  # u2 asked already, when everything was asked at r1
        revision = follower.publish(world)
        for _ in range(500):  # until the prefetch has asked for u2's view at r2
            if ("u2", None) in pdp.asked[asked:]:
                break
            await asyncio.sleep(0.01)
        assert ("u2", None) in pdp.asked[asked:] and answers.revision == "r1"  # r1 answers
        cold = Identity("u3", frozenset({"g1"}))  # not held: asks the PDP, which is at r2
        request = Request(cold, "SelectFromColumns", TableRef("hive", "s1", "t0"))
        check = asyncio.create_task(answers.decide(noted(follower, request)))
        await asyncio.sleep(0.1)
        assert not check.done() and answers.revision == "r1"
        pdp.release.set()
        decision = await check
        assert decision == decide(fresh_view(follower.snapshot, cold), request)
        assert answers.revision == revision
        assert answers.sizes()["users"] == held + 1  # every view kept or fetched, none flushed
        assert follower.wrong_in_memory() == [] and await follower.ask_everything() == []


async def test_a_cold_users_fetch_while_the_registry_moves_waits_for_the_switch_not_a_flush(
    monkeypatch: pytest.MonkeyPatch,
):
    """The registry is moved in a thread before the switch is prepared: a check meanwhile
    that fetches a view from the PDP, already at the new revision, waits for the switch (the
    revision is announced before the move), instead of dropping everything held."""
    world = World()
    moving, go_on = threading.Event(), threading.Event()
    original = Answers._moved_registry

    def slow_move(self: Answers, *args: Any) -> Any:
        moving.set()
        assert go_on.wait(10)
        return original(self, *args)

    async with following(world) as follower:
        answers = follower.answers
        await follower.ask_everything()
        held = answers.sizes()["users"]
        monkeypatch.setattr(Answers, "_moved_registry", slow_move)
        edit(world, ("add", "s2", "t3", frozenset(), False))  # a table: the registry moves
        revision = follower.publish(world)
        for _ in range(500):
            if moving.is_set():
                break
            await asyncio.sleep(0.01)
        assert moving.is_set() and answers.revision == "r1"
        cold = Identity("u3", frozenset({"g1"}))  # not held: asks the PDP, which is at r2
        request = Request(cold, "SelectFromColumns", TableRef("hive", "s1", "t0"))
        check = asyncio.create_task(answers.decide(noted(follower, request)))
        await asyncio.sleep(0.1)
        assert not check.done() and answers.revision == "r1"
        go_on.set()
        decision = await check
        assert decision == decide(fresh_view(follower.snapshot, cold), request)
        assert answers.revision == revision
        assert answers.sizes()["users"] == held + 1  # every view kept or fetched, none flushed
        assert follower.wrong_in_memory() == [] and await follower.ask_everything() == []
