"""`pdp explain` and `pdp check` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from devstack.configs import make_tree

ROOT = Path(__file__).resolve().parents[1]
BODY = {
    "input": {
        "context": {
            "identity": {"user": "bob", "groups": []},
            "softwareStack": {"trinoVersion": "480"},
        },
        "action": {
            "operation": "InsertIntoTable",
            "resource": {
                "table": {"catalogName": "hive", "schemaName": "sales", "tableName": "orders"}
            },
        },
    }
}


def pdp(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pdp.cli", *args],
        input=stdin,
        text=True,
        capture_output=True,
        timeout=60,
        cwd=ROOT,
    )


def test_explain_from_stdin_says_which_policy_allowed(tmp_path):
    tree = make_tree(tmp_path)
    result = pdp("explain", "--config", str(tree.pdp_yaml(50051)), stdin=json.dumps(BODY))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ALLOW  InsertIntoTable on hive.sales.orders by bob")
    assert "policies: orders-writers" in result.stdout


def test_explain_json_for_a_batch_body(tmp_path):
    tree = make_tree(tmp_path)
    body = {
        "input": {
            "context": {"identity": {"user": "carol", "groups": []}},
            "action": {
                "operation": "FilterTables",
                "filterResources": [
                    {"table": {"catalogName": "hive", "schemaName": "sales", "tableName": t}}
                    for t in ("orders", "scratch")
                ],
            },
        }
    }
    path = tmp_path / "body.json"
    path.write_text(json.dumps(body))
    result = pdp("explain", "--json", "--config", str(tree.pdp_yaml(50051)), str(path))
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(x["object"], x["allowed"], x["rule"]) for x in lines] == [
        ("hive.sales.orders", False, "data-source"),
        ("hive.sales.scratch", True, "non-data-source"),
    ]


def test_explain_rejects_a_malformed_body(tmp_path):
    tree = make_tree(tmp_path)
    result = pdp("explain", "--config", str(tree.pdp_yaml(50051)), stdin='{"input": {}}')
    assert result.returncode == 2 and "input.action: expected an object" in result.stderr


def test_check_reports_the_demo_configuration():
    result = pdp("check")
    assert result.returncode == 0, result.stderr
    assert "ok: revision" in result.stdout and "data sources" in result.stdout


def test_check_fails_with_every_problem(tmp_path):
    tree = make_tree(tmp_path, properties="immuta.user.admin=(\n")
    tree.write("policies.yaml", "policies:\n  - {name: p, access: NONE}\n")
    result = pdp(
        "check", "--config", str(tree.pdp_yaml(50051)), "--properties", str(tree.properties)
    )
    assert result.returncode == 2
    assert "policies.yaml:2: policies[0].access: unknown policy access type 'NONE'" in result.stderr
    assert "cluster.properties:1: immuta.user.admin: invalid regular expression" in result.stderr


def test_explain_data_policies_of_the_demo():
    demo = ROOT / "config" / "examples"
    result = pdp("explain", str(demo / "masks-orders-dana.json"))
    assert result.returncode == 0, result.stderr
    assert "hive.sales.orders.id (integer): unmasked" in result.stdout
    assert "round by policy 'amounts-rounded' on column 'amount'" in result.stdout
    result = pdp("explain", "--json", str(demo / "row-filters-dana.json"))
    line = json.loads(result.stdout)
    assert line["filters"] == [{"expression": "(region IN ('emea'))", "policy": "own-region"}]


def test_explain_names_overridden_and_staged_data_policies(tmp_path):
    tree = make_tree(tmp_path)
    tree.write(
        "policies.yaml",
        "masks:\n"
        "  - {name: a-hash, columns: {names: [region]}, mask: hash}\n"
        "  - {name: b-null, columns: {names: [region]}, mask: null}\n"
        "  - {name: c-staged, columns: {names: [region]}, mask: null, status: staged}\n",
    )
    body = {
        "input": {
            "context": {"identity": {"user": "bob", "groups": []}},
            "action": {
                "operation": "GetColumnMask",
                "resource": {
                    "column": {
                        "catalogName": "hive",
                        "schemaName": "sales",
                        "tableName": "orders",
                        "columnName": "region",
                        "columnType": "varchar",
                    }
                },
            },
        }
    }
    result = pdp("explain", "--config", str(tree.pdp_yaml(50051)), stdin=json.dumps(body))
    assert result.returncode == 0, result.stderr
    assert "CAST(NULL AS varchar)" in result.stdout
    assert "null by policy 'b-null'" in result.stdout
    assert "also masked by (lower precedence): a-hash" in result.stdout
    assert "staged, not enforced: c-staged" in result.stdout


# --- the built-in New Column Added policy, with a store ----------------------------------------


def new_column_store(url: str) -> None:
    """pgs.shop.public.orders (Trino catalog `pg`): `note` added by a later sync (tagged New),
    olga Data Owner on the schema."""
    from pdp.objects.paths import ObjectPath
    from pdp.objects.syncplan import Listing, RemoteColumn, RemoteObject
    from pdp.store import Role, Store

    def listings(*columns: str) -> list[Listing]:
        table = RemoteObject(
            "orders",
            "BASE TABLE",
            tuple(RemoteColumn(c, "varchar", True, i + 1) for i, c in enumerate(columns)),
        )
        return [
            Listing((), (RemoteObject("shop"),)),
            Listing(("shop",), (RemoteObject("public"),)),
            Listing(("shop", "public"), (table,)),
        ]

    store = Store.open(url)
    try:
        with store.write() as writer:
            writer.register_connection(
                "pgs",
                "postgresql",
                settings={"trinoCatalogs": {"shop": "pg"}},
                is_active=True,
                activate_new_children=True,
            )
            writer.sync("pgs", listings("id"))
        with store.write() as writer:
            writer.sync("pgs", listings("id", "note"))
            writer.grant(ObjectPath("pgs", ("shop", "public")), "olga", Role.DATA_OWNER)
    finally:
        store.close()


def mask_body(user: str) -> str:
    column = {
        "catalogName": "pg",
        "schemaName": "public",
        "tableName": "orders",
        "columnName": "note",
        "columnType": "varchar",
    }
    return json.dumps(
        {
            "input": {
                "context": {"identity": {"user": user, "groups": []}},
                "action": {"operation": "GetColumnMask", "resource": {"column": column}},
            }
        }
    )


EXPLAIN_NEW = [
    # (state of the built-in, user, what explain says)
    ("staged", "ann", ["unmasked", "staged, not enforced: New Column Added"]),
    ("active", "ann", ["CAST(NULL AS varchar)", "null by policy 'New Column Added'"]),
    ("active", "olga", ["unmasked", "data owner of the table: exempt from New Column Added"]),
]


def test_explain_shows_the_new_column_added_policy(tmp_path):
    url = f"sqlite:///{tmp_path}/store.db"
    new_column_store(url)
    for state, user, expected in EXPLAIN_NEW:
        (tmp_path / state / user).mkdir(parents=True)
        tree = make_tree(
            tmp_path / state / user, policies=f"builtins: {{New Column Added: {state}}}"
        )
        config = tree.pdp_yaml(50051)
        config.write_text(config.read_text() + f"store: {url}\n")
        result = pdp("explain", "--config", str(config), stdin=mask_body(user))
        assert result.returncode == 0, result.stderr
        for text in expected:
            assert text in result.stdout, (state, user, result.stdout)


def test_check_warns_of_a_group_nobody_has_and_counts_in_words(tmp_path):
    policies = """
    policies:
      - name: finance-readers
        access: READ
        who: {groups: [finance-team]}
        what: {dataSources: [trino-prod.hive.sales.orders]}
    """
    tree = make_tree(tmp_path, policies=policies)
    result = pdp("check", "--config", str(tree.pdp_yaml(50051)))
    assert result.returncode == 0, result.stderr
    assert (
        "warning: policy 'finance-readers': group 'finance-team' has no member in the "
        "directory (only a group Trino sends with a request can match it)" in result.stdout
    )
    assert "1 data source, 1 policy, 1 mask, 0 row filters, 2 users" in result.stdout
