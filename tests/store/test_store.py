"""The store on both backends: connections, the object tree, settings, permissions, jobs,
deregistration and the version that feeds the revision."""

from datetime import UTC, datetime

import pytest

from pdp.objects import (
    Conflict,
    DuplicateKey,
    InvalidInput,
    InvalidKey,
    InvalidTransition,
    Kind,
    NotFound,
    ObjectPath,
    Origin,
    PlaintextSecret,
    RemoteState,
    TooManyDescendants,
)
from pdp.objects.syncplan import RemoteColumn
from pdp.store import (
    KEEP,
    ConnectionState,
    JobState,
    JobTrigger,
    JobType,
    PrincipalKind,
    Role,
    Secrets,
    Store,
    redact,
)

P = ObjectPath.of
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def tree(store: Store, key: str = "hc", tables=("orders", "customers")) -> None:
    with store.write() as tx:
        tx.register_connection(key, "trino", endpoint={"host": "trino", "port": 8080})
        tx.put_object(P(key, "hold"))
        tx.put_object(P(key, "hold", "sales"))
        for name in tables:
            tx.put_object(P(key, "hold", "sales", name), remote_type="TABLE")


# --- connections ---------------------------------------------------------------------------


def test_register_and_read_a_connection(store):
    with store.write() as tx:
        made = tx.register_connection(
            "Trino_Prod",
            "trino",
            endpoint={"host": "trino.example", "port": 443},
            credentials={"username": "pdp", "passwordEnv": "TRINO_PASSWORD"},
            now=T0,
        )
    assert made.key == "Trino_Prod"
    with store.read() as tx:
        stored = tx.connection("trino_prod")  # keys are found case-insensitively
        root = tx.object(P("TRINO_PROD"))
    assert stored == made
    assert stored.schedule == "0 1 * * *"
    assert stored.state is ConnectionState.ACTIVE
    assert stored.fail_safe_threshold == 0.75
    assert stored.created_at == T0
    assert stored.next_sync(T0) == datetime(2026, 1, 2, 1, 0, tzinfo=UTC)
    assert stored.credentials == {"username": "pdp", "passwordEnv": "TRINO_PASSWORD"}
    assert root.kind is Kind.CONNECTION and root.path == P("Trino_Prod")


def test_key_rules_apply_at_registration(store):
    with pytest.raises(InvalidKey) as refused, store.write() as tx:
        tx.register_connection("metadata", "trino")
    assert (refused.value.field, refused.value.value) == ("connectionKey", "metadata")
    assert store.version() == 0  # the refused write published nothing


def test_keys_are_unique_case_insensitively(store):
    with store.write() as tx:
        tx.register_connection("hc", "trino")
    with pytest.raises(DuplicateKey) as refused, store.write() as tx:
        tx.register_connection("HC", "snowflake")
    assert refused.value.field == "connectionKey" and refused.value.value == "HC"
    assert "'hc' exists already" in str(refused.value)


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"technology": "oracle"}, "technology"),
        ({"schedule": "every day"}, "schedule"),
        ({"fail_safe_threshold": 0}, "failSafeThreshold"),
        ({"is_active": "yes"}, "isActive"),
        ({"credentials": {"password": "hunter2"}}, "credentials.password"),
        ({"credentials": {"oauth": {"clientSecret": "s"}}}, "credentials.oauth.clientSecret"),
    ],
)
def test_refusals_name_the_field(store, arguments, field):
    arguments = {"technology": "trino", **arguments}
    with pytest.raises(InvalidInput) as refused, store.write() as tx:
        tx.register_connection("hc", arguments.pop("technology"), **arguments)
    assert refused.value.field == field
    assert "hunter2" not in str(refused.value)


def test_secrets_are_refused_without_a_key(store):
    with pytest.raises(PlaintextSecret, match="storeSecretKeyEnv"), store.write() as tx:
        tx.register_connection("hc", "trino", credentials={"password": "hunter2"})


