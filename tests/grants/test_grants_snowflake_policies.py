"""Snowflake masking and row access policies: golden SQL for issue 21's example, reconciliation
against the ledger (idempotent, tighten first, drift repaired, released), the mask translations
as a decision table, and what is withheld and why."""

from __future__ import annotations

import hashlib

import pytest
from snowflake.connector.errors import ProgrammingError

from pdp.core import Access
from pdp.core.datapolicy import parse_template
from pdp.core.model import MaskKind
from pdp.grants import Phase, apply, plan
from pdp.grants.sfpolicy import masked_value
from pdp.grants.snowflake import SnowflakeDialect, qualified
from pdp.grants.targets import SnowflakeTarget
from pdp.policy import DataSource, DirectoryUser, PolicySnapshot, Technology
from pdp.policy.model import Audience, MaskingPolicy, RowFilterPolicy, Targets
from tests.grants.fakes.ledger import Ledger
from tests.grants.fakes.world import policy

ORDERS = "sf.shop.sales.orders"
TABLE = ("SHOP", "SALES", "ORDERS")
COLUMNS = {
    "ID": "NUMBER(38,0)",
    "REGION": "VARCHAR(16777216)",
    "AMOUNT": "NUMBER(10,2)",
    "EMAIL": "VARCHAR(100)",
}
BOB = Audience(users=frozenset({"bob"}))  # exceptFor: {users: [bob]}
ON = Targets(data_sources=frozenset({ORDERS}))


def mask(
    name: str = "amount-hidden",
    kind: MaskKind = MaskKind.NULL,
    columns: tuple[str, ...] = ("amount",),
    audience: Audience = BOB,
    **kw: object,
) -> MaskingPolicy:
    return MaskingPolicy(
        name,
        kind,
        ON,
        columns=frozenset(columns),
        audience=audience,
        **kw,  # type: ignore[arg-type]
    )


def row_filter(
    where: str = "region = 'emea'", audience: Audience = BOB, name: str = "emea-only"
) -> RowFilterPolicy:
    return RowFilterPolicy(name, ON, where, parse_template(where), audience)


def world(*data: MaskingPolicy | RowFilterPolicy, rev: str = "r1") -> PolicySnapshot:
    orders = DataSource(
        "sf",
        Technology.SNOWFLAKE,
        "shop",
        "sales",
        "orders",
        columns=(("email", frozenset({"pii"})),),
    )
    readers = policy("readers", Access.READ, ["alice", "bob"], [ORDERS])
    directory = {u: DirectoryUser(u) for u in ("alice", "bob")}
    masks = [d for d in data if isinstance(d, MaskingPolicy)]
    filters = [d for d in data if isinstance(d, RowFilterPolicy)]
    return PolicySnapshot.compile(
        rev, [orders], [readers], directory, masking=masks, row_filters=filters
    )


EXAMPLE = world(mask(), row_filter())


def ledger() -> Ledger:
    book = Ledger()
    book.users |= {"ALICE", "BOB"}
    book.add_object("TABLE", *TABLE, columns=COLUMNS)
    book.add_object("SCHEMA", "GOV", "POLICIES")
    return book


def target(book: Ledger) -> SnowflakeTarget:
    dialect = SnowflakeDialect(policy_schema=("GOV", "POLICIES"))
    return SnowflakeTarget("sf", frozenset({"sf"}), book, dialect)


def sync(book: Ledger, snap: PolicySnapshot):
    t = target(book)
    return apply(t, plan(t, snap))


MASK_POLICY = '"GOV"."POLICIES"."PDP_MASK_D145B8DFB874"'
ROWS_POLICY = '"GOV"."POLICIES"."PDP_ROWS_A9F6DECB235C"'
EXAMPLE_SQL = [
    f"CREATE MASKING POLICY {MASK_POLICY} AS (val NUMBER(10,2)) RETURNS NUMBER(10,2) "
    "-> CASE WHEN IS_ROLE_IN_SESSION('PDP_USER_BOB') THEN val ELSE NULL END",
    f'ALTER TABLE "SHOP"."SALES"."ORDERS" MODIFY COLUMN "AMOUNT" SET MASKING POLICY {MASK_POLICY}',
    f"CREATE ROW ACCESS POLICY {ROWS_POLICY} AS (region VARCHAR(16777216)) RETURNS BOOLEAN "
    "-> (IS_ROLE_IN_SESSION('PDP_USER_BOB') OR (region = 'emea'))",
    f'ALTER TABLE "SHOP"."SALES"."ORDERS" ADD ROW ACCESS POLICY {ROWS_POLICY} ON ("REGION")',
    'CREATE ROLE IF NOT EXISTS "PDP_USER_ALICE"',
    'CREATE ROLE IF NOT EXISTS "PDP_USER_BOB"',
]


