"""Unity Catalog column masks and row filters, through the real SDK (statement execution API and
the tables and functions APIs) against the fake workspace: golden SQL for issue 21's example,
reads as each user (the fake runs the UDFs per row), idempotence, changes in place before any
grant, drift repaired, release, and what is withheld."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from databricks.sdk import WorkspaceClient

from pdp.core import Access
from pdp.core.datapolicy import parse_template
from pdp.core.model import MaskKind
from pdp.grants import Phase, apply, plan
from pdp.grants.databricks import DatabricksDialect
from pdp.grants.retry import Backoff
from pdp.grants.targets import DatabricksTarget
from pdp.grants.ucpolicy import masked_value
from pdp.policy import DataSource, DirectoryUser, PolicySnapshot, Technology
from pdp.policy.model import Audience, MaskingPolicy, RowFilterPolicy, Targets
from tests.grants.fakes.uc_server import Workspace
from tests.grants.fakes.world import policy

ALICE, BOB = "alice@example.com", "bob@example.com"
ORDERS, TABLE = "uc.main.sales.orders", "main.sales.orders"
ON = Targets(data_sources=frozenset({ORDERS}))
BOB_EXEMPT = Audience(users=frozenset({BOB}))
COLUMNS = [
    ("id", "bigint"),
    ("region", "string"),
    ("amount", "decimal(10,2)"),
    ("email", "string"),
    ("score", "double"),
]
ROWS: list[dict[str, Any]] = [
    {"id": 1, "region": "emea", "amount": 120, "email": "ann@example.com", "score": 0.5},
    {"id": 2, "region": "amer", "amount": 80, "email": None, "score": None},
]


def mask(kind: MaskKind = MaskKind.NULL, columns: tuple[str, ...] = ("amount",), **kw: Any):
    return MaskingPolicy(
        "amount-hidden", kind, ON, columns=frozenset(columns), audience=BOB_EXEMPT, **kw
    )


def row_filter(where: str = "region = 'emea'", audience: Audience = BOB_EXEMPT):
    return RowFilterPolicy("emea-only", ON, where, parse_template(where), audience)


def world(*data: MaskingPolicy | RowFilterPolicy) -> PolicySnapshot:
    orders = DataSource("uc", Technology.DATABRICKS, "main", "sales", "orders")
    readers = policy("readers", Access.READ, [ALICE, BOB], [ORDERS])
    directory = {u: DirectoryUser(u) for u in (ALICE, BOB)}
    masks = [d for d in data if isinstance(d, MaskingPolicy)]
    filters = [d for d in data if isinstance(d, RowFilterPolicy)]
    return PolicySnapshot.compile(
        "r", [orders], [readers], directory, masking=masks, row_filters=filters
    )


EXAMPLE = world(mask(), row_filter())


@pytest.fixture
def uc_workspace() -> Workspace:
    workspace = Workspace()
    workspace.principals |= {ALICE, BOB}
    workspace.add("table", TABLE)
    columns = [{"name": n, "type_text": t, "type_name": t.upper()} for n, t in COLUMNS]
    workspace.tree = {
        "main": {"sales": {"orders": {"name": "orders", "columns": columns}}},
        "gov": {"policies": {}},
    }
    workspace.data[TABLE] = ROWS
    return workspace


def target(client: WorkspaceClient, warehouse: str = "wh-1") -> DatabricksTarget:
    dialect = DatabricksDialect(policy_schema=("gov", "policies"))
    backoff = Backoff(sleep=lambda _: None)
    return DatabricksTarget("uc", frozenset({"uc"}), client, dialect, backoff, 2, 0.0, warehouse)


def sync(client: WorkspaceClient, snap: PolicySnapshot, warehouse: str = "wh-1"):
    t = target(client, warehouse)
    return apply(t, plan(t, snap), sleep=lambda _: None)


MASK_UDF = "`gov`.`policies`.`pdp_mask_84306d1c2138`"
ROWS_UDF = "`gov`.`policies`.`pdp_rows_7570e8c64c98`"
EXAMPLE_SQL = [
    f"CREATE OR REPLACE FUNCTION {MASK_UDF}(val decimal(10,2)) RETURNS decimal(10,2) "
    "COMMENT 'pdp grant sync: main.sales.orders' RETURN CASE WHEN lower(current_user()) IN "
    "('bob@example.com') THEN val ELSE NULL END",
    f"ALTER TABLE `main`.`sales`.`orders` ALTER COLUMN `amount` SET MASK {MASK_UDF}",
    f"CREATE OR REPLACE FUNCTION {ROWS_UDF}(region string) RETURNS BOOLEAN "
    "COMMENT 'pdp grant sync: main.sales.orders' RETURN (lower(current_user()) IN "
    "('bob@example.com') OR (region = 'emea'))",
    f"ALTER TABLE `main`.`sales`.`orders` SET ROW FILTER {ROWS_UDF} ON (`region`)",
]


def test_golden_sql_and_the_walk_through(uc: tuple[Workspace, WorkspaceClient]) -> None:
    workspace, client = uc
    steps = plan(target(client), EXAMPLE).plan.steps
    assert [s.text for s in steps if s.phase is Phase.TIGHTEN] == EXAMPLE_SQL
    assert [s.phase for s in steps] == sorted(s.phase for s in steps)
    report = sync(client, EXAMPLE)
    assert report.clean, report.failed
    assert workspace.statements == EXAMPLE_SQL
    assert workspace.select(ALICE, TABLE) == [{**ROWS[0], "amount": None}]
    assert workspace.select(BOB, TABLE) == ROWS
    assert plan(target(client), EXAMPLE).plan.empty


def test_changes_in_place_before_grants_drift_and_release(
    uc: tuple[Workspace, WorkspaceClient],
) -> None:
    workspace, client = uc
    sync(client, EXAMPLE)
    tighter = world(mask(), row_filter(audience=Audience()))  # bob is filtered too
    steps = plan(target(client), tighter).plan.steps
    assert [(s.phase, s.text.split(" RETURN ")[1]) for s in steps] == [
        (Phase.TIGHTEN, "(region = 'emea')"),
    ]
    assert sync(client, tighter).clean
    assert workspace.select(BOB, TABLE) == [ROWS[0]]
    # by hand: the mask dropped, the filter's body edited
    workspace.tree["main"]["sales"]["orders"]["columns"][2].pop("mask")
    params, returns, _, comment = workspace.functions["gov.policies.pdp_rows_7570e8c64c98"]
    workspace.functions["gov.policies.pdp_rows_7570e8c64c98"] = (params, returns, "TRUE", comment)
    repair = plan(target(client), tighter).plan.steps
    assert {s.phase for s in repair} == {Phase.TIGHTEN} and len(repair) == 2
    assert sync(client, tighter).clean
    assert workspace.select(ALICE, TABLE) == [{**ROWS[0], "amount": None}]
    # no data policy any more: masks and filters dropped after the grants, then the UDFs
    release = plan(target(client), world()).plan.steps
    assert [s.text for s in release] == [
        "ALTER TABLE `main`.`sales`.`orders` ALTER COLUMN `amount` DROP MASK",
        "ALTER TABLE `main`.`sales`.`orders` DROP ROW FILTER",
        f"DROP FUNCTION IF EXISTS {MASK_UDF}",
        f"DROP FUNCTION IF EXISTS {ROWS_UDF}",
    ]
    assert sync(client, world()).clean
    assert workspace.functions == {}
    assert workspace.select(ALICE, TABLE) == ROWS


def test_filtered_writers_get_no_modify_masked_ones_do(
    uc: tuple[Workspace, WorkspaceClient],
) -> None:
    workspace, client = uc
    orders = DataSource("uc", Technology.DATABRICKS, "main", "sales", "orders")
    writers = policy("writers", Access.WRITE, [ALICE], [ORDERS])
    alice = {ALICE: DirectoryUser(ALICE)}
    for data, modify in (({"masking": [mask()]}, True), ({"row_filters": [row_filter()]}, False)):
        snap = PolicySnapshot.compile("r", [orders], [writers], alice, **data)  # type: ignore[arg-type]
        assert sync(client, snap).clean
        held = workspace.held("table", TABLE).get(ALICE, set())
        assert "SELECT" in held and ("MODIFY" in held) is modify


def test_a_failed_statement_skips_the_grants_on_that_table(
    uc: tuple[Workspace, WorkspaceClient],
) -> None:
    workspace, client = uc
    report = sync(client, EXAMPLE, warehouse="wh-gone")
    assert report.failed
    skipped = [f.step.subject for f in report.failed if f.error.startswith("skipped")]
    assert "TABLE main.sales.orders" in skipped
    with pytest.raises(PermissionError):
        workspace.select(ALICE, TABLE)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (row_filter("region IN @groups"), "@groups (Trino adds the groups of its group provider)"),
        (mask(MaskKind.ROUND, columns=("score",), count=1), "score double has no exact"),
        (row_filter("region = 'it''s'"), "uses a doubled quote (as rendered here)"),
        (mask(MaskKind.CONSTANT, value=0), "has no exact translation"),
    ],
)
def test_what_unity_catalog_cannot_enforce_exactly_is_withheld(
    uc: tuple[Workspace, WorkspaceClient], data: MaskingPolicy | RowFilterPolicy, why: str
) -> None:
    workspace, client = uc
    planned = plan(target(client), world(data)).plan
    assert len(planned.withheld) == 1 and why in planned.withheld[0], planned.withheld
    assert sync(client, world(data)).clean
    with pytest.raises(PermissionError):
        workspace.select(ALICE, TABLE)
    assert workspace.select(BOB, TABLE) == ROWS


@pytest.mark.parametrize(
    ("kind", "type_", "extra", "expected"),
    [
        (MaskKind.NULL, "decimal(10,2)", {}, "NULL"),
        (MaskKind.HASH, "string", {}, "upper(sha2(val, 256))"),
        (
            MaskKind.HASH,
            "bigint",
            {},
            "CAST(conv(substr(sha2(CAST(val AS STRING), 256), 1, 16), 16, -10) AS BIGINT)",
        ),
        (
            MaskKind.HASH,
            "int",
            {},
            "CAST((CAST(conv(substr(sha2(CAST(val AS STRING), 256), 1, 8), 16, -10) AS BIGINT) "
            "+ 2147483648) % 4294967296 - 2147483648 AS INT)",
        ),
        (MaskKind.HASH, "smallint", {}, "NULL"),  # Trino hashes integer and bigint only
        (MaskKind.HASH, "decimal(10,2)", {}, "NULL"),
        (MaskKind.HASH, "double", {}, "NULL"),
        (MaskKind.ROUND, "bigint", {"count": 2}, "val"),
        (
            MaskKind.ROUND,
            "int",
            {"count": -2},
            "CASE WHEN round(CAST(val AS DECIMAL(20,0)), -2) BETWEEN -2147483648 AND 2147483647 "
            "THEN CAST(round(CAST(val AS DECIMAL(20,0)), -2) AS INT) END",
        ),
        (
            MaskKind.ROUND,
            "decimal(10,2)",
            {"count": 1},
            "CASE WHEN ABS(ROUND(val, 1)) < 100000000 THEN CAST(ROUND(val, 1) AS decimal(10,2)) "
            "END",
        ),
        (MaskKind.ROUND, "decimal(38,2)", {"count": 1}, "NULL"),  # Trino cannot widen it
        (MaskKind.ROUND, "double", {"count": 1}, None),  # binary floating point: not exact
        (MaskKind.ROUND, "string", {"count": 1}, "NULL"),
        (MaskKind.CONSTANT, "string", {"value": "hidden"}, "'hidden'"),
        (MaskKind.CONSTANT, "string", {"value": "it's"}, None),
        (MaskKind.KEEP_FIRST, "bigint", {"count": 2}, "NULL"),
        (MaskKind.KEEP_FIRST, "array<string>", {"count": 2}, None),
        (
            MaskKind.KEEP_LAST,
            "string",
            {"count": 4},
            "CASE WHEN val IS NULL THEN NULL WHEN LENGTH(val) > 4 THEN "
            "CONCAT('****', SUBSTR(val, LENGTH(val) - 4 + 1)) ELSE '****' END",
        ),
    ],
)
def test_mask_translations(kind: MaskKind, type_: str, extra: dict[str, Any], expected) -> None:
    assert masked_value(mask(kind, **extra), type_) == expected


def test_masked_values_read_natively_are_trinos(uc: tuple[Workspace, WorkspaceClient]) -> None:
    import hashlib

    workspace, client = uc
    assert sync(client, world(mask(MaskKind.HASH, columns=("email",)))).clean
    digest = hashlib.sha256(b"ann@example.com").hexdigest().upper()  # Trino's to_hex(sha256())
    assert [r["email"] for r in workspace.select(ALICE, TABLE)] == [digest, None]


def _trino_hash(value: int, size: int) -> int:
    """Trino's from_big_endian_64/32(substr(sha256(to_utf8(CAST(value AS varchar))), 1, n))."""
    digest = hashlib.sha256(str(value).encode()).digest()
    return int.from_bytes(digest[:size], "big", signed=True)


