"""Revisions that carry a delta, through a real PDP service and a sidecar's Answers following
its watch stream: whatever the change, every answer the sidecar holds after a revision equals a
fresh decision on the new snapshot, and what the change does not touch is kept (a table added
or dropped keeps the view of everyone who sees the same tables after it)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from cachetools import Cache
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pdp.core.model import Access, CatalogRef, Identity, PolicyGrants, SchemaRef, TableRef
from pdp.policy.delta import RevisionDelta
from sidecar.answers import Answers
from sidecar.state import StateFile
from tests.sidecar.delta_world import (
    CLUSTER,
    GROUPS,
    NAMES,
    SCHEMAS,
    SITES,
    USERS,
    Follower,
    World,
    edit,
    following,
    fresh_view,
    replaced_policy,
)

SOME_SCHEMAS = st.frozensets(st.sampled_from(SCHEMAS), max_size=2)
TAGS = st.frozensets(st.sampled_from(["eu", "own"]), max_size=2)
CHANGES = st.one_of(
    st.tuples(
        st.just("policy"),
        st.sampled_from(GROUPS),
        SOME_SCHEMAS,
        TAGS,
        st.sampled_from([Access.READ, Access.WRITE]),
    ),
    st.tuples(st.just("unpolicy"), st.sampled_from(GROUPS)),
    st.tuples(st.just("groups"), st.sampled_from(USERS), st.frozensets(st.sampled_from(GROUPS))),
    st.tuples(st.just("site"), st.sampled_from(USERS), st.frozensets(st.sampled_from(SITES))),
    st.tuples(
        st.just("add"), st.sampled_from(SCHEMAS), st.sampled_from(NAMES), TAGS, st.booleans()
    ),
    st.tuples(st.just("drop"), st.integers(0, 20)),
    st.tuples(st.just("tag"), st.integers(0, 20), TAGS, st.booleans()),
    st.tuples(st.just("mapping"), st.booleans()),
)
# Each step: the changes published back to back (more than one: the watch may skip some).
STEPS = st.lists(st.lists(CHANGES, min_size=1, max_size=3), min_size=1, max_size=5)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(STEPS)
# always tried: a table in s1 added, one dropped (sorted, the fourth is s1.t1), which enter or
# leave g2-in-paris's targets but no view of those its conditions name one by one (u0, u2)
@example([[("add", "s1", "t2", frozenset(), False)], [("drop", 3)]])
def test_after_every_revision_every_answer_held_equals_a_fresh_decision(steps):
    async def scenario() -> list[str]:
        world = World()
        async with following(world) as follower:
            wrong = await follower.ask_everything()
            for changes in steps:
                for change in changes:
                    if tables_only(world, change):  # published alone: the delta is sent
                        wrong += await kept_unless_seen_tables_move(follower, world, change)
                        continue
                    edit(world, change)
                    follower.publish(world)
                await follower.caught_up()
                wrong += follower.wrong_in_memory()
                wrong += await follower.ask_everything()
        return wrong

    assert asyncio.run(scenario()) == []


def tables_only(world: World, change: tuple) -> bool:
    """A table added (a new name) or dropped: object sync's changes."""
    return (change[0] == "add" and change[1:3] not in world.tables) or (
        change[0] == "drop" and bool(world.tables)
    )


async def kept_unless_seen_tables_move(follower: Follower, world: World, change: tuple) -> list:
    """Publish `change` (a table added or dropped) on its own; the views the sidecar held that
    it dropped although the tables their identity sees are the same at both revisions."""
    await follower.caught_up()
    before, held = follower.snapshot, set(follower.answers._views)
    edit(world, change)
    follower.publish(world)
    await follower.caught_up()
    after, kept = follower.snapshot, follower.answers._views
    return [
        f"{change}: the view of {identity} was dropped, its tables unchanged"
        for identity in held - kept.keys()
        if set(fresh_view(before, identity).grants) == set(fresh_view(after, identity).grants)
    ]


# --- examples (no prefetch: what a delta drops; tests/sidecar/test_revision_prefetch.py) -----


async def warmed(follower: Follower) -> tuple[dict, dict]:
    await follower.ask_everything()
    answers = follower.answers
    return dict(answers._views), dict(answers._decisions)