def test_secrets_are_encrypted_with_the_operator_key(backend, new_database):
    key = Secrets.generate_key()
    store = Store.open(new_database(backend), secret_key=key)
    try:
        with store.write() as tx:
            tx.register_connection(
                "sf", "snowflake", credentials={"user": "pdp", "password": "hunter2"}
            )
        with store.engine.connect() as raw:
            assert "hunter2" not in str(
                raw.exec_driver_sql("SELECT credentials FROM connections").all()
            )
        with store.read() as tx:
            sealed = tx.connection("sf").credentials
        assert redact(sealed) == {"user": "pdp", "password": "[REDACTED]"}
        assert store.secrets.reveal(sealed) == {"user": "pdp", "password": "hunter2"}
        with pytest.raises(InvalidInput, match="cannot decrypt"):
            Secrets(Secrets.generate_key()).reveal(sealed)
    finally:
        store.close()


def test_update_connection_keeps_key_and_technology(store):
    tree(store)
    with store.write() as tx:
        changed = tx.update_connection(
            "hc", endpoint={"host": "new"}, schedule="*/15 * * * *", state=ConnectionState.PAUSED
        )
    assert changed.endpoint == {"host": "new"} and changed.schedule == "*/15 * * * *"
    assert changed.state is ConnectionState.PAUSED and changed.technology == "trino"
    with pytest.raises(NotFound) as missing, store.write() as tx:
        tx.update_connection("nope", schedule="0 2 * * *")
    assert missing.value.field == "connectionKey"


# --- the object tree ---------------------------------------------------------------------------


def test_objects_by_path_with_slashes_and_dots_in_names(store):
    with store.write() as tx:
        tx.register_connection("hc", "trino")
        tx.put_object(P("hc", "lake/eu"))
        tx.put_object(P("hc", "lake/eu", "v1.2"))
        made = tx.put_object(P("hc", "lake/eu", "v1.2", "a\\b"), remote_type="VIEW")
    assert made.path.url == "hc/lake%2Feu/v1.2/a%5Cb"
    assert made.path.dotted == "hc.lake/eu.v1\\.2.a\\\\b"
    with store.read() as tx:
        found = tx.object(ObjectPath.parse_url("HC/LAKE%2FEU/V1.2/A%5CB"))
        assert found.path == made.path  # stored spelling, found case-insensitively
        assert found.kind is Kind.TABLE and found.remote_type == "VIEW"
        assert found.data_source_id is not None
        with pytest.raises(NotFound) as missing:
            tx.object(P("hc", "lake/eu", "nope", "x"))
    assert missing.value.field == "path" and "hc/lake%2Feu/nope" in str(missing.value)


def test_duplicate_object_is_a_conflict(store):
    tree(store)
    with pytest.raises(Conflict), store.write() as tx:
        tx.put_object(P("hc", "hold", "sales", "ORDERS"))


def test_children_in_pages(store):
    tree(store, tables=[f"t{i:02}" for i in range(25)] + ["x_y", "xay"])
    with store.read() as tx:
        first = tx.children(P("hc", "hold", "sales"), size=10)
        last = tx.children(P("hc", "hold", "sales"), offset=20, size=10)
        assert first.count == 27 and len(first.hits) == 10 and len(last.hits) == 7
        assert [o.name for o in (h.path for h in first.hits)][:2] == ["t00", "t01"]
        assert first.hits[0].path == P("hc", "hold", "sales", "t00")
        assert [
            h.path.name for h in tx.children(P("hc", "hold", "sales"), search_text="x_").hits
        ] == ["x_y"]
        assert tx.children(P("hc"), kind=Kind.SCHEMA).count == 0
        assert [h.path for h in tx.children().hits] == [P("hc")]
        with pytest.raises(InvalidInput) as too_big:
            tx.children(P("hc"), size=1001)
    assert too_big.value.field == "size"


def test_children_filtered_by_effective_status(store):
    tree(store, tables=["a", "b", "c"])
    with store.write() as tx:
        tx.set_settings(P("hc", "hold", "sales"), is_active=True)
        tx.set_settings(P("hc", "hold", "sales", "b"), is_active=False)
    with store.read() as tx:
        active = tx.children(P("hc", "hold", "sales"), is_active=True)
        inactive = tx.children(P("hc", "hold", "sales"), is_active=False)
    assert [h.path.name for h in active.hits] == ["a", "c"]
    assert [h.path.name for h in inactive.hits] == ["b"]


# --- settings ------------------------------------------------------------------------------------


