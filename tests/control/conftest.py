"""Stores on both backends (the store suite's fixtures), a fake platform and a sync runner."""

from __future__ import annotations

import time

import pytest

from devstack.fakes import FakePlatform
from pdp.control import SyncRunner
from pdp.store import Job, Store
from tests.auth.conftest import client_certificate, idp  # noqa: F401
from tests.control.adminkit import api  # noqa: F401
from tests.control.pgremote import remote  # noqa: F401
from tests.store.conftest import backend, new_database, pg_template, store  # noqa: F401


@pytest.fixture
def platform() -> FakePlatform:
    p = FakePlatform()
    p.add_table("hold", "sales", "orders", [("id", "bigint"), ("amount", "double")])
    p.add_table("hold", "sales", "customers")
    p.add_table("hold", "hr", "people")
    p.add_table("lake", "raw", "events")
    return p


@pytest.fixture
def runner(store: Store, platform: FakePlatform) -> SyncRunner:  # noqa: F811
    return SyncRunner(store, platform.factory)


def wait_job(store: Store, job_id: str, timeout: float = 20.0) -> Job:  # noqa: F811
    deadline = time.monotonic() + timeout
    while True:
        with store.read() as reader:
            job = reader.job(job_id)
        if job.state.finished:
            return job
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} is still {job.state}")
        time.sleep(0.02)