async def test_a_change_to_one_groups_policy_keeps_every_other_users_view_and_decisions():
    world = World()
    async with following(world, prefetch_seconds=0) as follower:
        views, decisions = await warmed(follower)
        replaced_policy(world, "g3", schemas=frozenset({"s1"}))  # only u2 (g3 from Trino)
        follower.publish(world)
        await follower.caught_up()
        kept = follower.answers._views
        assert {i.user for i in views} - {i.user for i in kept} == {"u2"}
        # not refetched: rebuilt on the revision's registry from what the views held
        assert all(kept[i].filters is views[i].filters for i in kept)
        assert all(dict(kept[i].grants) == dict(views[i].grants) for i in kept)
        held = follower.answers._decisions
        users = {follower.asked[key].identity.user for key in held}
        assert "u2" not in users and users == {i.user for i in kept}
        assert {k for k in decisions if follower.asked[k].identity.user != "u2"} == held.keys()
        assert follower.wrong_in_memory() == []


async def test_a_table_added_to_one_schema_keeps_every_view_the_one_it_enters_patched():
    world = World()
    async with following(world, prefetch_seconds=0) as follower:
        views, _ = await warmed(follower)
        edit(world, ("add", "s2", "t3", frozenset(), False))  # granted to g3 only (u2)
        follower.publish(world)
        await follower.caught_up()
        answers = follower.answers
        assert answers._views.keys() == views.keys()
        # u2's view holds g3's policy by position: read in the retargeted policy table
        u2 = Identity("u2", frozenset({"g3"}))
        assert ("hive", "s2", "t3") in answers._views[u2].grants
        # the others hold no policy the table retargets: their grants are kept as they are,
        # with what they found for the tables asked so far
        others = [i for i in views if i != u2 and isinstance(views[i].grants, PolicyGrants)]
        assert others and all(answers._views[i].grants is views[i].grants for i in others)
        assert answers._views[u2].grants is not views[u2].grants
        # decisions on the table, its schema and its catalog are dropped for everyone (what
        # they hold changed); the other tables' decisions are kept, even in its schema
        objects = {follower.asked[k].resource for k in answers._decisions}
        assert not objects & {
            TableRef("hive", "s2", "t3"),
            SchemaRef("hive", "s2"),
            CatalogRef("hive"),
        }
        assert {TableRef("hive", "s2", "t0"), SchemaRef("hive", "s0")} <= objects
        # the registry is patched with the delta's entries, the kept views rebuilt on it
        assert ("hive", "s2", "t3") in (await answers.view(Identity("u0"))).registry.tables
        assert answers.known()[1][0] == follower.snapshot.registry
        assert follower.wrong_in_memory() == [] and await follower.ask_everything() == []


async def test_views_a_switch_keeps_are_saved_as_they_would_be_rebuilt(tmp_path: Path):
    # saving the state after a switch rebuilds nothing: a view still on the registry before
    # is written with its policies by name at their positions in the new one
    world = World()
    async with following(world, prefetch_seconds=0) as follower:
        await warmed(follower)
        edit(world, ("add", "s1", "t2", frozenset(), False))  # s1: g1's schema (u1, u4)
        follower.publish(world)
        await follower.caught_up()
        answers = follower.answers
        behind = answers._views.behind()
        assert Identity("u4") in behind
        path = tmp_path / "state.pb"
        assert await StateFile(path, answers).save(force=True)
        assert answers._views.behind() == behind
        restarted = Answers(lambda: CLUSTER, follower.answers._client)
        assert StateFile(path, restarted).restore() is not None
        restored = restarted._views.held()
        assert restored.keys() == answers._views.keys()
        for identity, view in restored.items():
            fresh = fresh_view(follower.snapshot, identity)
            assert dict(view.grants) == dict(fresh.grants), identity
            assert (view.mask_policies, view.filters) == (fresh.mask_policies, fresh.filters)
        assert ("hive", "s1", "t2") in restored[Identity("u4")].grants


async def test_a_policy_moved_off_a_schema_no_longer_grants_it_to_whom_it_applies():
    # u1's policy (g1) moves from s1 to s2: u1 fetches its entitlements again, which name the
    # policy by position; the sidecar's policy table must say s2 now, not s1
    world = World()
    async with following(world) as follower:
        await warmed(follower)
        replaced_policy(world, "g1", schemas=frozenset({"s2"}))
        follower.publish(world)
        await follower.caught_up()
        answers = follower.answers
        assert set((await answers.view(Identity("u1"))).grants) == {
            ("hive", "s2", "t0"),
            ("hive", "s2", "t1"),
        }
        assert answers.sizes()["users"] > 1  # the other users' views were kept
        assert await follower.ask_everything() == [] and follower.wrong_in_memory() == []


