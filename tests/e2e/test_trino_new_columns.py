"""The New Column Added chain through the real PostgreSQL, the real PostgreSQL crawler and the
real Trino: the run's PDP is swapped for one with a store and the admin API whose policy files
activate the built-in New Column Added policy. A table registered by object sync is read by
alice (an analyst) and bob (Data Owner on its schema); a column added in PostgreSQL comes back
from the next sync tagged `New`: NULL for alice, the value for bob, through Trino's postgresql
catalog. bob validates the request the sync opened; the next query shows alice the value. The
run's PDP and policies are put back afterwards."""

from __future__ import annotations

import httpx

from devstack.processes import free_port, start_pdp
from tests.e2e.conftest import POLICIES, USERS, eventually

LEDGER_POLICY = """
  - name: ledger-readers
    access: READ
    who: {users: [alice, bob]}
    what: {dataSources: [pgs.{db}.public.ledger]}
builtins:
  New Column Added: active
"""
GOVERNOR = "  gwen: {permissions: [GOVERNANCE, APPLICATION_ADMIN]}\n"
SECRET = "SELECT secret FROM postgresql.public.ledger ORDER BY id"


def test_a_new_postgres_column_is_masked_until_its_owner_validates_it(e2e, tmp_path, monkeypatch):
    root = e2e.tree.root
    credentials = {"user": e2e.pg.user}
    if e2e.pg.password:  # an external server (PDP_TEST_POSTGRES); the devstack one trusts
        monkeypatch.setenv("PDP_E2E_PG_PASSWORD", e2e.pg.password)
        credentials["passwordEnv"] = "PDP_E2E_PG_PASSWORD"
    with e2e.pg.connect(e2e.database) as conn:
        conn.execute(
            "CREATE TABLE ledger (id int, amount int);INSERT INTO ledger VALUES (1, 10), (2, 20);"
        )
    admin_port = free_port()
    config = root / "pdp-requests.yaml"
    config.write_text(
        (root / "pdp.yaml").read_text()
        + f"store: sqlite:///{tmp_path}/store.db\n"
        + f"admin: {{listen: '127.0.0.1:{admin_port}', trustUserHeader: true}}\n"
        # the devstack PostgreSQL is on loopback; its password (an external server's) by name
        + "control: {network: {allow: [127.0.0.0/8]}, secretReferences: [PDP_E2E_PG_PASSWORD]}\n"
    )
    (root / "users.yaml").write_text(USERS + GOVERNOR)
    e2e.write_policies(POLICIES + LEDGER_POLICY)
    e2e.pdp.stop()
    pdp = start_pdp(config, e2e.pdp_port)
    api = httpx.Client(
        base_url=f"http://127.0.0.1:{admin_port}", headers={"X-Pdp-User": "gwen"}, timeout=60
    )

    def call(method: str, url: str, user: str = "gwen", body: dict | None = None) -> dict:
        answer = api.request(method, url, json=body, headers={"X-Pdp-User": user})
        assert answer.status_code < 300, (url, answer.text)
        return answer.json()

    def sync(job_id: str) -> None:
        def done() -> bool:
            return call("GET", f"/jobs/{job_id}")["state"] in ("completed", "failed")

        eventually(done, 60)
        assert call("GET", f"/jobs/{job_id}")["state"] == "completed"

    def sees(user: str, expected: list) -> bool:
        try:
            return [row[0] for row in e2e.query(user, SECRET)] == expected
        except Exception:
            return False

    try:
        eventually(lambda: _admin_ready(api), 60)
        pg = e2e.pg
        registered = call(
            "POST",
            "/data/connection",
            body={
                "connectionKey": "pgs",
                "connection": {
                    "technology": "postgresql",
                    "endpoint": {"host": pg.host, "port": pg.port, "database": e2e.database},
                    "credentials": credentials,
                    "trinoCatalogs": {e2e.database: "postgresql"},
                },
                "settings": {"isActive": True, "activateNewChildren": True},
            },
        )
        sync(registered["jobId"])
        owner = {"principal": "bob", "role": "DataOwner"}
        call("PUT", f"/data/permission/pgs/{e2e.database}/public", body=owner)
        count = "SELECT count(*) FROM postgresql.public.ledger"
        eventually(lambda: _rows(e2e, "alice", count) == [[2]], 30)

        with pg.connect(e2e.database) as conn:
            conn.execute(
                "ALTER TABLE ledger ADD COLUMN secret text;UPDATE ledger SET secret = 'k' || id;"
            )
        sync(call("POST", "/data/crawl/pgs", body={})["jobId"])
        table = call("GET", f"/data/object/pgs/{e2e.database}/public/ledger")
        assert {c["name"]: c["tags"] for c in table["columns"]}["secret"] == ["New"]
        eventually(lambda: sees("alice", [None, None]), 30)  # masked: NULL
        assert sees("bob", ["k1", "k2"])  # the owner, through his schema
        assert _rows(e2e, "alice", "SELECT amount FROM postgresql.public.ledger ORDER BY id") == [
            [10],
            [20],
        ]  # only the new column is masked

        (request,) = call("GET", "/requests?state=pending", "bob")["hits"]
        assert (request["kind"], request["column"]) == ("column_added", "secret")
        refused = api.post(f"/requests/{request['id']}/validate", headers={"X-Pdp-User": "alice"})
        assert refused.status_code == 403, refused.text
        validated = call("POST", f"/requests/{request['id']}/validate", "bob")
        assert validated["state"] == "validated"
        eventually(lambda: sees("alice", ["k1", "k2"]), 30)  # the New tag, and the mask, gone
    finally:
        api.close()
        pdp.stop()
        (root / "users.yaml").write_text(USERS)
        e2e.write_policies(POLICIES)
        with e2e.pg.connect(e2e.database) as conn:
            conn.execute("DROP TABLE IF EXISTS ledger")
        e2e.restart_pdp()
        eventually(lambda: _sidecar_connected(e2e), 30)


def _rows(e2e, user: str, sql: str) -> list | None:
    try:
        return e2e.query(user, sql)
    except Exception:
        return None


def _admin_ready(api: httpx.Client) -> bool:
    try:
        return api.get("/health").status_code == 200
    except httpx.HTTPError:
        return False


def _sidecar_connected(e2e) -> bool:
    try:
        health = httpx.get(f"http://127.0.0.1:{e2e.sidecar_port}/health", timeout=2).json()
    except httpx.HTTPError:
        return False
    return health.get("pdp") == "connected"
