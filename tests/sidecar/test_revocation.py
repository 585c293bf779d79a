"""Policy changes reach serving sidecars through the revision watch."""

from __future__ import annotations

import time

import httpx

from devstack.configs import WORKED_POLICIES, make_tree
from devstack.processes import Process, free_port, start_pdp, start_sidecar
from tests.support.opa import select_orders

BODY = select_orders(softwareStack={"trinoVersion": "484"}, properties={})


def poll(client: httpx.Client, want: bool, seconds: float = 10.0) -> float:
    """Seconds until the answer became `want` (bounded)."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if client.post("/v1/data/trino/allow", json=BODY).json()["result"] is want:
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"answer did not become {want} within {seconds}s")


def test_revoking_a_policy_denies_a_previously_allowed_check(stack_factory):
    stack = stack_factory()
    with httpx.Client(base_url=stack.url, timeout=5) as client:
        assert client.post("/v1/data/trino/allow", json=BODY).json() == {"result": True}
        revision = client.get("/health").json()["revision"]

        # orders-readers no longer applies to analysts
        stack.tree.write(
            "policies.yaml", WORKED_POLICIES.replace("groups: [analysts]", "groups: [auditors]")
        )
        poll(client, want=False)
        assert client.get("/health").json()["revision"] != revision

        stack.tree.write("policies.yaml", WORKED_POLICIES)  # and granting again works too
        poll(client, want=True)


def test_a_bad_policy_edit_keeps_the_last_good_policy_in_force(stack_factory):
    stack = stack_factory()
    with httpx.Client(base_url=stack.url, timeout=5) as client:
        revision = client.get("/health").json()["revision"]
        stack.tree.write("policies.yaml", "policies:\n  - name: broken\n    access: MAYBE\n")
        deadline = time.monotonic() + 5
        while "MAYBE" not in stack.pdp.output() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "policies.yaml:3" in stack.pdp.output()
        assert client.post("/v1/data/trino/allow", json=BODY).json() == {"result": True}
        assert client.get("/health").json()["revision"] == revision


def test_cluster_properties_change_applies_without_restart(stack_factory):
    stack = stack_factory(properties="immuta.allowed.immuta.datasource.operations=READ,WRITE\n")
    with httpx.Client(base_url=stack.url, timeout=5) as client:
        assert client.post("/v1/data/trino/allow", json=BODY).json() == {"result": True}
        stack.tree.write(
            "cluster.properties", "immuta.allowed.immuta.datasource.operations=WRITE\n"
        )
        poll(client, want=False)


def first_deny_everywhere(clients: list[httpx.Client], bound: float = 10.0) -> None:
    """Every sidecar answers deny within `bound` seconds (generous: not a timing assertion),
    and from then on never allows again."""
    deadline = time.monotonic() + bound
    waiting = list(clients)
    while waiting:
        assert time.monotonic() < deadline, f"still allowed after {bound}s"
        waiting = [c for c in waiting if c.post("/v1/data/trino/allow", json=BODY).json()["result"]]
        time.sleep(0.02)
    for _ in range(20):
        for client in clients:
            assert client.post("/v1/data/trino/allow", json=BODY).json() == {"result": False}


def test_a_policy_file_edit_revokes_at_every_sidecar_before_the_next_poll(tmp_path):
    """The PDP polls its files once a minute here: the deny can only come from the kernel's
    notification of the write, through the revision stream, to both sidecars."""
    tree = make_tree(tmp_path)
    pdp_port, ports = free_port(), [free_port(), free_port()]
    pdp_yaml = tree.pdp_yaml(pdp_port)
    pdp_yaml.write_text(
        pdp_yaml.read_text().replace("reloadIntervalSeconds: 0.1", "reloadIntervalSeconds: 60")
    )
    pdp = start_pdp(pdp_yaml, pdp_port)
    sidecars: list[Process] = []
    clients = [httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) for port in ports]
    try:
        for port in ports:
            sidecars.append(start_sidecar(tree.sidecar_yaml(port, pdp_port), port))
        for client in clients:  # allowed, and cached, until the change
            assert client.post("/v1/data/trino/allow", json=BODY).json() == {"result": True}
        tree.write(
            "policies.yaml", WORKED_POLICIES.replace("groups: [analysts]", "groups: [auditors]")
        )
        first_deny_everywhere(clients)
    finally:
        for client in clients:
            client.close()
        for sidecar in sidecars:
            sidecar.stop()
        pdp.stop()
