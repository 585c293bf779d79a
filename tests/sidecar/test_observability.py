"""What an operator sees: Prometheus metrics added up over the sidecar's worker processes,
liveness and readiness, and a decision log of allows and denials in OPA's shape, sampled, to a
file or an HTTP collector."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from devstack.configs import make_tree
from devstack.processes import free_port, start_pdp, start_sidecar
from tests.conftest import Stack
from tests.sidecar.test_revocation import BODY

CAROL = {**BODY, "input": {**BODY["input"], "context": {"identity": {"user": "carol"}}}}
FILTER = {
    "input": {
        "context": {"identity": {"user": "carol", "groups": []}},
        "action": {
            "operation": "FilterTables",
            "filterResources": [
                {"table": {"catalogName": "hive", "schemaName": "sales", "tableName": t}}
                for t in ("orders", "scratch", "elsewhere")
            ],
        },
    }
}


def stack_with(tmp_path: Path, extra: str, workers: int = 1) -> Stack:
    tmp_path.mkdir(parents=True, exist_ok=True)
    tree = make_tree(tmp_path)
    pdp_port, port = free_port(), free_port()
    pdp = start_pdp(tree.pdp_yaml(pdp_port), pdp_port)
    sidecar_yaml = tree.sidecar_yaml(port, pdp_port)
    text = sidecar_yaml.read_text().replace("workers: 1", f"workers: {workers}")
    sidecar_yaml.write_text(text + extra)
    sidecar = start_sidecar(sidecar_yaml, port)
    return Stack(tree, pdp, sidecar, pdp_port, port)


@pytest.fixture
def stacks(tmp_path) -> Iterator[list[Stack]]:
    started: list[Stack] = []
    yield started
    for stack in started:
        stack.sidecar.stop()
        stack.pdp.stop()


def samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_add_up_over_workers_and_do_not_change_between_scrapes(tmp_path, stacks):
    stack = stack_with(tmp_path, "", workers=2)
    stacks.append(stack)
    with httpx.Client(base_url=stack.url, timeout=5) as client:
        for _ in range(30):
            assert client.post("/v1/data/trino/allow", json=BODY).json() == {"result": True}
        for _ in range(7):
            assert client.post("/v1/data/trino/allow", json=CAROL).json() == {"result": False}
        for _ in range(5):  # carol: orders denied, scratch (inactive) and elsewhere allowed
            assert client.post("/v1/data/trino/batch", json=FILTER).json() == {"result": [1, 2]}
    time.sleep(1.5)  # every worker has saved its counters since
    first, second = samples(stack.url), samples(stack.url)
    decisions = "pdp_sidecar_decisions_total"
    select = (("operation", "SelectFromColumns"),)
    for metrics in (first, second):
        assert metrics[decisions, (*select, ("result", "allow"))] == 30
        assert metrics[decisions, (*select, ("result", "deny"))] == 7
        assert metrics[decisions, (("operation", "FilterTables"), ("result", "allow"))] == 10
        assert metrics[decisions, (("operation", "FilterTables"), ("result", "deny"))] == 5
        hits = metrics["pdp_sidecar_decision_cache_lookups_total", (("outcome", "hit"),)]
        misses = metrics["pdp_sidecar_decision_cache_lookups_total", (("outcome", "miss"),)]
        assert hits + misses == 37 and misses >= 2
        count = "pdp_sidecar_request_duration_seconds_count"
        assert metrics[count, (("endpoint", "allow"),)] == 37
        assert (
            metrics["pdp_sidecar_http_responses_total", (("endpoint", "batch"), ("status", "200"))]
            == 5
        )
    connected = [v for (name, _), v in first.items() if name == "pdp_sidecar_pdp_connected"]
    assert connected == [1, 1]  # one per worker
    # each worker froze what it loaded at start, after one full collection (pdp/collector.py)
    frozen = [v for (name, _), v in first.items() if name == "pdp_sidecar_gc_frozen_objects"]
    assert len(frozen) == 2 and min(frozen) > 1000
    pauses = "pdp_sidecar_gc_pause_seconds_count"
    assert first[pauses, (("generation", "2"),)] >= 2
    assert {first[pauses, (("generation", g),)] >= 0 for g in "01"} == {True}


def test_liveness_and_readiness(tmp_path, stacks):
    stack = stack_with(tmp_path / "a", "")
    stacks.append(stack)
    assert httpx.get(f"{stack.url}/health/live").status_code == 200
    ready = httpx.get(f"{stack.url}/health/ready")
    assert ready.status_code == 200 and ready.json()["revision"]

    stack.pdp.stop()  # a sidecar that never reached a PDP: alive, not ready
    (tmp_path / "b").mkdir()
    tree = make_tree(tmp_path / "b")
    port = free_port()
    lonely = start_sidecar(tree.sidecar_yaml(port, stack.pdp_port), port, wait_connected=False)
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/health/live").status_code == 200
        not_ready = httpx.get(f"http://127.0.0.1:{port}/health/ready")
        assert not_ready.status_code == 503
        assert not_ready.json()["reason"] == "no policy revision from the PDP"
    finally:
        lonely.stop()


def _entries(path: Path, count: int) -> list[dict]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if path.exists():
            lines = path.read_text().splitlines()
            if len(lines) >= count:
                return [json.loads(line) for line in lines]
        time.sleep(0.1)
    raise AssertionError(f"fewer than {count} entries in {path}")


def test_decision_log_to_a_file_in_opa_shape(tmp_path, stacks):
    log_file = tmp_path / "decisions.jsonl"
    stack = stack_with(
        tmp_path, f"decisionLog: {{file: {log_file}, sample: {{allow: 1, deny: 1}}}}\n"
    )
    stacks.append(stack)
    with httpx.Client(base_url=stack.url, timeout=5) as client:
        client.post("/v1/data/trino/allow", json=BODY)
        client.post("/v1/data/trino/allow", json=CAROL)
        client.post("/v1/data/trino/batch", json=FILTER)
    allow, deny, batch = _entries(log_file, 3)
    for entry in (allow, deny, batch):
        assert set(entry) >= {"decision_id", "timestamp", "path", "input", "result", "labels"}
        assert entry["bundles"]["pdp"]["revision"]
    assert allow["path"] == "trino/allow" and allow["result"] is True
    assert allow["input"]["context"]["identity"]["user"] == "alice"
    assert allow["rule"] == "data-source" and allow["policies"] == ["orders-readers"]
    assert deny["result"] is False and deny["input"]["context"]["identity"]["user"] == "carol"
    assert batch["path"] == "trino/batch" and batch["result"] == [1, 2]


def test_sampling_keeps_every_denial_and_no_allow_at_rate_zero(tmp_path, stacks):
    log_file = tmp_path / "decisions.jsonl"
    stack = stack_with(
        tmp_path, f"decisionLog: {{file: {log_file}, sample: {{allow: 0, deny: 1}}}}\n"
    )
    stacks.append(stack)
    with httpx.Client(base_url=stack.url, timeout=5) as client:
        for _ in range(20):
            client.post("/v1/data/trino/allow", json=BODY)
        for _ in range(4):
            client.post("/v1/data/trino/allow", json=CAROL)
    _entries(log_file, 4)
    time.sleep(1.5)  # a later flush would have brought any allow
    entries = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert [e["result"] for e in entries] == [False] * 4


def test_decision_log_to_an_http_collector(tmp_path, stacks):
    received: list[list[dict]] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["content-length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/logs"
        stack = stack_with(tmp_path, f"decisionLog: {{url: '{url}', sample: {{allow: 1}}}}\n")
        stacks.append(stack)
        httpx.post(f"{stack.url}/v1/data/trino/allow", json=BODY, timeout=5)
        deadline = time.monotonic() + 10
        while not received and time.monotonic() < deadline:
            time.sleep(0.1)
        assert received and received[0][0]["result"] is True
        assert received[0][0]["input"]["action"]["operation"] == "SelectFromColumns"
    finally:
        server.shutdown()
