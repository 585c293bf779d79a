"""The job list never shows a sync running that is not (issue 20, item 5). Real processes: PDPs
(`start_pdp` with the fake platform, each listing slowed down so that a sync lasts seconds)
over a PostgreSQL cluster of the test's own, stopped and started by `pg_ctl`.

1. The store stops during a sync: the runner cannot write its outcome, keeps trying, and
   records the failure once the store answers again.
2. The PDP is killed (SIGKILL) during a sync: the job's lock dies with it, and the PDP that
   starts next marks the job failed as interrupted.
3. Two replicas: a sync running on one is never taken for an orphan by the other, which sweeps
   every scheduler tick; the job completes."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from devstack.postgres import Throwaway
from devstack.replica import REGISTER, Replica, write_world
from tests.support.waiting import wait_for

WORLD = {"cat": {"sales": {"orders": [["id", "bigint"]]}, "hr": {"pay": [["id", "bigint"]]}}}
SLOW = ("--listing-delay", "1.5")  # a registration sync lists 3 containers: 4.5 s at least


def register(replica: Replica) -> str:
    answer = replica.api.post(
        "/data/connection", json={**REGISTER, "settings": {"activateNewChildren": True}}
    )
    assert answer.status_code == 201, answer.text
    job_id = answer.json()["jobId"]
    assert replica.api.get(f"/jobs/{job_id}").json()["state"] == "active"
    return job_id


def state(replica: Replica, job_id: str) -> dict:
    answer = replica.api.get(f"/jobs/{job_id}")
    return answer.json() if answer.status_code == 200 else {"state": f"HTTP {answer.status_code}"}


@pytest.fixture
def world(tmp_path: Path) -> Path:
    path = tmp_path / "world.json"
    write_world(path, WORLD)
    return path


@contextmanager
def running(
    root: Path, pg: Throwaway, world: Path, name: str, args: Sequence[str] = SLOW
) -> Iterator[Replica]:
    """A PDP on the store in `pg` (each listing slowed down unless `args` says otherwise),
    stopped at the end."""
    root.mkdir(exist_ok=True)
    pdp = Replica(root, pg.store_url("store"), world, name, args=args)
    try:
        yield pdp
    finally:
        pdp.stop()


def test_a_failure_the_store_could_not_take_is_recorded_when_it_returns(
    tmp_path, stoppable_pg: Throwaway, world
):
    with running(tmp_path, stoppable_pg, world, "outage") as pdp:
        job_id = register(pdp)
        stoppable_pg.stop()  # the crawl goes on; its outcome cannot be written
        wait_for(
            lambda: "cannot record the failure of job" in pdp.log.read_text(),
            30,
            "the runner failing to record the job's end",
        )
        assert state(pdp, job_id)["state"] == "HTTP 503"  # the store is down: nothing to show
        stoppable_pg.start()
        wait_for(lambda: state(pdp, job_id)["state"] == "failed", 30, "the failure recorded")
        job = state(pdp, job_id)
        assert job["endedAt"] is not None and job["errors"], job
        # the connection is free for the next sync, which completes
        assert pdp.sync("hc")["state"] == "completed"


def test_a_job_whose_pdp_was_killed_is_marked_interrupted_by_the_next_start(
    tmp_path, stoppable_pg: Throwaway, world
):
    with running(tmp_path, stoppable_pg, world, "killed") as pdp:
        job_id = register(pdp)
        os.kill(pdp.process.popen.pid, signal.SIGKILL)  # mid-crawl: no chance to record
        pdp.process.popen.wait(10)
        pdp.restart()
        wait_for(lambda: state(pdp, job_id)["state"] == "failed", 30, "the job marked failed")
        messages = [e["message"] for e in state(pdp, job_id)["errors"]]
        assert any(m.startswith("interrupted") for m in messages), messages


def test_a_job_running_on_another_replica_is_not_an_orphan(
    tmp_path, stoppable_pg: Throwaway, world
):
    with (
        running(tmp_path / "a", stoppable_pg, world, "a") as runs,
        # not slowed down: ticks (and sweeps) every 0.5 s
        running(tmp_path / "b", stoppable_pg, world, "b", args=()) as sweeps,
    ):
        job_id = register(runs)
        assert runs.wait_job(job_id, timeout=60)["state"] == "completed"
        assert "interrupted" not in sweeps.log.read_text()
