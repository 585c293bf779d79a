"""Trino, Snowflake and Unity Catalog agree on masked values and filtered rows.

Over generated policies, masks and row filters on one Snowflake and one Databricks table: apply
the plans (to the Snowflake ledger, and through the SDK to the fake workspace), read each table
as each user (both fakes run the native policies per row), and read it as Trino would (the
core's row filters and mask expressions, evaluated per row in SQLite). A user never reads
natively a row Trino does not show them; where no policy is only for some groups (which Trino's
group provider may extend), rows and values are equal."""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections.abc import Iterator

import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.core import Config
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pdp.core import Access, Identity, Request, Settings, TableRef, decide
from pdp.core.datapolicy import column_mask, parse_template, row_filters
from pdp.core.model import MaskKind
from pdp.grants import apply, plan
from pdp.grants.databricks import DatabricksDialect
from pdp.grants.retry import Backoff
from pdp.grants.snowflake import SnowflakeDialect
from pdp.grants.targets import DatabricksTarget, SnowflakeTarget
from pdp.policy import DataSource, DirectoryUser, Policy, PolicySnapshot, Technology
from pdp.policy.model import EVERYONE, Audience, MaskingPolicy, RowFilterPolicy, Targets
from tests.grants.fakes.ledger import Ledger
from tests.grants.fakes.numbers import round_half_away
from tests.grants.fakes.uc_server import Workspace, serve

USERS = ["ann", "ben", "cy"]
GROUPS = ["analysts", "ops"]
TABLE = ("SALES", "S1", "T")
# Snowflake's type and Trino's type of it; Unity Catalog's type and Trino's type of it
COLUMNS = {
    "SEQ": ("NUMBER(38,0)", "decimal(38,0)", "int", "integer"),  # never masked: tells rows apart
    "ID": ("NUMBER(38,0)", "decimal(38,0)", "bigint", "bigint"),
    "REGION": ("VARCHAR(16777216)", "varchar(16777216)", "string", "varchar"),
    "AMOUNT": ("NUMBER(10,2)", "decimal(10,2)", "decimal(10,2)", "decimal(10,2)"),
    "EMAIL": ("VARCHAR(100)", "varchar(100)", "string", "varchar"),
    "OWNER": ("VARCHAR(20)", "varchar(20)", "string", "varchar"),
    "CODE": ("VARCHAR(6)", "varchar(6)", "string", "varchar"),
}
UC_TABLE = "main.s1.t"
ROWS: list[dict[str, object]] = [
    {"SEQ": 0, "ID": 1, "REGION": "emea", "AMOUNT": 120.45, "EMAIL": "ann@example.com",
     "OWNER": "ann", "CODE": "ab-123"},
    {"SEQ": 1, "ID": -2, "REGION": "amer", "AMOUNT": -80.5, "EMAIL": None, "OWNER": "ben",
     "CODE": "x"},
    {"SEQ": 2, "ID": 3, "REGION": None, "AMOUNT": None, "EMAIL": "ünï@example.com",
     "OWNER": "cy", "CODE": None},
    {"SEQ": 3, "ID": 9223372036854775807, "REGION": "apac", "AMOUNT": 99999999.95,
     "EMAIL": "o'hare", "OWNER": "ann", "CODE": "zz"},
]  # fmt: skip
PREDICATES = [
    "region = 'emea'",
    "amount > 100",
    "region IN ('emea', 'amer') AND NOT amount < 100",
    "region IS NULL OR id = 2",
    "owner = @user",  # per user
    "region IN @attribute(region) OR owner = @user",  # per user, values from the directory
    "owner IN @groups",  # Trino's group provider may add groups: withheld
    "lower(region) = 'emea'",  # a function: withheld
]
REGIONS = ["emea", "amer", "o'hare"]  # a quote: withheld on Unity Catalog for that user
SOURCE = DataSource(
    "sf",
    Technology.SNOWFLAKE,
    "sales",
    "s1",
    "t",
    trino_catalog="snow",
    columns=(("email", frozenset({"pii"})),),
)
UC_SOURCE = DataSource(
    "uc",
    Technology.DATABRICKS,
    "main",
    "s1",
    "t",
    trino_catalog="lake",
    columns=(("email", frozenset({"pii"})),),
)
PATHS = frozenset({"sf.sales.s1.t", "uc.main.s1.t"})
ON = Targets(data_sources=PATHS)


