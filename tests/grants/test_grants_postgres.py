"""PostgreSQL, for real: grants applied to the local server, then checked by connecting as each
user and running the queries a policy allows and denies, before and after a policy change."""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml

from devstack.postgres import Postgres
from pdp.cli.grants import add_grants_commands
from pdp.config.load import load_snapshot
from pdp.grants import apply, parse_grants, plan
from pdp.grants.errors import UnknownConnection
from tests.grants.pgdb import Database, throwaway


class Cluster(Database):
    def can(self, user: str, sql: str) -> bool:
        with self.connect(user) as conn:
            try:
                conn.execute(sql)
            except psycopg.errors.InsufficientPrivilege:
                return False
        return True

    def write_config(
        self,
        policies: list[dict],
        users: tuple[str, ...] | dict[str, dict] | None = None,
        **data: list[dict],
    ) -> Path:
        """The registry, `policies`, the directory `users` (names, or names with their groups
        and attributes) and the data policies in `data` (`masks`, `rowFilters`), as one file."""
        users = (self.alice, self.bob) if users is None else users
        registry = {
            "connections": [
                {
                    "name": "pg",
                    "technology": "postgresql",
                    "status": "active",
                    "databases": [
                        {
                            "name": self.database,
                            "schemas": [
                                {
                                    "name": "sales",
                                    "tables": [
                                        "orders",
                                        {"name": "v", "type": "VIEW"},
                                        "payments",
                                    ],
                                },
                                {
                                    "name": "ops",
                                    "tables": ["events", {"name": "old", "deleted": True}],
                                },
                            ],
                        }
                    ],
                }
            ],
            "policies": policies,
            "users": users if isinstance(users, dict) else {u: {} for u in users},
            **data,
        }
        path = self.tmp / "policies.yaml"
        path.write_text(yaml.safe_dump(registry), encoding="utf-8")
        return path

    def targets(self) -> Path:
        body = {
            "targets": [
                {
                    "name": "local-pg",
                    "platform": "postgresql",
                    "connections": ["pg"],
                    "rolePrefix": self.prefix,
                    "dsn": self.server.conninfo(),
                }
            ]
        }
        path = self.tmp / "targets.yaml"
        path.write_text(yaml.safe_dump(body), encoding="utf-8")
        return path

    def sync(self, policies: list[dict], users: tuple[str, ...] | None = None, **data: list[dict]):
        snapshot = load_snapshot([self.write_config(policies, users, **data)], None).value
        spec = parse_grants(yaml.safe_load(self.targets().read_text()), "targets.yaml").targets[0]
        with spec.open() as target:
            report = apply(target, plan(target, snapshot))
            again = plan(target, snapshot).plan
        return report, again


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, pg: Postgres) -> Iterator[Cluster]:
    setup = (
        "CREATE SCHEMA sales; CREATE SCHEMA ops",
        "CREATE TABLE sales.orders (id int); INSERT INTO sales.orders VALUES (1)",
        "CREATE VIEW sales.v AS SELECT id FROM sales.orders",
        "CREATE TABLE sales.payments (id int, region text, amount numeric);"
        "INSERT INTO sales.payments VALUES (1, 'emea', 120), (2, 'amer', 80)",
        "CREATE TABLE ops.events (id int); CREATE TABLE ops.old (id int)",
        "REVOKE ALL ON SCHEMA public FROM PUBLIC",
    )
    with throwaway(Cluster, pg, "grants", tmp_path_factory.mktemp("pg"), setup) as c:
        yield c


def _policy(name: str, access: str, user: str, *tables: str, db: str) -> dict:
    return {
        "name": name,
        "access": access,
        "who": {"users": [user]},
        "what": {"dataSources": [f"pg.{db}.{t}" for t in tables]},
    }