def test_golden_sql_for_the_issue_example() -> None:
    steps = plan(target(ledger()), EXAMPLE).plan.steps
    policies = [s for s in steps if s.phase is Phase.TIGHTEN]
    assert [s.text for s in policies] == EXAMPLE_SQL[:4]
    assert [s.phase for s in steps] == sorted(s.phase for s in steps)
    first_grant = min(i for i, s in enumerate(steps) if s.phase >= Phase.GRANT_PARENT)
    assert max(i for i, s in enumerate(steps) if s.phase is Phase.TIGHTEN) < first_grant
    assert 'GRANT SELECT ON TABLE "SHOP"."SALES"."ORDERS" TO ROLE "PDP_USER_ALICE"' in [
        s.text for s in steps
    ]


def test_apply_sets_the_policies_then_plans_nothing() -> None:
    book = ledger()
    report = sync(book, EXAMPLE)
    assert report.clean, report.failed
    mask_key = ("GOV", "POLICIES", MASK_POLICY.split(".")[2].strip('"'))
    assert book.masked == {(TABLE, "AMOUNT"): mask_key}
    (rows_key, columns) = book.rows[TABLE]
    assert columns == ("REGION",)
    assert book.policies[rows_key][3] == (
        "(IS_ROLE_IN_SESSION('PDP_USER_BOB') OR (region = 'emea'))"
    )
    assert book.can("ALICE", "SELECT", *TABLE) and book.can("BOB", "SELECT", *TABLE)
    assert plan(target(book), EXAMPLE).plan.empty


ROWS: list[dict[str, object]] = [
    {"ID": 1, "REGION": "emea", "AMOUNT": 120, "EMAIL": "ann@example.com"},
    {"ID": 2, "REGION": "amer", "AMOUNT": 80, "EMAIL": None},
]


def test_the_walk_through_alice_reads_one_row_with_amount_null_and_bob_everything() -> None:
    book = ledger()
    book.data[TABLE] = ROWS
    assert sync(book, EXAMPLE).clean
    assert book.select("ALICE", *TABLE) == [{**ROWS[0], "AMOUNT": None}]
    assert book.select("BOB", *TABLE) == ROWS
    # a role the product does not manage reads as the policies' audience does: filtered, masked
    book.roles.add("ETL")
    book.users.add("LOADER")
    book.holders.add(("ETL", "USER", "LOADER"))
    for privilege, name in (("USAGE", TABLE[:1]), ("USAGE", TABLE[:2]), ("SELECT", TABLE)):
        book.grants.add((privilege, name, "ETL", "ACCOUNTADMIN"))
    assert book.select("LOADER", *TABLE) == [{**ROWS[0], "AMOUNT": None}]


@pytest.mark.parametrize(
    ("kind", "extra", "trino"),
    [
        # what Trino's mask (pdp.core.datapolicy) gives for 'ann@example.com' and NULL in
        # varchar(100)
        (MaskKind.HASH, {}, [hashlib.sha256(b"ann@example.com").hexdigest().upper(), None]),
        (MaskKind.KEEP_LAST, {"count": 4}, ["****.com", None]),
        (MaskKind.KEEP_FIRST, {"count": 3}, ["ann****", None]),
        (MaskKind.KEEP_FIRST, {"count": 40}, ["****", None]),
        (MaskKind.CONSTANT, {"value": "hidden"}, ["hidden", "hidden"]),
        (MaskKind.NULL, {}, [None, None]),
    ],
)
def test_masked_values_read_natively_are_trinos(
    kind: MaskKind, extra: dict[str, object], trino: object
) -> None:
    book = ledger()
    book.data[TABLE] = ROWS
    assert sync(book, world(mask(kind=kind, columns=("email",), **extra))).clean
    assert [r["EMAIL"] for r in book.select("ALICE", *TABLE)] == trino
    assert [r["EMAIL"] for r in book.select("BOB", *TABLE)] == ["ann@example.com", None]