@st.composite
def worlds(draw: st.DrawFn) -> PolicySnapshot:
    readers = Policy(
        "readers",
        Access.READ,
        users=frozenset(draw(st.sets(st.sampled_from(USERS), min_size=1))),
        groups=frozenset(draw(st.sets(st.sampled_from(GROUPS), max_size=1))),
        data_sources=PATHS,
    )
    directory = {
        u: DirectoryUser(
            u,
            frozenset(draw(st.sets(st.sampled_from(GROUPS), max_size=1))),
            {"region": frozenset(draw(st.sets(st.sampled_from(REGIONS), max_size=2)))},
        )
        for u in USERS
    }
    masks = [
        MaskingPolicy(
            f"m{index}",
            (kind := draw(st.sampled_from(list(MaskKind)))),
            ON,
            columns=draw(
                st.sampled_from(
                    [frozenset({"amount"}), frozenset({"code"}), frozenset({"id"}), frozenset()]
                )
            ),
            column_tags=draw(st.sampled_from([frozenset({"pii"}), frozenset()])),
            value=draw(st.sampled_from(["hidden", "x", 0])) if kind is MaskKind.CONSTANT else None,
            count=draw(st.integers(-2, 5)),
            audience=_audience(draw),
        )
        for index in range(draw(st.integers(0, 2)))
    ]
    filters = [
        RowFilterPolicy(
            f"f{index}",
            ON,
            (where := draw(st.sampled_from(PREDICATES))),
            parse_template(where),
            _audience(draw),
        )
        for index in range(draw(st.integers(0, 2)))
    ]
    return PolicySnapshot.compile(
        "r", [SOURCE, UC_SOURCE], [readers], directory, masking=masks, row_filters=filters
    )


def _world(*data: MaskingPolicy | RowFilterPolicy) -> PolicySnapshot:
    """Everyone reads; ann is in emea and amer, ben in o'hare (a quote), cy in none."""
    readers = Policy("readers", Access.READ, users=frozenset(USERS), data_sources=PATHS)
    regions = {"ann": {"emea", "amer"}, "ben": {"o'hare"}, "cy": set()}
    directory = {u: DirectoryUser(u, attributes={"region": frozenset(regions[u])}) for u in USERS}
    masks = [d for d in data if isinstance(d, MaskingPolicy)]
    filters = [d for d in data if isinstance(d, RowFilterPolicy)]
    return PolicySnapshot.compile(
        "r", [SOURCE, UC_SOURCE], [readers], directory, masking=masks, row_filters=filters
    )


def _only(*users: str) -> Audience:
    return Audience(users=frozenset(users), exclude=False)


def _filter(where: str, audience: Audience = EVERYONE) -> RowFilterPolicy:
    return RowFilterPolicy("f", ON, where, parse_template(where), audience)


# Always run, beside the generated worlds: each new translation applied to someone who reads.
EXAMPLES = [
    _world(
        MaskingPolicy(
            "r", MaskKind.ROUND, ON, frozenset({"amount"}), count=1, audience=_only("ann")
        ),
        MaskingPolicy("h", MaskKind.HASH, ON, frozenset({"id"}), audience=_only("ann", "cy")),
        _filter("region IN @attribute(region) OR owner = @user"),
    ),
    _world(
        MaskingPolicy(
            "r", MaskKind.ROUND, ON, frozenset({"amount"}), count=-1, audience=_only("ben")
        ),
        MaskingPolicy("k", MaskKind.KEEP_FIRST, ON, frozenset({"code"}), count=2),
        _filter("owner = @user", Audience(users=frozenset({"cy"}))),
    ),
]


def _audience(draw: st.DrawFn) -> Audience:
    return Audience(
        users=frozenset(draw(st.sets(st.sampled_from(USERS), max_size=2))),
        groups=frozenset(draw(st.sets(st.sampled_from(GROUPS), max_size=1))),
        exclude=draw(st.booleans()),
    )


def _trino() -> sqlite3.Connection:
    """SQLite with the Trino functions the core's mask expressions use (decimal literals are
    read as numbers: `_sql`)."""
    db = sqlite3.connect(":memory:")
    db.create_function("round", 2, round_half_away)
    for name, size in (("from_big_endian_64", 8), ("from_big_endian_32", 4)):
        db.create_function(
            name, 1, lambda v, n=size: None if v is None else int.from_bytes(v[:n], signed=True)
        )
    db.create_function("to_utf8", 1, lambda v: None if v is None else v.encode())
    db.create_function("sha256", 1, lambda v: None if v is None else hashlib.sha256(v).digest())
    db.create_function("to_hex", 1, lambda v: None if v is None else v.hex().upper())
    db.create_function("concat", -1, lambda *a: None if None in a else "".join(map(str, a)))
    return db


def _sql(expression: str) -> str:
    return re.sub(r"DECIMAL '(-?\d+)'", r"\1", expression)


