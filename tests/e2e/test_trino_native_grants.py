"""The same decisions two ways: read through Trino's postgresql catalog (the sidecar decides),
and granted natively in PostgreSQL by grant sync (each user logs in as their own role)."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
import yaml
from trino.exceptions import TrinoUserError

from pdp.config.load import load_snapshot
from pdp.grants import apply, parse_grants, plan
from tests.e2e.conftest import E2E, targets_file

TABLES = ("accounts", "payments")
EXPECTED = {  # the e2e policies: READ for alice and carol on one table each, WRITE for bob
    ("alice", "accounts"): True,
    ("alice", "payments"): False,
    ("bob", "accounts"): True,
    ("bob", "payments"): False,
    ("carol", "accounts"): False,
    ("carol", "payments"): True,
}


def _through_trino(e2e: E2E, user: str, table: str) -> bool:
    try:
        e2e.query(user, f"SELECT count(*) FROM postgresql.public.{table}")
    except TrinoUserError as error:
        assert error.error_name == "PERMISSION_DENIED", error
        return False
    return True


def _natively(e2e: E2E, user: str, table: str) -> bool:
    with e2e.pg.connect(e2e.database, e2e.pg_users[user]) as conn:
        try:
            conn.execute(f"SELECT count(*) FROM public.{table}")
        except psycopg.errors.InsufficientPrivilege:
            return False
    return True


def test_users_read_the_same_tables_through_trino_and_natively(e2e: E2E, tmp_path: Path) -> None:
    targets = targets_file(tmp_path / "targets.yaml", e2e)
    spec = parse_grants(yaml.safe_load(targets.read_text()), str(targets)).targets[0]
    snapshot = load_snapshot(e2e.tree.policy_files, None).value
    # before grant sync, PostgreSQL grants nothing to these roles
    assert not any(_natively(e2e, user, table) for user, table in EXPECTED)
    with spec.open() as target:
        report = apply(target, plan(target, snapshot))
    assert report.clean

    seen = {(u, t): (_through_trino(e2e, u, t), _natively(e2e, u, t)) for u, t in EXPECTED}
    assert seen == {key: (allowed, allowed) for key, allowed in EXPECTED.items()}


@pytest.mark.parametrize("user", ["alice", "carol"])
def test_a_read_grant_is_not_a_write_either_way(e2e: E2E, user: str) -> None:
    table = "accounts" if user == "alice" else "payments"
    with pytest.raises(TrinoUserError):
        e2e.query(user, f"DELETE FROM postgresql.public.{table} WHERE id = -1")
    with (
        e2e.pg.connect(e2e.database, e2e.pg_users[user]) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute(f"DELETE FROM public.{table} WHERE id = -1")
