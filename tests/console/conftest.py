"""The real PDP process (development issuer, SQLite store, admin API with the console), a real
PostgreSQL database to register as a connection, and Debian's headless chromium driven through
chromedriver."""

from __future__ import annotations

import re
import secrets
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import WebDriverWait

from devstack.configs import WORKED_POLICIES, WORKED_REGISTRY, make_tree
from devstack.postgres import Postgres
from devstack.processes import Process, free_port

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"
STORE_KEY = "GWfj5J3bCR3bqGxg5w2Xb0mHl2-eCJVPRCi3ypG1ZTM="  # a Fernet key, for tests only
USERS = """
users:
  gov: {permissions: [GOVERNANCE, APPLICATION_ADMIN]}
  alice: {groups: [analysts]}
  bob: {}
  maker: {permissions: [CREATE_DATA_SOURCE]}
"""
# the worked example's orders with two columns, one tagged PII (the Access page's masks)
REGISTRY = WORKED_REGISTRY.replace(
    "- orders", "- {name: orders, columns: {card: [PII], total: []}}"
)
# the built-in New Column Added policy: object sync opens a request per added column
POLICIES = (
    WORKED_POLICIES
    + """masks:
  - {name: pii-hash, columns: {tags: [PII]}, mask: hash}
rowFilters:
  - {name: emea-only, what: {dataSources: [trino-prod.hive.sales.orders]}, where: "region = 'emea'"}
builtins:
  New Column Added: active
"""
)
# table names the console must show as text, never run or break on
XSS = "<script>alert(1)</script>"
QUOTED = 'O\'Brien "quoted" données ✓'


@dataclass
class Stack:
    url: str
    process: Process

    def api(self, user: str) -> httpx.Client:
        """The admin API as `user`, with a development token (as `pdp token --user`)."""
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.token(user)}"}
        )

    def wait_job(self, job_id: str, timeout: float = 60) -> dict:
        with self.api("gov") as api:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                job = api.get(f"/jobs/{job_id}").json()
                if job["state"] in ("completed", "failed", "cancelled"):
                    return dict(job)
                time.sleep(0.1)
        raise TimeoutError(job_id)

    def register(self, key: str, remote: Remote, via: tuple[str, int] | None = None) -> None:
        """Registered through the admin API, active, schemas and tables listed. `via`: the
        host and port the PDP reaches the database at (a relay: tests/console/gate.py);
        absent, the database's own."""
        host, port = via or (remote.pg.host, remote.pg.port)
        body = {
            "connectionKey": key,
            "connection": {
                "technology": "postgresql",
                "endpoint": {"host": host, "port": port, "database": remote.database},
                "credentials": {"user": remote.role, "password": remote.password},
            },
            "settings": {"isActive": True, "activateNewChildren": True},
            "options": {"forceRecursiveCrawl": True},
        }
        with self.api("gov") as api:
            answer = api.post("/data/connection", json=body)
            assert answer.status_code == 201, answer.text
        assert self.wait_job(answer.json()["jobId"])["state"] == "completed"

    def sync(self, key: str) -> dict:
        with self.api("gov") as api:
            answer = api.post(f"/data/crawl/{key}", json={"forceRecursive": True})
            assert answer.status_code == 202, answer.text
        return self.wait_job(answer.json()["jobId"])

    def token(self, user: str) -> str:
        answer = httpx.post(
            f"{self.issuer}/token",
            data={"grant_type": "client_credentials", "client_id": "pdp-dev-user", "user": user},
        )
        return str(answer.json()["access_token"])

    issuer: str = ""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("console")
    grpc_port, admin_port, dev_port = free_port(), free_port(), free_port()
    tree = make_tree(root, registry=REGISTRY, policies=POLICIES, users=USERS)
    dev = f"{{devIssuer: {{listen: '127.0.0.1:{dev_port}', userTokens: true}}}}"
    yaml = tree.pdp_yaml(grpc_port, auth=dev)
    yaml.write_text(
        yaml.read_text()
        + f"store: sqlite:///{root}/store.db\n"
        + f"admin: {{listen: '127.0.0.1:{admin_port}'}}\n"
        + "storeSecretKeyEnv: PDP_TEST_STORE_KEY\n"
        + "control: {network: {allow: [127.0.0.0/8]}}\n"
    )
    url = f"http://127.0.0.1:{admin_port}"
    process = serve(yaml, url, {"PDP_TEST_STORE_KEY": STORE_KEY})
    try:
        yield Stack(url, process, issuer=f"http://127.0.0.1:{dev_port}")
    finally:
        process.stop()


def serve(yaml: Path, url: str, env: dict[str, str]) -> Process:
    """`pdp serve` on `yaml` (its log beside it), once its admin API at `url` is healthy."""
    process = Process(
        [sys.executable, "-m", "pdp.cli", "serve", "--config", str(yaml)],
        yaml.parent / "pdp.log",
        env=env,
    )

    def up() -> bool:
        try:
            return httpx.get(f"{url}/health").status_code == 200
        except httpx.HTTPError:
            return False

    process.wait_until(up, timeout=60)
    return process


