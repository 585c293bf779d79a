"""Benchmark (not a test): the grant sync plan with masks and row filters, beside the same plan
without them, in the same run.

    .venv/bin/python benchmarks/grants_datapolicies.py [--users 1000] [--sources 10000]
        [--masks 50] [--filters 20]

The world is grants_plan.py's (tables over 100 schemas, users in two of 500 groups, READ and
WRITE policies by schema), each user with a `region` attribute. Each mask covers one schema's
`amount` column, each row filter one other schema (`region IN @attribute(region)`), each
exempting one group. Planned from an empty target for PostgreSQL (filters as row-level
security, masks withheld), Snowflake without `policySchema` (both withheld) and Snowflake with
it (masking and row access policies; each filter names the user's region, so its body names
every filtered user once per predicate). Printed per case: desired-state and plan time,
statements, row security / policy statements, withheld (user, object) pairs, the longest
policy body, peak RSS."""

from __future__ import annotations

import argparse
import random

from grants_plan import GROUPS, SCHEMAS, peak_mib, timed, world

from pdp.core.datapolicy import parse_template
from pdp.core.model import MaskKind
from pdp.grants import rls, sfpolicy, tablepolicy
from pdp.grants.desired import desired_state
from pdp.grants.dialect import Dialect
from pdp.grants.model import Current, Desired
from pdp.grants.postgres import PostgresDialect, PostgresSql
from pdp.grants.roles import SqlRenderer, plan_roles
from pdp.grants.snowflake import SnowflakeDialect, SnowflakeSql
from pdp.policy import DirectoryUser, PolicySnapshot
from pdp.policy.model import Audience, MaskingPolicy, RowFilterPolicy, Targets

REGIONS = ("emea", "amer", "apac")


def with_data_policies(base: PolicySnapshot, masks: int, filters: int) -> PolicySnapshot:
    rng = random.Random(5)
    directory = {
        name: DirectoryUser(name, user.groups, {"region": frozenset({rng.choice(REGIONS)})})
        for name, user in base.directory.items()
    }

    def on(i: int) -> Targets:
        return Targets(schemas=frozenset({f"sf.analytics.s{i % SCHEMAS}"}))

    def exempt(i: int) -> Audience:
        return Audience(groups=frozenset({f"g{(i * 11) % GROUPS}"}))

    where = "region IN @attribute(region)"
    return PolicySnapshot.compile(
        "bench",
        base.sources.values(),
        base.policies,
        directory,
        masking=[
            MaskingPolicy(
                f"mask-{i}", MaskKind.NULL, on(i), frozenset({"amount"}), audience=exempt(i)
            )
            for i in range(masks)
        ],
        row_filters=[
            RowFilterPolicy(f"filter-{i}", on(i + 50), where, parse_template(where), exempt(i))
            for i in range(filters)
        ],
    )


COLUMNS = {"ID": "NUMBER(38,0)", "REGION": "VARCHAR(16777216)", "AMOUNT": "NUMBER(10,2)"}


def snowflake_policies(desired: Desired, dialect: SnowflakeDialect) -> list[str]:
    """The masking and row access policy statements of every governed table (each table read
    as having COLUMNS), as `SnowflakeTarget` plans them from an empty account."""
    assert dialect.policy_schema is not None
    wanted = {}
    for table, enforced in desired.enforced.items():
        holders = frozenset(p for p, held in desired.grants.items() if table in held)
        found = tablepolicy.plan_table(
            dialect.prefix, table, enforced, holders, COLUMNS, sfpolicy.SNOWFLAKE
        )
        wanted[table] = found[0]
    empty = sfpolicy.Current({}, {}, {}, {})
    return [s.text for s in sfpolicy.plan(dialect.policy_schema, dialect.prefix, wanted, empty)]


def plan_case(snap: PolicySnapshot, dialect: Dialect, sql: SqlRenderer) -> str:
    desired, desired_s = timed(lambda: desired_state(snap, dialect, ["sf"]))

    def steps() -> tuple[int, list[str]]:
        planned = plan_roles("bench", desired, Current({}), dialect, sql)
        security: list[str] = []
        if isinstance(dialect, PostgresDialect):
            governed = {
                t: rls.desired_policies(dialect.prefix, f) for t, f in desired.enforced.items()
            }
            security = [s.text for s in rls.plan(dialect.prefix, governed, {})]
        elif isinstance(dialect, SnowflakeDialect) and dialect.policy_schema is not None:
            security = snowflake_policies(desired, dialect)
        return len(planned.steps) + len(security), security

    (statements, security), plan_s = timed(steps)
    longest = max((len(s) for s in security), default=0)
    return (
        f"{desired_s:8.2f} s  {plan_s:8.2f} s  {statements:10,d}  {len(security):8,d}  "
        f"{len(desired.withheld):10,d}  {longest:8,d}  {peak_mib():6.0f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000)
    parser.add_argument("--sources", type=int, default=10_000)
    parser.add_argument("--masks", type=int, default=50)
    parser.add_argument("--filters", type=int, default=20)
    args = parser.parse_args()
    base = world(args.users, args.sources)
    governed, compile_s = timed(lambda: with_data_policies(base, args.masks, args.filters))
    print(f"users={args.users} sources={args.sources} masks={args.masks} filters={args.filters}")
    print(f"snapshot compile with data policies: {compile_s:.2f} s")
    print(
        "case                         desired      plan  statements  policies    withheld"
        "   longest   peak"
    )
    cases = [
        ("postgresql", PostgresDialect(), PostgresSql()),
        ("snowflake", SnowflakeDialect(), SnowflakeSql()),
        ("sf+schema", SnowflakeDialect(policy_schema=("GOV", "POLICIES")), SnowflakeSql()),
    ]
    for name, dialect, sql in cases:
        print(f"{name:10s} no data policies  {plan_case(base, dialect, sql)}")
        print(f"{name:10s} masks + filters   {plan_case(governed, dialect, sql)}")


if __name__ == "__main__":
    main()
