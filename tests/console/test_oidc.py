"""Signing in to the console with a real OpenID Connect provider (oidc-provider): the
authorization code flow with PKCE, the session holding the provider's access token, which the
admin API's own validator accepts; sign-out ending the provider's session too (RP-initiated
logout); the access token renewed with the refresh token after it expired, and a refused renewal
ending the session; a callback this browser did not start is refused."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ready

from devstack.configs import WORKED_POLICIES, WORKED_REGISTRY, make_tree
from devstack.processes import free_port
from tests.auth.support import PDP_AUDIENCE
from tests.console.conftest import USERS, Page, serve
from tests.console.idp import CLIENT, SECRET, provider

TOKEN_TTL = 6  # seconds an access token of the provider lives: the session renews it after 4.5


@dataclass(frozen=True)
class Oidc:
    url: str  # the PDP's admin listener
    issuer: str

    def token_grants(self, grant_type: str) -> int:
        """How many tokens the provider has issued with this grant so far."""
        counts = httpx.post(f"{self.issuer}/admin/grants").json()["tokens"]
        return int(counts.get(grant_type, 0))


@pytest.fixture(scope="module")
def oidc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Oidc]:
    root: Path = tmp_path_factory.mktemp("oidc")
    grpc_port, admin_port = free_port(), free_port()
    url = f"http://127.0.0.1:{admin_port}"
    with provider(root, url, token_ttl=TOKEN_TTL) as issuer:
        tree = make_tree(root, registry=WORKED_REGISTRY, policies=WORKED_POLICIES, users=USERS)
        auth = f"{{issuer: '{issuer}', audience: '{PDP_AUDIENCE}', jwksUri: '{issuer}/jwks'}}"
        yaml = tree.pdp_yaml(grpc_port, auth=auth)
        yaml.write_text(
            yaml.read_text()
            + f"store: sqlite:///{root}/store.db\n"
            + f"admin: {{listen: '127.0.0.1:{admin_port}'}}\n"
            + f"console: {{signIn: {{clientId: {CLIENT}, clientSecretEnv: PDP_CONSOLE_SECRET, "
            + f"resource: '{PDP_AUDIENCE}'}}}}\n"
        )
        process = serve(yaml, url, {"PDP_CONSOLE_SECRET": SECRET})
        try:
            yield Oidc(url, issuer)
        finally:
            process.stop()


def sign_in(page: Page, user: str) -> None:
    """At the provider's login page, then its consent page, back to the console."""
    page.browser.delete_all_cookies()  # the provider's session too (same host)
    page.open("/console/")
    login = page.wait(ready.presence_of_element_located((By.NAME, "login")))
    login.send_keys(user)
    page.browser.find_element(By.NAME, "password").send_keys("anything")
    page.browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    page.wait(ready.staleness_of(login))
    page.wait(ready.element_to_be_clickable((By.CSS_SELECTOR, "button[type=submit]"))).click()
    page.wait(ready.text_to_be_present_in_element((By.ID, "user"), user))


def test_sign_in_with_the_identity_provider_and_out_of_both(browser: WebDriver, oidc: Oidc):
    page = Page(browser, oidc.url)
    sign_in(page, "gov")
    page.heading("Connections")  # the admin API answered with the provider's token
    browser.find_element(By.ID, "signout").click()
    # the provider's end-session page (id_token_hint: it knows whose), which asks first
    page.wait(ready.url_contains(f"{oidc.issuer}/session/end"))
    yes = (By.XPATH, "//button[normalize-space()='Yes, sign me out']")
    page.wait(ready.element_to_be_clickable(yes)).click()
    page.wait(ready.url_to_be(f"{oidc.url}/console/signedout"))  # post_logout_redirect_uri
    page.heading("Signed out")
    assert httpx.get(f"{oidc.url}/jobs", cookies=_cookies(browser)).status_code == 401
    # the provider's session ended too: the next sign-in asks for the login again
    page.open("/console/")
    page.wait(ready.presence_of_element_located((By.NAME, "login")))


def test_the_session_renews_its_token_after_it_expired(browser: WebDriver, oidc: Oidc):
    page = Page(browser, oidc.url)
    sign_in(page, "gov")
    renewed = oidc.token_grants("refresh_token")
    time.sleep(TOKEN_TTL + 1)  # the token the sign-in gave has expired
    assert httpx.get(f"{oidc.url}/jobs", cookies=_cookies(browser)).status_code == 200
    assert oidc.token_grants("refresh_token") == renewed + 1  # through the refresh token
    page.open("/console/requests")
    page.heading("Requests")
    page.wait(ready.text_to_be_present_in_element((By.ID, "user"), "gov"))


def test_a_refused_renewal_ends_the_session(browser: WebDriver, oidc: Oidc):
    page = Page(browser, oidc.url)
    sign_in(page, "bob")
    cookies = _cookies(browser)
    revoked = httpx.post(f"{oidc.issuer}/admin/revoke-grants").json()["revoked"]
    assert revoked >= 1  # the provider forgets the grant: its refresh token is refused
    time.sleep(TOKEN_TTL + 1)
    ended = httpx.get(f"{oidc.url}/jobs", cookies=cookies)
    assert ended.status_code == 401
    assert "could not be renewed" in ended.json()["error"]["message"]
    again = httpx.get(f"{oidc.url}/jobs", cookies=cookies)  # the session is gone, not retried
    assert again.status_code == 401 and "has ended" in again.json()["error"]["message"]
    # the console sends the browser to sign in again: the provider asks for consent anew
    page.open("/console/connections")
    page.wait(ready.url_contains(oidc.issuer))
    assert httpx.get(f"{oidc.url}/console/session", cookies=cookies).status_code == 401


def _cookies(browser: WebDriver) -> dict[str, str]:
    return {c["name"]: c["value"] for c in browser.get_cookies()}


def test_a_callback_this_browser_did_not_start_is_refused(oidc: Oidc):
    client = httpx.Client(base_url=oidc.url)
    started = client.get("/console/signin")
    assert started.status_code == 303
    location = started.headers["location"]
    assert "code_challenge_method=S256" in location and "code_challenge=" in location
    state = httpx.URL(location).params["state"]
    stranger = httpx.Client(base_url=oidc.url)  # no state cookie
    refused = stranger.get("/console/callback", params={"code": "x", "state": state})
    assert refused.status_code == 400 and "pdp_console" not in stranger.cookies
    # the right browser with a code the IdP never issued: the IdP refuses, no session
    wrong = client.get("/console/callback", params={"code": "forged", "state": state})
    assert wrong.status_code == 502 and "pdp_console" not in client.cookies
    assert client.get("/console/callback", params={"code": "x", "state": state}).status_code == 400
