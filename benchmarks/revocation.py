"""Benchmark (not a test): revocation, from a change to the first deny at every sidecar.

    .venv/bin/python benchmarks/revocation.py [--rounds 50] [--sources file,file-poll,store]
                                              (also: store-sqlite)

Sources, each against one real PDP process and two real sidecars (one worker each):

- `file`: policies.yaml rewritten in place; the PDP hears it from the kernel (watchfiles),
  `reloadIntervalSeconds` at its default of 1 s;
- `file-poll`: the same with notification forced off (the PDP started with a `watchfiles` that
  cannot be imported, so it takes its fallback: polling every second, what it did before);
- `store`: an admin API PUT deactivating a table (PostgreSQL store, LISTEN/NOTIFY, the PDP
  with the fake platform of devstack/fakes.py in place of a crawler). PostgreSQL runs in a
  throwaway cluster (devstack.postgres), or the server PDP_TEST_POSTGRES names;
- `store-sqlite`: the same on a SQLite store (the write wakes the PDP's feed in its process).

Per round the access is granted again (and seen allowed at both sidecars), then, after a random
pause of up to 1 s (else each change would come just after a poll), revoked: t0 is taken just
before the write (or before sending the PUT, which answers once committed), and a thread per
sidecar asks alice's `SelectFromColumns` every 2 ms until it is denied. Printed per source: p50,
p99 and max of each sidecar's first deny after t0, and of the later of the two (the deny at
every sidecar)."""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devstack.configs import WORKED_POLICIES, make_tree
from devstack.processes import Process, free_port, start_sidecar

POLL_SECONDS = 0.002
# a pause of up to one poll interval before each change, so that the changes do not fall in
# step with the PDP's poll (the grant just before was seen by that poll)
JITTER_SECONDS = 1.0
BOUND = 30.0  # a round that takes longer is a failure, not a sample
REVOKED = WORKED_POLICIES.replace("groups: [analysts]", "groups: [auditors]")


def check(table: str, catalog: str = "hive") -> dict[str, Any]:
    return {
        "input": {
            "context": {
                "identity": {"user": "alice", "groups": []},
                "softwareStack": {"trinoVersion": "484"},
            },
            "action": {
                "operation": "SelectFromColumns",
                "resource": {
                    "table": {
                        "catalogName": catalog,
                        "schemaName": "sales",
                        "tableName": table,
                        "columns": ["id"],
                    }
                },
            },
        }
    }


class Sidecars:
    def __init__(self, tree: Any, pdp_port: int) -> None:
        self.processes: list[Process] = []
        self.urls: list[str] = []
        for _ in range(2):
            port = free_port()
            self.processes.append(start_sidecar(tree.sidecar_yaml(port, pdp_port), port))
            self.urls.append(f"http://127.0.0.1:{port}")

    def stop(self) -> None:
        for process in self.processes:
            process.stop()

    def allowed(self, body: dict[str, Any]) -> None:
        deadline = time.monotonic() + BOUND
        for url in self.urls:
            with httpx.Client(base_url=url, timeout=5) as client:
                while not client.post("/v1/data/trino/allow", json=body).json()["result"]:
                    assert time.monotonic() < deadline, "the grant never reached the sidecar"
                    time.sleep(0.01)

    def first_deny(self, body: dict[str, Any], revoke: Callable[[], object]) -> list[float]:
        """Seconds from just before `revoke` to each sidecar's first deny."""
        time.sleep(random.uniform(0, JITTER_SECONDS))
        go, found = threading.Event(), [0.0] * len(self.urls)
        t0 = 0.0

        def poll(i: int, url: str) -> None:
            with httpx.Client(base_url=url, timeout=5) as client:
                go.wait()
                while client.post("/v1/data/trino/allow", json=body).json()["result"]:
                    if time.monotonic() - t0 > BOUND:
                        return
                    time.sleep(POLL_SECONDS)
                found[i] = time.monotonic() - t0

        threads = [
            threading.Thread(target=poll, args=(i, url), daemon=True)
            for i, url in enumerate(self.urls)
        ]
        for thread in threads:
            thread.start()
        t0 = time.monotonic()
        go.set()
        revoke()
        for thread in threads:
            thread.join(BOUND + 5)
        assert all(found), f"still allowed {BOUND}s after the change"
        return found


def wait_port(process: Process, port: int) -> None:
    def open_() -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    process.wait_until(open_, timeout=60)


