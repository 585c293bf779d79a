"""The Upgrade Manager wizard in the browser over a legacy integration of a real PostgreSQL:
start with a Display Name, credentials refused then accepted, the confirmation checkbox, the
upgrade's progress, Resolve for a data source the database does not hold, Finalize."""

from __future__ import annotations

from selenium.webdriver.common.by import By

from tests.console.conftest import Page, Remote, Stack

LEGACY = "legacypg"


def declare(stack: Stack, remote: Remote, table: str) -> None:
    connection = {
        "name": LEGACY,
        "technology": "postgresql",
        "endpoint": {"host": remote.pg.host, "port": remote.pg.port, "database": remote.database},
        "credentials": {"user": remote.role, "password": remote.password},
    }
    body = {"connection": connection, "database": remote.database, "schema": "sales"}
    with stack.api("gov") as api:
        answer = api.post("/dataSource", json={**body, "table": table})
    assert answer.status_code == 201, answer.text


def test_the_wizard_upgrades_a_legacy_integration(page: Page, stack: Stack, remote: Remote):
    declare(stack, remote, "orders")
    declare(stack, remote, "ghost")  # no such table: unresolved after the upgrade
    page.sign_in("gov")
    page.wait(lambda driver: driver.find_element(By.ID, "nav-upgrade").is_displayed())
    page.browser.find_element(By.LINK_TEXT, "Upgrade Manager").click()
    page.heading("Upgrade Manager")
    page.click(f"Start Upgrade of {LEGACY}")
    page.heading(f"Upgrade {LEGACY}")
    page.fill("Display Name", "pgup")
    page.click("Start Upgrade")
    page.text("Validate Credentials")

    page.browser.find_element(By.ID, "upgrade-own").click()  # give other credentials
    page.fill("Host", remote.pg.host)
    page.fill("Port", str(remote.pg.port))
    page.fill("Database (empty: all)", remote.database)
    page.fill("User", "nobody-" + remote.role)  # (the test cluster trusts loopback passwords)
    page.fill("Password", remote.password)
    page.click("Validate Credentials")
    page.text("the platform refused the connection details")
    page.shot("upgrade-credentials")
    page.browser.find_element(By.ID, "upgrade-own").click()  # the integration's own: right
    page.click("Validate Credentials")
    page.text("Yes, Upgrade Connection")
    yes = page.browser.find_element(By.XPATH, "//button[.='Yes, Upgrade Connection']")
    assert not yes.is_enabled()  # not before the checkbox
    page.browser.find_element(By.ID, "upgrade-confirm").click()
    yes.click()

    where = f"{remote.database}.sales.ghost"
    page.text(f"Resolve {where}", 60)  # the job ran; one source is unresolved
    page.text("not_found")
    page.fill(f"Table path for {where}", f"elsewhere/{remote.database}/sales/customers")
    page.click(f"Resolve {where}")
    page.text("must be below connection")  # the API's sentence, as it is
    page.shot("upgrade-resolve")
    page.fill(f"Table path for {where}", f"pgup/{remote.database}/sales/customers")
    page.click(f"Resolve {where}")
    page.text("Every data source is matched.")
    page.click("Finalize")
    page.text(f"{LEGACY} is upgraded")
    page.shot("upgrade-done")

    with stack.api("gov") as api:
        customers = api.get(f"/data/object/pgup/{remote.database}/sales/customers").json()
    assert customers["dataSourceId"] is not None
