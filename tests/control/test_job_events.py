"""`GET /jobs/{id}/events`: a job's progress as server-sent events, over real HTTP on loopback.

The job runs on one replica (the `api` kit's runner); the events come from another replica
over the same store (its own control plane and runner, which never ran the job): progress is
read from the store, not from the runner's memory. A listing of the fake platform held back
(`FakePlatform.slow`) keeps the job running at a known point."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from devstack.processes import free_port
from pdp.admin import create_app
from pdp.admin.auth import trusted_header
from pdp.admin.routes import jobs as job_routes
from pdp.control import ControlPlane, SyncRunner
from tests.control.adminkit import ALLOWED, CALLERS, Api

Event = tuple[str, dict]


def serve(app: FastAPI) -> Iterator[str]:
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the admin API did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def replica(api: Api, store, platform) -> Iterator[str]:
    """Another replica's admin API over the same store."""
    runner = SyncRunner(store, platform.factory)
    plane = ControlPlane(store, runner, platform.factory, references=ALLOWED)
    yield from serve(create_app(plane, trusted_header(lambda: CALLERS)))


def events(url: str, job_id: str, user: str = "gov") -> Iterator[Event]:
    """The stream's events, as (name, data); comments as ("comment", {})."""
    headers = {"X-Pdp-User": user}
    with httpx.stream("GET", f"{url}/jobs/{job_id}/events", headers=headers, timeout=30) as answer:
        assert answer.status_code == 200, answer.read()
        assert answer.headers["content-type"].startswith("text/event-stream")
        name = "message"
        for line in answer.iter_lines():
            if line.startswith(":"):
                yield "comment", {}
            elif line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                yield name, json.loads(line.removeprefix("data: "))
                name = "message"


def start_sync(api: Api) -> str:
    answer = api.call("POST", "/data/crawl/hc", json={"forceRecursive": True})
    assert answer.status_code == 202, answer.text
    return str(answer.json()["jobId"])


def test_the_counts_move_as_the_crawl_goes_and_the_stream_ends_with_the_job(api, platform, replica):
    api.register()
    platform.add_table("hold", "sales", "refunds")  # a new table
    platform.drop_table("hold", "hr", "people")  # and one gone
    held = platform.slow[("lake", "raw")] = threading.Event()
    job_id = start_sync(api)
    seen: list[Event] = []
    for name, job in events(replica, job_id):
        seen.append((name, job))
        stats = job.get("stats", {})
        if name == "job" and stats.get("objectsNew") and stats.get("objectsGone"):
            live = job  # lake.raw is held: everything else is listed
            held.set()
    assert live["state"] == "active"
    assert live["stats"]["objectsNew"] == 1 and live["stats"]["objectsGone"] == 1
    assert live["stats"]["listings"] == 5  # the connection, 2 catalogs, hold's 2 schemas
    first, last = seen[0], seen[-1]
    assert first[0] == "job" and first[1]["state"] == "active"
    assert last[0] == "end" and last[1]["state"] == "completed"
    assert [name for name, _ in seen].count("end") == 1
    final = last[1]["stats"]
    assert final["listings"] == 6 and final["objectsListed"] >= live["stats"]["objectsListed"]
    assert final["table.added"] == 1 and final["table.missing"] == 1
    counts = [job["stats"].get("listings", 0) for name, job in seen]
    assert counts == sorted(counts)  # never backwards


def test_a_failed_listing_is_an_error_of_the_job_as_it_occurs(api, platform, replica):
    api.register()
    platform.failing[("hold", "hr")] = "permission denied for schema hr"
    held = platform.slow[("lake", "raw")] = threading.Event()
    job_id = start_sync(api)
    for name, job in events(replica, job_id):
        if name == "job" and job["errors"]:
            assert job["state"] == "active"
            assert job["errors"] == [
                {"path": "hc/hold/hr", "message": "permission denied for schema hr"}
            ]
            assert job["stats"]["failedListings"] == 1
            held.set()
    assert name == "end"
    assert {"path": "hc/hold/hr", "message": "permission denied for schema hr"} in job["errors"]


def test_an_ended_job_answers_its_end_at_once(api, replica):
    job_id = api.register()["jobId"]
    assert [name for name, _ in events(replica, job_id)] == ["end"]


def test_the_stream_beats_while_quiet_and_ends_after_its_lifetime(
    api, platform, replica, monkeypatch
):
    monkeypatch.setattr(job_routes, "HEARTBEAT", 0.1)
    monkeypatch.setattr(job_routes, "LIFETIME", 1.0)
    api.register()
    held = platform.slow[("hold",)] = threading.Event()
    try:
        job_id = start_sync(api)
        names = [name for name, _ in events(replica, job_id)]  # ends: its lifetime is over
        assert "comment" in names and "end" not in names
        assert api.call("GET", f"/jobs/{job_id}").json()["state"] == "active"
    finally:
        held.set()


def test_the_stream_has_the_same_check_as_reading_the_job(api, platform, replica):
    api.register()
    held = platform.slow[("hold",)] = threading.Event()
    try:
        job_id = start_sync(api)
        for user, status, code in (("nobody", 403, "forbidden"), ("owner", 403, "forbidden")):
            read = api.call("GET", f"/jobs/{job_id}", user)
            streamed = httpx.get(f"{replica}/jobs/{job_id}/events", headers={"X-Pdp-User": user})
            assert (read.status_code, streamed.status_code) == (status, status)
            assert streamed.json() == read.json()
            assert streamed.json()["error"]["code"] == code
        missing = httpx.get(f"{replica}/jobs/no-such-job/events", headers={"X-Pdp-User": "gov"})
        assert missing.status_code == 404, missing.text
        for user in ("creator", "appadmin"):  # any control-plane permission reads jobs
            name, job = next(events(replica, job_id, user))
            assert (name, job["id"]) == ("job", job_id)
    finally:
        held.set()
