"""Trino and Snowflake agree on masked values and filtered rows.

Over generated policies, masks and row filters on one Snowflake table: apply the plan to the
ledger, read the table as each user (the ledger evaluates the masking and row access policies
per row), and read it as Trino would (the core's row filters and mask expressions, evaluated per
row in SQLite). A user never reads natively a row Trino does not show them; where no policy is
only for some groups (which Trino's group provider may extend), rows and values are equal."""

from __future__ import annotations

import hashlib
import sqlite3

from hypothesis import given, settings
from hypothesis import strategies as st

from pdp.core import Access, Identity, Request, Settings, TableRef, decide
from pdp.core.datapolicy import column_mask, parse_template, row_filters
from pdp.core.model import MaskKind
from pdp.grants import apply, plan
from pdp.grants.snowflake import SnowflakeDialect
from pdp.grants.targets import SnowflakeTarget
from pdp.policy import DataSource, DirectoryUser, Policy, PolicySnapshot, Technology
from pdp.policy.model import Audience, MaskingPolicy, RowFilterPolicy, Targets
from tests.grants.fakes.ledger import Ledger

USERS = ["ann", "ben", "cy"]
GROUPS = ["analysts", "ops"]
TABLE = ("SALES", "S1", "T")
# Snowflake's type, Trino's type of the same column
COLUMNS = {
    "ID": ("NUMBER(38,0)", "decimal(38,0)"),
    "REGION": ("VARCHAR(16777216)", "varchar(16777216)"),
    "AMOUNT": ("NUMBER(10,2)", "decimal(10,2)"),
    "EMAIL": ("VARCHAR(100)", "varchar(100)"),
    "OWNER": ("VARCHAR(20)", "varchar(20)"),
    "CODE": ("VARCHAR(6)", "varchar(6)"),
}
ROWS: list[dict[str, object]] = [
    {"ID": 1, "REGION": "emea", "AMOUNT": 120, "EMAIL": "ann@example.com", "OWNER": "ann",
     "CODE": "ab-123"},
    {"ID": 2, "REGION": "amer", "AMOUNT": 80, "EMAIL": None, "OWNER": "ben", "CODE": "x"},
    {"ID": 3, "REGION": None, "AMOUNT": None, "EMAIL": "ünï@example.com", "OWNER": "cy",
     "CODE": None},
]  # fmt: skip
PREDICATES = [
    "region = 'emea'",
    "amount > 100",
    "region IN ('emea', 'amer') AND NOT amount < 100",
    "region IS NULL OR id = 2",
    "owner = @user",  # per user: withheld on Snowflake
    "lower(region) = 'emea'",  # a function: withheld
]
SOURCE = DataSource(
    "sf",
    Technology.SNOWFLAKE,
    "sales",
    "s1",
    "t",
    trino_catalog="snow",
    columns=(("email", frozenset({"pii"})),),
)
ON = Targets(data_sources=frozenset({"sf.sales.s1.t"}))


@st.composite
def worlds(draw: st.DrawFn) -> PolicySnapshot:
    readers = Policy(
        "readers",
        Access.READ,
        users=frozenset(draw(st.sets(st.sampled_from(USERS), min_size=1))),
        groups=frozenset(draw(st.sets(st.sampled_from(GROUPS), max_size=1))),
        data_sources=frozenset({"sf.sales.s1.t"}),
    )
    directory = {
        u: DirectoryUser(u, frozenset(draw(st.sets(st.sampled_from(GROUPS), max_size=1))))
        for u in USERS
    }
    masks = [
        MaskingPolicy(
            f"m{index}",
            (kind := draw(st.sampled_from(list(MaskKind)))),
            ON,
            columns=draw(
                st.sampled_from([frozenset({"amount"}), frozenset({"code"}), frozenset()])
            ),
            column_tags=draw(st.sampled_from([frozenset({"pii"}), frozenset()])),
            value=draw(st.sampled_from(["hidden", "x", 0])) if kind is MaskKind.CONSTANT else None,
            count=draw(st.integers(0, 5)),
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
        "r", [SOURCE], [readers], directory, masking=masks, row_filters=filters
    )


def _audience(draw: st.DrawFn) -> Audience:
    return Audience(
        users=frozenset(draw(st.sets(st.sampled_from(USERS), max_size=2))),
        groups=frozenset(draw(st.sets(st.sampled_from(GROUPS), max_size=1))),
        exclude=draw(st.booleans()),
    )


def _trino() -> sqlite3.Connection:
    """SQLite with the Trino functions the core's mask expressions use."""
    db = sqlite3.connect(":memory:")
    db.create_function("to_utf8", 1, lambda v: None if v is None else v.encode())
    db.create_function("sha256", 1, lambda v: None if v is None else hashlib.sha256(v).digest())
    db.create_function("to_hex", 1, lambda v: None if v is None else v.hex().upper())
    db.create_function("concat", -1, lambda *a: None if None in a else "".join(map(str, a)))
    return db


def trino_reads(snapshot: PolicySnapshot, user: str) -> list[dict[str, object]] | None:
    view = snapshot.view(Settings(mapping=snapshot.mapping), Identity(user))
    table = TableRef("snow", "s1", "t")
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
        for column, (_, trino_type) in COLUMNS.items():
            mask = column_mask(view, Identity(user), table.key, column.lower(), trino_type)
            if mask is not None:
                sql = f"SELECT {mask.expression} FROM (SELECT {names})"
                out[column] = db.execute(sql, values).fetchone()[0]
        shown.append(out)
    return shown


@settings(max_examples=120, deadline=None)
@given(worlds())
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
    group_only = any(
        p.audience.groups and not p.audience.exclude
        for p in (*snapshot.masking, *snapshot.row_filters)
    )
    for user in USERS:
        if not book.can(user.upper(), "SELECT", *TABLE):
            continue  # withheld, or no policy grants it
        trino = trino_reads(snapshot, user)
        native = book.select(user.upper(), *TABLE)
        assert trino is not None, user
        assert {r["ID"] for r in native} <= {r["ID"] for r in trino}, (user, native, trino)
        if not group_only:
            assert native == trino, (user, native, trino)
