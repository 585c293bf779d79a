"""docs/grants.md shows the plans of issue 21's example as the code prints them: this test
builds them from the YAML of the page itself and compares."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.core import Config

from pdp.cli.grants import print_plan
from pdp.config.load import load_snapshot
from pdp.grants import plan
from pdp.grants.databricks import DatabricksDialect
from pdp.grants.postgres import PostgresDialect
from pdp.grants.retry import Backoff
from pdp.grants.session import Result
from pdp.grants.snowflake import SnowflakeDialect
from pdp.grants.targets import DatabricksTarget, PostgresTarget, SnowflakeTarget
from pdp.policy import PolicySnapshot
from tests.grants.fakes.ledger import Ledger
from tests.grants.fakes.uc_server import Workspace, serve

DOC = Path(__file__).parents[2] / "docs" / "grants.md"
YAML_BLOCK = re.compile(r"```yaml\n# (?P<name>[\w-]+\.yaml)\n(?P<body>.*?)```", re.S)
GENERATED = re.compile(r"<!-- generated: (?P<name>[\w-]+) -->\n```\n(?P<body>.*?)```", re.S)


class _NewDatabase:
    """A PostgreSQL where grant sync has not run: the login roles alice and bob, and the
    table sales.orders (id, amount, region)."""

    def execute(self, sql: str) -> Result:
        if sql == "SELECT rolname FROM pg_roles":
            return Result(("rolname",), [("alice",), ("bob",), ("pdp_sync",)])
        if sql.startswith("SELECT n.nspname, c.relname, t.attname, format_type("):
            types = (("id", "integer"), ("amount", "numeric"), ("region", "text"))
            rows = [("sales", "orders", name, type_, "r") for name, type_ in types]
            return Result(("nspname", "relname", "attname", "format_type", "relkind"), rows)
        if sql == "SELECT 1 FROM pg_namespace WHERE nspname = 'pdp_governed'":
            return Result(("?column?",), [(1,)])
        return Result((), [])

    def close(self) -> None:
        return None


def generated(name: str, tmp: Path) -> str:
    """The plan the page shows under `<!-- generated: name -->`."""
    text = DOC.read_text(encoding="utf-8")
    files = {m["name"]: m["body"] for m in YAML_BLOCK.finditer(text)}
    per_user = {"sf-per-user.yaml": files["sf-per-user.yaml"]}
    if name == "snowflake":
        policies = files["pg-policies.yaml"].replace("pg-prod.", "sf-prod.")
        data = {"sf-policies.yaml": policies, "sf-datapolicies.yaml": files["sf-datapolicies.yaml"]}
        return _snowflake(files, data, tmp)
    if name == "snowflake-per-user":
        return _snowflake(files, per_user, tmp)
    if name == "databricks":
        policies = files["pg-policies.yaml"].replace("pg-prod.", "uc-prod.")
        data = files["sf-datapolicies.yaml"].replace("sf-prod.", "uc-prod.")
        return _databricks(files, {"uc-policies.yaml": policies, "uc-datapolicies.yaml": data}, tmp)
    if name == "databricks-per-user":
        data = files["sf-per-user.yaml"].replace("sf-prod.", "uc-prod.")
        return _databricks(files, {"uc-per-user.yaml": data}, tmp)
    schema = "pdp_governed" if name == "governed-view" else None
    if name == "filter-only":
        files["pg-datapolicies.yaml"] = files["pg-datapolicies.yaml"].split("rowFilters:")[1]
        files["pg-datapolicies.yaml"] = "rowFilters:" + files["pg-datapolicies.yaml"]
    paths = []
    for file in ("pg-registry.yaml", "pg-policies.yaml", "pg-datapolicies.yaml"):
        (path := tmp / file).write_text(files[file], encoding="utf-8")
        paths.append(path)
    snapshot = load_snapshot(paths, None).value
    target = PostgresTarget(
        "shop-pg",
        frozenset({"pg-prod"}),
        lambda _: _NewDatabase(),
        PostgresDialect("pdp", policy_schema=schema),
    )
    out = io.StringIO()
    print_plan(plan(target, snapshot).plan, out)
    return out.getvalue()


def _load(files: dict[str, str], tmp: Path) -> PolicySnapshot:
    paths = []
    for file, body in files.items():
        (path := tmp / file).write_text(body, encoding="utf-8")
        paths.append(path)
    return load_snapshot(paths, None).value


def _snowflake(files: dict[str, str], data: dict[str, str], tmp: Path) -> str:
    """An example (`data`: policies and data policies) on a Snowflake account where grant sync
    has not run."""
    snapshot = _load({"sf-registry.yaml": files["sf-registry.yaml"], **data}, tmp)
    account = Ledger()
    account.users |= {"ALICE", "BOB"}
    columns = {"ID": "NUMBER(38,0)", "AMOUNT": "NUMBER(10,2)", "REGION": "VARCHAR(16777216)"}
    account.add_object("TABLE", "SHOP", "SALES", "ORDERS", columns=columns)
    account.add_object("SCHEMA", "GOVERNANCE", "POLICIES")
    dialect = SnowflakeDialect(policy_schema=("GOVERNANCE", "POLICIES"))
    target = SnowflakeTarget("shop-sf", frozenset({"sf-prod"}), account, dialect)
    out = io.StringIO()
    print_plan(plan(target, snapshot).plan, out)
    return out.getvalue()


def _databricks(files: dict[str, str], data: dict[str, str], tmp: Path) -> str:
    """An example (`data`: policies and data policies) on a Unity Catalog workspace where grant
    sync has not run."""
    snapshot = _load({"uc-registry.yaml": files["uc-registry.yaml"], **data}, tmp)
    workspace = Workspace()
    workspace.principals |= {"alice", "bob"}
    workspace.add("table", "shop.sales.orders")
    types = (("id", "bigint"), ("amount", "decimal(10,2)"), ("region", "string"))
    columns = [{"name": n, "type_text": t, "type_name": t.upper()} for n, t in types]
    workspace.tree = {
        "shop": {"sales": {"orders": {"name": "orders", "columns": columns}}},
        "governance": {"policies": {}},
    }
    out = io.StringIO()
    with serve(workspace) as url:
        config = Config(host=url, token=workspace.pat, auth_type="pat")
        dialect = DatabricksDialect(policy_schema=("governance", "policies"))
        target = DatabricksTarget(
            "shop-uc",
            frozenset({"uc-prod"}),
            WorkspaceClient(config=config),
            dialect,
            Backoff(sleep=lambda _: None),
            warehouse=workspace.warehouse,
        )
        print_plan(plan(target, snapshot).plan, out)
    return out.getvalue()


@pytest.mark.parametrize(
    "name",
    [
        "mask-and-filter",
        "filter-only",
        "governed-view",
        "snowflake",
        "databricks",
        "snowflake-per-user",
        "databricks-per-user",
    ],
)
def test_the_page_shows_what_the_code_plans(name: str, tmp_path: Path) -> None:
    shown = {m["name"]: m["body"] for m in GENERATED.finditer(DOC.read_text(encoding="utf-8"))}
    revision = re.compile(r"revision [0-9a-f]+")
    assert revision.sub("revision R", shown[name]) == revision.sub(
        "revision R", generated(name, tmp_path)
    )
