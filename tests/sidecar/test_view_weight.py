"""`cache.viewGrants` bounds the memory of the cached views by what they hold (issue 26): the
views' grants together never exceed it, the least recently used views are evicted to make room,
a view heavier than the whole bound is still served (and held alone), `cache.users` bounds
their number as well, and absent the key the bound is `VIEW_GRANTS`. A compact view (policy
positions) fills as it is asked, so it is weighed by the most it will hold: the bound holds
however much the views are asked, and an evicted view is fetched again and answers the same."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pdp.config.errors import ConfigError
from pdp.core.model import (
    AccessGrantMapping,
    CatalogRef,
    ClusterSettings,
    Identity,
    PolicyGrant,
    PolicyGrants,
    Registry,
    Request,
    Settings,
    TableRef,
    View,
    table_key,
)
from sidecar.answers import Answers, Views
from sidecar.config import VIEW_GRANTS, load_sidecar_config

READ = PolicyGrant("readers", "READ")  # type: ignore[arg-type]


class Pdp:
    """Entitlements of `sizes[user]` tables per user."""

    def __init__(self, sizes: dict[str, int]) -> None:
        self.sizes = sizes

    async def entitlements(self, identity: Identity):
        grants = {
            table_key("hive", "s", f"t{i}"): (READ,) for i in range(self.sizes[identity.user])
        }
        return "r1", grants, frozenset(), {}, frozenset()

    async def registry(self):
        return "r1", Registry(), AccessGrantMapping()


def answers(sizes: dict[str, int], **bounds: int) -> Answers:
    cache = Answers(lambda: ClusterSettings(), Pdp(sizes), **bounds)  # type: ignore[arg-type]
    cache.reset("r1")
    return cache


def held(cache: Answers, users: list[str]) -> list[str]:
    return [u for u in users if cache.has_view(Identity(u))]


def test_views_are_evicted_once_their_grants_exceed_the_bound() -> None:
    users = [f"u{i:02d}" for i in range(30)]
    cache = answers({u: 100 for u in users}, view_grants=1_000)

    async def fetch_all() -> None:
        for user in users:
            await cache.view(Identity(user))

    asyncio.run(fetch_all())
    assert held(cache, users) == users[-9:]  # the 9 last fetched: 9 x 101 (View.size) <= 1,000
    assert cache.sizes()["users"] == 9


def test_a_view_heavier_than_the_bound_is_served_and_held_alone() -> None:
    cache = answers({"small": 10, "huge": 5_000}, view_grants=1_000)

    async def fetch() -> int:
        await cache.view(Identity("small"))
        return len((await cache.view(Identity("huge"))).grants)

    assert asyncio.run(fetch()) == 5_000
    assert held(cache, ["small", "huge"]) == ["huge"]


def test_views_are_bounded_by_number_too() -> None:
    users = [f"u{i:02d}" for i in range(30)]
    cache = answers({u: 100 for u in users}, user_cache=20)

    async def fetch_all() -> None:
        for user in users:
            await cache.view(Identity(user))

    asyncio.run(fetch_all())
    assert held(cache, users) == users[-20:]  # 3,000 grants: well within the weight bound


def test_a_view_weighs_its_grants_plus_one() -> None:
    cache = answers({"none": 0, "some": 7})

    async def weights() -> list[int]:
        return [(await cache.view(Identity(u))).size for u in ("none", "some")]

    assert asyncio.run(weights()) == [1, 8]


def test_sidecar_yaml_cache_view_grants(tmp_path: Path) -> None:
    path = tmp_path / "sidecar.yaml"
    pdp = "pdp: {auth: none}\n"
    path.write_text(pdp + "cache:\n  users: 100\n")
    assert load_sidecar_config(path).view_grants == VIEW_GRANTS
    path.write_text(pdp + "cache:\n  viewGrants: 2000000\n")
    assert load_sidecar_config(path).view_grants == 2_000_000
    path.write_text(pdp + "cache:\n  viewGrants: 0\n")
    with pytest.raises(ConfigError) as error:
        load_sidecar_config(path)
    assert "viewGrants" in str(error.value) and "sidecar.yaml:3" in str(error.value)


# --- compact views: 20 policies, each granting the 50 tables of its own schema ---------------

SCHEMAS = [f"s{p:02d}" for p in range(20)]
COMPACT = Registry.of(
    {table_key("hive", s, f"t{t}") for s in SCHEMAS for t in range(50)},
    policies=[
        (PolicyGrant(f"p-{s}", "READ"), frozenset(table_key("hive", s, f"t{t}") for t in range(50)))  # type: ignore[arg-type]
        for s in SCHEMAS
    ],
)


class CompactPdp:
    """User `uN` gets policies N and N+1 (mod 20): two schemas, 100 tables."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def entitlements(self, identity: Identity):
        self.asked.append(identity.user)
        n = int(identity.user[1:])
        return "r1", [n % 20, (n + 1) % 20], frozenset(), {}, frozenset()

    async def registry(self):
        return "r1", COMPACT, AccessGrantMapping()