def pick_link(client: httpx.Client, user: str = "gov") -> tuple[httpx.Response, str]:
    """The development sign-in page, and the path of its link that picks `user`."""
    page = client.get("/console/signin")
    link = re.search(rf'href="(/console/signin/pick\?user={user}&amp;state=[^"]+)"', page.text)
    assert link is not None, page.text
    return page, link.group(1).replace("&amp;", "&")


def signed_in(stack: Stack, user: str) -> httpx.Client:
    """The browser's sign-in, step by step over plain HTTP: a client holding the session."""
    client = httpx.Client(base_url=stack.url)
    _, link = pick_link(client, user)
    done = client.get(link)
    assert done.status_code == 200, done.text
    return client


def csrf(session: httpx.Client) -> dict[str, str]:
    """The header the admin API wants on a write made with the console's session."""
    return {"X-Pdp-Csrf": session.get("/console/session").json()["csrf"]}


@dataclass
class Remote:
    pg: Postgres
    database: str
    role: str
    password: str


@pytest.fixture(scope="module")
def remote(pg: Postgres) -> Iterator[Remote]:
    """A database with two schemas, one holding tables whose names test the escaping."""
    token = secrets.token_hex(4)
    database, role, password = f"console_{token}", f"crawler_{token}", secrets.token_hex(8)
    with pg.connect() as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
        admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        admin.execute(f'GRANT CONNECT ON DATABASE "{database}" TO {role}')
    quoted = QUOTED.replace('"', '""')
    with pg.connect(database) as conn:
        for statement in (
            "CREATE SCHEMA sales",
            "CREATE SCHEMA hr",
            f"GRANT USAGE ON SCHEMA sales, hr TO {role}",
            "CREATE TABLE sales.orders (id int NOT NULL, total numeric(10, 2))",
            "CREATE TABLE sales.customers (id int NOT NULL, name text)",
            f'CREATE TABLE sales."{XSS}" (id int)',
            f'CREATE TABLE sales."{quoted}" (id int)',
            "CREATE TABLE hr.people (id int, name text)",
        ):
            conn.execute(statement)
    try:
        yield Remote(pg, database, role, password)
    finally:
        with pg.connect() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            admin.execute(f"DROP ROLE IF EXISTS {role}")


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.fail("Debian's chromium and chromium-driver are needed: make deps installs them")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        "--disable-gpu",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    made = webdriver.Chrome(options=options, service=Service(driver))
    try:
        yield made
    finally:
        made.quit()


class Page:
    """What a person does in the console, in the terms of its pages."""

    def __init__(self, browser: WebDriver, url: str) -> None:
        self.browser, self.url = browser, url

    def wait(self, condition, seconds: float = 20.0):  # type: ignore[no-untyped-def]
        # a page redrawn while we look leaves stale elements: look again
        stale = (StaleElementReferenceException,)
        return WebDriverWait(self.browser, seconds, ignored_exceptions=stale).until(condition)

    def open(self, path: str) -> None:
        self.browser.get(f"{self.url}{path}")

    def sign_in(self, user: str) -> None:
        self.browser.delete_all_cookies()
        self.open("/console/signin")
        self.wait(ready.element_to_be_clickable((By.LINK_TEXT, user))).click()
        self.wait(ready.text_to_be_present_in_element((By.ID, "user"), user))

    def heading(self, text: str) -> None:
        self.wait(ready.text_to_be_present_in_element((By.TAG_NAME, "h1"), text))

    def text(self, text: str, seconds: float = 20.0) -> None:
        try:
            self.wait(ready.text_to_be_present_in_element((By.TAG_NAME, "main"), text), seconds)
        except Exception:
            print("MAIN:", self.browser.find_element(By.TAG_NAME, "main").text)
            print("LOG:", self.browser.get_log("browser"))
            raise

    def click(self, text: str) -> None:
        xpath = f"//main//*[self::button or self::a][normalize-space()={literal(text)}]"
        for attempt in range(3):  # the page may be redrawn between finding and clicking
            try:
                self.wait(ready.element_to_be_clickable((By.XPATH, xpath))).click()
                return
            except StaleElementReferenceException:
                if attempt == 2:
                    raise

    def fill(self, label: str, value: str) -> None:
        xpath = f"//label[normalize-space()={literal(label)}]"
        target = self.wait(ready.presence_of_element_located((By.XPATH, xpath)))
        field = self.browser.find_element(By.ID, target.get_attribute("for") or "")
        field.clear()
        field.send_keys(value)

    def shot(self, name: str) -> None:
        time.sleep(0.2)  # let the last paint land
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.browser.save_screenshot(str(SHOTS / f"{name}.png"))


def literal(text: str) -> str:
    if "'" not in text:
        return f"'{text}'"
    parts = text.split("'")
    return "concat(" + ', "\'", '.join(f"'{p}'" for p in parts) + ")"


@pytest.fixture
def page(browser: WebDriver, stack: Stack) -> Page:
    return Page(browser, stack.url)
