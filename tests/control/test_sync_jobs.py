"""Object sync as jobs (spec §5): breadth first, recursion into active children only, one
store write per sync, failed listings, the fail-safe, unreachable platforms, one job per
connection."""

from __future__ import annotations

import threading

import pytest

from devstack.fakes import FakePlatform
from pdp.control import JobRunning, SyncRunner
from pdp.objects import ObjectPath, RemoteState
from pdp.store import JobState, JobTrigger, JobType, Store
from tests.control.conftest import wait_job

HC = ObjectPath("hc")


def register(store: Store, **options) -> None:
    with store.write() as writer:
        writer.register_connection("hc", "trino", endpoint={"host": "h"}, **options)


def run(runner: SyncRunner, path: ObjectPath = HC, **options):
    job = runner.start(path, options.pop("trigger", JobTrigger.MANUAL), **options)
    assert job is not None
    return wait_job(runner.store, job.id)


def names(store: Store, path: ObjectPath) -> list[str]:
    with store.read() as reader:
        return [h.path.name for h in reader.children(path).hits]


def test_the_first_sync_lists_the_whole_hierarchy_every_object_inactive(store, runner, platform):
    register(store)
    job = run(runner, trigger=JobTrigger.REGISTRATION)
    assert job.state is JobState.COMPLETED
    assert job.trigger is JobTrigger.REGISTRATION
    assert job.stats["database.added"] == 2
    assert job.stats["schema.added"] == 3
    assert job.stats["table.added"] == 4
    assert sorted(platform.listed) == [
        (),
        ("hold",),
        ("hold", "hr"),
        ("hold", "sales"),
        ("lake",),
        ("lake", "raw"),
    ]
    assert names(store, HC.child("hold").child("sales")) == ["customers", "orders"]
    with store.read() as reader:
        assert reader.search(HC, kind="table", is_active=True).count == 0
        orders = HC.child("hold").child("sales").child("orders")
        assert [c.name for c in reader.columns(orders)] == ["id", "amount"]
        assert reader.effective_settings(HC.child("hold")).is_active.value is False
    # a later sync follows the settings: nothing is active, only the connection is listed
    platform.listed.clear()
    run(runner)
    assert platform.listed == [()]


def test_a_first_sync_that_failed_leaves_the_next_sync_listing_everything(store, runner, platform):
    register(store)
    platform.unreachable = "connection refused"
    assert run(runner, trigger=JobTrigger.REGISTRATION).state is JobState.FAILED
    platform.unreachable = None
    job = run(runner)
    assert job.stats["table.added"] == 4


def test_recursion_follows_the_effective_status(store, runner, platform):
    register(store)
    run(runner)  # the first sync: the whole tree, inactive
    platform.listed.clear()
    run(runner)
    assert platform.listed == [()]
    with store.write() as writer:
        writer.set_settings(HC.child("hold"), is_active=True)
    platform.listed.clear()
    job = run(runner)
    assert job.state is JobState.COMPLETED
    assert sorted(platform.listed) == [(), ("hold",), ("hold", "hr"), ("hold", "sales")]
    platform.add_table("lake", "raw", "clicks")
    platform.listed.clear()
    job = run(runner)
    assert ("lake",) not in platform.listed  # inactive, nothing active below it
    assert "table.added" not in job.stats


def test_a_sync_of_the_connection_descends_into_an_active_schema_of_an_inactive_database(
    store, runner, platform
):
    register(store)
    run(runner, trigger=JobTrigger.REGISTRATION)
    sales = HC.child("hold").child("sales")
    with store.write() as writer:
        writer.set_settings(sales, is_active=True, activate_new_children=True)
    platform.add_table("hold", "sales", "refunds")
    platform.add_table(
        "hold", "sales", "orders", [("id", "bigint"), ("amount", "double"), ("note", "varchar")]
    )
    platform.listed.clear()
    job = run(runner)  # the connection, as the schedule runs it
    assert job.stats["table.added"] == 1
    assert job.stats["column.added"] == 1
    assert sorted(platform.listed) == [(), ("hold",), ("hold", "sales")]
    with store.read() as reader:
        refunds = reader.object(sales.child("refunds"))
        assert reader.effective_settings(refunds.path).is_active.value is True
        assert "note" in [c.name for c in reader.columns(sales.child("orders"))]


def test_children_that_arrive_active_are_recursed_into(store, runner, platform):
    register(store, activate_new_children=True)
    job = run(runner)
    assert len(platform.listed) == 1 + 2 + 3  # connection, 2 databases, 3 schemas
    assert job.stats["table.added"] == 4


def test_force_recursive_scans_inactive_objects(store, runner, platform):
    register(store)
    run(runner, force_recursive=True)
    assert ("lake", "raw") in platform.listed
    with store.read() as reader:
        assert reader.search(HC, kind="table").count == 4
        assert reader.search(HC, kind="table", is_active=True).count == 0


def test_a_subtree_sync_lists_only_that_subtree(store, runner, platform):
    register(store, is_active=True, activate_new_children=True)
    run(runner)
    platform.listed.clear()
    platform.add_table("hold", "sales", "refunds")
    job = run(runner, ObjectPath("hc", ("hold", "sales")))
    assert platform.listed == [("hold", "sales")]
    assert job.stats["table.added"] == 1
    assert job.path == "hc/hold/sales"


def test_a_table_path_lists_its_schema(store, runner, platform):
    register(store, is_active=True, activate_new_children=True)
    run(runner)
    platform.listed.clear()
    run(runner, ObjectPath("hc", ("hold", "sales", "orders")))
    assert platform.listed == [("hold", "sales")]


