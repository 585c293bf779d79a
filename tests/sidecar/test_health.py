"""`/health` tells the same stable facts whichever worker answers, and says "degraded" when a
configuration edit was rejected: which file and line, and the revision still served."""

from __future__ import annotations

import time

import httpx

from devstack.configs import WORKED_POLICIES, make_tree
from devstack.processes import free_port, start_pdp, start_sidecar


def body(user: str, table: str = "orders") -> dict:
    resource = {"table": {"catalogName": "hive", "schemaName": "sales", "tableName": table}}
    return {
        "input": {
            "context": {"identity": {"user": user, "groups": []}},
            "action": {"operation": "SelectFromColumns", "resource": resource},
        }
    }


def wait_health(url: str, until, seconds: float = 10.0) -> dict:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while True:
        now = httpx.get(f"{url}/health", timeout=5).json()
        if until(now) or time.monotonic() > deadline:
            return now
        time.sleep(0.05)


def test_health_is_the_same_whichever_of_two_workers_answers(tmp_path):
    tree = make_tree(tmp_path)
    pdp_port, port = free_port(), free_port()
    sidecar_yaml = tree.sidecar_yaml(port, pdp_port)
    sidecar_yaml.write_text(sidecar_yaml.read_text().replace("workers: 1", "workers: 2"))
    pdp = start_pdp(tree.pdp_yaml(pdp_port), pdp_port)
    try:
        sidecar = start_sidecar(sidecar_yaml, port)
        try:
            url = f"http://127.0.0.1:{port}"
            time.sleep(1.0)  # both workers connected
            for n in range(40):  # a new connection each: spread over both workers' caches
                httpx.post(f"{url}/v1/data/trino/allow", json=body(f"user{n}"), timeout=5)
            answers = {httpx.get(f"{url}/health", timeout=5).text for _ in range(30)}
            assert len(answers) == 1, answers
            assert set(httpx.get(f"{url}/health").json()) == {"status", "revision", "pdp"}
        finally:
            sidecar.stop()
    finally:
        pdp.stop()


def test_a_rejected_policy_edit_is_reported_with_file_line_and_the_revision_served(
    stack_factory,
):
    stack = stack_factory()
    before = httpx.get(f"{stack.url}/health").json()
    assert before["status"] == "ok"
    stack.tree.write("policies.yaml", "policies:\n  - name: broken\n    access: MAYBE\n")
    now = wait_health(stack.url, lambda h: h["status"] == "degraded")
    assert now["status"] == "degraded"
    assert now["revision"] == before["revision"]  # the last good policy keeps serving
    assert now["pdp"] == "connected"
    (problem,) = now["rejected"]
    assert problem["by"] == "pdp"
    assert problem["file"] == str(stack.tree.root / "policies.yaml")
    assert problem["line"] == 3
    assert "MAYBE" in problem["message"]
    allow = httpx.post(f"{stack.url}/v1/data/trino/allow", json=body("alice")).json()
    assert allow == {"result": True}

    stack.tree.write("policies.yaml", "policies: []\n")  # fixed: a new revision, all well
    # the PDP's word that nothing is rejected comes with the new revision, which the sidecar
    # switches to a moment later (its views prepared first)
    now = wait_health(
        stack.url, lambda h: h["status"] == "ok" and h["revision"] != before["revision"]
    )
    assert now["status"] == "ok" and "rejected" not in now
    assert now["revision"] != before["revision"]


def test_a_rejected_cluster_properties_edit_of_the_sidecar_is_reported(stack_factory):
    stack = stack_factory(properties="immuta.allowed.immuta.datasource.operations=READ\n")
    stack.tree.write("cluster.properties", "immuta.user.admin=(\n")
    now = wait_health(stack.url, lambda h: h["status"] == "degraded")
    assert now["status"] == "degraded"
    (problem,) = now["rejected"]
    assert problem["by"] == "sidecar"
    assert problem["file"] == str(stack.tree.root / "cluster.properties")
    assert problem["line"] == 1
    assert "invalid regular expression" in problem["message"]


def test_a_policy_naming_a_group_nobody_is_in_is_a_warning_not_a_degraded_state(stack_factory):
    """The README's own edit (`groups: [auditors]` in orders-readers): valid, so it is applied,
    and both the PDP's log and the sidecar's /health say that no user is in `auditors`."""
    stack = stack_factory()
    before = httpx.get(f"{stack.url}/health").json()
    assert before["status"] == "ok" and "warnings" not in before
    edited = WORKED_POLICIES.replace("groups: [analysts]", "groups: [auditors]")
    stack.tree.write("policies.yaml", edited)
    now = wait_health(stack.url, lambda h: "warnings" in h)
    warning = (
        "policy 'orders-readers': group 'auditors' has no member in the directory "
        "(only a group Trino sends with a request can match it)"
    )
    assert now["warnings"] == [warning]
    assert now["status"] == "ok" and now["revision"] != before["revision"]
    assert f"WARNING pdp.service.run: revision {now['revision']}: {warning}" in stack.pdp.output()
    allow = httpx.post(f"{stack.url}/v1/data/trino/allow", json=body("alice")).json()
    assert allow == {"result": False}  # applied: alice is in analysts, not auditors

    stack.tree.write("policies.yaml", WORKED_POLICIES)  # fixed: the warning goes
    now = wait_health(stack.url, lambda h: "warnings" not in h)
    assert "warnings" not in now and now["status"] == "ok"
