"""Masks and row filters, two ways: read through Trino's postgresql catalog (the sidecar answers
Trino's row filter and column mask requests) and natively in PostgreSQL after grant sync (each
user logs in as their own role). Whatever the data policies, a user never reads natively a row or
a value that Trino does not show them; where PostgreSQL can enforce the policy (a row filter as
row-level security), the user reads exactly Trino's rows."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
import yaml
from trino.exceptions import TrinoUserError

from pdp.config.load import load_snapshot
from pdp.grants import apply, parse_grants, plan
from tests.e2e.conftest import E2E, POLICIES, eventually, targets_file
from tests.e2e.conftest import registry as registry_text
from tests.support.typed import typed_table

USERS = ("alice", "bob", "carol")
TABLES = ("accounts", "payments")
Rows = list[tuple[object, ...]] | None


def _canary(step: int) -> str:
    """A filter only for carol whose rows change with each scenario: Trino has taken the new
    policy files once carol's payments through Trino show them."""
    return f"""
  - name: canary
    status: active
    what: {{dataSources: [pg.{{db}}.public.payments]}}
    where: "id <> {step % 2 + 1}"
    onlyFor: {{users: [carol]}}
"""


SMALL = """
  - name: small
    status: active
    what: {dataSources: [pg.{db}.public.accounts]}
    where: "balance < 15"
    exceptFor: {users: [bob]}
"""
NOT_FIRST = """
  - name: not-first
    status: active
    what: {dataSources: [pg.{db}.public.accounts]}
    where: "id <> 1"
"""
OWN = """
  - name: own
    status: active
    what: {dataSources: [pg.{db}.public.accounts]}
    where: "owner = @user OR balance = 0"
"""
ANALYSTS = """
  - name: analysts-see-one
    status: active
    what: {dataSources: [pg.{db}.public.accounts]}
    where: "id = 2"
    onlyFor: {groups: [analysts]}
"""
HIDDEN = """
masks:
  - name: balance-hidden
    status: active
    columns: {names: [balance]}
    what: {dataSources: [pg.{db}.public.accounts]}
    mask: "null"
    exceptFor: {users: [bob]}
"""

# (row filters, masks, what alice reads of accounts natively: ids, or None when refused)
SCENARIOS = [
    ("", "", [1, 2, 3]),
    (SMALL, "", [1, 3]),
    (SMALL + NOT_FIRST, "", [3]),  # Trino ANDs filters; restrictive policies do too
    (OWN, "", [3]),
    # alice is an analyst through Trino's group provider only: natively the filter reaches
    # everyone it might reach (bob too: he reads less natively than through Trino)
    (ANALYSTS, "", [2]),
    # a mask: alice gets SELECT on the other columns only, so `SELECT *` is refused natively
    (SMALL, HIDDEN, None),
]


def _through_trino(e2e: E2E, user: str, table: str) -> Rows:
    try:
        rows = e2e.query(user, f"SELECT * FROM postgresql.public.{table}")
    except TrinoUserError as error:
        assert error.error_name == "PERMISSION_DENIED", error
        return None
    return sorted(tuple(row) for row in rows)


def _natively(e2e: E2E, user: str, table: str) -> Rows:
    with e2e.pg.connect(e2e.database, e2e.pg_users[user]) as conn:
        try:
            return sorted(conn.execute(f"SELECT * FROM public.{table}").fetchall())
        except psycopg.errors.InsufficientPrivilege:
            return None


def _sync(e2e: E2E, targets: Path) -> None:
    spec = parse_grants(yaml.safe_load(targets.read_text()), str(targets)).targets[0]
    snapshot = load_snapshot(e2e.tree.policy_files, None).value
    with spec.open() as target:
        report = apply(target, plan(target, snapshot))
        assert plan(target, snapshot).plan.empty  # idempotent
    assert not report.failed, report.failed


@pytest.fixture
def targets(e2e: E2E, tmp_path: Path) -> Path:
    path = targets_file(tmp_path / "targets.yaml", e2e)
    yield path
    # leave PostgreSQL as grant sync found it: no grant, no policy, row security off
    e2e.write_policies("policies: []\n")
    _sync(e2e, path)
    e2e.write_policies(POLICIES)