def test_a_failing_listing_marks_nothing_missing(store, runner, platform):
    register(store, is_active=True, activate_new_children=True)
    run(runner)
    platform.failing[("hold", "sales")] = "permission denied on hold.sales"
    job = run(runner)
    assert job.state is JobState.COMPLETED
    assert job.stats["failedListings"] == 1
    assert {"path": "hc/hold/sales", "message": "permission denied on hold.sales"} in job.errors
    with store.read() as reader:
        assert reader.object(ObjectPath("hc", ("hold", "sales"))).remote_state is (
            RemoteState.UNKNOWN
        )
        orders = reader.object(ObjectPath("hc", ("hold", "sales", "orders")))
        assert orders.remote_state is RemoteState.PRESENT


def test_a_gone_table_is_marked_missing(store, runner, platform):
    register(store, is_active=True, activate_new_children=True)
    run(runner)
    platform.drop_table("hold", "sales", "customers")
    job = run(runner)
    assert job.stats["table.missing"] == 1
    with store.read() as reader:
        gone = reader.object(ObjectPath("hc", ("hold", "sales", "customers")))
        assert gone.remote_state is RemoteState.MISSING


def test_the_fail_safe_fails_the_job_and_keeps_the_last_good_state(store, runner, platform):
    register(store, is_active=True, activate_new_children=True)
    run(runner)
    for table in ("orders", "customers"):
        platform.drop_table("hold", "sales", table)
    platform.drop_table("hold", "hr", "people")
    platform.drop_table("lake", "raw", "events")
    job = run(runner)
    assert job.state is JobState.FAILED
    assert "fail-safe" in job.errors[-1]["message"]
    with store.read() as reader:
        assert reader.search(HC, kind="table", remote_state=RemoteState.MISSING).count == 0


@pytest.mark.parametrize("failure", ["unreachable", "refused", "cannot-open"])
def test_an_unreachable_platform_fails_the_job_and_changes_nothing(
    store, runner, platform, failure
):
    register(store, is_active=True, activate_new_children=True)
    run(runner)
    if failure == "unreachable":
        platform.unreachable = "connection refused: trino:8080"
    elif failure == "refused":
        platform.failing[()] = "authentication failed: bad password"
    else:
        runner.crawler_factory = _raising
    with store.read() as reader:
        before = reader.search(HC, size=1000)
    job = run(runner)
    assert job.state is JobState.FAILED
    reason = {
        "unreachable": "connection refused",
        "refused": "authentication failed",
        "cannot-open": "cannot connect",
    }[failure]
    assert reason in job.errors[0]["message"]
    with store.read() as reader:
        assert reader.search(HC, size=1000) == before


def _raising(record):
    raise OSError("no route to host")


def test_one_job_at_a_time_per_connection(store, runner, platform):
    register(store)
    platform.gate = threading.Event()
    first = runner.start(HC)
    assert first is not None
    with pytest.raises(JobRunning) as refused:
        runner.start(ObjectPath("hc", ("hold",)))
    assert refused.value.job_id == first.id
    other = SyncRunner(store, platform.factory)  # another replica over the same store
    with pytest.raises(JobRunning) as refused_elsewhere:
        other.start(HC)
    assert refused_elsewhere.value.job_id == first.id
    platform.gate.set()
    assert wait_job(store, first.id).state is JobState.COMPLETED
    runner.join()
    assert run(runner).state is JobState.COMPLETED


def test_a_job_left_running_by_a_dead_runner_is_marked_abandoned(store, runner):
    register(store)
    with store.write() as writer:
        stale = writer.create_job("sync", "manual", HC)
        writer.update_job(stale.id, state=JobState.ACTIVE)
    run(runner)
    with store.read() as reader:
        job = reader.job(stale.id)
    assert job.state is JobState.FAILED
    assert "abandoned" in job.errors[-1]["message"]


def test_one_sync_is_one_store_write(store, runner, platform):
    register(store, activate_new_children=True)
    run(runner)  # settle
    runner.join()
    before = store.version()
    platform.add_table("hold", "sales", "refunds")
    run(runner)
    runner.join()
    # create+activate the job, then the sync with the job's end: two versions in all
    assert store.version() - before == 2


def test_an_upgrading_connection_refuses_sync(store, runner):
    register(store)
    with store.write() as writer:
        writer.update_connection("hc", state="upgrading")
    from pdp.objects import Conflict

    with pytest.raises(Conflict, match="upgraded"):
        runner.start(HC)


def test_unknown_paths_are_404(store, runner):
    register(store)
    from pdp.objects import NotFound

    with pytest.raises(NotFound):
        runner.start(ObjectPath("hc", ("nope",)))
    with pytest.raises(NotFound):
        runner.start(ObjectPath("other"))


def _unused(platform: FakePlatform) -> None:  # keeps the import used for type hints
    del platform


def test_the_sweep_marks_failed_only_the_jobs_whose_runner_is_gone(store, runner):
    register(store)
    with store.write() as writer:
        orphan = writer.create_job(JobType.SYNC, JobTrigger.MANUAL, HC)
        writer.update_job(orphan.id, state=JobState.ACTIVE)
    with store.job_lock("hc", "another-replica:1"):  # a runner elsewhere holds it: alive
        assert runner.sweep() == []
    assert runner.sweep() == [orphan.id]
    with store.read() as reader:
        swept = reader.job(orphan.id)
    assert swept.state is JobState.FAILED and swept.ended_at is not None
    assert swept.errors[-1]["message"].startswith("interrupted")
    assert runner.sweep() == []  # nothing left running
