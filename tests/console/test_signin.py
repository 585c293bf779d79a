"""Signing in to the console with the development issuer, the session cookie, the one seam
through which the admin API accepts it (CSRF header on writes), and signing out."""

from __future__ import annotations

import httpx
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready

from tests.console.conftest import Page, Stack, csrf, pick_link, signed_in


def test_sign_in_shows_the_shell_and_sign_out_ends_the_session(page: Page, stack: Stack):
    page.open("/")
    page.wait(ready.url_contains("/console/signin"))
    assert "Development only" in page.browser.page_source
    page.shot("signin")
    page.sign_in("gov")
    page.heading("Connections")
    nav = page.browser.find_element(By.CSS_SELECTOR, "nav[aria-label=Sections]").text
    assert "Connections" in nav and "Sync jobs" in nav and "Requests" in nav
    page.browser.find_element(By.ID, "signout").click()
    page.wait(ready.url_contains("/console/signedout"))
    page.open("/console/connections")  # the session is gone: back to the sign-in page
    page.wait(ready.url_contains("/console/signin"))


def test_the_session_cookie_is_httponly_strict_and_holds_no_token(stack: Stack):
    client = httpx.Client(base_url=stack.url)
    page, link = pick_link(client)
    assert "Content-Security-Policy" in page.headers
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in page.headers["Content-Security-Policy"]
    done = client.get(link)
    cookie = next(
        v for k, v in done.headers.multi_items() if k == "set-cookie" and "pdp_console=" in v
    )
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    session = client.cookies["pdp_console"]
    assert "." not in session  # an opaque id, not a JWT
    shell = client.get("/console/connections")
    assert shell.status_code == 200 and "<script>" not in shell.text  # the module file only
    assert shell.headers["Content-Security-Policy"] == page.headers["Content-Security-Policy"]
    assert shell.headers["X-Frame-Options"] == "DENY"
    script = client.get("/console/static/console.js")
    assert script.headers["X-Content-Type-Options"] == "nosniff"
    assert ".innerHTML" not in script.text  # text only, never markup
    who = client.get("/console/session").json()
    assert who["user"] == "gov" and who["csrf"]
    assert "token" not in str(who).lower()


def test_a_pick_without_its_state_cookie_is_refused(stack: Stack):
    _, link = pick_link(httpx.Client(base_url=stack.url))
    other = httpx.Client(base_url=stack.url)  # another browser: no state cookie
    assert other.get(link).status_code == 400
    assert "pdp_console" not in other.cookies


def test_the_admin_api_accepts_the_session_and_wants_its_csrf_header_on_writes(stack: Stack):
    client = signed_in(stack, "gov")
    header = csrf(client)
    assert client.post("/data/object/search", json={}).status_code == 403  # no CSRF header
    refused = client.put("/data/settings/nothere", json={"isActive": True})
    assert refused.status_code == 403 and "X-Pdp-Csrf" in refused.json()["error"]["message"]
    forged = {"X-Pdp-Csrf": "x" + header["X-Pdp-Csrf"]}
    wrong = client.put("/data/settings/nothere", json={}, headers=forged)
    assert wrong.status_code == 403
    found = client.post("/data/object/search", json={}, headers=header)
    assert found.status_code == 200
    assert client.get("/jobs").status_code == 200  # reads need no CSRF header
    # a bearer token is authenticated exactly as before; none at all is 401 as before
    with stack.api("gov") as bearer:
        assert bearer.get("/jobs").status_code == 200
    assert httpx.get(f"{stack.url}/jobs").status_code == 401
    signout = client.post("/console/signout", headers=header)
    assert signout.status_code == 200
    assert client.get("/jobs").status_code == 401


def test_sessions_are_per_user_as_the_directory_says(stack: Stack):
    bob = signed_in(stack, "bob")  # holds no control-plane permission
    answer = bob.get("/jobs")
    assert answer.status_code == 403  # the admin API's own refusal, unchanged
