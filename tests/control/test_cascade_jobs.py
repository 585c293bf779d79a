"""Large settings cascades run as jobs: above `cascadeJobThreshold` affected descendants the
admin API answers 202 with a job id, the job applies the change in one store write (one
version); small changes stay synchronous (200 with the new effective settings)."""

from __future__ import annotations

import threading

import pdp.objects.settings
from pdp.objects import ObjectPath
from tests.control.adminkit import REGISTER


def _registered(api) -> None:
    for n in range(6):
        api.platform.add_table("hold", "sales", f"t{n}")
    api.register(dict(REGISTER, settings={"activateNewChildren": True}))
    # hc: hold (2 schemas, 9 tables) + lake (1 schema, 1 table): 15 descendants


def test_small_changes_answer_at_once(api):
    _registered(api)
    api.plane.cascade_threshold = 100
    before = api.store.version()
    answer = api.call("PUT", "/data/settings/hc/hold", json={"isActive": False})
    assert answer.status_code == 200, answer.text
    assert answer.json()["settings"]["isActive"]["value"] is False
    assert "jobId" not in answer.json()
    assert api.store.version() == before + 1
    assert api.call("GET", "/jobs", params={"connection": "hc"}).json()["count"] == 1  # the sync


def test_a_large_cascade_is_a_job_with_one_version(api):
    _registered(api)
    api.plane.cascade_threshold = 5
    before = api.store.version()
    answer = api.call("PUT", "/data/settings/hc", json={"isActive": False})
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["path"] == "hc" and body["descendants"] == 15
    job = api.wait(body["jobId"])
    assert job["type"] == "cascade" and job["state"] == "completed", job
    assert job["path"] == "hc" and job["stats"]["descendants"] == 15
    assert job["stats"]["settings"]["isActive"]["value"] is False
    listed = api.call("GET", "/jobs", params={"connection": "hc"}).json()["hits"]
    assert body["jobId"] in [j["id"] for j in listed]
    # creating the job is one write, the change and the job's end one more: the change
    # itself is one version, never one per descendant
    assert api.store.version() == before + 2
    connection = api.call("GET", "/data/object/hc").json()
    assert connection["overrides"]["isActive"] is False
    # a table (no descendants) below a large connection is never a job
    small = api.call("PUT", "/data/settings/hc/hold/sales/orders", json={"isActive": True})
    assert small.status_code == 200


def test_a_cascade_the_limit_refuses_is_refused_before_any_job(api, monkeypatch):
    _registered(api)
    api.call("PUT", "/data/settings/hc", json={"isActive": False})
    api.plane.cascade_threshold = 5
    monkeypatch.setattr(pdp.objects.settings, "DESCENDANT_LIMIT", 10)
    refused = api.call("PUT", "/data/settings/hc", json={"isActive": True})
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["field"] == "isActive"
    jobs = api.call("GET", "/jobs", params={"connection": "hc"}).json()["hits"]
    assert [j["type"] for j in jobs] == ["sync"]
    denied = api.call("PUT", "/data/settings/hc", "nobody", json={"isActive": False})
    assert denied.status_code == 403


def test_a_cascade_takes_the_connection_job_lock(api):
    _registered(api)
    api.plane.cascade_threshold = 5
    api.platform.gate = threading.Event()  # the next sync waits inside its first listing
    started = api.call("POST", "/data/crawl/hc", json={})
    assert started.status_code == 202, started.text
    sync_id = started.json()["jobId"]
    try:
        refused = api.call("PUT", "/data/settings/hc", json={"isActive": False})
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"]["jobId"] == sync_id
        with api.store.read() as reader:  # refused before anything was written
            assert reader.effective_settings(ObjectPath("hc")).is_active.origin.value == "default"
    finally:
        api.platform.gate.set()
    assert api.wait(sync_id)["state"] == "completed"  # the sync was not disturbed
    answer = api.call("PUT", "/data/settings/hc", json={"isActive": False})
    assert answer.status_code == 202, answer.text
    assert api.wait(answer.json()["jobId"])["state"] == "completed"
