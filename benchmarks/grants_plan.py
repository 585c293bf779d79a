"""Benchmark (not a test): grant sync plan time and memory at 10,000 users x 10,000 data sources.

    .venv/bin/python benchmarks/grants_plan.py [--users 10000] [--sources 10000]

The world: data sources spread over 100 schemas of one Snowflake database; every user is in two
of 500 groups; each group holds a READ policy on one schema and every fifth group also a WRITE
policy on another, so each user reaches a few hundred tables. The current state fed to the diff
is the desired state with drift on 1% of the grants (some missing, some extra).

Printed: desired-state time, diff+render time, grants, steps, and peak RSS. A second table runs
the diff alone on growing user counts to show the cost per grant stays flat (linear diff)."""

from __future__ import annotations

import argparse
import gc
import random
import resource
import time
from collections.abc import Callable
from typing import TypeVar

from pdp.core import Access
from pdp.grants.desired import desired_state
from pdp.grants.model import Current, Desired, State
from pdp.grants.roles import plan_roles
from pdp.grants.snowflake import SnowflakeDialect, SnowflakeSql
from pdp.policy import DataSource, DirectoryUser, ObjectType, Policy, PolicySnapshot, Technology

T = TypeVar("T")
SCHEMAS, GROUPS = 100, 500


def world(users: int, sources: int, seed: int = 7) -> PolicySnapshot:
    rng = random.Random(seed)
    tables = [
        DataSource(
            "sf",
            Technology.SNOWFLAKE,
            "analytics",
            f"s{i % SCHEMAS}",
            f"t{i}",
            ObjectType.TABLE if i % 4 else ObjectType.VIEW,
        )
        for i in range(sources)
    ]
    policies = []
    for g in range(GROUPS):
        group = frozenset({f"g{g}"})
        read = Policy(
            f"read-{g}",
            Access.READ,
            groups=group,
            schemas=frozenset({f"sf.analytics.s{g % SCHEMAS}"}),
        )
        policies.append(read)
        if g % 5 == 0:
            schema = f"sf.analytics.s{(g * 7 + 3) % SCHEMAS}"
            policies.append(
                Policy(f"write-{g}", Access.WRITE, groups=group, schemas=frozenset({schema}))
            )
    directory = {
        f"u{i}": DirectoryUser(f"u{i}", frozenset(f"g{rng.randrange(GROUPS)}" for _ in range(2)))
        for i in range(users)
    }
    return PolicySnapshot.compile("bench", tables, policies, directory)


def drifted(desired: Desired, rate: float = 0.01, seed: int = 11) -> Current:
    """The desired grants with `rate` of the objects missing and as many extra privileges."""
    rng = random.Random(seed)
    extra = frozenset({"INSERT"})
    state: State = {}
    for principal, held in desired.grants.items():
        copy = dict(held)
        for securable in list(copy):
            roll = rng.random()
            if roll < rate / 2:
                del copy[securable]
            elif roll < rate:
                copy[securable] = copy[securable] | extra
        state[principal] = copy
    return Current(state, frozenset(desired.grants), dict(desired.members))


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    gc.collect()
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def count(state: State) -> int:
    return sum(len(p) for held in state.values() for p in held.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--sources", type=int, default=10_000)
    args = parser.parse_args()
    dialect, sql = SnowflakeDialect(), SnowflakeSql()

    base = peak_mib()
    snap, compile_s = timed(lambda: world(args.users, args.sources))
    desired, desired_s = timed(lambda: desired_state(snap, dialect, ["sf"]))
    current = drifted(desired)
    plan, plan_s = timed(lambda: plan_roles("bench", desired, current, dialect, sql))
    grants = count(desired.grants)
    print(f"users={args.users} sources={args.sources} policies={len(snap.policies)}")
    print(f"snapshot compile      {compile_s:8.2f} s")
    print(f"desired state         {desired_s:8.2f} s  ({grants:,} privilege grants)")
    print(f"diff + render SQL     {plan_s:8.2f} s  ({len(plan.steps):,} statements)")
    print(f"peak RSS              {peak_mib():8.0f} MiB (process start: {base:.0f} MiB)")

    print("\nlinearity of the diff (same world, growing user count)")
    print("users  grants      diff s  us/grant")
    for fraction in (0.125, 0.25, 0.5, 1.0):
        subset = int(args.users * fraction)
        principals = sorted(desired.grants)[:subset]
        part = Desired(
            desired.revision,
            {p: desired.grants[p] for p in principals},
            frozenset(principals),
            {p: desired.members[p] for p in principals if p in desired.members},
        )
        cur = drifted(part)
        _, seconds = timed(lambda part=part, cur=cur: plan_roles("bench", part, cur, dialect, sql))
        n = count(part.grants)
        print(f"{subset:5d}  {n:10,d}  {seconds:6.2f}  {seconds / n * 1e6:8.3f}")


if __name__ == "__main__":
    main()