def test_allowed_queries_succeed_and_denied_ones_fail_across_a_policy_change(
    cluster: Cluster,
) -> None:
    c, db = cluster, cluster.database
    first = [
        _policy("orders-writers", "WRITE", c.alice, "sales.orders", db=db),
        _policy("view-readers", "READ", c.bob, "sales.v", db=db),
    ]
    report, again = c.sync(first)
    assert report.clean and again.empty
    assert c.can(c.alice, "SELECT * FROM sales.orders")
    assert c.can(c.alice, "INSERT INTO sales.orders VALUES (2)")
    assert c.can(c.alice, "TRUNCATE ops.events") is False
    assert c.can(c.bob, "SELECT * FROM sales.v")
    assert c.can(c.bob, "SELECT * FROM sales.orders") is False
    assert c.can(c.bob, "INSERT INTO sales.orders VALUES (3)") is False
    assert c.can(c.bob, "SELECT * FROM ops.events") is False

    second = [
        _policy("orders-writers", "READ", c.alice, "sales.orders", db=db),
        _policy("view-readers", "READ", c.bob, "ops.events", db=db),
    ]
    report, again = c.sync(second)
    assert report.clean and again.empty
    assert c.can(c.alice, "SELECT * FROM sales.orders")
    assert c.can(c.alice, "INSERT INTO sales.orders VALUES (4)") is False
    assert c.can(c.bob, "SELECT * FROM ops.events")
    assert c.can(c.bob, "SELECT * FROM sales.v") is False

    # Drift by hand on the managed role is repaired; a direct grant to the user is not ours.
    with c.connect() as conn:
        conn.execute(f'GRANT INSERT ON sales.orders TO "{c.prefix}_user_{c.alice}"')
        conn.execute(f'GRANT USAGE ON SCHEMA ops TO "{c.alice}"')
        conn.execute(f'GRANT SELECT ON ops.old TO "{c.alice}"')
    report, again = c.sync(second)
    assert [s.text for s in report.applied] == [
        f'REVOKE INSERT ON TABLE "sales"."orders" FROM "{c.prefix}_user_{c.alice}"'
    ]
    assert again.empty
    assert c.can(c.alice, "INSERT INTO sales.orders VALUES (5)") is False
    assert c.can(c.alice, "SELECT * FROM ops.old")

    # A user who leaves the directory loses what the product gave, and only that.
    report, again = c.sync([second[1]], users=(c.bob,))
    assert report.clean and again.empty
    assert c.can(c.alice, "SELECT * FROM sales.orders") is False
    assert c.can(c.alice, "SELECT * FROM ops.old")
    assert c.can(c.bob, "SELECT * FROM ops.events")


def test_cli_plan_prints_the_statements_and_apply_runs_them(cluster: Cluster) -> None:
    c, db = cluster, cluster.database
    config = c.write_config([_policy("ops", "READ", c.alice, "ops.events", db=db)], (c.alice,))
    parser = argparse.ArgumentParser(prog="pdp")
    add_grants_commands(parser.add_subparsers(dest="command"))
    argv = ["--config", str(config), "--target", str(c.targets())]

    out = io.StringIO()
    args = parser.parse_args(["grants", "plan", *argv])
    assert args.grants_handler(args, out) == 0
    role = f'"{c.prefix}_user_{c.alice}"'
    printed = out.getvalue().splitlines()
    assert f'\\connect "{db}"' in printed
    assert f'GRANT SELECT ON TABLE "ops"."events" TO {role};' in printed
    assert f'GRANT {role} TO "{c.alice}";' in printed

    out = io.StringIO()
    args = parser.parse_args(["grants", "apply", *argv])
    assert args.grants_handler(args, out) == 0
    assert "-- in sync" in out.getvalue()
    assert c.can(c.alice, "SELECT * FROM ops.events")

    out = io.StringIO()
    args = parser.parse_args(["grants", "plan", *argv])
    assert args.grants_handler(args, out) == 0
    assert ": 0 step(s)" in out.getvalue()


