"""The console adds no way around the admin API and shows nothing it should not: every answer
under /console carries the strict CSP; the session cookie is Secure behind TLS; every write the
pages make needs the CSRF header; a user without permission meets, on every page and for every
action, the answer the admin API gives their own token, and no data; names with markup, quotes
and unicode from a real PostgreSQL are text wherever a name is shown; a password given to the
console is in no page and no API answer the console fetched."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready

from pdp.console.app import HEADERS
from tests.console.conftest import Page, Remote, Stack, csrf, pick_link, signed_in
from tests.console.test_connections import expand, select

# names a real PostgreSQL accepts that a careless page would run or break on
MARKUP = "<img src=x onerror=window.__pwned=1>"
SCHEMA = 'Sch"ema <b>bold</b>'
TABLE = "l'été <script>window.__pwned=1</script> ✓"
COLUMN = 'col "<i>x</i>" ñ'
INJECTED = """return [document.querySelectorAll('main script, main img, main b, main i').length,
  window.__pwned === undefined]"""


def test_every_console_answer_carries_the_strict_csp(stack: Stack):
    gov = signed_in(stack, "gov")
    header = csrf(gov)
    anonymous = httpx.Client(base_url=stack.url)
    answers = [
        anonymous.get("/"),
        anonymous.get("/console/"),
        anonymous.get("/console/signin"),
        anonymous.get("/console/signin/pick?user=gov&state=forged"),
        anonymous.get("/console/callback?code=x&state=y"),
        anonymous.get("/console/session"),
        anonymous.get("/console/signedout"),
        anonymous.get("/console/static/console.js"),
        anonymous.get("/console/static/console.css"),
        anonymous.get("/console/static/favicon.svg"),
        anonymous.get("/console/static/nothing.js"),
        anonymous.post("/console/explain", json={}),
    ]
    for path in ("", "connections", "connections/new", "connections/x", "jobs", "jobs/1"):
        answers.append(gov.get(f"/console/{path}"))
    for path in ("requests", "access", "upgrade", "upgrade/x", "no/such/page"):
        answers.append(gov.get(f"/console/{path}"))
    answers += [
        gov.get("/console/session"),
        gov.post("/console/explain", json={"user": "x"}, headers=header),  # 400
        gov.post("/console/readers", json={"catalog": "a", "schema": "b", "table": "c"}),
        gov.post("/console/signout", headers=header),
    ]
    for answer in answers:
        where = f"{answer.request.method} {answer.request.url.path}: {answer.status_code}"
        for name, value in HEADERS.items():
            assert answer.headers.get(name) == value, where
    csp = HEADERS["Content-Security-Policy"]
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp


@pytest.mark.parametrize("proto", ["https", None])
def test_the_session_cookie_is_secure_behind_tls_httponly_and_samesite(stack: Stack, proto):
    headers = {"X-Forwarded-Proto": proto} if proto else {}
    client = httpx.Client(base_url=stack.url, headers=headers)
    signin, link = pick_link(client)
    state_cookie = signin.headers["set-cookie"].lower()
    state = re.search(r"state=([^&]+)", link).group(1)  # type: ignore[union-attr]
    # (an http client keeps a Secure cookie to itself: it is sent by hand, as a browser behind
    # the TLS proxy would)
    cookie = {"Cookie": f"pdp_console_login={state}"}
    done = client.get(link, headers=cookie)
    assert done.status_code == 200, done.text
    session_cookie = next(
        c.lower() for c in done.headers.get_list("set-cookie") if c.startswith("pdp_console=")
    )
    for cookie in (state_cookie, session_cookie):
        assert ("; secure" in cookie) is (proto == "https"), cookie
        assert "; httponly" in cookie
    assert "samesite=strict" in session_cookie and "samesite=lax" in state_cookie


# one write of each page, as its JavaScript sends it, minus the CSRF header
WRITES = [
    ("register", "POST", "/data/connection/validate", {"technology": "postgresql"}),
    ("register", "POST", "/data/connection", {"connectionKey": "x"}),
    ("tree", "PUT", "/data/settings/sec", {"isActive": True}),
    ("tree", "PUT", "/data/permission/sec", {"principal": "bob", "role": "DataOwner"}),
    ("tree", "POST", "/data/crawl/sec", {}),
    ("tree", "DELETE", "/data/object/sec", None),
    ("tree", "PUT", "/data/connection/sec", {"schedule": "0 3 * * *"}),
    ("requests", "POST", "/requests/1/validate", None),
    (
        "access",
        "POST",
        "/console/explain",
        {"user": "gov", "catalog": "a", "schema": "b", "table": "c"},
    ),
    ("access", "POST", "/console/readers", {"catalog": "a", "schema": "b", "table": "c"}),
    ("requests", "POST", "/requests/1/acknowledge", None),
    ("upgrade", "POST", "/data/upgrade/x/start", {"displayName": "y"}),
    ("upgrade", "POST", "/data/upgrade/x/validate", {}),
    ("upgrade", "POST", "/data/upgrade/x/upgrade", {"confirm": True}),
    ("upgrade", "POST", "/data/upgrade/x/resolve/1", {"action": "retry"}),
    ("upgrade", "POST", "/data/upgrade/x/finalize", None),
    ("sign-out", "POST", "/console/signout", None),
]


@pytest.mark.parametrize(("page", "method", "path", "body"), WRITES)
def test_every_write_through_the_session_needs_the_csrf_header(
    stack: Stack, page, method, path, body
):
    gov = signed_in(stack, "gov")
    refused = gov.request(method, path, json=body)
    assert refused.status_code == 403, (page, refused.text)
    assert "X-Pdp-Csrf" in refused.text
    assert gov.get("/console/session").status_code == 200  # nothing happened, still signed in


@pytest.fixture(scope="module")
def registered(stack: Stack, remote: Remote) -> str:
    stack.register("sec", remote)
    return "sec"


@pytest.mark.parametrize("user", ["bob", "maker"])
def test_every_action_answers_as_the_admin_api_does_for_the_users_own_token(
    stack: Stack, registered: str, user: str
):
    session = signed_in(stack, user)
    header = csrf(session)
    api = stack.api(user)
    reads = ["/data/connection/sec", "/data/object/sec", "/data/permission/sec", "/jobs"]
    reads += ["/requests", "/data/upgrade", "/data/upgrade/legacy"]
    for path in reads:
        assert _outcome(session.get(path)) == _outcome(api.get(path)), path
    for _page, method, path, body in WRITES:
        if path.startswith("/console/"):
            continue  # the console's own endpoints: below
        through = session.request(method, path, json=body, headers=header)
        direct = api.request(method, path, json=body)
        assert _outcome(through) == _outcome(direct), path
        # nothing done: refused, or (validate) a check that stores nothing
        assert through.status_code in (400, 403, 404) or path.endswith("/validate"), path
    other = {"user": "gov", "catalog": "hive", "schema": "sales", "table": "orders"}
    refused = session.post("/console/explain", json=other, headers=header)
    assert refused.status_code == 403 and "GOVERNANCE" in refused.json()["error"]["permission"]
    table = {"catalog": "hive", "schema": "sales", "table": "orders"}
    assert session.post("/console/readers", json=table, headers=header).status_code == 403
    with stack.api("gov") as gov:  # and nothing changed
        assert gov.get("/data/connection/sec").json()["schedule"] != "0 3 * * *"
        assert "bob" not in gov.get("/data/permission/sec").text


def _outcome(answer: httpx.Response) -> tuple[int, str | None]:
    body = answer.json()
    return answer.status_code, body.get("error", {}).get("code") if isinstance(body, dict) else None


def test_pages_show_a_user_without_permission_no_data(
    page: Page, stack: Stack, remote: Remote, registered: str
):
    page.sign_in("bob")
    refused = ("/console/connections", "/console/connections/sec", "/console/jobs")
    for path in (*refused, "/console/requests", "/console/access", "/console/upgrade"):
        page.open(path)
        page.wait(ready.presence_of_element_located((By.CSS_SELECTOR, "main h1")))
        if path in refused:  # the admin API's 403, as it words it
            page.wait(ready.presence_of_element_located((By.CSS_SELECTOR, "main [role=alert]")))
            page.text("bob")
        source = page.browser.page_source
        assert remote.database not in source and "sales" not in source, path
        assert page.browser.find_elements(By.CSS_SELECTOR, "ul[role=tree] li") == [], path


@pytest.fixture(scope="module")
def odd(stack: Stack, remote: Remote) -> Iterator[str]:
    """A database whose schema, table and column names hold markup, quotes and unicode."""
    database = f"odd_{secrets.token_hex(4)}"
    with remote.pg.connect() as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
        admin.execute(f'GRANT CONNECT ON DATABASE "{database}" TO {remote.role}')
    schema, table, column = (n.replace('"', '""') for n in (SCHEMA, TABLE, COLUMN))
    with remote.pg.connect(database) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        conn.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO {remote.role}')
        conn.execute(f'CREATE TABLE "{schema}"."{table}" (id int, "{column}" text)')
    stack.register("odd", Remote(remote.pg, database, remote.role, remote.password))
    try:
        yield database
    finally:
        with remote.pg.connect() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def _clean(page: Page, where: str) -> None:
    injected, not_run = page.browser.execute_script(INJECTED)
    assert injected == 0 and not_run, where


def test_names_with_markup_quotes_and_unicode_are_text_everywhere(
    page: Page, stack: Stack, remote: Remote, odd: str
):
    page.sign_in("gov")
    page.open("/console/connections/odd")
    page.heading("Connection odd")
    expand(page, "odd")
    expand(page, odd)
    expand(page, SCHEMA)
    page.text(TABLE)
    _clean(page, "tree")
    select(page, TABLE)
    page.text(COLUMN)  # the table's columns
    _clean(page, "object panel")
    page.click("Delete…")
    page.text(TABLE)  # the confirmation names what goes
    _clean(page, "confirmation")
    page.open("/console/connections/odd")
    page.fill("Search objects", "été")
    page.click("Search")
    page.text("1 found")
    _clean(page, "search")
    with remote.pg.connect(odd) as conn:  # a column added: the inbox names it
        quoted = (n.replace('"', '""') for n in (SCHEMA, TABLE, MARKUP))
        conn.execute('ALTER TABLE "{}"."{}" ADD COLUMN "{}" int'.format(*quoted))
    assert stack.sync("odd")["state"] == "completed"
    page.open("/console/requests")
    page.text(MARKUP)
    _clean(page, "requests")
    page.open("/console/access")
    page.fill("Trino catalog", "hive")
    page.fill("Schema", SCHEMA)
    page.fill("Table", TABLE)
    page.click("Explain")
    page.text(f"hive.{SCHEMA}.{TABLE}")
    page.click("Who may read this table")
    page.text(f"Who may read hive.{SCHEMA}.{TABLE}")
    _clean(page, "access")
    page.open("/console/jobs?connection=odd")
    page.heading("Sync jobs")
    _clean(page, "jobs")


RECORD = """
window.__answers = [];
const fetched = window.fetch;
window.fetch = async (...args) => {
  const answer = await fetched(...args);
  answer.clone().text().then((text) => window.__answers.push([String(args[0]), text]));
  return answer;
};
"""


def test_no_secret_is_ever_rendered_or_fetched(page: Page, stack: Stack, remote: Remote):
    # every answer the console's module fetches is recorded (a script the test adds; the
    # page's own CSP does not apply to it)
    added = page.browser.execute_cdp_cmd(
        "Page.addScriptToEvaluateOnNewDocument", {"source": RECORD}
    )
    fetched: list[tuple[str, str]] = []

    def collect() -> None:
        fetched.extend(page.browser.execute_script("return window.__answers || []"))
        assert remote.password not in page.browser.page_source

    try:
        page.sign_in("gov")
        page.open("/console/connections/new")
        page.heading("Register a connection")
        page.fill("Connection key", "secret")
        page.fill("Host", remote.pg.host)
        page.fill("Port", str(remote.pg.port))
        page.fill("Database (empty: all)", remote.database)
        page.fill("User", remote.role)
        page.fill("Password", remote.password)
        page.click("Validate Connection")
        page.text("The platform accepted these details.")
        collect()
        page.click("Register")
        page.text("The job completed.", 60)
        collect()
        for path in ("/console/connections", "/console/connections/secret", "/console/jobs"):
            page.open(path)
            page.wait(ready.presence_of_element_located((By.CSS_SELECTOR, "main h1")))
            page.wait(lambda driver: "Loading" not in driver.find_element(By.ID, "main").text)
            if path.endswith("/secret"):
                page.text("Endpoint and credentials")  # GET /data/connection/secret answered
            collect()
    finally:
        page.browser.execute_cdp_cmd(
            "Page.removeScriptToEvaluateOnNewDocument", {"identifier": added["identifier"]}
        )
    urls = {url for url, _ in fetched}
    assert "/data/connection/validate" in urls and "/data/connection/secret" in urls
    assert any('"password":"[REDACTED]"' in text for _, text in fetched)
    for url, text in fetched:
        assert remote.password not in text, url
