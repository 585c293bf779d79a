"""A real PDP process over a store, with the fake platform (`devstack.fakes`) in place of the
crawlers: the control plane's tests and the benchmarks run it (`python -m devstack.fakepdp`)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

from devstack.configs import WORKED_POLICIES, WORKED_REGISTRY, WORKED_USERS, make_tree
from devstack.processes import Process, free_port

ROOT = Path(__file__).resolve().parents[1]

POLICIES = (
    WORKED_POLICIES
    + """
  - name: hc-readers
    access: READ
    who: {users: [alice]}
    what: {tags: [Connections.Trino.hc]}
"""
)
USERS = WORKED_USERS + "  gov: {permissions: [GOVERNANCE, APPLICATION_ADMIN]}\n"
CLOSED = "immuta.allowed.non.immuta.datasource.operations=WRITE\n"  # unregistered: no reads
GOV = {"X-Pdp-User": "gov"}
STORE_KEY = "GWfj5J3bCR3bqGxg5w2Xb0mHl2-eCJVPRCi3ypG1ZTM="  # a Fernet key, for tests only


class Replica:
    def __init__(
        self,
        root: Path,
        store_url: str,
        world: Path,
        name: str,
        extra: str = "",
        args: Sequence[str] = (),
        properties: str | None = None,  # the cluster's properties file; None: CLOSED
    ) -> None:
        self.grpc_port, self.admin_port = free_port(), free_port()
        rules = CLOSED if properties is None else properties  # looked up now: tests patch it
        self.tree = make_tree(
            root, registry=WORKED_REGISTRY, policies=POLICIES, users=USERS, properties=rules
        )
        yaml = self.tree.pdp_yaml(self.grpc_port)
        yaml.write_text(
            yaml.read_text()
            + f"clusterProperties: {self.tree.properties.name}\n"  # type: ignore[union-attr]
            + f"store: {store_url}\n"
            + f"admin: {{listen: '127.0.0.1:{self.admin_port}', trustUserHeader: true}}\n"
            + "storeSecretKeyEnv: PDP_TEST_STORE_KEY\n"  # credentials are values, encrypted
            + extra
        )
        self.command = [
            sys.executable,
            "-m",
            "devstack.fakepdp",
            "--config",
            str(yaml),
            "--world",
            str(world),
            "--tick",
            "0.5",
            *args,
        ]
        self.log, self.starts = root / f"pdp-{name}.log", 0
        self.url = f"http://127.0.0.1:{self.admin_port}"
        self.api = httpx.Client(base_url=self.url, headers=GOV)
        self.process = self._start()

    def _start(self) -> Process:
        self.starts += 1
        log = self.log.with_name(f"{self.log.stem}-{self.starts}.log") if self.starts > 1 else None
        process = Process(self.command, log or self.log, env={"PDP_TEST_STORE_KEY": STORE_KEY})
        process.wait_until(self._ready, timeout=30)
        return process

    def restart(self) -> None:
        """Stop the PDP process and start it again: same configuration, same ports."""
        self.process.stop()
        self.process = self._start()

    def _ready(self) -> bool:
        try:
            return self.api.get("/health").status_code == 200
        except httpx.HTTPError:
            return False

    def revision(self) -> str:
        return self.api.get("/health").json()["revision"]

    def wait_job(self, job_id: str, timeout: float = 20) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.api.get(f"/jobs/{job_id}").json()
            if job["state"] in ("completed", "failed", "cancelled"):
                return job
            time.sleep(0.05)
        raise TimeoutError(job_id)

    def sync(self, path: str, force: bool = True) -> dict:
        answer = self.api.post(f"/data/crawl/{path}", json={"forceRecursive": force})
        assert answer.status_code == 202, answer.text
        return self.wait_job(answer.json()["jobId"])

    def cli(
        self, *args: str, user: str = "gov", env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`pdp COMMAND --url <this PDP> --as-user USER ARGS...` (`args`: COMMAND, ARGS...) in
        a process of its own, with the environment `env` (None: this one's)."""
        command, *rest = args
        return subprocess.run(
            [sys.executable, "-m", "pdp.cli", command, "--url", self.url, "--as-user", user, *rest],
            text=True,
            capture_output=True,
            timeout=60,
            cwd=ROOT,
            env=env,
        )

    def stop(self) -> None:
        self.api.close()
        self.process.stop()


def write_world(path: Path, world: dict) -> None:
    path.with_suffix(".tmp").write_text(json.dumps(world))
    path.with_suffix(".tmp").replace(path)


REGISTER = {
    "connectionKey": "hc",
    "connection": {"technology": "trino", "endpoint": {"host": "fake"}, "credentials": {}},
}