def test_settings_override_inherit_and_keep(store):
    tree(store)
    orders = P("hc", "hold", "sales", "orders")
    with store.write() as tx:
        tx.set_settings(P("hc"), is_active=True, activate_new_children=True)
        after = tx.set_settings(P("hc", "hold"), is_active=False)
    assert after.is_active.value is False and after.is_active.inherited_from == "hc/hold"
    assert after.activate_new_children.inherited_from == "hc"
    with store.read() as tx:
        settings = tx.effective_settings(orders)
    assert (settings.is_active.value, settings.is_active.inherited_from) == (False, "hc/hold")
    with store.write() as tx:
        cleared = tx.set_settings(P("hc", "hold"), is_active=None, activate_new_children=KEEP)
        assert tx.object(P("hc", "hold")).is_active is None
    assert cleared.is_active.value is True and cleared.is_active.inherited_from == "hc"
    assert cleared.activate_new_children.origin is Origin.OVERRIDE


def test_the_descendant_limit_through_the_store(store, monkeypatch):
    monkeypatch.setattr("pdp.objects.settings.DESCENDANT_LIMIT", 3)
    tree(store, tables=["a", "b"])  # hold has 3 descendants, sales 2, hc 4
    with pytest.raises(TooManyDescendants) as refused, store.write() as tx:
        tx.set_settings(P("hc", "hold"), is_active=True)
    assert refused.value.value == "hc/hold"
    with store.write() as tx:  # a schema is enabled whatever its size
        tx.set_settings(P("hc", "hold", "sales"), is_active=True)
        tx.set_settings(P("hc"), is_active=False)  # disabling is never limited
        tx.set_settings(P("hc", "hold"), is_active=False)
    with pytest.raises(TooManyDescendants), store.write() as tx:  # enabling by inheritance
        tx.set_settings(P("hc"), is_active=True)
        tx.set_settings(P("hc", "hold"), is_active=None)


# --- tags, columns, permissions ------------------------------------------------------------------


def test_tags_and_columns(store):
    tree(store)
    orders = P("hc", "hold", "sales", "orders")
    with store.write() as tx:
        tx.add_tag(orders, "PII.email")
        tx.add_tag(orders, "PII.email")
        tx.set_columns(
            orders, [RemoteColumn("id", "bigint", False, 1), RemoteColumn("x", "varchar", True, 2)]
        )
    with store.read() as tx:
        assert tx.tags(orders) == {"PII.email"}
        assert [(c.name, c.type, c.nullable) for c in tx.columns(orders)] == [
            ("id", "bigint", False), ("x", "varchar", True),
        ]  # fmt: skip
    with store.write() as tx:
        assert tx.remove_tag(orders, "PII.email") and not tx.remove_tag(orders, "PII.email")


def test_permissions_on_a_node_and_inherited(store):
    tree(store)
    with store.write() as tx:
        tx.grant(P("hc"), "ops", Role.INFRASTRUCTURE_ADMIN, principal_kind=PrincipalKind.GROUP)
        tx.grant(P("hc", "hold"), "alice", Role.DATA_OWNER, granted_by="admin")
        tx.grant(P("hc", "hold"), "alice", Role.DATA_OWNER)  # idempotent
        with pytest.raises(InvalidInput):
            tx.grant(P("hc", "hold"), "bob", Role.INFRASTRUCTURE_ADMIN)
    orders = P("hc", "hold", "sales", "orders")
    with store.read() as tx:
        assert tx.permissions(orders) == []
        inherited = tx.permissions(orders, inherited=True)
    assert [(p.path.url, p.principal, p.role) for p in inherited] == [
        ("hc", "ops", Role.INFRASTRUCTURE_ADMIN),
        ("hc/hold", "alice", Role.DATA_OWNER),
    ]
    with store.write() as tx:
        assert tx.revoke(P("hc", "hold"), "alice", Role.DATA_OWNER)
        assert len(tx.permissions(orders, inherited=True)) == 1


# --- jobs ----------------------------------------------------------------------------------------


def test_job_life_cycle(store):
    tree(store)
    with store.write() as tx:
        job = tx.create_job(JobType.SYNC, JobTrigger.MANUAL, P("hc", "hold"), now=T0)
    assert (job.state, job.path, job.started_at) == (JobState.CREATED, "hc/hold", None)
    with store.write() as tx:
        assert tx.running_job("HC").id == job.id
        tx.update_job(job.id, state=JobState.ACTIVE, now=T0)
        done = tx.update_job(
            job.id, state=JobState.COMPLETED, stats={"table.added": 2}, errors=[], now=T0
        )
    assert done.started_at == T0 and done.ended_at == T0 and done.stats == {"table.added": 2}
    with pytest.raises(InvalidTransition) as refused, store.write() as tx:
        tx.update_job(job.id, state=JobState.ACTIVE)
    assert refused.value.field == "state"
    with store.write() as tx:
        tx.create_job(JobType.CASCADE, JobTrigger.MANUAL, P("hc"))
    with store.read() as tx:
        assert tx.jobs(connection="hc").count == 2
        assert [j.id for j in tx.jobs(state=JobState.COMPLETED).hits] == [job.id]
        with pytest.raises(NotFound):
            tx.job("nope")


