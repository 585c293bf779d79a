"""`cache.viewGrants` bounds the memory of the cached views by what they hold (issue 26): the
views' grants together never exceed it, the least recently used views are evicted to make room,
a view heavier than the whole bound is still served (and held alone), and without the key the
views are bounded by their number as before."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pdp.config.errors import ConfigError
from pdp.core.model import (
    AccessGrantMapping,
    ClusterSettings,
    Identity,
    PolicyGrant,
    Registry,
    table_key,
)
from sidecar.answers import Answers
from sidecar.config import load_sidecar_config

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


def test_without_the_key_views_are_bounded_by_number() -> None:
    users = [f"u{i:02d}" for i in range(30)]
    cache = answers({u: 100 for u in users}, user_cache=20)

    async def fetch_all() -> None:
        for user in users:
            await cache.view(Identity(user))

    asyncio.run(fetch_all())
    assert held(cache, users) == users[-20:]  # 3,000 grants: no weight bound


def test_a_view_weighs_its_grants_plus_one() -> None:
    cache = answers({"none": 0, "some": 7})

    async def weights() -> list[int]:
        return [(await cache.view(Identity(u))).size for u in ("none", "some")]

    assert asyncio.run(weights()) == [1, 8]


def test_sidecar_yaml_cache_view_grants(tmp_path: Path) -> None:
    path = tmp_path / "sidecar.yaml"
    pdp = "pdp: {auth: none}\n"
    path.write_text(pdp + "cache:\n  users: 100\n")
    assert load_sidecar_config(path).view_grants is None
    path.write_text(pdp + "cache:\n  viewGrants: 2000000\n")
    assert load_sidecar_config(path).view_grants == 2_000_000
    path.write_text(pdp + "cache:\n  viewGrants: 0\n")
    with pytest.raises(ConfigError) as error:
        load_sidecar_config(path)
    assert "viewGrants" in str(error.value) and "sidecar.yaml:3" in str(error.value)