async def test_tables_added_to_a_schema_a_policy_covers_whole_are_granted_by_it():
    world = World()
    async with following(world) as follower:
        await warmed(follower)
        edit(world, ("add", "s1", "t2", frozenset(), False))  # s1: g1's schema (u1, u4)
        follower.publish(world)
        await follower.caught_up()
        edit(world, ("drop", 2))  # sorted tables: (s1, t0) is the third
        follower.publish(world)
        await follower.caught_up()
        answers = follower.answers
        assert answers.sizes()["users"] > 1
        granted = {("hive", "s1", "t1"), ("hive", "s1", "t2")}
        assert set((await answers.view(Identity("u1"))).grants) == granted  # refetched
        assert set((await answers.view(Identity("u4"))).grants) == granted  # kept
        assert answers.known()[1][0] == follower.snapshot.registry
        assert await follower.ask_everything() == [] and follower.wrong_in_memory() == []


async def test_a_policy_added_last_keeps_the_other_users_views():
    world = World()
    async with following(world, prefetch_seconds=0) as follower:
        await warmed(follower)
        world.grants["g4"] = (frozenset({"s1"}), frozenset(), Access.READ)  # nobody is in g4
        world.grants.pop("g0")  # u0 and u2's policy: both refetch
        world.groups["u3"] = frozenset({"g4"})
        follower.publish(world)
        await follower.caught_up()
        answers = follower.answers
        assert {i.user for i in answers._views} == {"u1", "u4", "zed"}
        assert set((await answers.view(Identity("u3"))).grants) >= {("hive", "s1", "t0")}
        assert await follower.ask_everything() == [] and follower.wrong_in_memory() == []


async def test_a_missed_revision_drops_everything():
    world = World()
    async with following(world) as follower:
        await warmed(follower)
        answers = follower.answers
        held = answers.revision
        delta = RevisionDelta("r-not-held", users=frozenset({"u2"}))
        answers.advance("r9", delta)  # a delta from a revision this sidecar never had
        assert held != "r-not-held"
        assert answers.sizes() == {"users": 0, "decisions": 0, "dataPolicyAnswers": 0}
        assert answers.known()[1] is None


async def test_without_a_delta_the_stream_says_drop_everything():
    world = World()
    async with following(world) as follower:
        await warmed(follower)
        follower.answers.advance("r9", None)
        assert follower.answers.sizes()["users"] == 0


async def test_a_switch_rebuilds_no_kept_view_and_none_falls_two_registries_behind():
    """A table change moves the registry: the views it keeps are rebuilt on the new one when
    their users next ask (the switch costs what the delta touches, not every view held), and
    one not asked across changes is brought up before the next switch, so at most two
    registries are alive however many changes pass. Every answer stays a fresh decision's."""
    world = World()
    async with following(world, prefetch_seconds=0) as follower:
        await follower.ask_everything()
        views = follower.answers._views
        for n in range(4):
            edit(world, ("add", "s1", f"new{n}", frozenset(), False))
            follower.publish(world)
            await follower.caught_up()
            if n == 0:  # nothing asked since: every kept view still on the registry before
                assert views and set(views.behind()) == set(views)
            assert views.registry is follower.answers._registry_now()
            held = {id(Cache.__getitem__(views, identity).registry) for identity in views}
            assert len(held | {id(views.registry)}) <= 2
            views.get(sorted(views, key=str)[n % len(views)])  # one user asks (as a check does)
        assert follower.wrong_in_memory() == []
        assert await follower.ask_everything() == []


async def test_a_fault_while_following_a_revision_drops_everything_and_the_watch_goes_on():
    """Were following a delta to fail half-way (a fault of ours), nothing half-switched is
    served: the worker drops all it holds at the new revision, as for a delta it cannot use,
    and keeps following the PDP."""
    world = World()
    async with following(world, prefetch_seconds=0) as follower:
        await follower.ask_everything()
        answers, switch = follower.answers, follower.answers._switch
        faults = []

        def failing(*args: object) -> None:
            faults.append(args[0])
            answers._switch = switch  # type: ignore[method-assign]
            raise RuntimeError("a fault while switching")

        answers._switch = failing  # type: ignore[method-assign]
        replaced_policy(world, "g3", schemas=frozenset({"s1"}))
        revision = follower.publish(world)
        await follower.caught_up()
        assert faults == [revision]
        assert answers.sizes() == {"users": 0, "decisions": 0, "dataPolicyAnswers": 0}
        assert await follower.ask_everything() == []
        edit(world, ("add", "s2", "t3", frozenset(), False))  # the next one is followed
        follower.publish(world)
        await follower.caught_up()
        assert follower.wrong_in_memory() == []
        assert answers.sizes()["users"] > 0  # kept: a delta followed again