def test_hashed_and_rounded_numbers_read_natively_are_trinos(
    uc: tuple[Workspace, WorkspaceClient],
) -> None:
    workspace, client = uc
    ids = [1, -7, 9223372036854775807, None]
    amounts = [120.45, -0.05, 99999999.99, None]
    workspace.data[TABLE] = [
        {**ROWS[0], "id": i, "amount": a} for i, a in zip(ids, amounts, strict=True)
    ]
    hashed = MaskingPolicy("ids", MaskKind.HASH, ON, frozenset({"id"}), audience=BOB_EXEMPT)
    rounded = mask(MaskKind.ROUND, count=1)
    assert sync(client, world(hashed, rounded)).clean
    shown = workspace.select(ALICE, TABLE)
    assert [r["id"] for r in shown] == [_trino_hash(i, 8) for i in ids[:3]] + [None]
    assert any(r["id"] < 0 for r in shown[:3])  # the signed reading is exercised
    # Trino: round(CAST(amount AS decimal(38, 2)), 1), half away from zero, NULL past the range
    assert [r["amount"] for r in shown] == [120.5, -0.1, None, None]
    assert [r["id"] for r in workspace.select(BOB, TABLE)] == ids


def _attributed(where: str) -> PolicySnapshot:
    """alice and bob, each with a region, and a filter for both that names them."""
    orders = DataSource("uc", Technology.DATABRICKS, "main", "sales", "orders")
    readers = policy("readers", Access.READ, [ALICE, BOB], [ORDERS])
    directory = {
        ALICE: DirectoryUser(ALICE, attributes={"region": frozenset({"emea"})}),
        BOB: DirectoryUser(BOB, attributes={"region": frozenset({"amer", "o'hare"})}),
    }
    mine = row_filter(where, audience=Audience())
    return PolicySnapshot.compile("r", [orders], [readers], directory, row_filters=[mine])


def test_a_filter_naming_the_user_gives_each_user_their_own_predicate(
    uc: tuple[Workspace, WorkspaceClient],
) -> None:
    workspace, client = uc
    snap = _attributed("region = @user OR region IN @attribute(region)")
    planned = plan(target(client), snap).plan
    # bob's values hold a quote, which Spark reads its own way: bob alone is withheld
    assert [w.split(":")[0] for w in planned.withheld] == [f"{BOB} on {ORDERS}"]
    assert "a doubled quote" in planned.withheld[0]
    (body,) = [s.text for s in planned.steps if s.text.startswith("CREATE OR REPLACE")]
    assert body.endswith(
        "RETURN (((lower(current_user()) IN ('alice@example.com'))) AND (NOT "
        "(lower(current_user()) IN ('alice@example.com')) OR "
        "(region = 'alice@example.com' OR region IN ('emea'))))"
    )
    assert sync(client, snap).clean
    assert workspace.select(ALICE, TABLE) == [ROWS[0]]
    with pytest.raises(PermissionError):
        workspace.select(BOB, TABLE)
    assert plan(target(client), snap).plan.empty
