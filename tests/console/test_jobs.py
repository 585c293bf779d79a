"""Sync jobs in the browser: a sync followed live over its event stream (the counts move while
it runs, held at a known point by a relay between the PDP and PostgreSQL, `gate.Gate`), a
listing that fails shown as it happens, history per connection, a fail-safe trip in words,
and a user without permission kept out of another's job and its stream."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from selenium.webdriver.common.by import By

from tests.console.conftest import Page, Remote, Stack, signed_in
from tests.console.gate import Gate

SCHEMAS = [f"live{n}" for n in range(6)]


@pytest.fixture
def gate(remote: Remote) -> Iterator[Gate]:
    relay = Gate(remote.pg.host, remote.pg.port)
    try:
        yield relay
    finally:
        relay.close()


def stat(page: Page, name: str) -> int:
    found = page.browser.find_elements(By.CSS_SELECTOR, f'dd[data-stat="{name}"]')
    return int(found[0].text) if found else 0


def test_a_sync_is_followed_live_until_it_ends(page: Page, stack: Stack, remote: Remote, gate):
    stack.register("live", remote, via=("127.0.0.1", gate.port))
    with remote.pg.connect(remote.database) as conn:
        for schema in SCHEMAS:  # new since the first sync: 6 schemas of 3 tables
            conn.execute(f"CREATE SCHEMA {schema}")
            conn.execute(f"GRANT USAGE ON SCHEMA {schema} TO {remote.role}")
            for table in range(3):
                conn.execute(f"CREATE TABLE {schema}.t{table} (id int)")
    try:
        page.sign_in("gov")
        page.open("/console/connections/live")
        page.heading("Connection live")
        # the sync's first session goes through, slowly; the next one (a second listing in
        # parallel) waits at the relay: the job runs, part of its listings made
        gate.hold(after=1, latency=0.05)
        page.click("Sync now")
        page.heading("Job ")
        page.wait(lambda _: gate.waiting >= 1 and stat(page, "listings") >= 5)
        page.text("The job is active…")
        page.text("Following the job live.")
        listed = stat(page, "objectsListed")
        assert listed >= 2 and stat(page, "objectsNew") >= 1
        page.browser.execute_script("window.sameView = true")  # no reload from here on
        page.shot("job-live")
        gate.release()
        page.text("The job completed.", 60)
        assert page.browser.execute_script("return window.sameView") is True
        assert stat(page, "objectsListed") > listed
        assert stat(page, "objectsNew") == len(SCHEMAS) * 4  # each schema and its tables
        assert stat(page, "table.added") == len(SCHEMAS) * 3
        assert page.browser.find_element(By.ID, "following").text == ""
    finally:
        gate.release()
        with remote.pg.connect(remote.database) as conn:
            for schema in SCHEMAS:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def test_a_failed_listing_is_shown_in_words(page: Page, stack: Stack, remote: Remote):
    with remote.pg.connect(remote.database) as conn:
        conn.execute("CREATE SCHEMA locked")
        conn.execute("CREATE TABLE locked.vault (id int)")
    try:
        stack.register("listing", remote)  # the crawler may not use schema locked
        page.sign_in("gov")
        page.open("/console/connections/listing")
        page.click("Sync now")
        page.text("The job completed.", 60)
        page.text("1 listing failed. What they hold is left as it was")
        page.text(f"listing/{remote.database}/locked: permission denied for schema locked")
        where = f"listing/{remote.database}/locked"
        link = page.browser.find_element(By.LINK_TEXT, where)
        assert str(link.get_attribute("href")).endswith(f"/console/connections/{where}")
    finally:
        with remote.pg.connect(remote.database) as conn:
            conn.execute("DROP SCHEMA IF EXISTS locked CASCADE")


def test_jobs_history_per_connection(page: Page, stack: Stack, remote: Remote):
    stack.register("hist", remote)
    stack.sync("hist")
    stack.register("other", remote)
    page.sign_in("gov")
    page.open("/console/jobs")
    page.heading("Sync jobs")
    page.browser.find_element(By.LINK_TEXT, "hist").click()  # a connection's history
    page.heading("Sync jobs of hist")
    rows = page.browser.find_elements(By.CSS_SELECTOR, "main tbody tr")
    assert len(rows) == 2  # the registration's sync and the later one, newest first
    assert all("completed" in row.text and "hist" in row.text for row in rows)
    page.text("1\N{EN DASH}2 of 2")
    page.shot("jobs")


def test_a_fail_safe_trip_is_explained_in_words(page: Page, stack: Stack, remote: Remote):
    tables = [f"CREATE TABLE fs.t{n} (id int)" for n in range(20)]
    with remote.pg.connect(remote.database) as conn:
        for statement in (
            "CREATE SCHEMA fs",
            f"GRANT USAGE ON SCHEMA fs TO {remote.role}",
            *tables,
        ):
            conn.execute(statement)
    try:
        stack.register("guarded", remote)
        with remote.pg.connect(remote.database) as conn:
            conn.execute("DROP SCHEMA fs CASCADE")  # 20 of 25 tables gone at once
        page.sign_in("gov")
        page.open("/console/connections/guarded")
        page.heading("Connection guarded")
        page.click("Sync now")
        page.text("The fail-safe stopped this sync", 60)
        page.text(
            "What tripped: this sync would have marked 20 of the 25 tables present on guarded "
            "as missing (80 %), more than the connection's fail-safe threshold of 75 %."
        )
        page.text("What was kept: everything. Nothing was applied: the 25 tables stay present")
        page.text("How to proceed: if the tables still exist,")
        page.text("raise the connection's failSafeThreshold above 80 %")
        assert stat(page, "objectsGone") == 21  # the schema and its 20 tables
        page.shot("failsafe")
    finally:
        with remote.pg.connect(remote.database) as conn:
            conn.execute("DROP SCHEMA IF EXISTS fs CASCADE")
    with stack.api("gov") as api:
        kept = api.get(f"/data/object/guarded/{remote.database}/fs/t0").json()
    assert kept["remoteState"] == "present"  # the fail-safe changed nothing


def test_a_user_without_permission_cannot_follow_anothers_job(
    page: Page, stack: Stack, remote: Remote
):
    stack.register("private", remote)
    with stack.api("gov") as api:
        job_id = api.get("/jobs", params={"connection": "private"}).json()["hits"][0]["id"]
    bob = signed_in(stack, "bob")  # holds no control-plane permission
    streamed = bob.get(f"/jobs/{job_id}/events")
    read = bob.get(f"/jobs/{job_id}")
    assert streamed.status_code == read.status_code == 403
    assert streamed.json() == read.json()  # the same check, the same words
    assert "text/event-stream" not in streamed.headers["content-type"]
    with stack.api("bob") as bearer:
        assert bearer.get(f"/jobs/{job_id}/events").status_code == 403
    page.sign_in("bob")
    page.open(f"/console/jobs/{job_id}")
    page.heading("Something went wrong")
    page.text("bob")  # the admin API's 403 sentence names the caller
    assert "private" not in page.browser.find_element(By.TAG_NAME, "main").text


def test_the_shell_names_its_assets_by_digest_and_they_are_kept(stack: Stack):
    """What keeps a page of jobs fast: console.js and console.css are fetched once per
    version, and the session is asked for while the module loads."""
    client = signed_in(stack, "gov")
    shell = client.get("/console/jobs").text
    assert '<link rel="preload" href="/console/session" as="fetch"' in shell
    for name in ("console.js", "console.css"):
        found = re.search(rf'"(/console/static/{name}\?v=[0-9a-f]{{16}})"', shell)
        assert found is not None, shell
        kept = client.get(found.group(1))
        assert kept.status_code == 200
        assert kept.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert kept.headers["X-Content-Type-Options"] == "nosniff"
        other = client.get(f"/console/static/{name}?v=0000000000000000")
        assert other.headers["Cache-Control"] == "no-store"  # not this version: not kept
    assert client.get("/console/jobs").headers["Cache-Control"] == "no-store"