def test_rounded_values_read_natively_are_trinos() -> None:
    # Trino: round(CAST(amount AS decimal(38, 2)), 0), half away from zero, NULL past the
    # range of decimal(10,2)
    book = ledger()
    amounts = [120.5, -0.5, 99999999.49, 99999999.5, None]
    book.data[TABLE] = [{**ROWS[0], "AMOUNT": a} for a in amounts]
    assert sync(book, world(mask(kind=MaskKind.ROUND, count=0))).clean
    assert [r["AMOUNT"] for r in book.select("ALICE", *TABLE)] == [121, -1, 99999999, None, None]
    assert [r["AMOUNT"] for r in book.select("BOB", *TABLE)] == amounts


def _attributed(where: str, alices: str = "emea") -> PolicySnapshot:
    """alice and bob, each with a region, and a filter for both that names them."""
    orders = DataSource("sf", Technology.SNOWFLAKE, "shop", "sales", "orders")
    readers = policy("readers", Access.READ, ["alice", "bob"], [ORDERS])
    directory = {
        "alice": DirectoryUser("alice", attributes={"region": frozenset({alices})}),
        "bob": DirectoryUser("bob", attributes={"region": frozenset({"amer", "apac"})}),
    }
    mine = row_filter(where, audience=Audience())
    return PolicySnapshot.compile("r", [orders], [readers], directory, row_filters=[mine])


def test_a_filter_naming_the_user_gives_each_user_their_own_predicate() -> None:
    book = ledger()
    book.data[TABLE] = ROWS
    snap = _attributed("region IN @attribute(region)")
    assert sync(book, snap).clean
    (key, columns) = book.rows[TABLE]
    assert columns == ("REGION",)  # placeholders are values, not columns
    assert book.policies[key][3] == (
        "(((IS_ROLE_IN_SESSION('PDP_USER_ALICE')) OR (IS_ROLE_IN_SESSION('PDP_USER_BOB'))) "
        "AND (NOT (IS_ROLE_IN_SESSION('PDP_USER_ALICE')) OR (region IN ('emea'))) "
        "AND (NOT (IS_ROLE_IN_SESSION('PDP_USER_BOB')) OR (region IN ('amer', 'apac'))))"
    )
    assert book.select("ALICE", *TABLE) == [ROWS[0]]
    assert book.select("BOB", *TABLE) == [ROWS[1]]
    assert plan(target(book), snap).plan.empty
    # bob's role granted to alice by hand: her session reads only what both may read (and the
    # next plan takes the role back)
    book.holders.add(("PDP_USER_BOB", "USER", "ALICE"))
    assert book.select("ALICE", *TABLE) == []
    steps = plan(target(book), snap).plan.steps
    assert [s.text for s in steps] == ['REVOKE ROLE "PDP_USER_BOB" FROM USER "ALICE"']
    # a role the product does not manage is no user the filter names: it reads no row
    book.roles.add("ETL")
    book.users.add("LOADER")
    book.holders.add(("ETL", "USER", "LOADER"))
    for privilege, name in (("USAGE", TABLE[:1]), ("USAGE", TABLE[:2]), ("SELECT", TABLE)):
        book.grants.add((privilege, name, "ETL", "ACCOUNTADMIN"))
    assert book.select("LOADER", *TABLE) == []


def test_a_users_changed_attribute_changes_the_body_in_place_before_any_grant() -> None:
    book = ledger()
    book.data[TABLE] = ROWS
    assert sync(book, _attributed("region IN @attribute(region)")).clean
    (key, _) = book.rows[TABLE]
    moved = _attributed("region IN @attribute(region)", alices="amer")
    steps = plan(target(book), moved).plan.steps
    assert [(s.phase, s.text.split(" -> ")[0]) for s in steps] == [
        (Phase.TIGHTEN, f"ALTER ROW ACCESS POLICY {qualified(key)} SET BODY"),
    ]
    assert sync(book, moved).clean
    assert book.select("ALICE", *TABLE) == [ROWS[1]]


