"""pdp.yaml and sidecar.yaml are reloaded while the services run: what can change safely is
applied, what needs a restart is named in a warning and left as it was."""

from __future__ import annotations

import time

import httpx

from devstack.processes import Process

ALICE_SELECTS = {
    "input": {
        "context": {"identity": {"user": "alice", "groups": []}},
        "action": {
            "operation": "SelectFromColumns",
            "resource": {
                "table": {"catalogName": "hive", "schemaName": "sales", "tableName": "orders"}
            },
        },
    }
}
CAROL_SELECTS = {
    "input": {**ALICE_SELECTS["input"], "context": {"identity": {"user": "carol", "groups": []}}}
}


def answer_becomes(url: str, body: dict, want: bool, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if httpx.post(f"{url}/v1/data/trino/allow", json=body, timeout=5).json()["result"] is want:
            return
        time.sleep(0.05)
    raise AssertionError(f"answer did not become {want} within {seconds}s")


def log_says(process: Process, text: str, seconds: float = 10.0) -> str:
    deadline = time.monotonic() + seconds
    while text not in process.output() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert text in process.output(), process.output()
    return process.output()


def test_pdp_yaml_policy_files_are_reloaded_and_restart_only_keys_are_named(stack_factory):
    stack = stack_factory()
    tree = stack.tree
    assert httpx.post(f"{stack.url}/v1/data/trino/allow", json=CAROL_SELECTS).json() == {
        "result": False
    }
    tree.write(
        "more-policies.yaml",
        """
        policies:
          - name: carol-reads
            access: READ
            who: {users: [carol]}
            what: {dataSources: [trino-prod.hive.sales.orders]}
        """,
    )
    pdp_yaml = tree.root / "pdp.yaml"
    text = pdp_yaml.read_text()
    pdp_yaml.write_text(
        text.replace("  - users.yaml\n", "  - users.yaml\n  - more-policies.yaml\n")
    )
    answer_becomes(stack.url, CAROL_SELECTS, True)
    log_says(stack.pdp, "pdp.yaml reloaded: policyFiles applied")

    # listen needs a restart: said so, and the PDP keeps serving where it was
    text = pdp_yaml.read_text()
    pdp_yaml.write_text(text.replace(f"127.0.0.1:{stack.pdp_port}", "127.0.0.1:1"))
    log_says(stack.pdp, "pdp.yaml: listen changed: restart the PDP to apply")
    time.sleep(1.5)
    assert httpx.get(f"{stack.url}/health").json()["pdp"] == "connected"


def test_a_rejected_pdp_yaml_edit_keeps_the_running_configuration(stack_factory):
    stack = stack_factory()
    pdp_yaml = stack.tree.root / "pdp.yaml"
    pdp_yaml.write_text(pdp_yaml.read_text().replace("  - users.yaml\n", "  - nope.yaml\n"))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        health = httpx.get(f"{stack.url}/health").json()
        if health["status"] == "degraded":
            break
        time.sleep(0.05)
    (problem,) = health["rejected"]
    assert problem["file"] == str(pdp_yaml) and problem["line"] == 5
    assert "policyFiles[2]: 'nope.yaml': no such file" in problem["message"]
    assert httpx.post(f"{stack.url}/v1/data/trino/allow", json=ALICE_SELECTS).json() == {
        "result": True
    }


def test_sidecar_yaml_cluster_files_are_reloaded_and_restart_only_keys_are_named(
    stack_factory,
):
    stack = stack_factory(properties="immuta.allowed.immuta.datasource.operations=READ,WRITE\n")
    tree = stack.tree
    assert httpx.post(f"{stack.url}/v1/data/trino/allow", json=ALICE_SELECTS).json() == {
        "result": True
    }
    tree.write("strict.properties", "immuta.allowed.immuta.datasource.operations=WRITE\n")
    sidecar_yaml = tree.root / "sidecar.yaml"
    text = sidecar_yaml.read_text().replace("cluster.properties", "strict.properties")
    sidecar_yaml.write_text(text)
    answer_becomes(stack.url, ALICE_SELECTS, False)

    sidecar_yaml.write_text(sidecar_yaml.read_text().replace("workers: 1", "workers: 3"))
    log_says(stack.sidecar, "sidecar.yaml: workers changed: restart the sidecar to apply")


def test_sidecar_yaml_staleness_bound_is_reloaded(stack_factory):
    stack = stack_factory(max_stale=300)
    assert httpx.post(f"{stack.url}/v1/data/trino/allow", json=ALICE_SELECTS).json() == {
        "result": True
    }
    sidecar_yaml = stack.tree.root / "sidecar.yaml"
    text = sidecar_yaml.read_text()
    assert "maxStaleSeconds: 300" in text
    sidecar_yaml.write_text(text.replace("maxStaleSeconds: 300", "maxStaleSeconds: 1"))
    time.sleep(1.0)  # reloadIntervalSeconds is 0.1 in the tests
    stack.pdp.stop()
    # with the old bound (300 s) alice would keep her cached answer for five minutes
    answer_becomes(stack.url, ALICE_SELECTS, False, seconds=8)