def read(user: str, schema: str, table: str) -> Request:
    return Request(Identity(user), "SelectFromColumns", TableRef("hive", schema, table))


def held_now(cache: Answers) -> int:
    """What the cached views hold now (1 + grants remembered for each)."""
    total = 0
    for view in cache._views.values():
        assert isinstance(view.grants, PolicyGrants)
        total += 1 + view.grants.held
    return total


def test_compact_views_stay_within_the_bound_however_much_they_are_asked() -> None:
    pdp = CompactPdp()
    # no operation allowed on non-data sources: a catalog is visible by the tables it holds
    cluster = ClusterSettings(Settings(non_datasource_operations=frozenset()))
    cache = Answers(lambda: cluster, pdp, view_grants=1_000)  # type: ignore[arg-type]
    cache.reset("r1")
    first: dict[str, list[bool]] = {}

    async def ask_all() -> None:
        for n in range(40):
            user = f"u{n}"
            answers = [
                (
                    await cache.decide(Request(Identity(user), "AccessCatalog", CatalogRef("hive")))
                ).allowed
            ]
            for schema in (SCHEMAS[n % 20], SCHEMAS[(n + 5) % 20]):
                for t in range(50):
                    answers.append((await cache.decide(read(user, schema, f"t{t}"))).allowed)
            first[user] = answers
            # every view filled: the set of all it grants built (the catalog check) and its
            # lookups remembered
            assert held_now(cache) <= 1_000, f"after {user}"

    asyncio.run(ask_all())
    # each view filled: its 2 policies, the 100 tables it grants, the 50 (or 51, the catalog
    # check's) of them looked up; weighed 1 + 202 when cached, before any of that
    assert all(152 <= v.grants.held <= 153 for v in cache._views.values())
    assert first["u0"] == [True] + [True] * 50 + [False] * 50
    views = cache.sizes()["users"]
    assert views == 4  # 1 + 2 policies + 2 x 100 tables = 203 each: 4 fit in 1,000
    assert not cache.has_view(Identity("u0"))  # evicted: asked again, the PDP answers again
    cache._decisions.clear()
    fetched = len(pdp.asked)

    async def again() -> list[bool]:
        out = []
        for schema in (SCHEMAS[0], SCHEMAS[5]):
            for t in range(50):
                out.append((await cache.decide(read("u0", schema, f"t{t}"))).allowed)
        return out

    assert asyncio.run(again()) == first["u0"][1:]
    assert pdp.asked[fetched:] == ["u0"]
    assert held_now(cache) <= 1_000


def test_a_view_that_grows_as_it_is_brought_to_the_new_registry_stays_in_the_bound() -> None:
    """A kept view is rebuilt on the registry a switch installed (`Views.refresh`); one that
    grows then (a policy of its retargeted to more tables) makes room like any view stored,
    though it is the least recently used itself, and every view held can still be evicted
    or dropped: the cache stays whole and within its bound."""
    old, new = Registry(), Registry()
    views = Views(users=10, grants=10)
    views.on(old)
    settings = Settings()
    for n in range(10):  # full by weight: ten views of 1
        views[Identity(f"u{n}")] = View(settings, old, {})
    views.on(new)
    heavier = View(
        settings, new, {}, owned=frozenset(table_key("hive", "s", f"t{i}") for i in range(2))
    )
    views._rebuilt = lambda view: heavier  # type: ignore[method-assign]
    views.refresh(Identity("u0"))  # the least recently used, and 3 now
    assert views.currsize <= 10
    assert views.get(Identity("u0")) is heavier
    for identity in list(views):  # each one held can be dropped (a delta touching it)
        del views[identity]
    assert len(views) == 0 and views.currsize == 0


def test_views_brought_up_together_that_grow_evict_each_other_without_fault() -> None:
    """Every view behind brought up (what a worker does before a switch that moves the
    registry again): each that grows makes room by evicting the least recently used, perhaps
    one still to be brought up, which is then skipped; what is left is all on the new
    registry, in bound."""
    old, new = Registry(), Registry()
    views = Views(users=10, grants=10)
    views.on(old)
    settings = Settings()
    for n in range(10):
        views[Identity(f"u{n}")] = View(settings, old, {})
    views.on(new)
    owned = frozenset(table_key("hive", "s", f"t{i}") for i in range(2))
    views._rebuilt = lambda view: View(settings, new, {}, owned=owned)  # type: ignore[method-assign]
    for identity in views.behind():
        views.refresh(identity)
    held = views.held()
    assert held and all(view.registry is new for view in held.values())
    assert views.currsize <= 10 and set(held) == set(views)