def trino_reads(
    snapshot: PolicySnapshot, user: str, catalog: str = "snow"
) -> list[dict[str, object]] | None:
    """The rows of `catalog`.s1.t Trino shows `user`, masked as Trino masks them."""
    view = snapshot.view(Settings(mapping=snapshot.mapping), Identity(user))
    table = TableRef(catalog, "s1", "t")
    typed = 1 if catalog == "snow" else 3
    if not decide(view, Request(Identity(user), "SelectFromColumns", table)).allowed:
        return None
    db = _trino()
    names = ", ".join(f"? AS {c.lower()}" for c in COLUMNS)
    filters = [f.expression for f in row_filters(view, Identity(user), table.key)]
    shown = []
    for row in ROWS:
        values = [row[c] for c in COLUMNS]
        if any(
            not db.execute(f"SELECT ({f}) FROM (SELECT {names})", values).fetchone()[0]
            for f in filters
        ):
            continue
        out = dict(row)
        for column, types in COLUMNS.items():
            mask = column_mask(view, Identity(user), table.key, column.lower(), types[typed])
            if mask is not None:
                sql = f"SELECT {_sql(mask.expression)} FROM (SELECT {names})"
                out[column] = db.execute(sql, values).fetchone()[0]
        shown.append(out)
    return shown


def _group_only(snapshot: PolicySnapshot) -> bool:
    return any(
        p.audience.groups and not p.audience.exclude
        for p in (*snapshot.masking, *snapshot.row_filters)
    )


def _compare(native: list[dict[str, object]], trino: list[dict[str, object]] | None, exact: bool):
    assert trino is not None
    assert {r["SEQ"] for r in native} <= {r["SEQ"] for r in trino}, (native, trino)
    if exact:
        assert native == trino, (native, trino)


@settings(max_examples=120, deadline=None)
@given(worlds())
@example(EXAMPLES[0])
@example(EXAMPLES[1])
def test_no_user_reads_natively_more_than_trino_shows(snapshot: PolicySnapshot) -> None:
    book = Ledger()
    book.users |= {u.upper() for u in USERS}
    book.add_object("TABLE", *TABLE, columns={c: t[0] for c, t in COLUMNS.items()})
    book.add_object("SCHEMA", "GOV", "P")
    book.data[TABLE] = ROWS
    target = SnowflakeTarget(
        "sf", frozenset({"sf"}), book, SnowflakeDialect(policy_schema=("GOV", "P"))
    )
    report = apply(target, plan(target, snapshot))
    assert report.clean, report.failed
    for user in USERS:
        if book.can(user.upper(), "SELECT", *TABLE):  # else withheld, or no policy grants it
            native = book.select(user.upper(), *TABLE)
            _compare(native, trino_reads(snapshot, user), not _group_only(snapshot))


@pytest.fixture(scope="module")
def uc() -> Iterator[tuple[Workspace, WorkspaceClient]]:
    workspace = Workspace()
    workspace.principals |= set(USERS)
    workspace.add("table", UC_TABLE)
    workspace.data[UC_TABLE] = [{c.lower(): v for c, v in row.items()} for row in ROWS]
    with serve(workspace) as url:
        yield workspace, WorkspaceClient(config=Config(host=url, token=workspace.pat))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshot=worlds())
@example(snapshot=EXAMPLES[0])
@example(snapshot=EXAMPLES[1])
def test_no_user_reads_natively_on_unity_catalog_more_than_trino_shows(
    uc: tuple[Workspace, WorkspaceClient], snapshot: PolicySnapshot
) -> None:
    workspace, client = uc
    columns = [
        {"name": c.lower(), "type_text": t[2], "type_name": t[2]} for c, t in COLUMNS.items()
    ]
    workspace.tree = {"main": {"s1": {"t": {"name": "t", "columns": columns}}}, "gov": {"p": {}}}
    workspace.grants.clear()
    workspace.functions.clear()
    dialect = DatabricksDialect(policy_schema=("gov", "p"))
    backoff = Backoff(sleep=lambda _: None)
    target = DatabricksTarget("uc", frozenset({"uc"}), client, dialect, backoff, 2, 0.0, "wh-1")
    report = apply(target, plan(target, snapshot), sleep=lambda _: None)
    assert report.clean, report.failed
    for user in USERS:
        try:
            native = workspace.select(user, UC_TABLE)
        except PermissionError:
            continue  # withheld, or no policy grants it
        upper = [{c.upper(): v for c, v in row.items()} for row in native]
        _compare(upper, trino_reads(snapshot, user, "lake"), not _group_only(snapshot))
