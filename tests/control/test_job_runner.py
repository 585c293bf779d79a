"""One job per connection, and a refusal always names the job that runs (issue 23).

Starts that overlap (two threads released together by a barrier) while the winner's crawl waits
on the fake platform's gate: exactly one is accepted, and the other's 409 carries the id of the
accepted job, never an empty or a lock holder's name. Through the admin API in process (sync
against sync, sync against a settings cascade) and between two replicas sharing one store; on
both store backends. Then shutdown: `join` waits for every job of the process."""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial
from typing import Any

from devstack.fakes import FakePlatform
from pdp.control import JobRunning, SyncRunner
from pdp.objects import ObjectPath
from pdp.store import JobState, Store
from tests.control.adminkit import Api
from tests.control.conftest import wait_job

ROUNDS = 20
HC = ObjectPath("hc")


def together(*calls: Callable[[], Any]) -> list[Any]:
    """Run `calls` in threads released at one moment; their results (or exceptions), in order."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def one(index: int) -> None:
        barrier.wait(10)
        try:
            results[index] = calls[index]()
        except Exception as error:
            results[index] = error

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def test_overlapping_crawls_name_the_running_job(api: Api) -> None:
    api.register()
    for _ in range(ROUNDS):
        api.platform.gate = threading.Event()  # the accepted sync waits in its first listing
        try:
            answers = together(
                lambda: api.call("POST", "/data/crawl/hc", json={}),
                lambda: api.call("POST", "/data/crawl/hc", json={}),
            )
            assert sorted(a.status_code for a in answers) == [202, 409], [a.text for a in answers]
            accepted = next(a for a in answers if a.status_code == 202).json()["jobId"]
            refused = next(a for a in answers if a.status_code == 409).json()["error"]
            assert refused["code"] == "sync_running"
            assert refused["jobId"] == accepted
            assert f"(job {accepted})" in refused["message"]
        finally:
            api.platform.gate.set()
        assert api.wait(accepted)["state"] == "completed"


def test_a_sync_and_a_cascade_name_each_other(api: Api) -> None:
    api.register()
    api.plane.cascade_threshold = 0  # every settings change of a container is a job
    for round_ in range(ROUNDS):
        api.platform.gate = threading.Event()
        try:
            crawl, cascade = together(
                lambda: api.call("POST", "/data/crawl/hc", json={}),
                partial(
                    api.call, "PUT", "/data/settings/hc/hold", json={"isActive": round_ % 2 == 0}
                ),
            )
            assert {crawl.status_code, cascade.status_code} <= {202, 409}
            assert 202 in (crawl.status_code, cascade.status_code), [crawl.text, cascade.text]
            for loser, winner in ((crawl, cascade), (cascade, crawl)):
                if loser.status_code == 409:
                    refused = loser.json()["error"]
                    assert refused["jobId"] == winner.json()["jobId"], refused
                    assert f"(job {refused['jobId']})" in refused["message"]
        finally:
            api.platform.gate.set()
        for answer in (crawl, cascade):
            if answer.status_code == 202:
                assert api.wait(answer.json()["jobId"])["state"] == "completed"


def test_two_replicas_name_each_others_job(
    store: Store, runner: SyncRunner, platform: FakePlatform
) -> None:
    with store.write() as writer:
        writer.register_connection("hc", "trino", endpoint={"host": "h"})
    other = SyncRunner(store, platform.factory)  # another replica over the same store
    for _ in range(ROUNDS):
        platform.gate = threading.Event()
        try:
            outcomes = together(lambda: runner.start(HC), lambda: other.start(HC))
            jobs = [o for o in outcomes if not isinstance(o, BaseException)]
            refusals = [o for o in outcomes if isinstance(o, JobRunning)]
            assert len(jobs) == 1 and len(refusals) == 1, outcomes
            assert refusals[0].job_id == jobs[0].id
        finally:
            platform.gate.set()
        assert wait_job(store, jobs[0].id).state is JobState.COMPLETED
        runner.join()
        other.join()


def test_join_waits_for_every_job_of_the_process(api: Api) -> None:
    api.register()
    api.plane.cascade_threshold = 0
    api.platform.gate = threading.Event()
    sync = api.call("POST", "/data/crawl/hc/hold", json={})
    assert sync.status_code == 202, sync.text
    api.runner.jobs.stopping.set()  # the PDP stops: no job waits for the store any longer
    api.platform.gate.set()
    api.plane.join()
    assert api.runner.jobs.running_here() == frozenset()
    with api.store.read() as reader:
        assert reader.job(sync.json()["jobId"]).state is JobState.COMPLETED
        assert reader.running_job("hc") is None
