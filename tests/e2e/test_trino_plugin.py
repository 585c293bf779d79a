"""The product's plugin (trino-plugin/) in a real Trino, beyond what every decision file checks
through both plugins: a sidecar that hangs (stopped with SIGSTOP: connections accepted by the
kernel, never answered) is waited out for `pdp.max-stale-seconds`, after which every query is
denied, cached answers included, until it answers again; a revocation reaches an open session
whose answers Trino has cached, and the denial carries the PDP's reason."""

from __future__ import annotations

import os
import signal
import time

from trino.exceptions import TrinoUserError

from tests.e2e.conftest import E2E, PLUGIN_MAX_STALE, POLICIES, eventually

ORDERS = "SELECT count(*) FROM memory.sales.orders"


def _runs(e2e: E2E, user: str, sql: str) -> bool:
    try:
        e2e.query(user, sql)
    except TrinoUserError as error:
        assert error.error_name == "PERMISSION_DENIED", error
        return False
    return True


def test_a_hung_sidecar_is_trusted_for_the_staleness_bound_then_everything_is_denied(
    e2e: E2E,
) -> None:
    assert e2e.query("alice", ORDERS)[0][0] >= 3  # alice's answers are now cached in Trino
    group = e2e.sidecar.popen.pid
    os.killpg(group, signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        # within the bound: what Trino cached is served
        assert e2e.query("alice", ORDERS)[0][0] >= 3
        assert time.monotonic() - stopped < PLUGIN_MAX_STALE, "too slow to check the bound"
        time.sleep(max(0.0, PLUGIN_MAX_STALE + 0.5 - (time.monotonic() - stopped)))
        for user, sql in (("alice", ORDERS), ("admin", "SELECT 1"), ("carol", "SHOW CATALOGS")):
            error = e2e.denied(user, sql)
            assert "no word from the pdp sidecar" in error.message, error
    finally:
        os.killpg(group, signal.SIGCONT)
    eventually(lambda: _runs(e2e, "alice", ORDERS), timeout=15)
    assert e2e.query("admin", "SELECT 1") == [[1]]


def test_a_revocation_denies_an_open_sessions_cached_query_with_the_pdps_reason(
    e2e: E2E,
) -> None:
    with e2e.trino.connect("alice") as session:
        cursor = session.cursor()
        for _ in range(3):  # the second and third are answered from Trino's cache
            cursor.execute(ORDERS)
            assert cursor.fetchall()[0][0] >= 3
        e2e.write_policies(POLICIES.replace("who: {groups: [analysts]}", "who: {groups: [x]}"))
        written = time.monotonic()
        try:
            denied: list[TrinoUserError] = []

            def refused() -> bool:
                try:
                    cursor.execute(ORDERS)
                    cursor.fetchall()
                except TrinoUserError as error:
                    denied.append(error)
                    return True
                return False

            eventually(refused, timeout=5)
            assert time.monotonic() - written < 1.0
            message = denied[0].message
            assert denied[0].error_name == "PERMISSION_DENIED"
            assert "Cannot select from columns" in message, message
            assert "memory.sales.orders" in message, message
        finally:
            e2e.write_policies(POLICIES)
        eventually(lambda: _runs(e2e, "alice", ORDERS), timeout=5)


def test_a_stopped_sidecar_denies_whom_trino_has_not_cached_naming_it_then_recovers(
    e2e: E2E,
) -> None:
    """Where the stock plugin fails every query (test_trino_failure.py), the product's serves
    what it cached within the bound and denies the rest as access denied, naming the sidecar."""
    assert e2e.query("alice", ORDERS)[0][0] >= 3
    e2e.sidecar.stop()
    stopped = time.monotonic()
    try:
        assert e2e.query("alice", ORDERS)[0][0] >= 3  # cached, within the bound
        assert time.monotonic() - stopped < PLUGIN_MAX_STALE, "too slow to check the bound"
        error = e2e.denied("nobody_cached", "SELECT 1")
        assert "the pdp sidecar at" in error.message and "did not answer" in error.message, error
        time.sleep(max(0.0, PLUGIN_MAX_STALE + 0.5 - (time.monotonic() - stopped)))
        assert "no word from the pdp sidecar" in e2e.denied("alice", ORDERS).message
    finally:
        e2e.restart_sidecar()
    eventually(lambda: _runs(e2e, "alice", ORDERS), timeout=15)
    assert e2e.query("nobody_cached", "SELECT 1") == [[1]]
