"""Connections in the browser: register a real PostgreSQL database per the form (Validate
Connection before Register), follow its first sync live, walk the tree, activate a schema and
see its tables become data sources; names with markup, quotes and unicode shown as text."""

from __future__ import annotations

from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready

from tests.console.conftest import QUOTED, XSS, Page, Remote, Stack, literal


def expand(page: Page, name: str) -> None:
    toggle = f"//button[@aria-label={literal('Show the children of ' + name)}]"
    page.wait(ready.element_to_be_clickable((By.XPATH, toggle))).click()


def select(page: Page, name: str) -> None:
    node = page.wait(
        ready.element_to_be_clickable(
            (
                By.XPATH,
                f"//ul[@role='tree']//button[@class='node'][normalize-space()={literal(name)}]",
            )
        )
    )
    node.click()
    page.wait(ready.text_to_be_present_in_element((By.CSS_SELECTOR, ".panel h2"), name))


def test_register_validate_sync_and_activate_a_schema(page: Page, stack: Stack, remote: Remote):
    page.sign_in("gov")
    page.click("Register a connection")
    page.heading("Register a connection")
    page.fill("Connection key", "pg")
    page.fill("Host", remote.pg.host)
    page.fill("Port", str(remote.pg.port))
    page.fill("Database (empty: all)", remote.database)
    page.fill("User", "nobody-" + remote.role)  # (the test cluster trusts loopback passwords)
    page.fill("Password", remote.password)
    register = page.browser.find_element(By.XPATH, "//button[normalize-space()='Register']")
    assert not register.is_enabled()  # nothing is saved before a validation
    page.click("Validate Connection")
    page.text("The platform refused these details.")
    page.text("failed")
    assert not register.is_enabled()
    page.fill("User", remote.role)
    page.click("Validate Connection")
    page.text("The platform accepted these details.")
    assert remote.password not in page.browser.page_source  # a secret is never shown back
    page.shot("register")
    register.click()

    page.heading("Job ")  # the first sync, followed live until it completes
    page.text("The job completed.", 60)
    page.shot("job")

    page.open("/console/connections")
    page.heading("Connections")
    page.text("postgresql")
    page.shot("connections")

    page.click("pg")
    page.heading("Connection pg")
    expand(page, "pg")
    expand(page, remote.database)
    expand(page, "sales")
    page.text(XSS)
    page.text(QUOTED)
    try:
        page.browser.switch_to.alert  # noqa: B018 (an alert would mean the name ran)
        raise AssertionError("a table name ran as script")
    except NoAlertPresentException:
        pass
    select(page, "sales")
    status = page.browser.find_element(By.CSS_SELECTOR, ".panel dl").text
    assert "inactive" in status
    choice = page.browser.find_element(
        By.XPATH, "//label[normalize-space()='Active (a data source)']"
    )
    page.browser.find_element(By.ID, choice.get_attribute("for")).send_keys("On")
    page.click("Save settings")
    page.wait(ready.text_to_be_present_in_element((By.ID, "status"), "saved"))
    select(page, "orders")
    facts = page.browser.find_element(By.CSS_SELECTOR, ".panel dl").text
    assert "Status\nactive" in facts
    page.shot("tree")

    with stack.api("gov") as api:  # the API agrees: the table is an active data source
        orders = api.get(f"/data/object/pg/{remote.database}/sales/orders").json()
    assert orders["dataSource"]["active"] is True

    select(page, "sales")  # a Data Owner of the schema, granted and revoked
    page.fill("Principal", "alice")
    page.click("Grant")
    page.wait(ready.text_to_be_present_in_element((By.ID, "status"), "Permissions"))
    page.text("DataOwner: alice (user)")
    select(page, "orders")
    page.text(f"inherited from pg/{remote.database}/sales")
    with stack.api("gov") as api:
        owners = api.get(f"/data/object/pg/{remote.database}/sales/orders").json()["dataOwners"]
    assert [o["principal"] for o in owners] == ["alice"]
    select(page, "sales")
    page.click("Revoke DataOwner of alice")
    page.wait(
        lambda driver: "DataOwner: alice" not in driver.find_element(By.CSS_SELECTOR, ".panel").text
    )


def test_search_finds_a_table_by_name(page: Page, stack: Stack, remote: Remote):
    page.sign_in("gov")
    page.open("/console/connections/pg")
    page.heading("Connection pg")
    page.fill("Search objects", "custom")
    page.click("Search")
    page.text("1 found")
    page.text(f"pg/{remote.database}/sales/customers")


def test_edit_a_connections_credentials_validated_first_and_its_schedule(
    page: Page, stack: Stack, remote: Remote
):
    stack.register("edited", remote)
    other, password = f"editor_{remote.role}", "s3cret-" + remote.password
    with remote.pg.connect() as admin:
        admin.execute(f"CREATE ROLE {other} LOGIN PASSWORD '{password}'")
        admin.execute(f'GRANT CONNECT ON DATABASE "{remote.database}" TO {other}')
    try:
        page.sign_in("gov")
        page.open("/console/connections/edited")
        page.heading("Connection edited")
        page.text("Endpoint and credentials")
        save = page.browser.find_element(
            By.XPATH, "//button[normalize-space()='Save endpoint and credentials']"
        )
        page.fill("Host", remote.pg.host)  # the stored endpoint, shown; credentials never
        page.fill("User", "nobody-" + other)  # (the test cluster trusts loopback passwords)
        page.fill("Password", password)
        page.click("Validate Connection")
        page.text("The platform refused these details.")
        assert not save.is_enabled()  # nothing is saved before a validation passes
        page.fill("User", other)
        page.click("Validate Connection")
        page.text("The platform accepted these details.")
        page.browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", save)
        page.shot("connection-edit")
        save.click()
        saved = "edited: endpoint, credentials saved"
        page.wait(ready.text_to_be_present_in_element((By.ID, "status"), saved))
        page.fill("Schedule (cron)", "0 3 * * *")
        page.click("Save schedule")
        saved = "edited: schedule, failSafeThreshold saved"
        page.wait(ready.text_to_be_present_in_element((By.ID, "status"), saved))
        assert password not in page.browser.page_source
        with stack.api("gov") as api:  # the API agrees; the password is sealed, not shown
            conn = api.get("/data/connection/edited").json()
        assert conn["credentials"] == {"user": other, "password": "[REDACTED]"}
        assert conn["schedule"] == "0 3 * * *"
        assert conn["endpoint"]["database"] == remote.database  # what the form kept
    finally:
        with remote.pg.connect() as admin:
            admin.execute(f'REVOKE CONNECT ON DATABASE "{remote.database}" FROM {other}')
            admin.execute(f"DROP ROLE IF EXISTS {other}")