def test_cli_takes_targets_from_pdp_yaml_and_reports_unreachable_targets(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    c, db = cluster, cluster.database
    policies = c.write_config([_policy("ops", "READ", c.alice, "ops.events", db=db)], (c.alice,))
    targets = yaml.safe_load(c.targets().read_text())["targets"]
    closed = {**targets[0], "name": "down", "dsn": "host=127.0.0.1 port=1 connect_timeout=2"}
    pdp_yaml = c.tmp / "pdp.yaml"
    pdp_yaml.write_text(
        yaml.safe_dump(
            {
                "policyFiles": [policies.name],
                "auth": "none",
                "grants": {"targets": [*targets, closed]},
            }
        )
    )
    parser = argparse.ArgumentParser(prog="pdp")
    add_grants_commands(parser.add_subparsers(dest="command"))
    out = io.StringIO()
    args = parser.parse_args(["grants", "plan", "--config", str(pdp_yaml)])
    assert args.grants_handler(args, out) == 3  # one target down; the other still planned
    assert "-- target local-pg at revision" in out.getvalue()
    assert "down: cannot read current grants" in capsys.readouterr().err


def test_plan_says_when_a_login_role_does_not_exist(cluster: Cluster) -> None:
    c, db = cluster, cluster.database
    ghost = f"ghost_{c.prefix}"
    config = c.write_config([_policy("ops", "READ", ghost, "ops.events", db=db)], (c.alice, ghost))
    parser = argparse.ArgumentParser(prog="pdp")
    add_grants_commands(parser.add_subparsers(dest="command"))
    out = io.StringIO()
    args = parser.parse_args(
        ["grants", "plan", "--config", str(config), "--target", str(c.targets())]
    )
    assert args.grants_handler(args, out) == 1
    assert (
        f'-- WILL FAIL: PostgreSQL has no role "{ghost}": granting the managed role to it fails; '
        "create the login role(s) or map the user with `users:` in the target"
    ) in out.getvalue().splitlines()
    # apply does what it can and reports the one step that failed
    out = io.StringIO()
    args = parser.parse_args(
        ["grants", "apply", "--config", str(config), "--target", str(c.targets())]
    )
    assert args.grants_handler(args, out) == 1
    assert f"-- FAILED {c.prefix}_user_{ghost}" in out.getvalue()


def test_a_target_naming_a_connection_the_registry_does_not_hold_is_an_error(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    c, db = cluster, cluster.database
    config = c.write_config([_policy("ops", "READ", c.alice, "ops.events", db=db)], (c.alice,))
    targets = c.targets()
    targets.write_text(targets.read_text().replace("- pg\n", "- pg-prod\n"))
    lines = targets.read_text().splitlines()
    line = next(i + 1 for i, text in enumerate(lines) if "connections:" in text)
    parser = argparse.ArgumentParser(prog="pdp")
    add_grants_commands(parser.add_subparsers(dest="command"))
    out = io.StringIO()
    args = parser.parse_args(["grants", "plan", "--config", str(config), "--target", str(targets)])
    assert args.grants_handler(args, out) == 2
    assert out.getvalue() == ""
    assert (
        f"{targets}:{line}: target 'local-pg' names connection(s) 'pg-prod' that hold no data "
        "source in the registry (connections: pg)"
    ) in capsys.readouterr().err
    # the PDP's own sync loop (plan) refuses it too, rather than finding nothing to do
    spec = parse_grants(yaml.safe_load(targets.read_text()), str(targets)).targets[0]
    snapshot = load_snapshot([config], None).value
    with spec.open() as target, pytest.raises(UnknownConnection, match="'pg-prod'"):
        plan(target, snapshot)


def _issue_21(
    db: str, exempt: str, *, mask: bool = True, row_filter: bool = True
) -> dict[str, list[dict]]:
    """The data policies of issue 21 on sales.payments, both exempting `exempt` (bob)."""
    on = {"dataSources": [f"pg.{db}.sales.payments"]}
    data: dict[str, list[dict]] = {"masks": [], "rowFilters": []}
    if mask:
        data["masks"].append(
            {
                "name": "amount-hidden",
                "status": "active",
                "columns": {"names": ["amount"]},
                "what": on,
                "mask": "null",
                "exceptFor": {"users": [exempt]},
            }
        )
    if row_filter:
        data["rowFilters"].append(
            {
                "name": "emea-only",
                "status": "active",
                "what": on,
                "where": "region = 'emea'",
                "exceptFor": {"users": [exempt]},
            }
        )
    return data


def _rows(c: Cluster, user: str, sql: str) -> list[tuple] | None:
    """The rows `user` reads through their own login, or None when PostgreSQL refuses."""
    with c.connect(user) as conn:
        try:
            return sorted(conn.execute(sql).fetchall())
        except psycopg.errors.InsufficientPrivilege:
            return None


def test_issue_21_a_masked_column_is_never_read_natively(cluster: Cluster) -> None:
    """Through Trino alice sees one row (emea) with amount NULL. Natively she reads id and
    region of that row only (row security) and is refused amount (column privileges: less
    than Trino, never more); bob, exempt, reads everything. The plan says what it left out."""
    c, db = cluster, cluster.database
    readers = {
        "name": "payments-readers",
        "access": "WRITE",
        "who": {"users": [c.alice, c.bob]},
        "what": {"dataSources": [f"pg.{db}.sales.payments"]},
    }
    data = _issue_21(db, c.bob)
    config = c.write_config([readers], **data)
    parser = argparse.ArgumentParser(prog="pdp")
    add_grants_commands(parser.add_subparsers(dest="command"))
    argv = ["--config", str(config), "--target", str(c.targets())]
    out = io.StringIO()
    args = parser.parse_args(["grants", "apply", *argv])
    assert args.grants_handler(args, out) == 0
    role = f"{c.prefix}_user_{c.alice}"
    narrowed = (
        f'{role} on TABLE "{db}"."sales"."payments": amount left out '
        "(mask 'amount-hidden' on amount)"
    )
    assert f"-- COLUMNS: {narrowed}" in out.getvalue().splitlines()
    assert _rows(c, c.alice, "SELECT id, region FROM sales.payments") == [(1, "emea")]
    assert _rows(c, c.alice, "SELECT amount FROM sales.payments") is None
    assert _rows(c, c.alice, "SELECT * FROM sales.payments") is None
    # a write reads through its WHERE: refused on the masked column, allowed on the others
    assert _rows(c, c.alice, "DELETE FROM sales.payments WHERE amount > 100") is None
    with c.connect(c.alice) as conn:
        assert conn.execute("UPDATE sales.payments SET region = region WHERE id = 1").rowcount == 1
    assert _rows(c, c.bob, "SELECT * FROM sales.payments") == [(1, "emea", 120), (2, "amer", 80)]
    # a column added later is not readable by alice (a column grant names its column) ...
    with c.connect() as conn:
        conn.execute("ALTER TABLE sales.payments ADD COLUMN note text")
    assert _rows(c, c.alice, "SELECT note FROM sales.payments") is None
    assert _rows(c, c.bob, "SELECT note FROM sales.payments") == [(None,), (None,)]

    # ... until the next sync grants it (no mask covers it); then apply and plan again: 0 steps
    out = io.StringIO()
    args = parser.parse_args(["grants", "plan", "--json", *argv])
    assert args.grants_handler(args, out) == 0
    planned = json.loads(out.getvalue())
    assert [s["text"] for s in planned["steps"]] == [
        f'GRANT SELECT ("note") ON TABLE "sales"."payments" TO "{role}"'
    ]
    assert planned["withheld"] == [] and planned["columns"] == [narrowed]
    report, again = c.sync([readers], **data)
    assert report.clean and again.empty and again.columns == (narrowed,)
    assert _rows(c, c.alice, "SELECT note FROM sales.payments") == [(None,)]
    with c.connect() as conn:
        conn.execute("ALTER TABLE sales.payments DROP COLUMN note")

    # drift: a table-level SELECT granted to alice by hand shows her amount; the sync revokes
    # it (which takes her column grants along) and grants the columns again, after the revoke
    with c.connect() as conn:
        conn.execute(f'GRANT SELECT ON sales.payments TO "{role}"')
    assert _rows(c, c.alice, "SELECT amount FROM sales.payments") == [(120,)]
    report, again = c.sync([readers], **data)
    assert [s.text for s in report.applied] == [
        f'REVOKE SELECT ON TABLE "sales"."payments" FROM "{role}"',
        f'GRANT SELECT ("id") ON TABLE "sales"."payments" TO "{role}"',
        f'GRANT SELECT ("region") ON TABLE "sales"."payments" TO "{role}"',
    ]
    assert report.clean and again.empty
    assert _rows(c, c.alice, "SELECT amount FROM sales.payments") is None
    assert _rows(c, c.alice, "SELECT id, region FROM sales.payments") == [(1, "emea")]
    # a hand-made column grant on the masked column is drift too
    with c.connect() as conn:
        conn.execute(f'GRANT SELECT (amount) ON sales.payments TO "{role}"')
    report, again = c.sync([readers], **data)
    assert [s.text for s in report.applied] == [
        f'REVOKE SELECT ("amount") ON TABLE "sales"."payments" FROM "{role}"'
    ]
    assert report.clean and again.empty
    assert _rows(c, c.alice, "SELECT amount FROM sales.payments") is None

    # staged data policies do nothing: alice's table-level SELECT comes back, her column
    # grants go (revoked first: she reads less for a moment, never more)
    for policy in (*data["masks"], *data["rowFilters"]):
        policy["status"] = "staged"
    report, again = c.sync([readers], **data)
    assert report.clean and again.empty and not again.withheld and not again.columns
    assert _rows(c, c.alice, "SELECT * FROM sales.payments") == [(1, "emea", 120), (2, "amer", 80)]
    with c.connect() as conn:
        assert conn.execute(
            "SELECT count(*) FROM pg_attribute t CROSS JOIN LATERAL aclexplode(t.attacl) "
            "WHERE t.attrelid = 'sales.payments'::regclass AND NOT t.attisdropped"
        ).fetchone() == (0,)
    report, again = c.sync([])
    assert report.clean and again.empty


def _readers(c: Cluster, access: str = "WRITE") -> dict:
    return {
        "name": "payments-readers",
        "access": access,
        "who": {"users": [c.alice, c.bob]},
        "what": {"dataSources": [f"pg.{c.database}.sales.payments"]},
    }


def test_issue_21_a_row_filter_becomes_row_level_security(cluster: Cluster) -> None:
    """Without the mask, the filter is enforced natively: alice reads the emea row, and only
    it, through her own login; bob, exempt, reads both. Writes see the same rows; TRUNCATE,
    which ignores row security, is not granted to a filtered user."""
    c = cluster
    everything = [(1, "emea", 120), (2, "amer", 80)]
    data = _issue_21(c.database, c.bob, mask=False)
    report, again = c.sync([_readers(c)], **data)
    assert report.clean and again.empty and not again.withheld, report
    assert _rows(c, c.alice, "SELECT * FROM sales.payments") == [(1, "emea", 120)]
    assert _rows(c, c.bob, "SELECT * FROM sales.payments") == everything
    assert _rows(c, c.alice, "SELECT count(*) FROM sales.payments WHERE amount < 100") == [(0,)]
    with c.connect(c.alice) as conn:
        assert conn.execute("DELETE FROM sales.payments WHERE region = 'amer'").rowcount == 0
    assert c.can(c.alice, "TRUNCATE sales.payments") is False
    assert c.can(c.bob, "SELECT * FROM sales.orders") is False  # nothing else changed

    # The predicate with a user's values: alice's region attribute (a new policy is created
    # before the old one is dropped: no window where alice reads every row).
    data["rowFilters"][0]["where"] = "region IN @attribute(region)"
    users = {c.alice: {"attributes": {"region": ["amer"]}}, c.bob: {}}
    snapshot = load_snapshot([c.write_config([_readers(c)], users=users, **data)], None).value
    spec = parse_grants(yaml.safe_load(c.targets().read_text()), "targets.yaml").targets[0]
    with spec.open() as target:
        planned = plan(target, snapshot)
        texts = [s.text for s in planned.plan.steps]
        assert [t.split(" ")[:2] for t in texts] == [["CREATE", "POLICY"], ["DROP", "POLICY"]]
        assert "USING ((region IN ('amer')))" in texts[0]
        assert apply(target, planned).clean
    assert _rows(c, c.alice, "SELECT id FROM sales.payments") == [(2,)]
    assert _rows(c, c.bob, "SELECT id FROM sales.payments") == [(1,), (2,)]


def test_row_security_drift_is_repaired_and_released_when_the_filter_goes(
    cluster: Cluster,
) -> None:
    c = cluster
    data = _issue_21(c.database, c.bob, mask=False)
    report, again = c.sync([_readers(c)], **data)
    assert report.clean and again.empty
    with c.connect() as conn:
        (ours,) = conn.execute(
            "SELECT polname FROM pg_policy WHERE polrelid = 'sales.payments'::regclass "
            "AND NOT polpermissive"
        ).fetchone()
        # by hand: the filter's expression loosened, a restrictive policy added, and a
        # policy on a table the product does not filter (left alone)
        conn.execute(f'ALTER POLICY "{ours}" ON sales.payments USING (true)')
        conn.execute("CREATE POLICY by_hand ON sales.payments AS RESTRICTIVE USING (id > 1)")
        conn.execute("CREATE POLICY theirs ON ops.events USING (true)")
    assert _rows(c, c.alice, "SELECT id FROM sales.payments") == [(2,)]  # by_hand's rows
    report, again = c.sync([_readers(c)], **data)
    assert [s.text.split(";")[0] for s in report.applied] == [
        f'ALTER POLICY "{ours}" ON "sales"."payments" USING ((region = \'emea\'))',
        'DROP POLICY "by_hand" ON "sales"."payments"',
    ]
    assert report.clean and again.empty
    assert _rows(c, c.alice, "SELECT id FROM sales.payments") == [(1,)]

    with c.connect() as conn:
        conn.execute("ALTER TABLE sales.payments DISABLE ROW LEVEL SECURITY")
    report, again = c.sync([_readers(c)], **data)
    assert [s.text for s in report.applied] == [
        'ALTER TABLE "sales"."payments" ENABLE ROW LEVEL SECURITY'
    ]
    assert _rows(c, c.alice, "SELECT id FROM sales.payments") == [(1,)]

    # The filter goes: the product's policies go, row security is off again, and the policy
    # on the table it never governed is still there.
    report, again = c.sync([_readers(c)])
    assert report.clean and again.empty
    assert _rows(c, c.alice, "SELECT id FROM sales.payments") == [(1,), (2,)]
    with c.connect() as conn:
        assert conn.execute(
            "SELECT relrowsecurity FROM pg_class WHERE oid = 'sales.payments'::regclass"
        ).fetchone() == (False,)
        names = conn.execute("SELECT polname FROM pg_policy ORDER BY 1").fetchall()
        assert names == [("theirs",)]
        conn.execute("DROP POLICY theirs ON ops.events")
    report, again = c.sync([])
    assert report.clean and again.empty


def test_a_filter_postgresql_would_evaluate_differently_is_withheld(cluster: Cluster) -> None:
    c = cluster
    data = _issue_21(c.database, c.bob, mask=False)
    data["rowFilters"][0]["where"] = "lower(region) = 'emea'"
    report, again = c.sync([_readers(c)], **data)
    assert report.clean and again.empty
    assert again.withheld == (
        f"{c.alice} on pg.{c.database}.sales.payments: row filter 'emea-only' uses the "
        "function lower(), which PostgreSQL does not evaluate as Trino",
    )
    assert _rows(c, c.alice, "SELECT id FROM sales.payments") is None
    assert _rows(c, c.bob, "SELECT id FROM sales.payments") == [(1,), (2,)]
    report, again = c.sync([])
    assert report.clean and again.empty


def test_a_filtered_user_loses_the_grant_where_the_sync_login_cannot_set_up_row_security(
    cluster: Cluster,
) -> None:
    """The sync login of docs/grants.md (grant options, not the owner) cannot enable row
    security: a user the filter applies to is refused rather than left reading every row."""
    c = cluster
    sync, prefix = f"{c.prefix}_sync", f"{c.prefix}_s"
    with c.connect() as conn:
        conn.execute(f'CREATE ROLE "{sync}" LOGIN CREATEROLE')
        conn.execute(f'GRANT ALL ON SCHEMA sales TO "{sync}" WITH GRANT OPTION')
        conn.execute(f'GRANT ALL ON ALL TABLES IN SCHEMA sales TO "{sync}" WITH GRANT OPTION')
    targets = yaml.safe_load(c.targets().read_text())
    targets["targets"][0].update(rolePrefix=prefix, dsn=c.server.conninfo(user=sync))
    spec = parse_grants(targets, "targets.yaml").targets[0]
    readers = _readers(c, "READ")

    def sync_with(**data: list[dict]):
        snapshot = load_snapshot([c.write_config([readers], **data)], None).value
        with spec.open() as target:
            report = apply(target, plan(target, snapshot))
            return report, plan(target, snapshot).plan

    report, again = sync_with()
    assert report.clean and again.empty
    assert _rows(c, c.alice, "SELECT id FROM sales.payments") == [(1,), (2,)]

    report, again = sync_with(**_issue_21(c.database, c.bob, mask=False))
    assert [s.text for s in report.applied] == [
        f'REVOKE SELECT ON TABLE "sales"."payments" FROM "{prefix}_user_{c.alice}"',
        f'REVOKE USAGE ON SCHEMA "sales" FROM "{prefix}_user_{c.alice}"',
    ]
    assert report.clean and again.empty
    assert again.withheld == (
        f'{prefix}_user_{c.alice} on TABLE "{c.database}"."sales"."payments": row-level '
        "security cannot be set up: the sync login does not own the table (nor belong to its "
        "owner's role)",
    )
    assert _rows(c, c.alice, "SELECT id FROM sales.payments") is None
    assert _rows(c, c.bob, "SELECT id FROM sales.payments") == [(1,), (2,)]
    with spec.open() as target:  # leave nothing behind for the other tests
        snapshot = load_snapshot([c.write_config([])], None).value
        assert apply(target, plan(target, snapshot)).clean