# --- deregistration --------------------------------------------------------------------------


def test_deregistration_removes_everything_in_one_write(store):
    tree(store)
    tree(store, key="other")
    orders = P("hc", "hold", "sales", "orders")
    with store.write() as tx:
        tx.add_tag(orders, "PII")
        tx.set_columns(orders, [RemoteColumn("id", "int")])
        tx.grant(orders, "alice", Role.DATA_OWNER)
        job = tx.create_job(JobType.SYNC, JobTrigger.MANUAL, P("hc"))
    before = store.version()
    with store.write() as tx:
        assert tx.deregister("HC") == 4
    assert store.version() == before + 1
    with store.read() as tx:
        with pytest.raises(NotFound):
            tx.connection("hc")
        assert [h.path for h in tx.children().hits] == [P("other")]
        assert tx.job(job.id).connection_key == "hc"  # history stays
        assert tx.descendant_count(P("other")) == 4
    with store.engine.connect() as raw:
        for table in ("columns", "object_tags", "object_permissions"):
            assert raw.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar() == 0


def test_a_failing_write_leaves_nothing_half_done(store):
    tree(store)
    before = store.version()
    with pytest.raises(RuntimeError), store.write() as tx:
        tx.deregister("hc")
        raise RuntimeError("crash after the delete")
    with store.read() as tx:
        assert tx.descendant_count(P("hc")) == 4
    assert store.version() == before


def test_delete_a_subtree(store):
    tree(store)
    with store.write() as tx:
        assert tx.delete_object(P("hc", "hold", "sales")) == 2
        assert tx.child_count(P("hc", "hold")) == 0


# --- the version ---------------------------------------------------------------------------------


def test_every_committed_write_bumps_the_version_once(store):
    assert store.version() == 0
    with store.write() as tx:
        tx.register_connection("hc", "trino")
        tx.put_object(P("hc", "hold"))
        tx.set_settings(P("hc"), is_active=True)
        assert tx.published_version == 1
    assert store.version() == 1
    with store.read() as tx:
        tx.object(P("hc"))
    assert store.version() == 1
    with pytest.raises(NotFound), store.write() as tx:
        tx.set_settings(P("hc", "nope"), is_active=True)
    assert store.version() == 1
    assert store.wait_for_version(0, timeout=0) == 1


def test_remote_state_filter(store):
    tree(store)
    with store.read() as tx:
        page = tx.children(P("hc", "hold", "sales"), remote_state=RemoteState.PRESENT)
    assert page.count == 2


def test_search_descendants(store):
    tree(store, tables=["orders", "order_lines", "people"])
    with store.write() as tx:
        tx.put_object(P("hc", "hold", "hr"))
        tx.put_object(P("hc", "hold", "hr", "orders_hr"))
        tx.set_settings(P("hc", "hold", "sales"), is_active=True)
        tx.set_settings(P("hc", "hold", "sales", "people"), is_active=False)
    with store.read() as tx:
        everything = tx.search(P("hc"))
        assert [h.path.url for h in everything.hits] == [
            "hc/hold",
            "hc/hold/hr",
            "hc/hold/hr/orders_hr",
            "hc/hold/sales",
            "hc/hold/sales/order_lines",
            "hc/hold/sales/orders",
            "hc/hold/sales/people",
        ]
        tables = tx.search(P("hc", "hold"), kind=Kind.TABLE, search_text="ORDER")
        assert [h.path.name for h in tables.hits] == ["orders_hr", "order_lines", "orders"]
        active = tx.search(P("hc"), is_active=True)
        assert [h.path.url for h in active.hits] == [
            "hc/hold/sales",
            "hc/hold/sales/order_lines",
            "hc/hold/sales/orders",
        ]
        second = tx.search(P("hc"), offset=5, size=5)
        assert second.count == 7 and len(second.hits) == 2
