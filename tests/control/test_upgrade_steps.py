"""More of the upgrade manager: connections declared in the registry YAML (with the schema
monitoring flag), an interrupted upgrade resumed, the scheduler skipping an upgrading
connection, every step refused without both permissions, per-technology credential checks
(Trino password / OAuth secret / OAuth certificate / immuta.user.admin, Snowflake role and
USAGE, Databricks token) and the match rule on its own."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from pdp.config.policyfiles import PolicyDocuments, parse_policy_file
from pdp.control import Scheduler
from pdp.control.credentials import oauth_checks, shape_checks
from pdp.control.matching import match_source
from pdp.core.model import ClusterSettings, Settings
from pdp.objects.paths import ObjectPath
from pdp.objects.syncplan import Listing, RemoteObject
from pdp.policy.model import Technology
from pdp.store import JobState, JobTrigger, JobType, References, legacy, read_registry

REGISTRY = """
connections:
  - name: filed
    technology: trino
    databases:
      - name: hold
        schemas:
          - name: sales
            schemaMonitoring: true
            tables:
              - {name: orders, status: active, tags: [pii]}
              - {name: Customers, status: inactive}
"""
CREDENTIALS = {"username": "pdp", "passwordEnv": "TRINO_PASSWORD"}


def step(api, name: str, action: str, body: dict | None = None):
    """One step of the upgrade of `name`, as the user holding both permissions it needs."""
    return api.call("POST", f"/data/upgrade/{name}/{action}", "boss", json=body)


def steps(api, name, key="hc", **validate):
    answer = step(api, name, "start", {"displayName": key})
    assert answer.status_code == 200, answer.text
    answer = step(api, name, "validate", validate)
    assert answer.status_code == 200, answer.text
    answer = step(api, name, "upgrade", {"confirm": True})
    assert answer.status_code == 202, answer.text
    api.app_upgrades().join()
    return api.wait(answer.json()["jobId"])


def legacy_source(api, connection: dict, database="hold", schema="sales", table="orders"):
    """A data source declared the legacy way (`POST /dataSource`), on `connection`."""
    body = {"connection": connection, "database": database, "schema": schema, "table": table}
    answer = api.call("POST", "/dataSource", "appadmin", json=body)
    assert answer.status_code == 201, answer.text


def test_a_connection_declared_in_the_registry_yaml_is_upgraded(api):
    docs = PolicyDocuments()
    assert not parse_policy_file(REGISTRY, "registry.yaml", docs).errors
    assert docs.schema_monitoring == {"filed": {("hold", "sales"): True}}
    api.app_upgrades().plane.declared = lambda: docs
    listed = api.call("GET", "/data/upgrade", "boss").json()["hits"]
    assert listed == [
        {
            "id": None,
            "name": "filed",
            "technology": "trino",
            "state": "not_started",
            "displayName": None,
            "jobId": None,
            "next": ["start"],
            "dataSourceCount": 2,
            "declaredIn": "policy files",
        }
    ]
    status = api.call("GET", "/data/upgrade/filed", "boss").json()
    assert status["state"] == "not_started" and status["counts"]["pending"] == 2
    # the YAML names no credentials: validation says so until they are given
    step(api, "filed", "start", {"displayName": "hc"})
    refused = step(api, "filed", "validate", {})
    assert refused.status_code == 422
    assert refused.json()["error"]["value"] == "credentials"
    job = steps(api, "filed", credentials=CREDENTIALS)
    assert job["state"] == "completed" and job["stats"]["matched"] == 2
    orders = api.call("GET", "/data/object/hc/hold/sales/orders").json()
    assert "pii" in orders["tags"] and orders["overrides"]["isActive"] is True
    customers = api.call("GET", "/data/object/hc/hold/sales/customers").json()
    assert customers["overrides"]["isActive"] is False  # its legacy status, not the schema's
    sales = api.call("GET", "/data/object/hc/hold/sales").json()
    assert sales["overrides"] == {"isActive": True, "activateNewChildren": True}
    assert step(api, "filed", "finalize").status_code == 200


def test_an_interrupted_upgrade_resumes_and_the_scheduler_skips_it(api):
    trino = {"technology": "trino", "endpoint": {"host": "h"}, "credentials": CREDENTIALS}
    legacy_source(api, {"name": "legacyhc", **trino})
    step(api, "legacyhc", "start", {"displayName": "hc"})
    step(api, "legacyhc", "validate", {})
    api.platform.unreachable = "connection refused"
    answer = step(api, "legacyhc", "upgrade", {"confirm": True})
    api.app_upgrades().join()
    failed = api.wait(answer.json()["jobId"])
    assert failed["state"] == "failed" and "connection refused" in failed["errors"][0]["message"]
    status = api.call("GET", "/data/upgrade/legacyhc", "boss").json()
    assert status["state"] == "upgrading" and status["next"] == ["upgrade"]
    assert "legacyhc.hold.sales.orders" in {s.path for s in read_registry(api.store).sources}
    # the scheduler skips a connection being upgraded, whatever its cron says
    assert Scheduler(api.runner).tick(datetime(2030, 1, 1, 1, 0, tzinfo=UTC)) == []
    refused = api.call("POST", "/data/crawl/hc")
    assert refused.status_code == 409 and "upgraded" in refused.json()["error"]["message"]
    # a job left running by a process that died: the resumed job marks it abandoned
    with api.store.write() as writer:
        stale = writer.create_job(JobType.UPGRADE, JobTrigger.MANUAL, ObjectPath("hc"))
        writer.update_job(stale.id, state=JobState.ACTIVE)
    # resume: the same step again
    api.platform.unreachable = None
    again = step(api, "legacyhc", "upgrade", {"confirm": True})
    assert again.status_code == 202 and again.json()["jobId"] != answer.json()["jobId"]
    api.app_upgrades().join()
    assert api.wait(again.json()["jobId"])["state"] == "completed"
    assert api.call("GET", "/data/upgrade/legacyhc", "boss").json()["state"] == "upgraded"
    assert api.wait(stale.id)["errors"][-1]["message"] == "abandoned: resumed"
    # repeated after the job: 409 naming the state and what may follow
    late = step(api, "legacyhc", "upgrade", {"confirm": True})
    assert late.status_code == 409
    assert late.json()["error"]["allowed"] == ["resolve", "finalize"]
    # start again with another name once upgrading: refused
    renamed = step(api, "legacyhc", "start", {"displayName": "x"})
    assert renamed.status_code == 409


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("GET", "/data/upgrade"),
        ("GET", "/data/upgrade/legacyhc"),
        ("GET", "/data/upgrade/legacyhc/unresolved"),
        ("POST", "/data/upgrade/legacyhc/start"),
        ("POST", "/data/upgrade/legacyhc/validate"),
        ("POST", "/data/upgrade/legacyhc/upgrade"),
        ("POST", "/data/upgrade/legacyhc/resolve/x"),
        ("POST", "/data/upgrade/legacyhc/finalize"),
    ],
)
def test_every_upgrade_step_needs_governance_and_application_admin(api, method, url):
    bodies = {
        "start": {"displayName": "hc"},
        "upgrade": {"confirm": True},
        "resolve": {"action": "delete"},
    }
    body = next((b for k, b in bodies.items() if k in url.split("/")[4:]), {})
    for user in ("gov", "appadmin", "creator", "nobody"):
        answer = api.call(method, url, user, json=body if method == "POST" else None)
        assert answer.status_code == 403, (user, answer.text)
        wanted = "GOVERNANCE and APPLICATION_ADMIN"  # nobody holds nothing: refused before
        assert answer.json()["error"]["permission"].startswith(
            "any of" if user == "nobody" else wanted
        )


def test_credential_shapes_per_technology():
    def failed(technology, credentials, endpoint=None):
        checks = shape_checks(technology, endpoint or {}, credentials)
        return [c.name for c in checks if not c.ok]

    t = Technology.TRINO
    assert failed(t, {"username": "pdp", "password": "x"}) == []
    assert failed(t, {"username": "pdp"}) == ["credentials"]  # a password, over https
    # a user name alone: a cluster without authentication, over http (docs/crawlers.md)
    assert failed(t, {"username": "pdp"}, {"httpScheme": "http"}) == []
    assert failed(t, {"user": "pdp"}, {"httpScheme": "http"}) == []
    assert failed(t, {}, {"httpScheme": "http"}) == ["credentials"]
    assert failed(t, {"oauth": {"clientId": "pdp"}}) == []  # oauth_checks takes it from here
    # adminUsers: the cluster's immuta.user.admin, a pattern matched whole (as the crawler)
    admin = {"adminUsers": "immuta|svc_[a-z]+"}
    assert failed(t, {"oauth": {"clientId": "immuta"}}, admin) == []
    assert failed(t, {"oauth": {"clientId": "pdp"}}, admin) == ["systemUser"]
    assert failed(t, {"username": "immuta", "password": "x"}, admin) == []
    assert failed(t, {"username": "svc_sync", "password": "x"}, admin) == []
    assert failed(t, {"username": "pdp", "password": "x"}, admin) == ["systemUser"]
    assert failed(t, {"username": "svc_sync", "password": "x"}, {"adminUsers": "("}) == [
        "systemUser"
    ]
    assert failed(Technology.SNOWFLAKE, {"role": "PDP_ROLE"}) == []
    assert failed(Technology.SNOWFLAKE, {}) == ["role"]
    assert failed(Technology.DATABRICKS, {"tokenEnv": "DATABRICKS_TOKEN"}) == []
    assert failed(Technology.DATABRICKS, {}) == ["token"]


def test_snowflake_validation_needs_usage_on_the_registered_schemas(api):
    flake = {
        "name": "flake",
        "technology": "snowflake",
        "endpoint": {"account": "a"},
        "credentials": {"role": "PDP", "passwordEnv": "P"},
    }
    legacy_source(api, flake, "hold", "sales", "orders")
    legacy_source(api, flake, "hold", "nope", "ghost")
    step(api, "flake", "start", {"displayName": "sf"})
    refused = step(api, "flake", "validate", {})
    assert refused.status_code == 422
    checks = {c["name"]: c["ok"] for c in refused.json()["error"]["checks"]}
    assert checks["usage:hold.sales"] is True and checks["usage:hold.nope"] is False


def test_the_match_rule():
    def listing(parent, *names):
        return Listing(parent, tuple(RemoteObject(n) for n in names))

    listings = {
        (): listing((), "hold", "Lake"),
        ("hold",): listing(("hold",), "sales"),
        ("hold", "sales"): listing(("hold", "sales"), "orders", "Orders", "items"),
        ("lake",): Listing.failed(("Lake",), "permission denied"),
    }
    assert match_source(("hold", "sales", "orders"), listings).names is None  # two by case
    assert match_source(("hold", "sales", "ORDERS"), listings).reason.value == "ambiguous"
    assert match_source(("HOLD", "Sales", "ITEMS"), listings).names == ("hold", "sales", "items")
    assert match_source(("hold", "sales", "gone"), listings).reason.value == "not_found"
    assert match_source(("lake", "raw", "x"), listings).reason.value == "not_visible"
    assert match_source(("hold", " sales", "x"), listings).reason.value == "invalid_name"


def test_trino_oauth_credentials_fetch_a_token_with_the_projects_clients(
    idp, client_certificate, tmp_path, monkeypatch
):
    monkeypatch.setenv("PDP_TEST_OAUTH_SECRET", idp.secrets["sidecar-basic"])
    secret = {
        "tokenEndpoint": idp.token_endpoint,
        "clientId": "sidecar-basic",
        "clientSecretEnv": "PDP_TEST_OAUTH_SECRET",
        "scope": "pdp.decide",
    }
    allowed = References(("PDP_TEST_OAUTH_SECRET", str(tmp_path / "*.pem")))

    def failed(oauth: dict) -> list[str]:
        return [c.name for c in oauth_checks({"oauth": oauth}, allowed) if not c.ok]

    assert failed(secret) == []
    monkeypatch.setenv("PDP_TEST_OAUTH_SECRET", "wrong")
    assert failed(secret) == ["token"]
    assert failed({**secret, "clientSecretEnv": "HOME"}) == ["credentials"]  # not allowed
    (tmp_path / "c.pem").write_bytes(client_certificate.certificate_pem)
    (tmp_path / "k.pem").write_bytes(client_certificate.private_key_pem)
    certificate = {
        "tokenEndpoint": idp.token_endpoint,
        "clientId": "sidecar-cert",
        "certificateFile": str(tmp_path / "c.pem"),
        "privateKeyFile": str(tmp_path / "k.pem"),
        "scope": "pdp.decide",
    }
    assert failed(certificate) == []
    broken = {"tokenEndpoint": idp.token_endpoint, "clientId": "sidecar-cert"}
    assert failed(broken) == ["credentials"]


def test_an_integration_with_oauth_credentials_validates_through_the_api(api, idp, monkeypatch):
    monkeypatch.setenv("PDP_TEST_OAUTH_SECRET", idp.secrets["sidecar-basic"])
    oauth = {
        "tokenEndpoint": idp.token_endpoint,  # an address, stored as given
        "clientId": "sidecar-basic",
        "clientSecretEnv": "PDP_TEST_OAUTH_SECRET",
        "scope": "pdp.decide",
    }
    endpoint = {"host": "h", "adminUsers": "sidecar-basic"}
    trino = {"technology": "trino", "endpoint": endpoint, "credentials": {"oauth": oauth}}
    legacy_source(api, {"name": "oauthhc", **trino})
    step(api, "oauthhc", "start", {"displayName": "oh"})
    valid = step(api, "oauthhc", "validate", {})
    assert valid.status_code == 200, valid.text
    assert {c["name"] for c in valid.json()["checks"]} >= {"credentials", "token", "systemUser"}


def test_the_system_user_is_checked_against_the_pdps_cluster_properties(api):
    """Without adminUsers on the endpoint, validate takes the cluster's immuta.user.admin from
    the PDP's clusterProperties and keeps it on the endpoint, so the crawler checks every
    listing against it too; a PDP that was given none says what to set (the default
    matches nobody)."""
    api.platform.add_table("hold", "sales", "orders")
    legacy_source(api, {"name": "demo", "technology": "trino"})
    step(api, "demo", "start", {"displayName": "tp"})
    body = {
        "endpoint": {"host": "127.0.0.1", "port": 8080, "httpScheme": "http"},
        "credentials": {"username": "trino-admin"},
    }
    api.plane.cluster = lambda: ClusterSettings()  # no clusterProperties
    refused = step(api, "demo", "validate", body)
    assert refused.status_code == 422, refused.text
    [check] = [c for c in refused.json()["error"]["checks"] if not c["ok"]]
    assert check["name"] == "systemUser"
    assert "endpoint.adminUsers" in check["detail"] and "clusterProperties" in check["detail"]

    settings = Settings(admin=re.compile("trino-admin|svc_[a-z]+"))
    api.plane.cluster = lambda: ClusterSettings(properties=settings)
    valid = step(api, "demo", "validate", body)
    assert valid.status_code == 200, valid.text
    assert {c["name"]: c["ok"] for c in valid.json()["checks"]}["systemUser"] is True
    stored = api.call("GET", "/data/upgrade/demo", "boss").json()
    assert stored["state"] == "validated"
    with api.store.read() as reader:
        endpoint = legacy.get_integration(reader, "demo").endpoint
    assert endpoint["adminUsers"] == "trino-admin|svc_[a-z]+"
