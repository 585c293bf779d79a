"""The PDP's monitoring endpoint: liveness, readiness and Prometheus metrics of its gRPC calls,
the sidecars following it and the revision it serves."""

from __future__ import annotations

import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from devstack.configs import WORKED_POLICIES, make_tree
from devstack.processes import free_port, start_pdp, start_sidecar
from tests.sidecar.test_revocation import BODY


def metrics(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_monitoring_endpoint(tmp_path):
    tree = make_tree(tmp_path)
    pdp_port, monitor_port, port = free_port(), free_port(), free_port()
    pdp_yaml = tree.pdp_yaml(pdp_port)
    pdp_yaml.write_text(
        pdp_yaml.read_text() + f"monitoring: {{listen: 127.0.0.1:{monitor_port}}}\n"
    )
    pdp = start_pdp(pdp_yaml, pdp_port)
    url = f"http://127.0.0.1:{monitor_port}"
    try:
        assert httpx.get(f"{url}/health/live").json() == {"status": "live"}
        assert httpx.get(f"{url}/health/ready").status_code == 200
        sidecar = start_sidecar(tree.sidecar_yaml(port, pdp_port), port)
        try:
            assert httpx.post(f"http://127.0.0.1:{port}/v1/data/trino/allow", json=BODY).json()
            seen = metrics(url)
            assert seen["pdp_watch_streams", ()] == 1
            assert (
                seen["pdp_grpc_requests_total", (("code", "OK"), ("method", "GetEntitlements"))]
                >= 1
            )
            assert seen["pdp_grpc_requests_total", (("code", "OK"), ("method", "GetRegistry"))] >= 1
            revisions = [
                labels for (name, labels), v in seen.items() if name == "pdp_revision" and v
            ]
            assert len(revisions) == 1
            tree.write("policies.yaml", WORKED_POLICIES.replace("analysts", "auditors"))
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                now = [lab for (n, lab), v in metrics(url).items() if n == "pdp_revision" and v]
                if now != revisions:
                    break
                time.sleep(0.1)
            assert len(now) == 1 and now != revisions
        finally:
            sidecar.stop()
        deadline = time.monotonic() + 5
        while metrics(url)["pdp_watch_streams", ()] != 0:
            assert time.monotonic() < deadline, "the stream of a stopped sidecar is still counted"
            time.sleep(0.1)
    finally:
        pdp.stop()
