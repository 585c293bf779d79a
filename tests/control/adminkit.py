"""The admin API in process over a real store and the fake platform, for the admin tests."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from devstack.fakes import FakePlatform
from pdp.admin import create_app
from pdp.admin.auth import trusted_header
from pdp.control import ControlPlane, SyncRunner
from pdp.policy import DirectoryUser, GlobalPermission
from pdp.store import References, Store
from tests.control.pgremote import LOOPBACK

G = GlobalPermission
DIRECTORY = {
    "gov": DirectoryUser("gov", permissions=frozenset({G.GOVERNANCE})),
    "appadmin": DirectoryUser("appadmin", permissions=frozenset({G.APPLICATION_ADMIN})),
    "creator": DirectoryUser("creator", permissions=frozenset({G.CREATE_DATA_SOURCE})),
    "infra": DirectoryUser("infra"),
    "owner": DirectoryUser("owner"),
    "steward": DirectoryUser("steward", groups=frozenset({"stewards"})),
    "nobody": DirectoryUser("nobody"),
}
# The upgrade manager's user (both permissions it needs); outside DIRECTORY, whose rows the
# permission table test walks.
CALLERS = {
    **DIRECTORY,
    "boss": DirectoryUser("boss", permissions=frozenset({G.GOVERNANCE, G.APPLICATION_ADMIN})),
}

ALLOWED = References(("TRINO_PASSWORD", "P", "PDP_TEST_OAUTH_SECRET"))
REGISTER = {
    "connectionKey": "hc",
    "connection": {
        "technology": "trino",
        "endpoint": {"host": "trino.example", "port": 8080},
        "credentials": {"username": "pdp", "passwordEnv": "TRINO_PASSWORD"},
    },
}
# a PostgreSQL database, claiming no Trino catalog until given `trinoCatalogs`
PG = {
    "connectionKey": "pg",
    "connection": {
        "technology": "postgresql",
        "endpoint": {"host": "localhost", "port": 54329},
        "credentials": {"user": "crawler", "passwordEnv": "P"},  # a name ALLOWED allows
    },
}


class Api:
    def __init__(self, client: TestClient, store: Store, platform: FakePlatform, runner) -> None:
        self.client, self.store, self.platform, self.runner = client, store, platform, runner
        self.plane: ControlPlane | None = None

    def call(self, method: str, url: str, user: str = "gov", **kwargs):
        return self.client.request(method, url, headers={"X-Pdp-User": user}, **kwargs)

    def wait(self, job_id: str, timeout: float = 20.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            job = self.call("GET", f"/jobs/{job_id}").json()
            if job["state"] in ("completed", "failed", "cancelled"):
                self.runner.join()
                return job
            assert time.monotonic() < deadline, job
            time.sleep(0.02)

    def app_upgrades(self):
        return self.client.app.state.upgrades

    def register(self, body=REGISTER, user: str = "appadmin") -> dict:
        answer = self.call("POST", "/data/connection", user, json=body)
        assert answer.status_code == 201, answer.text
        self.wait(answer.json()["jobId"])
        return answer.json()


@pytest.fixture
def api(store, platform) -> Iterator[Api]:
    runner = SyncRunner(store, platform.factory)
    # the operator allows the references these tests name, and the identity provider the
    # OAuth tests run on loopback (tests/control/test_secret_exfiltration.py: the defaults)
    plane = ControlPlane(store, runner, platform.factory, references=ALLOWED, network=LOOPBACK)
    app = create_app(plane, trusted_header(lambda: CALLERS))
    with TestClient(app) as client:
        kit = Api(client, store, platform, runner)
        kit.plane = plane
        yield kit
    plane.join()
