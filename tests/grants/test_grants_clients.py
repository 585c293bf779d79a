"""From a targets entry to a logged-in client: the connector options for each Snowflake auth
mode, and the Databricks SDK configured from the file against the fake workspace."""

from __future__ import annotations

from typing import Any

import pytest
import snowflake.connector

from pdp.core import Access
from pdp.grants import apply, parse_grants, plan
from pdp.policy import Technology
from tests.grants.fakes.uc_server import Workspace, serve
from tests.grants.fakes.world import policy, snapshot, source

SNOWFLAKE = {
    "name": "sf",
    "platform": "snowflake",
    "connections": ["sf"],
    "account": "xy123",
    "user": "PDP_SYNC",
    "warehouse": "ADMIN_WH",
}


class _Closed:
    def close(self) -> None:
        return None


@pytest.mark.parametrize(
    ("auth", "extra", "expected"),
    [
        ("password", {"password": "${PW}"}, {"password": "pw"}),
        (
            "keypair",
            {"privateKeyFile": "/k.p8", "privateKeyPassphrase": "${PW}"},
            {
                "authenticator": "SNOWFLAKE_JWT",
                "private_key_file": "/k.p8",
                "private_key_file_pwd": "pw",
            },
        ),
        ("oauth", {"token": "${PW}"}, {"authenticator": "oauth", "token": "pw"}),
    ],
)
def test_snowflake_auth_modes_reach_the_connector(
    monkeypatch: pytest.MonkeyPatch, auth: str, extra: dict[str, str], expected: dict[str, str]
) -> None:
    seen: dict[str, Any] = {}

    def connect(**options: Any) -> _Closed:
        seen.update(options)
        return _Closed()

    monkeypatch.setattr(snowflake.connector, "connect", connect)
    entry = {**SNOWFLAKE, "auth": auth, **extra}
    spec = parse_grants({"targets": [entry]}, "t.yaml", {"PW": "pw"}).targets[0]
    with spec.open() as target:
        assert target.name == "sf"
    common = {"account": "xy123", "user": "PDP_SYNC", "warehouse": "ADMIN_WH"}
    assert seen == {**common, "application": "pdp-grant-sync", **expected}


def test_databricks_target_from_the_file_logs_in_with_oauth_m2m() -> None:
    workspace = Workspace()
    workspace.principals.add("ann@example.com")
    workspace.add("table", "main.sales.orders")
    path = "uc.main.sales.orders"
    snap = snapshot(
        [source(path, technology=Technology.DATABRICKS)],
        [policy("r", Access.READ, ["ann@example.com"], [path])],
        ["ann@example.com"],
    )
    with serve(workspace) as url:
        entry = {
            "name": "uc",
            "platform": "databricks",
            "connections": ["uc"],
            "host": url,
            "auth": "oauth-m2m",
            "clientId": "${CID}",
            "clientSecret": "${SECRET}",
        }
        env = {"CID": workspace.client_id, "SECRET": workspace.client_secret}
        spec = parse_grants({"targets": [entry]}, "t.yaml", env).targets[0]
        with spec.open() as target:
            assert apply(target, plan(target, snap)).clean
    assert workspace.token_requests == 1
    assert workspace.held("table", "main.sales.orders") == {"ann@example.com": {"SELECT"}}
    assert workspace.violations == []
