"""`pdp explain` and `pdp check` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.configs import make_tree

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