def test_a_user_withheld_for_one_policy_leaves_the_others_in_place_for_everyone() -> None:
    # alice's hash of a NUMBER(38,0) column has no exact translation (Trino reads it as bigint
    # or decimal, by release): alice is withheld; the filter that applies to her and to bob must
    # still filter bob (found by the equivalence property)
    book = ledger()
    book.data[TABLE] = ROWS
    only_alice = Audience(users=frozenset({"alice"}), exclude=False)
    hashed = mask(kind=MaskKind.HASH, columns=("id",), audience=only_alice)
    snap = world(hashed, row_filter(audience=Audience()))
    assert sync(book, snap).clean
    assert not book.can("ALICE", "SELECT", *TABLE)
    assert book.select("BOB", *TABLE) == [ROWS[0]]


def test_a_changed_mask_changes_the_body_in_place_before_any_grant() -> None:
    book = ledger()
    sync(book, EXAMPLE)
    moved = world(mask(kind=MaskKind.CONSTANT, value="hidden", columns=("email",)), row_filter())
    # bob is no longer exempt
    tighter = world(mask(audience=Audience()), row_filter(audience=Audience()))
    steps = plan(target(book), tighter).plan.steps
    assert [(s.phase, s.text) for s in steps] == [
        (Phase.TIGHTEN, f"ALTER MASKING POLICY {MASK_POLICY} SET BODY -> NULL"),
        (
            Phase.TIGHTEN,
            f"ALTER ROW ACCESS POLICY {ROWS_POLICY} SET BODY -> (region = 'emea')",
        ),
    ]
    assert sync(book, tighter).clean
    # a mask moved to another column: the new one is set before the old one is unset
    steps = plan(target(book), moved).plan.steps
    texts = [(s.phase, s.text.split(" -> ")[0]) for s in steps]
    assert texts[-2:] == [
        (
            Phase.LOOSEN,
            'ALTER TABLE "SHOP"."SALES"."ORDERS" MODIFY COLUMN "AMOUNT" UNSET MASKING POLICY',
        ),
        (Phase.LOOSEN, f"DROP MASKING POLICY {MASK_POLICY}"),
    ]
    assert sync(book, moved).clean
    (email,) = [k for (t, c), k in book.masked.items() if c == "EMAIL"]
    assert book.policies[email][3] == (
        "CASE WHEN IS_ROLE_IN_SESSION('PDP_USER_BOB') THEN val ELSE 'hidden' END"
    )


def test_drift_is_repaired_and_release_drops_only_the_products_policies() -> None:
    book = ledger()
    sync(book, EXAMPLE)
    book.policies[("GOV", "POLICIES", "THEIRS")] = ("MASKING POLICY", "(v)", "NUMBER(10,2)", "v")
    mask_key = book.masked[(TABLE, "AMOUNT")]
    book.masked[(TABLE, "AMOUNT")] = ("GOV", "POLICIES", "THEIRS")  # swapped by hand
    kind, signature, returns, _ = book.policies[book.rows[TABLE][0]]
    book.policies[book.rows[TABLE][0]] = (kind, signature, returns, "TRUE")  # edited by hand
    repair = [(s.phase, s.text) for s in plan(target(book), EXAMPLE).plan.steps]
    assert repair == [
        (
            Phase.TIGHTEN,
            'ALTER TABLE "SHOP"."SALES"."ORDERS" MODIFY COLUMN "AMOUNT" '
            f"SET MASKING POLICY {MASK_POLICY} FORCE",
        ),
        (
            Phase.TIGHTEN,
            f"ALTER ROW ACCESS POLICY {ROWS_POLICY} SET BODY -> "
            "(IS_ROLE_IN_SESSION('PDP_USER_BOB') OR (region = 'emea'))",
        ),
    ]
    assert sync(book, EXAMPLE).clean
    assert book.masked[(TABLE, "AMOUNT")] == mask_key
    # no data policy any more: ours are unset and dropped after the grants, theirs stay
    book.masked[(TABLE, "ID")] = ("GOV", "POLICIES", "THEIRS")
    report = sync(book, world())
    assert report.clean
    assert book.masked == {(TABLE, "ID"): ("GOV", "POLICIES", "THEIRS")}
    assert book.rows == {}
    assert set(book.policies) == {("GOV", "POLICIES", "THEIRS")}