def test_no_user_reads_natively_more_than_through_trino(e2e: E2E, targets: Path) -> None:
    carol_sees = {0: [2], 1: [1]}  # payments ids carol reads under each canary
    for step, (filters, masks, alice_natively) in enumerate(SCENARIOS):
        e2e.write_policies(POLICIES + masks + "rowFilters:\n" + _canary(step) + filters)
        eventually(
            lambda s=step: (
                [r[0] for r in _through_trino(e2e, "carol", "payments") or []] == carol_sees[s % 2]
            ),
            15,
        )
        _sync(e2e, targets)
        for user in USERS:
            for table in TABLES:
                trino, native = _through_trino(e2e, user, table), _natively(e2e, user, table)
                if native is not None:
                    assert trino is not None, (step, user, table)
                    assert not Counter(native) - Counter(trino), (step, user, table, native)
        ids = _natively(e2e, "alice", "accounts")
        assert (None if ids is None else [r[0] for r in ids]) == alice_natively, step
        # bob is exempt from every filter but the ones without an exemption
        if not filters:
            assert _natively(e2e, "bob", "accounts") == _through_trino(e2e, "bob", "accounts")
    # the last scenario through Trino: alice reads her small accounts with the balance masked
    assert _through_trino(e2e, "alice", "accounts") == [(1, "ann", None), (3, "cy", None)]
    # natively she reads the unmasked columns of the same rows, and is refused the masked one
    with e2e.pg.connect(e2e.database, e2e.pg_users["alice"]) as conn:
        rows = conn.execute("SELECT id, owner FROM public.accounts").fetchall()
        assert sorted(rows) == [(1, "ann"), (3, "cy")]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT balance FROM public.accounts")
    assert _natively(e2e, "bob", "accounts") == [
        (1, "ann", Decimal("10.50")),
        (2, "ben", Decimal("20.00")),
        (3, "cy", Decimal("0.00")),
    ]


# --- governed views: masked values read natively as Trino shows them ---------------------------

TYPED = typed_table("public")
# one mask per function (and a row filter), alice masked and filtered, bob exempt
TYPED_POLICIES = """
  - name: typed-readers
    access: READ
    who: {users: [alice, bob]}
    what: {dataSources: [pg.{db}.public.typed]}
masks:
"""
TYPED_MASKS = (
    ("hashed", "[name, code, big, n, tag]", "hash"),
    ("first-two", "[city]", "{keepFirst: 2}"),
    ("last-four", "[phone]", "{keepLast: 4}"),
    ("tens", "[qty]", "{round: -1}"),
    ("one-place", "[price]", "{round: 1}"),
    ("hidden-note", "[note]", "{constant: n/a}"),
    ("a-day", "[day]", "{constant: '2020-01-01'}"),
    ("hidden-flag", "[flag]", '"null"'),
)
NOT_FOURTH = """
rowFilters:
  - name: not-fourth
    status: active
    what: {dataSources: [pg.{db}.public.typed]}
    where: "id <> 4"
    exceptFor: {users: [bob]}
"""


def test_masked_values_read_natively_through_the_governed_view_equal_trinos(
    e2e: E2E, tmp_path: Path
) -> None:
    """With `policySchema`, the masked table gets a governed view: alice reads there, through
    her own login, the rows and masked values Trino shows her (hash, keepFirst, keepLast,
    round, constants, null; NULLs, unicode, negative numbers), bob the raw rows as in Trino."""
    with e2e.pg.connect(e2e.database) as conn:
        conn.execute(TYPED + "; CREATE SCHEMA gov")
    registry = registry_text(e2e.database)
    e2e.tree.write(
        "registry.yaml", registry.replace("[accounts, payments]", "[accounts, payments, typed]")
    )
    masks = "".join(
        f"  - {{name: {name}, status: active, columns: {{names: {cols}}}, "
        f"what: {{dataSources: [pg.{{db}}.public.typed]}}, mask: {mask}, "
        "exceptFor: {users: [bob]}}\n"
        for name, cols, mask in TYPED_MASKS
    )
    targets = targets_file(tmp_path / "targets.yaml", e2e)
    body = yaml.safe_load(targets.read_text())
    body["targets"][0]["policySchema"] = "gov"
    targets.write_text(yaml.safe_dump(body), encoding="utf-8")
    try:
        e2e.write_policies(POLICIES + TYPED_POLICIES + masks + NOT_FOURTH)
        eventually(
            lambda: [r[0] for r in _through_trino(e2e, "alice", "typed") or []] == [1, 2, 3], 30
        )
        _sync(e2e, targets)
        for user in ("alice", "bob"):
            trino = _through_trino(e2e, user, "typed")
            with e2e.pg.connect(e2e.database, e2e.pg_users[user]) as conn:
                native = sorted(conn.execute("SELECT * FROM gov.public_typed").fetchall())
            assert native == trino, (user, native, trino)
        alice = _through_trino(e2e, "alice", "typed")
        assert alice is not None and alice[0][1] != "Zoë 東京"  # masked, not raw
    finally:
        e2e.write_policies("policies: []\n")
        _sync(e2e, targets)
        e2e.tree.write("registry.yaml", registry)
        e2e.write_policies(POLICIES)
        with e2e.pg.connect(e2e.database) as conn:
            conn.execute("DROP TABLE public.typed; DROP SCHEMA gov")
