"""Masks and row filters on native platforms, as decision tables: which data policy applies to
whom natively, which ones PostgreSQL enforces as row-level security, and the order in which its
steps run."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from pdp.core import Access
from pdp.core.datapolicy import parse_template
from pdp.core.model import MaskKind
from pdp.grants import postgres, rls
from pdp.grants.datapolicies import Applying
from pdp.grants.desired import desired_state
from pdp.grants.model import Current, Desired, Phase, Plan, Securable, Step
from pdp.grants.postgres import PostgresDialect
from pdp.grants.snowflake import SnowflakeDialect
from pdp.grants.syncer import Planned, apply
from pdp.policy import DataSource, DirectoryUser, ObjectType, Policy, PolicySnapshot, Technology
from pdp.policy.model import Audience, MaskingPolicy, PolicyStatus, RowFilterPolicy, Targets

EVERYWHERE = Targets(everything=True)


def _snapshot(
    *data: MaskingPolicy | RowFilterPolicy,
    kind: ObjectType = ObjectType.TABLE,
    technology: Technology = Technology.POSTGRESQL,
    owners: frozenset[tuple[str, str]] = frozenset(),
) -> PolicySnapshot:
    source = DataSource(
        "c", technology, "shop", "sales", "orders", kind, owners=owners, trino_catalog="pg"
    )
    readers = Policy(
        "readers", Access.WRITE, anyone=True, data_sources=frozenset({"c.shop.sales.orders"})
    )
    directory = {
        "alice": DirectoryUser("alice", attributes={"region": frozenset({"emea"})}),
        "bob": DirectoryUser("bob", frozenset({"auditors"})),
    }
    masks = [d for d in data if isinstance(d, MaskingPolicy)]
    filters = [d for d in data if isinstance(d, RowFilterPolicy)]
    return PolicySnapshot.compile(
        "r", [source], [readers], directory, masking=masks, row_filters=filters
    )


EVERYONE = Audience()


def _filter(where: str, audience: Audience = EVERYONE, name: str = "f") -> RowFilterPolicy:
    return RowFilterPolicy(name, EVERYWHERE, where, parse_template(where), audience)


def _mask(audience: Audience = EVERYONE, **kw: object) -> MaskingPolicy:
    return MaskingPolicy(
        "m",
        MaskKind.NULL,
        EVERYWHERE,
        audience=audience,
        **{"columns": frozenset({"amount"}), **kw},  # type: ignore[arg-type]
    )


def _privileges(desired: Desired, user: str, dialect: PostgresDialect | SnowflakeDialect) -> set:
    """Privileges on tables, and `SELECT (col)` for a column-level SELECT."""
    held = desired.grants.get(dialect.principal(user), {})
    return {
        f"{p} ({s.name[3]})" if len(s.name) > 3 else p
        for s, ps in held.items()
        if not s.container
        for p in ps
    }


PG = PostgresDialect()
ORDERS = Securable("TABLE", ("shop", "sales", "orders"), "TABLE")


def _on_postgresql(snapshot: PolicySnapshot) -> Desired:
    """The desired state with masks narrowed to the columns PostgreSQL has (id, region,
    amount), as the PostgreSQL target plans it."""
    desired = desired_state(snapshot, PG, ["c"])
    return postgres.column_grants(desired, {ORDERS: ("id", "Region", "amount")})


@pytest.mark.parametrize(
    ("policies", "alice", "withheld"),
    [
        # no data policy: the grants of the subscription policy
        ((), {"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE"}, ""),
        # a row filter PostgreSQL evaluates as Trino: row security, and no TRUNCATE (it
        # ignores row security)
        ((_filter("region IN @attribute(region)"),), {"SELECT", "INSERT", "UPDATE", "DELETE"}, ""),
        # a mask: SELECT on each column it does not cover instead of on the table (a column
        # added later is not readable); writes stay (a WHERE on amount needs SELECT on it)
        (
            (_mask(),),
            {"SELECT (id)", "SELECT (Region)", "INSERT", "UPDATE", "DELETE", "TRUNCATE"},
            "",
        ),
        # masks and a filter: both
        (
            (_mask(), _filter("id = 1")),
            {"SELECT (id)", "SELECT (Region)", "INSERT", "UPDATE", "DELETE"},
            "",
        ),
        # a mask on a column of another case: Trino folds column names, so it is left out
        (
            (_mask(columns=frozenset({"REGION", "amount"})),),
            {"SELECT (id)", "INSERT", "UPDATE", "DELETE", "TRUNCATE"},
            "",
        ),
        # only for a group: Trino may put alice in it, so natively it applies to her too
        (
            (_mask(Audience(groups=frozenset({"contractors"}), exclude=False)),),
            {"SELECT (id)", "SELECT (Region)", "INSERT", "UPDATE", "DELETE", "TRUNCATE"},
            "",
        ),
        # a filter with @groups: Trino adds its group provider's groups, unknown here
        (
            (_filter("team IN @groups"),),
            set(),
            "alice on c.shop.sales.orders: row filter 'f' uses @groups (Trino adds the groups "
            "of its group provider), which PostgreSQL does not evaluate as Trino",
        ),
        # ordering of strings depends on the collation
        (
            (_filter("region < 'f'"),),
            set(),
            "alice on c.shop.sales.orders: row filter 'f' uses `<` between non-numbers "
            "(PostgreSQL orders text by collation), which PostgreSQL does not evaluate as Trino",
        ),
        # staged data policies do nothing
        (
            (_mask(status=PolicyStatus.STAGED),),
            {"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE"},
            "",
        ),
        # alice exempt by name: her grants stay
        (
            (_mask(Audience(users=frozenset({"alice"}))),),
            {"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE"},
            "",
        ),
        # a filter and a mask with the filter withheld: nothing, and why
        (
            (_mask(), _filter("team IN @groups")),
            set(),
            "alice on c.shop.sales.orders: row filter 'f' uses @groups (Trino adds the groups "
            "of its group provider), which PostgreSQL does not evaluate as Trino",
        ),
        # only for users: exact, and alice is not one of them
        (
            (_mask(Audience(users=frozenset({"bob"}), exclude=False)),),
            {"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE"},
            "",
        ),
    ],
)
def test_what_alice_gets_on_postgresql(
    policies: tuple[MaskingPolicy | RowFilterPolicy, ...], alice: set[str], withheld: str
) -> None:
    desired = _on_postgresql(_snapshot(*policies))
    assert _privileges(desired, "alice", PG) == alice
    assert [w for w in desired.withheld if w.startswith("alice ")] == (
        [withheld] if withheld else []
    )


def test_a_filter_on_a_view_is_withheld_and_owners_skip_masks_that_exempt_them() -> None:
    desired = desired_state(_snapshot(_filter("id = 1"), kind=ObjectType.VIEW), PG, ["c"])
    assert desired.withheld[0] == (
        "alice on c.shop.sales.orders: row filter 'f' cannot be enforced natively on a "
        "PostgreSQL VIEW (row-level security applies to tables only)"
    )
    owned = _snapshot(_mask(except_owners=True), owners=frozenset({("group", "auditors")}))
    desired = _on_postgresql(owned)
    assert _privileges(desired, "bob", PG) == {"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE"}
    assert "SELECT" not in _privileges(desired, "alice", PG)
    assert desired.columns == (
        'pdp_user_alice on TABLE "shop"."sales"."orders": amount left out (mask \'m\' on amount)',
    )


def test_a_masked_table_postgresql_does_not_have_grants_no_column() -> None:
    desired = postgres.column_grants(desired_state(_snapshot(_mask()), PG, ["c"]), {})
    assert _privileges(desired, "alice", PG) == {"INSERT", "UPDATE", "DELETE", "TRUNCATE"}
    assert desired.columns[0] == (
        'pdp_user_alice on TABLE "shop"."sales"."orders": no column granted (PostgreSQL has '
        "no such relation) (mask 'm' on amount)"
    )


def test_snowflake_without_a_policy_schema_withholds_every_data_policy() -> None:
    sf = SnowflakeDialect()
    snapshot = _snapshot(_filter("id = 1"), technology=Technology.SNOWFLAKE)
    desired = desired_state(snapshot, sf, ["c"])
    assert _privileges(desired, "alice", sf) == set()
    why = (
        "row filter 'f' cannot be enforced natively on Snowflake (the target names no policySchema)"
    )
    assert desired.withheld == (
        f"alice on c.shop.sales.orders: {why}",
        f"bob on c.shop.sales.orders: {why}",
    )


@pytest.mark.parametrize(
    ("where", "problem"),
    [
        ("region = 'emea'", None),
        ("owner = @user AND NOT (deleted IS NULL)", None),
        ("region IN @attribute(region) OR amount >= 100", None),
        ("\"region\" <> 'x'", None),
        ("5 < amount AND amount IS NOT NULL", None),
        ("amount > -5", "`-5`"),
        ("CASE WHEN a = 1 THEN true END", "`WHEN`"),
        ("d = DATE '2020-01-01'", "`'2020-01-01'`"),
        ("lower(region) = 'emea'", "the function lower()"),
        ("region LIKE 'e%'", "`LIKE`"),
        ("CAST(amount AS varchar) = '1'", "the function CAST()"),
        ("\"Region\" = 'x'", 'the quoted name "Region" (Trino ignores its case)'),
        ("a || b = 'x'", "`|| b = 'x'`"),
        ("region > other", "`>` between non-numbers (PostgreSQL orders text by collation)"),
    ],
)
def test_which_predicates_postgresql_evaluates_as_trino(where: str, problem: str | None) -> None:
    assert rls.untranslatable(parse_template(where)) == problem


# --- the order of row security steps ---------------------------------------------------------

T = Securable("TABLE", ("shop", "sales", "orders"), "TABLE")


def _applying(name: str, predicate: str) -> Applying:
    return Applying(_filter("x", name=name), predicate)


def test_a_new_filter_tightens_before_grants_and_a_changed_one_never_opens_a_window() -> None:
    want = {T: rls.desired_policies("pdp", {"pdp_user_a": (_applying("f", "(id = 1)"),)})}
    steps = rls.plan("pdp", want, {})
    assert [(s.phase, s.text.split(" ON ")[0]) for s in steps] == [
        (Phase.TIGHTEN, 'ALTER TABLE "sales"."orders" ENABLE ROW LEVEL SECURITY'),
        (Phase.TIGHTEN, f'CREATE POLICY "{rls.policy_name("pdp", _applying("f", "(id = 1)"))}"'),
        (Phase.TIGHTEN, 'CREATE POLICY "pdp_rls_rows"'),
    ]
    assert all(s.gate == 'TABLE "shop"."sales"."orders"' for s in steps)

    old = rls.policy_name("pdp", _applying("f", "(id = 1)"))
    held = rls.TableSecurity(
        True,
        {
            old: rls.HeldPolicy(True, frozenset({"pdp_user_a"}), True, True),
            "pdp_rls_rows": rls.HeldPolicy(False, frozenset({"public"}), True, True),
        },
    )
    changed = {T: rls.desired_policies("pdp", {"pdp_user_a": (_applying("f", "(id = 2)"),)})}
    steps = rls.plan("pdp", changed, {T: held})
    assert [(s.phase, s.text.split(" ")[0]) for s in steps] == [
        (Phase.TIGHTEN, "CREATE"),  # the new predicate first: for a moment both apply
        (Phase.LOOSEN, "DROP"),  # then the old one goes, after every revoke
    ]


def test_roles_are_added_to_a_filter_before_grants_and_removed_after_revokes() -> None:
    one = _applying("f", "(id = 1)")
    name = rls.policy_name("pdp", one)
    held = rls.TableSecurity(
        True,
        {
            name: rls.HeldPolicy(True, frozenset({"pdp_user_a"}), True, True),
            "pdp_rls_rows": rls.HeldPolicy(False, frozenset({"public"}), True, True),
        },
    )
    want = {T: rls.desired_policies("pdp", {"pdp_user_b": (one,)})}
    steps = rls.plan("pdp", want, {T: held})
    assert [(s.phase, s.text.split(" TO ")[1]) for s in steps] == [
        (Phase.TIGHTEN, '"pdp_user_a", "pdp_user_b"'),
        (Phase.LOOSEN, '"pdp_user_b"'),
    ]


def test_a_table_no_longer_filtered_loses_only_the_products_policies() -> None:
    held = rls.TableSecurity(
        True,
        {
            "pdp_rls_rows": rls.HeldPolicy(False, frozenset({"public"}), True, True),
            "theirs": rls.HeldPolicy(True, frozenset({"public"}), True, True),
        },
    )
    steps = rls.plan("pdp", {}, {T: held})
    assert [s.text for s in steps] == ['DROP POLICY "pdp_rls_rows" ON "sales"."orders"']
    untouched = rls.TableSecurity(True, {"theirs": held.policies["theirs"]})
    assert rls.plan("pdp", {}, {T: untouched}) == []


@dataclass
class _Target:
    """Runs steps in memory; a step whose text starts with FAIL raises."""

    name: str = "t"
    connections: frozenset[str] = frozenset()
    settle: float = 0.0
    ran: list[str] = field(default_factory=list)
    dialect: PostgresDialect = PG

    def read(self, desired: Desired) -> Current:
        return Current({})

    def plan(self, desired: Desired, current: Current) -> Plan:
        return Plan(self.name, desired.revision, ())

    def run(self, step: Step) -> None:
        if step.text.startswith("FAIL"):
            raise RuntimeError("permission denied: must be owner of table orders")
        self.ran.append(step.text)

    def close(self) -> None:
        return None


def test_a_failed_tightening_step_skips_the_grants_on_that_table_only() -> None:
    gate, other = 'TABLE "shop"."sales"."orders"', 'TABLE "shop"."sales"."other"'
    steps = (
        Step(Phase.TIGHTEN, gate, "FAIL CREATE POLICY", "shop", gate=gate),
        Step(Phase.GRANT, gate, "GRANT SELECT ON orders", "shop", gate=gate),
        Step(Phase.GRANT, other, "GRANT SELECT ON other", "shop", gate=other),
    )
    target = _Target()
    report = apply(target, Planned(Desired("r", {}, frozenset()), Plan("t", "r", steps)))  # type: ignore[arg-type]
    assert target.ran == ["GRANT SELECT ON other"]
    assert [(f.step.text, f.error) for f in report.failed] == [
        ("FAIL CREATE POLICY", "RuntimeError: permission denied: must be owner of table orders"),
        ("GRANT SELECT ON orders", f"skipped: a data policy step on {gate} failed"),
    ]


@pytest.mark.parametrize(
    ("data_policy", "alice"),
    [
        # masked through one entry: column a left out through both
        (_mask(), {"SELECT (id)", "INSERT", "UPDATE", "DELETE", "TRUNCATE"}),
        (_filter("id = 1"), {"SELECT", "INSERT", "UPDATE", "DELETE"}),  # row security, no TRUNCATE
    ],
)
def test_two_registry_entries_naming_one_table_give_no_way_around_a_data_policy(
    data_policy: MaskingPolicy | RowFilterPolicy, alice: set[str]
) -> None:
    sources = [
        DataSource(c, Technology.POSTGRESQL, "shop", "sales", "orders", trino_catalog=c)
        for c in ("c", "d")
    ]
    readers = Policy(
        "readers",
        Access.WRITE,
        anyone=True,
        data_sources=frozenset({"c.shop.sales.orders", "d.shop.sales.orders"}),
    )
    only_c = (
        MaskingPolicy("m", MaskKind.NULL, Targets(connections=frozenset({"c"})), frozenset({"a"}))
        if isinstance(data_policy, MaskingPolicy)
        else RowFilterPolicy(
            "f", Targets(connections=frozenset({"c"})), "id = 1", parse_template("id = 1")
        )
    )
    snapshot = PolicySnapshot.compile(
        "r",
        sources,
        [readers],
        {"alice": DirectoryUser("alice")},
        masking=[only_c] if isinstance(only_c, MaskingPolicy) else [],
        row_filters=[only_c] if isinstance(only_c, RowFilterPolicy) else [],
    )
    desired = postgres.column_grants(desired_state(snapshot, PG, ["c", "d"]), {ORDERS: ("id", "a")})
    assert _privileges(desired, "alice", PG) == alice