def test_filtered_writers_get_no_truncate_which_ignores_row_access_policies() -> None:
    readers = policy("writers", Access.WRITE, ["alice"], [ORDERS])
    orders = DataSource("sf", Technology.SNOWFLAKE, "shop", "sales", "orders")
    masked, filtered = (
        PolicySnapshot.compile("r", [orders], [readers], {"alice": DirectoryUser("alice")}, **data)
        for data in ({"masking": [mask()]}, {"row_filters": [row_filter()]})
    )
    for snap, expected in ((masked, True), (filtered, False)):
        book = ledger()
        assert sync(book, snap).clean
        assert book.can("ALICE", "DELETE", *TABLE)
        assert book.can("ALICE", "TRUNCATE", *TABLE) is expected


def test_a_policy_unset_or_dropped_by_hand_is_put_back_before_anything_else() -> None:
    book = ledger()
    sync(book, EXAMPLE)
    mask_key = book.masked.pop((TABLE, "AMOUNT"))
    del book.policies[mask_key]
    del book.rows[TABLE]
    steps = plan(target(book), EXAMPLE).plan.steps
    assert [s.text for s in steps] == [EXAMPLE_SQL[0], EXAMPLE_SQL[1], EXAMPLE_SQL[3]]
    assert {s.phase for s in steps} == {Phase.TIGHTEN}
    assert sync(book, EXAMPLE).clean and plan(target(book), EXAMPLE).plan.empty


def test_a_failed_policy_step_skips_the_grants_on_that_table() -> None:
    book = ledger()

    def refuse(sql: str) -> Exception | None:
        if "SET MASKING POLICY" in sql:
            return ProgrammingError(msg="003001 (42501): Insufficient privileges", errno=3001)
        return None

    book.fail = refuse
    report = sync(book, EXAMPLE)
    skipped = [f.step.text for f in report.failed if f.error.startswith("skipped")]
    assert any(t.startswith("GRANT SELECT ON TABLE") for t in skipped)
    assert not book.can("ALICE", "SELECT", *TABLE)


