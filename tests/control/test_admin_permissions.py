"""The admin API's permission table (spec §4): every row, allowed and refused, for users with
each global permission, an Infrastructure Admin, a Data Owner and a group's Data Owner."""

from __future__ import annotations

import pytest

from pdp.objects import ObjectPath
from pdp.store import PrincipalKind, Role
from tests.control.adminkit import DIRECTORY, PG, REGISTER, Api


@pytest.fixture
def backend() -> str:
    """Permissions do not depend on the backend: SQLite only."""
    return "sqlite"


# --- the permission table, every row allowed and refused ---------------------------------------


@pytest.fixture
def granted(api) -> Api:
    api.platform.world = {"hold": {"sales": {"orders": [("id", "bigint")]}}, "lake": {"raw": {}}}
    with api.store.write() as writer:
        writer.register_connection(
            "hc", "trino", endpoint={"host": "h"}, is_active=True, activate_new_children=True
        )
    job = api.runner.start(ObjectPath("hc"))
    api.wait(job.id)
    with api.store.write() as writer:
        writer.grant(ObjectPath("hc"), "infra", Role.INFRASTRUCTURE_ADMIN)
        writer.grant(ObjectPath("hc", ("hold",)), "owner", Role.DATA_OWNER)
        writer.grant(
            ObjectPath("hc", ("lake",)),
            "stewards",
            Role.DATA_OWNER,
            principal_kind=PrincipalKind.GROUP,
        )
    return api


def _act(api: Api, action: str, user: str):
    match action:
        case "register":  # a database that claims no Trino catalog (test_trino_mapping.py)
            body = {**PG, "connectionKey": f"new_{user}"}
            return api.call("POST", "/data/connection", user, json=body)
        case "validate":
            return api.call("POST", "/data/connection/validate", user, json=REGISTER["connection"])
        case "update connection":
            return api.call("PUT", "/data/connection/hc", user, json={"endpoint": {"host": "b"}})
        case "grant":
            body = {"principal": "x", "role": "DataOwner"}
            return api.call("PUT", "/data/permission/hc/hold", user, json=body)
        case "deregister":
            return api.call("DELETE", "/data/object/hc", user)
        case "settings below":
            return api.call("PUT", "/data/settings/hc/hold/sales", user, json={"isActive": False})
        case "settings on connection":
            return api.call("PUT", "/data/settings/hc", user, json={"activateNewChildren": False})
        case "sync below":
            return api.call("POST", "/data/crawl/hc/hold", user)
        case "delete below":
            return api.call("DELETE", "/data/object/hc/hold/sales/orders", user)
        case "settings elsewhere":
            return api.call("PUT", "/data/settings/hc/lake", user, json={"isActive": False})
        case "read":
            return api.call("GET", "/data/object/hc/hold", user)
        case "read jobs":
            return api.call("GET", "/jobs", user)
    raise AssertionError(action)


TABLE = {
    # action: who may (everyone else is refused with 403)
    "register": {"appadmin", "creator"},
    "validate": {"appadmin", "creator", "gov"},
    "update connection": {"gov", "infra"},
    "grant": {"gov", "infra"},
    "deregister": {"gov", "infra"},
    "settings on connection": {"gov", "infra"},
    "settings below": {"gov", "infra", "owner"},
    "sync below": {"gov", "infra", "owner"},
    "delete below": {"gov", "infra", "owner"},
    "settings elsewhere": {"gov", "infra", "steward"},
    "read": {"gov", "appadmin", "creator", "infra", "owner", "steward"},
    "read jobs": {"gov", "appadmin", "creator", "infra", "owner", "steward"},
}
USERS = sorted(DIRECTORY)


@pytest.mark.parametrize("action", sorted(TABLE))
@pytest.mark.parametrize("user", USERS)
def test_permission_table(granted, action, user):
    answer = _act(granted, action, user)
    if user in TABLE[action]:
        assert answer.status_code in (200, 201, 202), (action, user, answer.text)
    else:
        assert answer.status_code == 403, (action, user, answer.text)
        error = answer.json()["error"]
        assert error["code"] == "forbidden" and error["permission"]
    if answer.status_code == 202 or (answer.status_code == 201 and "jobId" in answer.json()):
        granted.wait(answer.json()["jobId"])
