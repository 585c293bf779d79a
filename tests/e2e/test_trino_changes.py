"""Changes reach a running Trino without restarting it: a policy edit, the cluster's rules for
unregistered data, and Trino's own group file."""

from __future__ import annotations

import time

from trino.exceptions import TrinoUserError

from tests.e2e.conftest import E2E, POLICIES, PROPERTIES, TRINO_GROUPS, eventually


def _can_select(e2e: E2E, user: str, table: str) -> bool:
    try:
        e2e.query(user, f"SELECT count(*) FROM {table}")
    except TrinoUserError as error:
        assert error.error_name == "PERMISSION_DENIED", error
        return False
    return True


def test_a_policy_edit_denies_the_next_query_of_an_open_session_within_a_second(
    e2e: E2E,
) -> None:
    with e2e.trino.connect("alice") as session:
        cursor = session.cursor()
        cursor.execute("SELECT count(*) FROM memory.sales.orders")
        assert cursor.fetchall()[0][0] >= 3
        revoked = POLICIES.replace("who: {groups: [analysts]}", "who: {groups: [nobody]}")
        assert revoked != POLICIES
        e2e.write_policies(revoked)
        written = time.monotonic()
        try:

            def denied() -> bool:
                try:
                    cursor.execute("SELECT count(*) FROM memory.sales.orders")
                    cursor.fetchall()
                except TrinoUserError as error:
                    assert error.error_name == "PERMISSION_DENIED"
                    return True
                return False

            eventually(denied, timeout=5)
            assert time.monotonic() - written < 1.0
        finally:
            e2e.write_policies(POLICIES)
            eventually(lambda: _can_select(e2e, "alice", "memory.sales.orders"), timeout=5)


def test_the_cluster_rules_for_unregistered_data_decide_what_is_listed(e2e: E2E) -> None:
    no_unregistered_reads = PROPERTIES.replace(
        "non.immuta.datasource.operations=READ,WRITE,CREATE,OWN",
        "non.immuta.datasource.operations=CREATE",
    )
    assert no_unregistered_reads != PROPERTIES
    e2e.write_properties(no_unregistered_reads)
    try:
        eventually(lambda: not _can_select(e2e, "carol", "tpch.tiny.nation"), timeout=5)
        # only catalogs and schemas that hold a data source the user may read remain
        assert e2e.column("alice", "SHOW CATALOGS") == {"memory", "postgresql"}
        assert e2e.column("dana", "SHOW CATALOGS") == {"memory"}
        assert e2e.column("carol", "SHOW CATALOGS") == {"postgresql"}
        assert e2e.column("alice", "SHOW SCHEMAS FROM memory") == {"sales"}
        assert e2e.column("alice", "SHOW TABLES FROM memory.sales") == {"orders"}
        assert not _can_select(e2e, "alice", "memory.sales.scratch")
        # creating in unregistered space is still allowed, and reading it back is not
        e2e.query("carol", "CREATE TABLE postgresql.public.carol_new (x integer)")
        assert not _can_select(e2e, "carol", "postgresql.public.carol_new")
    finally:
        e2e.write_properties(PROPERTIES)
        eventually(lambda: _can_select(e2e, "carol", "tpch.tiny.nation"), timeout=5)
    e2e.query("carol", "DROP TABLE postgresql.public.carol_new")
    assert e2e.column("alice", "SHOW CATALOGS") == {"memory", "tpch", "postgresql", "system"}


def test_groups_from_trinos_group_file_reach_the_decision(e2e: E2E) -> None:
    assert not _can_select(e2e, "erin", "memory.sales.orders")
    groups_file = e2e.trino.etc / "groups.txt"
    original = groups_file.read_text()
    groups = {**TRINO_GROUPS, "analysts": [*TRINO_GROUPS["analysts"], "erin"]}
    groups_file.write_text("".join(f"{g}:{','.join(u)}\n" for g, u in groups.items()))
    try:
        # Trino re-reads the file every second; the sidecar sees the new groups in the request
        eventually(lambda: _can_select(e2e, "erin", "memory.sales.orders"), timeout=10)
    finally:
        groups_file.write_text(original)
    eventually(lambda: not _can_select(e2e, "erin", "memory.sales.orders"), timeout=10)
