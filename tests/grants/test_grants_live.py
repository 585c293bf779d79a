"""The same reconcile against real accounts. Runs only when credentials are in the environment:

Snowflake: SNOWFLAKE_ACCOUNT, SNOWFLAKE_USER, SNOWFLAKE_PASSWORD, PDP_LIVE_SNOWFLAKE_TABLE
(db.schema.table, an existing base table) and PDP_LIVE_SNOWFLAKE_GRANTEE (an existing user).
Databricks: DATABRICKS_HOST, DATABRICKS_TOKEN, PDP_LIVE_DATABRICKS_TABLE (catalog.schema.table)
and PDP_LIVE_DATABRICKS_PRINCIPAL (an existing user). The test leaves nothing behind."""

from __future__ import annotations

import os
import secrets

import pytest

from pdp.core import Access
from pdp.grants import apply, parse_grants, plan
from pdp.policy import Technology
from tests.grants.fakes.world import policy, snapshot, source


def _need(*names: str) -> dict[str, str]:
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        pytest.skip(f"live test: set {', '.join(missing)}")
    return {n: os.environ[n] for n in names}


def _round_trip(target_yaml: dict, path: str, user: str, technology: Technology) -> None:
    spec = parse_grants({"targets": [target_yaml]}, "live").targets[0]
    table = f"live.{path}"
    granted = snapshot(
        [source(table, technology=technology)],
        [policy("live", Access.READ, [user], [table])],
        [user],
    )
    revoked = snapshot([source(table, technology=technology)], [], [user], "r2")
    with spec.open() as target:
        try:
            report = apply(target, plan(target, granted))
            assert not report.failed, report.failed
            assert plan(target, granted).plan.empty  # idempotent on the real platform
        finally:
            report = apply(target, plan(target, revoked))
        assert not report.failed, report.failed
        assert plan(target, revoked).plan.empty


def test_snowflake_live() -> None:
    env = _need(
        "SNOWFLAKE_ACCOUNT",
        "SNOWFLAKE_USER",
        "SNOWFLAKE_PASSWORD",
        "PDP_LIVE_SNOWFLAKE_TABLE",
        "PDP_LIVE_SNOWFLAKE_GRANTEE",
    )
    prefix = f"PDPLIVE{secrets.token_hex(3).upper()}"
    target = {
        "name": "live-snowflake",
        "platform": "snowflake",
        "connections": ["live"],
        "rolePrefix": prefix,
        "account": "${SNOWFLAKE_ACCOUNT}",
        "user": "${SNOWFLAKE_USER}",
        "auth": "password",
        "password": "${SNOWFLAKE_PASSWORD}",
    }
    _round_trip(
        target,
        env["PDP_LIVE_SNOWFLAKE_TABLE"],
        env["PDP_LIVE_SNOWFLAKE_GRANTEE"],
        Technology.SNOWFLAKE,
    )
    import snowflake.connector

    with snowflake.connector.connect(
        account=env["SNOWFLAKE_ACCOUNT"],
        user=env["SNOWFLAKE_USER"],
        password=env["SNOWFLAKE_PASSWORD"],
    ) as conn:
        grantee = env["PDP_LIVE_SNOWFLAKE_GRANTEE"].upper()
        conn.cursor().execute(f'DROP ROLE IF EXISTS "{prefix}_USER_{grantee}"')


def test_databricks_live() -> None:
    env = _need(
        "DATABRICKS_HOST",
        "DATABRICKS_TOKEN",
        "PDP_LIVE_DATABRICKS_TABLE",
        "PDP_LIVE_DATABRICKS_PRINCIPAL",
    )
    target = {
        "name": "live-databricks",
        "platform": "databricks",
        "connections": ["live"],
        "host": "${DATABRICKS_HOST}",
        "auth": "token",
        "token": "${DATABRICKS_TOKEN}",
    }
    _round_trip(
        target,
        env["PDP_LIVE_DATABRICKS_TABLE"],
        env["PDP_LIVE_DATABRICKS_PRINCIPAL"],
        Technology.DATABRICKS,
    )
