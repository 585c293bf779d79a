"""The requests inbox, Access and what a user without permission meets, in the browser (Sync
jobs: test_jobs.py)."""

from __future__ import annotations

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ready

from tests.console.conftest import Page, Remote, Stack, csrf, signed_in


def test_an_added_column_is_validated_from_the_inbox(page: Page, stack: Stack, remote: Remote):
    stack.register("inbox", remote)
    with remote.pg.connect(remote.database) as conn:
        conn.execute("ALTER TABLE hr.people ADD COLUMN salary numeric")
    try:
        assert stack.sync("inbox")["stats"].get("requestsOpened") == 1
        page.sign_in("gov")
        page.open("/console/requests")
        page.heading("Requests")
        page.text("Column added")
        page.text(f"inbox/{remote.database}/hr/people")
        page.shot("requests")
        page.click("Validate salary")
        page.wait(ready.text_to_be_present_in_element((By.ID, "status"), "validated"))
        page.text("No request here.")
    finally:
        with remote.pg.connect(remote.database) as conn:
            conn.execute("ALTER TABLE hr.people DROP COLUMN salary")
    with stack.api("gov") as api:
        people = api.get(f"/data/object/inbox/{remote.database}/hr/people").json()
    assert {c["name"]: c["tags"] for c in people["columns"]}["salary"] == []


def test_a_user_without_permission_gets_the_apis_refusals(page: Page, stack: Stack, remote: Remote):
    stack.register("closed", remote)
    page.sign_in("bob")  # holds no control-plane permission
    page.heading("Something went wrong")
    page.text("bob")  # the admin API's 403 sentence names the caller
    assert page.browser.find_element(By.ID, "nav-upgrade").is_displayed() is False
    for path in ("/console/connections/closed", "/console/jobs", "/console/requests"):
        page.open(path)
        page.heading("Something went wrong")
    page.open("/console/upgrade")  # unreachable by URL: the API refuses, the page is absent
    page.heading("No such page")
    page.shot("forbidden")


def test_the_upgrade_manager_is_shown_to_governors_only(page: Page, stack: Stack):
    page.sign_in("gov")
    page.wait(lambda driver: driver.find_element(By.ID, "nav-upgrade").is_displayed())
    page.open("/console/upgrade")
    page.heading("Upgrade Manager")


def test_access_explains_a_decision_with_its_policy(page: Page, stack: Stack):
    page.sign_in("gov")
    page.open("/console/access?user=alice&catalog=hive&schema=sales&table=orders")
    page.heading("Access")
    page.click("Explain")
    page.text("ALLOWED")
    page.text("orders-readers")  # alice reads through her group's policy
    page.text("emea-only: (region = 'emea')")  # the row filter Trino adds
    page.text('CAST(to_hex(sha256(to_utf8("card"))) AS varchar)')  # the mask's SQL, as varchar
    retype = page.browser.find_element(By.CSS_SELECTOR, "input[aria-label='Trino type of card']")
    retype.send_keys(Keys.CONTROL, "a")
    retype.send_keys("bigint", Keys.ENTER)  # its SQL for the column's real type
    page.text('from_big_endian_64(substr(sha256(to_utf8(CAST("card" AS varchar))), 1, 8))')
    page.click("Who may read this table")
    page.text("Who may read hive.sales.orders: 2")  # alice by her group, bob by his WRITE
    page.shot("access")
    page.fill("User", "bob")
    page.browser.find_element(By.NAME, "operation").send_keys("DropTable")
    page.click("Explain")
    page.text("DENIED")


def test_explaining_another_users_access_needs_governance(stack: Stack):
    maker = signed_in(stack, "maker")  # admitted (CREATE_DATA_SOURCE), no GOVERNANCE
    header = csrf(maker)
    body = {"user": "alice", "catalog": "hive", "schema": "sales", "table": "orders"}
    other = maker.post("/console/explain", json=body, headers=header)
    assert other.status_code == 403 and other.json()["error"]["permission"] == "GOVERNANCE"
    own = maker.post("/console/explain", json={**body, "user": "maker"}, headers=header)
    assert own.status_code == 200 and own.json()["allowed"] is False
    assert maker.post("/console/explain", json=body).status_code == 403  # no CSRF header
    table = {k: body[k] for k in ("catalog", "schema", "table")}
    who = maker.post("/console/readers", json=table, headers=header)
    assert who.status_code == 403 and who.json()["error"]["permission"] == "GOVERNANCE"
    # a user the admin API does not admit is refused as the admin API refuses them
    alice = signed_in(stack, "alice")
    mine = alice.post("/console/explain", json=body, headers=csrf(alice))
    assert mine.status_code == 403
