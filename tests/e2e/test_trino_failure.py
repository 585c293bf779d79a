"""Failure: with the PDP stopped, users the sidecar has not cached are refused (never let
through); with the sidecar stopped, every query fails. Both recover without restarting Trino."""

from __future__ import annotations

import pytest
from trino.exceptions import TrinoQueryError, TrinoUserError

from tests.e2e.conftest import E2E, eventually

ORDERS = "SELECT count(*) FROM memory.sales.orders"
SCRATCH = "SELECT count(*) FROM memory.sales.scratch"


def _runs(e2e: E2E, user: str, sql: str) -> bool:
    try:
        e2e.query(user, sql)
    except TrinoQueryError:
        return False
    return True


def test_pdp_stopped_uncached_users_are_refused_cached_ones_served_then_all_recover(
    e2e: E2E,
) -> None:
    assert e2e.query("alice", ORDERS)[0][0] >= 3  # alice's view is now in the sidecar's cache
    e2e.pdp.stop()
    try:
        # never seen: no entitlements, no PDP to ask: refused, not allowed
        for user, sql in (("frank", SCRATCH), ("gina", ORDERS)):
            with pytest.raises(TrinoUserError) as refused:
                e2e.query(user, sql)
            assert refused.value.error_name == "PERMISSION_DENIED"
        assert e2e.column("frank", "SHOW CATALOGS") == set()  # every item filtered out
        # cached, within cache.maxStaleSeconds: served from memory
        assert e2e.query("alice", ORDERS)[0][0] >= 3
        e2e.denied("carol", ORDERS)
    finally:
        e2e.restart_pdp()
    eventually(lambda: _runs(e2e, "frank", SCRATCH), timeout=10)
    assert e2e.query("frank", SCRATCH) == [[1]]
    assert e2e.column("frank", "SHOW CATALOGS") == {"memory", "tpch", "postgresql", "system"}


def test_sidecar_stopped_every_query_fails_then_recovers_without_restarting_trino(
    e2e: E2E,
) -> None:
    e2e.sidecar.stop()
    try:
        for user in ("admin", "alice", "carol"):
            with pytest.raises(TrinoQueryError) as failed:
                e2e.query(user, "SELECT 1")
            # a failed call to the access control, not an answer from it
            assert failed.value.error_name != "PERMISSION_DENIED"
            assert "OPA" in failed.value.message, failed.value
    finally:
        e2e.restart_sidecar()
    assert e2e.query("alice", ORDERS)[0][0] >= 3
    assert e2e.query("admin", "SELECT 1") == [[1]]
