"""A sidecar restarted while the PDP is unreachable starts from its last-known-good state on
disk (`cache.stateFile`), serves within the staleness bound, says so, and fails closed past it."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from devstack.configs import WORKED_USERS, make_tree
from devstack.processes import Process, free_port, start_pdp, start_sidecar
from pdp.api import pb
from pdp.wire import proto
from tests.support.opa import select_orders

USERS = WORKED_USERS + "  dan: {groups: [analysts]}\n"  # allowed like alice, never asked for


def allowed(url: str, user: str) -> bool:
    response = httpx.post(f"{url}/v1/data/trino/allow", json=select_orders(user), timeout=5)
    return response.json()["result"]


def health(url: str) -> dict:
    return httpx.get(f"{url}/health", timeout=5).json()


def saved_users(path: Path) -> set[str]:
    if not path.exists():
        return set()
    saved = pb.SavedState()
    saved.ParseFromString(path.read_bytes())
    return {proto.identity_from_pb(view.identity).user for view in saved.views}


def run_then_stop(tmp_path: Path, max_stale: float) -> tuple[Path, Path, str]:
    """PDP and sidecar with a state file; alice asks once; both stopped. Returns the sidecar
    configuration, the state file and the revision served."""
    tree = make_tree(tmp_path, users=USERS)
    pdp_port, port = free_port(), free_port()
    sidecar_yaml = tree.sidecar_yaml(port, pdp_port, max_stale)
    text = sidecar_yaml.read_text().replace(
        f"cache: {{maxStaleSeconds: {max_stale}}}",
        f"cache: {{maxStaleSeconds: {max_stale}, stateFile: state/sidecar.state}}",
    )
    sidecar_yaml.write_text(text)
    (tmp_path / "state").mkdir()
    state = tmp_path / "state" / "sidecar.state"
    pdp = start_pdp(tree.pdp_yaml(pdp_port), pdp_port)
    sidecar: Process | None = None
    try:
        sidecar = start_sidecar(sidecar_yaml, port)
        url = f"http://127.0.0.1:{port}"
        assert allowed(url, "alice")
        revision = health(url)["revision"]
        deadline = time.monotonic() + 5
        while "alice" not in saved_users(state) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert saved_users(state) == {"alice"}
    finally:
        if sidecar is not None:
            sidecar.stop()
        pdp.stop()
    return sidecar_yaml, state, revision


def test_a_sidecar_restarted_without_the_pdp_serves_its_saved_state_within_the_bound(tmp_path):
    sidecar_yaml, _, revision = run_then_stop(tmp_path, max_stale=10)
    stopped = time.monotonic()
    port = int(sidecar_yaml.read_text().split("listen: 127.0.0.1:")[1].split()[0])
    url = f"http://127.0.0.1:{port}"
    sidecar = start_sidecar(sidecar_yaml, port, wait_connected=False)
    try:
        now = health(url)
        assert now["status"] == "degraded" and now["pdp"] == "disconnected"
        assert now["revision"] == revision
        assert now["savedState"]["revision"] == revision
        assert now["savedState"]["users"] == 1
        assert 0 < now["savedState"]["ageSeconds"] < 10
        assert "serving from the saved state" in sidecar.output()

        assert allowed(url, "alice")  # fetched before the restart: served from the file
        assert not allowed(url, "dan")  # never fetched: the PDP is needed, and it is away

        deadline = time.monotonic() + 15
        while allowed(url, "alice") and time.monotonic() < deadline:
            time.sleep(0.1)
        # past the bound, counted from when the PDP last confirmed the state, not from restart
        assert not allowed(url, "alice")
        assert time.monotonic() - stopped < 10 + 3
        assert "savedState" not in health(url)
        assert health(url)["revision"] is None
    finally:
        sidecar.stop()


def test_a_saved_state_older_than_the_bound_is_not_served(tmp_path):
    sidecar_yaml, _, _ = run_then_stop(tmp_path, max_stale=2)
    time.sleep(2.5)
    port = int(sidecar_yaml.read_text().split("listen: 127.0.0.1:")[1].split()[0])
    url = f"http://127.0.0.1:{port}"
    sidecar = start_sidecar(sidecar_yaml, port, wait_connected=False)
    try:
        time.sleep(0.5)  # the staleness check runs every 0.25 s
        assert not allowed(url, "alice")
        assert "savedState" not in health(url)
    finally:
        sidecar.stop()


def test_without_a_state_file_a_restart_without_the_pdp_fails_closed(tmp_path):
    tree = make_tree(tmp_path)
    port = free_port()
    sidecar = start_sidecar(tree.sidecar_yaml(port, free_port()), port, wait_connected=False)
    try:
        assert not allowed(f"http://127.0.0.1:{port}", "alice")
        assert health(f"http://127.0.0.1:{port}")["status"] == "ok"
    finally:
        sidecar.stop()
