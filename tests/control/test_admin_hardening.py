"""The admin API's edges (issue 20 item 6, issue 22 item 7): what it answers to bytes it should
not get, to callers it should not serve, and what its documents say. In process, over a real
store (SQLite and PostgreSQL) and the fake platform."""

from __future__ import annotations

import json
import logging

import pytest
from sqlalchemy.exc import OperationalError

from pdp.admin.guard import MAX_BODY_BYTES
from tests.control.adminkit import REGISTER

NUL_PATHS = [
    ("GET", "/data/object/hc%00/hold"),
    ("GET", "/data/connection/hc%00"),
    ("PUT", "/data/settings/hc/hold%00x"),
    ("GET", "/jobs?connection=hc%00"),
]


@pytest.mark.parametrize(("method", "url"), NUL_PATHS)
def test_a_nul_byte_is_bad_input_not_an_outage(api, caplog, method, url):
    api.register()
    caplog.set_level(logging.ERROR)
    answer = api.call(method, url, json={"isActive": True} if method == "PUT" else None)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "invalid_input"
    assert "NUL byte" in answer.json()["error"]["message"]
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_no_permission_is_refused_before_validation_or_lookup(api):
    """Whether the key exists and whatever the body, a caller holding nothing gets one 403."""
    api.register()
    answers = [
        api.call("GET", "/data/connection/hc", "nobody"),
        api.call("GET", "/data/connection/nope", "nobody"),
        api.call("PUT", "/data/settings/hc/hold", "nobody", json={"isActive": "yes"}),
        api.call("PUT", "/data/settings/nope/x", "nobody", json={"isActive": True}),
        api.call("PUT", "/data/connection/hc", "nobody", json={"schedule": 5}),
        api.call("POST", "/data/crawl/nope", "nobody"),
    ]
    assert {a.status_code for a in answers} == {403}
    assert len({json.dumps(a.json()) for a in answers}) == 1  # alike, key or no key


def test_a_caller_without_the_right_to_manage_is_refused_before_the_body_is_read(api):
    api.register()
    api.call("PUT", "/data/permission/hc/hold", json={"principal": "owner", "role": "DataOwner"})
    answer = api.call(
        "PUT", "/data/permission/hc", "owner", json={"principal": "x", "role": "NoSuchRole"}
    )
    assert answer.status_code == 403, answer.text


@pytest.mark.parametrize(
    ("method", "url", "body", "field"),
    [
        ("PUT", "/data/settings/hc/hold", {"isActive": "true"}, "isActive"),
        ("PUT", "/data/settings/hc/hold", {"isActive": 1}, "isActive"),
        ("PUT", "/data/settings/hc/hold", {"activateNewChildren": 0}, "activateNewChildren"),
        ("POST", "/data/crawl/hc", {"forceRecursive": "yes"}, "forceRecursive"),
        ("POST", "/data/object/search/hc", {"recursive": 1}, "recursive"),
        (
            "PUT",
            "/data/permission/hc",
            {"principal": "x", "role": "DataOwner", "revoke": "false"},
            "revoke",
        ),
    ],
)
def test_booleans_are_strict(api, method, url, body, field):
    api.register()
    answer = api.call(method, url, json=body)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["field"] == field and "boolean" in error["message"], error


def test_registration_settings_are_strict_booleans_too(api):
    body = {**REGISTER, "settings": {"isActive": "true"}}
    answer = api.call("POST", "/data/connection", "appadmin", json=body)
    assert answer.status_code == 400
    assert answer.json()["error"]["field"] == "settings.isActive"


def test_a_body_over_the_limit_is_413(api):
    big = json.dumps({"searchText": "x" * (MAX_BODY_BYTES + 10)})
    headers = {"X-Pdp-User": "gov", "content-type": "application/json"}
    answer = api.client.post("/data/object/search", content=big, headers=headers)
    assert answer.status_code == 413, answer.text
    assert answer.json()["error"]["code"] == "too_large"

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(MAX_BODY_BYTES // 65536 + 2):
            yield b" " * 65536

    answer = api.client.post("/data/object/search", content=chunks(), headers=headers)
    assert answer.status_code == 413, answer.text


def test_malformed_json_says_where(api):
    headers = {"X-Pdp-User": "gov", "content-type": "application/json"}
    answer = api.client.put(
        "/data/settings/hc/hold", content='{\n  "isActive": true,,\n}', headers=headers
    )
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "invalid_json" and error["field"] == "body"
    assert error["message"].startswith("the body is not valid JSON: ")
    assert error["message"].endswith("at line 2, column 20"), error


def test_a_body_that_is_not_json_is_415(api):
    answer = api.client.put(
        "/data/settings/hc/hold", content=b'{"isActive": true}', headers={"X-Pdp-User": "gov"}
    )
    assert answer.status_code == 415
    error = answer.json()["error"]
    assert error["field"] == "Content-Type" and "application/json" in error["message"]
    assert "b'" not in answer.text
    answer = api.client.put(
        "/data/settings/hc/hold",
        content=b"isActive=true",
        headers={"X-Pdp-User": "gov", "content-type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 415


def test_one_error_line_per_store_outage_and_one_when_it_returns(api, caplog, monkeypatch):
    api.register()
    read = api.store.read

    def down():
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    caplog.set_level(logging.INFO, logger="pdp.admin")
    monkeypatch.setattr(api.store, "read", down)
    for _ in range(10):
        assert api.call("GET", "/data/object/hc").status_code == 503
    monkeypatch.setattr(api.store, "read", read)
    for _ in range(3):
        assert api.call("GET", "/data/object/hc").status_code == 200
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "pdp.admin.guard"]
    assert [level for level, _ in lines] == ["ERROR", "INFO"], lines
    assert "store reachable again" in lines[1][1]


def test_the_documents_work_offline_and_say_how_to_authenticate(api):
    page = api.client.get("/docs")
    assert page.status_code == 200
    assert "/docs/static/swagger-ui-bundle.js" in page.text
    assert "cdn" not in page.text and "https://" not in page.text
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"):
        assert api.client.get(f"/docs/static/{name}").status_code == 200, name
    document = api.client.get("/openapi.json").json()
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    register = document["paths"]["/data/connection"]["post"]
    assert register["security"] == [{"HTTPBearer": []}]
    assert "422" not in register["responses"]
    assert register["responses"]["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorBody"
    }
    assert "HTTPValidationError" not in json.dumps(document)
