"""The per-revision caches under concurrency: users fetched at the same time share one registry
(so their decisions are cached), and a registry fetched for a revision the watch has left is
never installed for the new one."""

from __future__ import annotations

import asyncio

from pdp.core.model import (
    AccessGrantMapping,
    ClusterSettings,
    Identity,
    Registry,
    Request,
    TableRef,
    View,
    table_key,
)
from pdp.policy.delta import RevisionDelta
from sidecar.answers import Answers

ORDERS = table_key("hive", "sales", "orders")
REFUNDS = table_key("hive", "sales", "refunds")


class SlowPdp:
    """The PdpClient calls the cache makes, each answered after a pause; every registry answer
    is a new object, as each gRPC answer is."""

    def __init__(self, revision: str = "r1") -> None:
        self.revision = revision
        self.registry_calls = 0

    async def entitlements(self, identity: Identity):
        await asyncio.sleep(0.01)
        return self.revision, {}, frozenset(), {}, frozenset()

    async def registry(self):
        self.registry_calls += 1
        revision = self.revision  # the revision when asked, as the PDP would answer
        await asyncio.sleep(0.05)
        tables = {ORDERS} if revision == "r1" else {ORDERS, REFUNDS}
        return revision, Registry.of(frozenset(tables)), AccessGrantMapping()


def answers_for(pdp: SlowPdp) -> Answers:
    answers = Answers(lambda: ClusterSettings(), pdp)  # type: ignore[arg-type]
    answers.reset(pdp.revision)
    return answers


def select(user: str) -> Request:
    return Request(Identity(user), "SelectFromColumns", TableRef("hive", "sales", "orders"))


def test_users_fetched_together_share_one_registry_and_get_their_decisions_cached():
    async def scenario() -> tuple[int, int]:
        pdp = SlowPdp()
        answers = answers_for(pdp)
        users = [f"user{i}" for i in range(8)]
        await asyncio.gather(*(answers.decide(select(u)) for u in users))
        return pdp.registry_calls, answers.sizes()["decisions"]

    registry_calls, cached = asyncio.run(scenario())
    assert registry_calls == 1
    assert cached == 8  # before: only the users whose view held the last registry installed


def test_a_registry_fetched_for_a_revision_left_behind_is_not_installed():
    async def scenario() -> tuple[View, Registry | None]:
        pdp = SlowPdp("r1")
        answers = answers_for(pdp)
        first = asyncio.create_task(answers.view(Identity("alice")))
        await asyncio.sleep(0.02)  # alice's registry fetch for r1 is in flight
        pdp.revision = "r2"
        answers.reset("r2")  # the watch moves on: r2 has another table
        view = await first
        held = answers.known()[1]
        return view, held[0] if held else None

    view, registry = asyncio.run(scenario())
    assert registry is not None and registry.tables == {ORDERS, REFUNDS}
    assert view.registry is registry


def test_a_check_is_decided_at_once_when_the_users_view_is_at_hand():
    """`decided` answers without waiting (the HTTP protocol answers such a body before any ASGI
    work), exactly as `decide` would; a user whose view must be fetched is left to `decide`."""

    async def scenario() -> None:
        answers = answers_for(SlowPdp())
        assert answers.decided(select("alice")) is None  # no view yet: the PDP must be asked
        assert answers.sizes()["users"] == 0  # and nothing was fetched meanwhile
        await answers.decide(select("alice"))  # fetches alice's view
        refunds = Request(Identity("alice"), "SelectFromColumns", TableRef("hive", "sales", "x"))
        now = answers.decided(refunds)
        assert now is not None and now == await answers_for(SlowPdp()).decide(refunds)
        assert answers.decided(refunds) is now  # remembered
        identity_check = Request(Identity("bob"), "ExecuteQuery", None)
        assert answers.decided(identity_check) is not None  # the cluster settings suffice

    asyncio.run(scenario())


def test_a_batchs_items_are_decided_as_one_by_one():
    async def scenario() -> None:
        answers, alone = answers_for(SlowPdp()), answers_for(SlowPdp())
        requests = [
            Request(Identity("alice"), "FilterTables", TableRef("hive", "sales", t))
            for t in ("orders", "refunds", "orders", "other")
        ]
        together = await answers.decide_all(requests, [None] * len(requests))
        assert together == [await alone.decide(r) for r in requests]
        assert answers.sizes() == alone.sizes()  # the same view and decisions cached
        assert await answers.decide_all([], []) == []

    asyncio.run(scenario())


