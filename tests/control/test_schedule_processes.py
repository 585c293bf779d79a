"""Scheduled sync (spec §5, When) across two real PDP processes over one PostgreSQL store: both
replicas tick every 0.5 s (`start_pdp(schedule_tick=)`, which `devstack.fakepdp --tick`
sets), each due firing of an every-minute cron runs as exactly one job. The fake platform is
slowed down so that a job still holds its connection's lock while the other replica ticks."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from devstack.replica import Replica, write_world
from pdp.store import Store
from tests.support.waiting import wait_for

WORLD = {"cat": {"sales": {"orders": [["id", "bigint"]], "items": [["id", "bigint"]]}}}


def scheduled(replica: Replica) -> list[dict]:
    jobs = replica.api.get("/jobs", params={"connection": "hc", "size": 100}).json()["hits"]
    return [j for j in jobs if j["trigger"] == "scheduled"]


def test_two_replica_processes_run_each_scheduled_firing_once(tmp_path: Path, new_database):
    url = new_database("postgresql")
    world = tmp_path / "world.json"
    write_world(world, WORLD)
    replicas: list[Replica] = []
    store = Store.open(url)
    try:
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            replicas.append(
                Replica(tmp_path / name, url, world, name, args=("--listing-delay", "0.5"))
            )
        a, b = replicas
        # Registered an hour ago with an every-minute cron and never synced: due at once, on
        # the next tick of both replicas.
        created = datetime.now(UTC) - timedelta(hours=1)
        with store.write() as writer:
            writer.register_connection(
                "hc",
                "trino",
                endpoint={"host": "fake"},
                schedule="* * * * *",
                is_active=True,
                activate_new_children=True,
                now=created,
            )
        wait_for(lambda: scheduled(a), 15, "no scheduled job started")
        first = scheduled(a)[0]
        done = a.wait_job(first["id"], timeout=30)
        assert done["state"] == "completed", done
        assert done["stats"]["table.added"] == 2
        # several ticks of both replicas later, still one job for that firing
        time.sleep(2.5)
        jobs = scheduled(b)
        assert [j["id"] for j in jobs] == [first["id"]] or _one_per_firing(jobs)

        # the next firing, at the next minute boundary (a real cron firing), also runs once
        firing = datetime.fromisoformat(first["stats"]["scheduledFor"])
        following = firing + timedelta(minutes=1)
        wait = (following - datetime.now(UTC)).total_seconds()
        assert wait < 62
        wait_for(
            lambda: any(
                j["stats"].get("scheduledFor") == following.isoformat() for j in scheduled(b)
            ),
            max(wait, 0) + 30,  # a slow first job (a loaded machine) may end past the minute
            f"no scheduled job for {following}",
        )
        time.sleep(2.5)
        jobs = scheduled(a)
        assert _one_per_firing(jobs)
        assert {firing.isoformat(), following.isoformat()} <= {
            j["stats"]["scheduledFor"] for j in jobs
        }
        for job in jobs:
            assert a.wait_job(job["id"], timeout=30)["state"] == "completed"
        runners = {_runner(a, b, job["id"]) for job in jobs}
        print(f"{len(jobs)} scheduled jobs, run by replica(s) {sorted(runners)}")
    finally:
        for replica in replicas:
            replica.stop()
        store.close()


def _one_per_firing(jobs: list[dict]) -> bool:
    counts = Counter(j["stats"].get("scheduledFor") for j in jobs)
    return bool(counts) and set(counts.values()) == {1} and None not in counts


def _runner(a: Replica, b: Replica, job_id: str) -> str:
    """Which replica's log names the job (for the printout; either may run it)."""
    for name, replica in (("a", a), ("b", b)):
        if f"job {job_id}" in replica.process.output():
            return name
    return "?"