@pytest.mark.parametrize(
    ("kind", "type_", "extra", "expected"),
    [
        (MaskKind.NULL, "NUMBER(10,2)", {}, "NULL"),
        (MaskKind.NULL, "VARIANT", {}, "NULL"),
        (MaskKind.HASH, "VARCHAR(16777216)", {}, "UPPER(SHA2(val, 256))"),
        (MaskKind.HASH, "VARCHAR(20)", {}, "SUBSTR(UPPER(SHA2(val, 256)), 1, 20)"),
        (MaskKind.HASH, "VARCHAR(10)", {}, "NULL"),  # too short for a hash, as in Trino
        (MaskKind.HASH, "NUMBER(38,0)", {}, None),  # bigint or decimal in Trino, by release
        (MaskKind.HASH, "NUMBER(10,2)", {}, "NULL"),  # Trino hashes no decimal: NULL
        (MaskKind.HASH, "FLOAT", {}, "NULL"),
        (MaskKind.HASH, "DATE", {}, "NULL"),
        (MaskKind.ROUND, "NUMBER(38,0)", {"count": 0}, "val"),  # whole numbers stay as they are
        (MaskKind.ROUND, "NUMBER(38,0)", {"count": -1}, None),  # bigint or decimal: ranges
        (MaskKind.ROUND, "NUMBER(10,2)", {"count": 2}, "val"),
        (
            MaskKind.ROUND,
            "NUMBER(10,2)",
            {"count": -1},
            "CASE WHEN ABS(ROUND(val, -1)) < 100000000 THEN CAST(ROUND(val, -1) AS NUMBER(10,2)) "
            "END",
        ),
        (MaskKind.ROUND, "NUMBER(38,2)", {"count": 1}, "NULL"),  # Trino cannot widen it: NULL
        (MaskKind.ROUND, "FLOAT", {"count": 1}, None),  # binary floating point: not exact
        (MaskKind.ROUND, "VARCHAR(10)", {"count": 1}, "NULL"),
        (MaskKind.CONSTANT, "VARCHAR(100)", {"value": "x'y"}, "'x''y'"),
        (MaskKind.CONSTANT, "VARCHAR(2)", {"value": "xyz"}, "NULL"),  # too long: NULL
        (MaskKind.CONSTANT, "NUMBER(38,0)", {"value": 0}, None),
        (
            MaskKind.KEEP_LAST,
            "VARCHAR(100)",
            {"count": 4},
            "CASE WHEN val IS NULL THEN NULL WHEN LENGTH(val) > 4 THEN "
            "CONCAT('****', SUBSTR(val, LENGTH(val) - 4 + 1)) ELSE '****' END",
        ),
        (
            MaskKind.KEEP_FIRST,
            "VARCHAR(5)",
            {"count": 2},
            "SUBSTR(CASE WHEN val IS NULL THEN NULL WHEN LENGTH(val) > 2 THEN "
            "CONCAT(SUBSTR(val, 1, 2), '****') ELSE '****' END, 1, 5)",
        ),
        (
            MaskKind.KEEP_FIRST,
            "VARCHAR(2)",
            {"count": 0},
            "SUBSTR(CASE WHEN val IS NULL THEN NULL WHEN LENGTH(val) > 0 THEN '****' "
            "ELSE '****' END, 1, 2)",
        ),
        (MaskKind.KEEP_FIRST, "NUMBER(10,2)", {"count": 2}, "NULL"),  # Trino: NULL too
        (MaskKind.KEEP_FIRST, "VARIANT", {"count": 2}, None),
    ],
)
def test_mask_translations(
    kind: MaskKind, type_: str, extra: dict[str, object], expected: str | None
) -> None:
    assert masked_value(mask(kind=kind, **extra), type_) == expected


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (
            mask(kind=MaskKind.ROUND, columns=("id",), count=-1),
            "mask 'amount-hidden' on ID NUMBER(38,0) has no exact translation",
        ),
        (
            row_filter("region IN @groups"),
            "row filter 'emea-only' uses @groups (Trino adds the groups of its group provider), "
            "which Snowflake cannot enforce exactly",
        ),
        (
            row_filter("region = 'c:\\temp'"),
            "row filter 'emea-only' uses a backslash (as rendered here), which Snowflake cannot "
            "enforce exactly",
        ),
        (
            row_filter("region LIKE 'e%'"),
            "row filter 'emea-only' uses `LIKE`, which Snowflake cannot enforce exactly",
        ),
        (
            mask(kind=MaskKind.CONSTANT, value=0),
            "mask 'amount-hidden' on AMOUNT NUMBER(10,2) has no exact translation",
        ),
        (row_filter("country = 'fr'"), "row filter 'emea-only': no single column country"),
    ],
)
def test_what_snowflake_cannot_enforce_exactly_is_withheld(
    data: MaskingPolicy | RowFilterPolicy, why: str
) -> None:
    book = ledger()
    planned = plan(target(book), world(data)).plan
    assert planned.withheld[0].endswith(why), planned.withheld
    assert "PDP_USER_BOB" not in " ".join(planned.withheld)  # bob is exempt: keeps his grant
    assert sync(book, world(data)).clean
    assert not book.can("ALICE", "SELECT", *TABLE)
    assert book.can("BOB", "SELECT", *TABLE)
    assert not book.masked and not book.rows


def test_a_mask_by_tag_follows_the_registrys_column_tags() -> None:
    book = ledger()
    pii = MaskingPolicy("pii", MaskKind.HASH, ON, column_tags=frozenset({"pii"}), audience=BOB)
    assert sync(book, world(pii)).clean
    assert [c for (_, c) in book.masked] == ["EMAIL"]
    (key,) = book.masked.values()
    assert book.policies[key][3] == (
        "CASE WHEN IS_ROLE_IN_SESSION('PDP_USER_BOB') THEN val ELSE UPPER(SHA2(val, 256)) END"
    )