def test_a_batch_answer_is_served_at_its_revision_only():
    """A whole batch answer is kept with the revision it was made at: a later revision, even
    one that keeps the decisions it was made from, never gets it."""
    answers = answers_for(SlowPdp())
    held = (b'{"result":[0]}', "FilterTables", 1, 2)
    answers.remember_batch(b"body", held)
    assert answers.cached_batch(b"body") == held
    answers.revision = "r2"  # the decisions kept (a revision's delta would keep some)
    assert answers.cached_batch(b"body") is None
    answers.revision = "r1"
    answers.reset("r1")  # the cluster's settings changed: everything goes
    assert answers.cached_batch(b"body") is None
    # a revision with a delta keeps other users' views and decisions, never batch answers:
    # they are not held in memory past their revision
    answers.remember_batch(b"body", held)
    answers.advance("r2", RevisionDelta("r1", users=frozenset({"someone-else"})))
    assert answers.revision == "r2" and len(answers._batch_answers) == 0


def test_an_identity_made_once_is_the_one_the_body_names_and_the_memo_stays_bounded(
    monkeypatch,
):
    monkeypatch.setattr("sidecar.answers.IDENTITIES", 4)
    answers = answers_for(SlowPdp())
    made = answers.identity("alice", ("sales", "eu", "sales"))
    assert made == Identity("alice", frozenset({"sales", "eu"}))
    assert answers.identity("alice", ("sales", "eu", "sales")) is made  # the same object
    # the same groups in another order: their own key, the same object (one per value)
    assert answers.identity("alice", ("eu", "sales")) is made
    assert answers.identity("alice", ()) == Identity("alice")
    for i in range(10):
        assert answers.identity(f"u{i}", ("g",)) == Identity(f"u{i}", frozenset({"g"}))
        assert len(answers._identities) <= 4 and len(answers._one_by_value) <= 4


def test_a_view_is_held_by_the_identity_object_the_memo_gives():
    """A view fetched for an Identity made elsewhere (a body decoded in full) is held by the
    object `identity` gives for it, before or after: the view lookup of a new check then
    matches by `is`, not by comparing the fields (the answer is the same either way)."""

    async def scenario() -> None:
        answers = answers_for(SlowPdp())
        await answers.view(Identity("alice", frozenset({"sales", "eu"})))
        (held,) = answers._views
        assert answers.identity("alice", ("eu", "sales")) is held
        memo = answers.identity("bob", ("sales",))  # before the view is fetched
        await answers.view(Identity("bob", frozenset({"sales"})))
        assert [i for i in answers._views if i.user == "bob"] == [memo]
        assert next(i for i in answers._views if i.user == "bob") is memo

    asyncio.run(scenario())


def revision_of(view: View) -> str:
    """Which of SlowPdp's registries `view` is built on."""
    return "r2" if REFUNDS in view.registry.tables else "r1"


def test_a_check_waiting_on_a_fetch_a_switch_overtakes_gets_the_view_of_the_new_revision():
    """Checks of one user share one fetch of the view. If the revision moves between the
    fetch's end and a waiting check's turn, the view fetched may be one the move drops: the
    waiter looks again (and fetches at the new revision), never deciding on the old one."""

    async def scenario() -> tuple[str, str, str]:
        pdp = SlowPdp("r1")
        answers = answers_for(pdp)
        alice = Identity("alice")
        fetcher = asyncio.create_task(answers.view(alice))
        await asyncio.sleep(0)  # the fetch is in flight
        waiter = asyncio.create_task(answers.view(alice))
        await asyncio.sleep(0)  # the second check waits on it
        pending = answers._inflight[alice]

        def moved(_: object) -> None:  # runs after the fetch ends, before the waiter's turn
            pdp.revision = "r2"
            answers.reset("r2")

        pending.add_done_callback(moved)
        first, second = await fetcher, await waiter
        return revision_of(first), revision_of(second), str(answers.revision)

    fetched, waited, revision = asyncio.run(scenario())
    assert (fetched, waited, revision) == ("r1", "r2", "r2")