def shim_without_watchfiles(root: Path) -> str:
    """A PYTHONPATH entry under which `import watchfiles` fails: the PDP falls back to polling."""
    package = root / "no-watchfiles" / "watchfiles"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        'raise ImportError("watchfiles hidden by benchmarks/revocation.py")\n'
    )
    return str(package.parent)


def file_source(root: Path, rounds: int, notify: bool) -> list[list[float]]:
    root.mkdir()
    tree = make_tree(root)
    pdp_port = free_port()
    yaml = tree.pdp_yaml(pdp_port)
    yaml.write_text(yaml.read_text().replace("reloadIntervalSeconds: 0.1", ""))  # default 1 s
    env = {}
    if not notify:
        env["PYTHONPATH"] = os.pathsep.join(
            [shim_without_watchfiles(root), os.environ.get("PYTHONPATH", "")]
        )
    pdp = Process(
        [sys.executable, "-m", "pdp.cli", "serve", "--config", str(yaml)],
        root.parent / f"{root.name}-pdp.log",  # not where the policy files are watched
        env=env,
    )
    sidecars = None
    try:
        wait_port(pdp, pdp_port)
        polled = "watchfiles is not installed" in pdp.output()
        assert polled is not notify, "the PDP did not start in the mode asked for"
        sidecars = Sidecars(tree, pdp_port)
        body, samples = check("orders"), []
        for _ in range(rounds):
            tree.write("policies.yaml", WORKED_POLICIES)
            sidecars.allowed(body)
            samples.append(sidecars.first_deny(body, lambda: tree.write("policies.yaml", REVOKED)))
        return samples
    finally:
        if sidecars is not None:
            sidecars.stop()
        pdp.stop()


@contextmanager
def postgres_url() -> Iterator[str]:
    from devstack import postgres

    with postgres.server() as pg, pg.scratch_database() as url:
        yield url


@contextmanager
def sqlite_url(root: Path) -> Iterator[str]:
    yield f"sqlite:///{root / 'store.db'}"


def store_source(root: Path, rounds: int, backend: str) -> list[list[float]]:
    from devstack.replica import REGISTER, Replica, write_world

    root.mkdir()
    world = root / "world.json"
    write_world(world, {"cat": {"sales": {"orders": [["id", "bigint"]]}}})
    with postgres_url() if backend == "postgresql" else sqlite_url(root) as url:
        pdp = Replica(root, url, world, "store")
        sidecars = None
        try:
            answer = pdp.api.post(
                "/data/connection", json={**REGISTER, "settings": {"activateNewChildren": True}}
            )
            assert answer.status_code == 201, answer.text
            assert pdp.wait_job(answer.json()["jobId"])["state"] == "completed"
            sidecars = Sidecars(pdp.tree, pdp.grpc_port)
            body, samples = check("orders", catalog="cat"), []
            setting = "/data/settings/hc/cat/sales/orders"

            def deactivate() -> None:
                assert pdp.api.put(setting, json={"isActive": False}).status_code == 200

            for _ in range(rounds):
                assert pdp.api.put(setting, json={"isActive": True}).status_code == 200
                sidecars.allowed(body)
                samples.append(sidecars.first_deny(body, deactivate))
            return samples
        finally:
            if sidecars is not None:
                sidecars.stop()
            pdp.stop()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def report(source: str, samples: list[list[float]]) -> None:
    columns = {
        "sidecar 1": [s[0] for s in samples],
        "sidecar 2": [s[1] for s in samples],
        "every sidecar": [max(s) for s in samples],
    }
    for name, values in columns.items():
        print(
            f"{source:12} {name:14} n={len(values):3}  p50 {statistics.median(values) * 1000:7.1f}"
            f" ms  p99 {percentile(values, 99) * 1000:7.1f} ms  max {max(values) * 1000:7.1f} ms",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--sources", default="file,file-poll,store")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="pdp-revocation-") as scratch:
        for source in args.sources.split(","):
            root = Path(scratch) / source
            if source == "file":
                samples = file_source(root, args.rounds, notify=True)
            elif source == "file-poll":
                samples = file_source(root, args.rounds, notify=False)
            elif source == "store":
                samples = store_source(root, args.rounds, "postgresql")
            elif source == "store-sqlite":
                samples = store_source(root, args.rounds, "sqlite")
            else:
                raise SystemExit(
                    f"unknown source {source!r} (file, file-poll, store, store-sqlite)"
                )
            report(source, samples)
    print(f"load average at end: {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()
