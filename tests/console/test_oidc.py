"""Signing in to the console with a real OpenID Connect provider (oidc-provider): the
authorization code flow with PKCE, the session holding the provider's access token, which the
admin API's own validator accepts; sign-out; a callback this browser did not start is refused."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ready

from devstack.configs import WORKED_POLICIES, WORKED_REGISTRY, make_tree
from devstack.processes import Process, free_port
from tests.auth.support import PDP_AUDIENCE
from tests.console.conftest import USERS, Page
from tests.console.idp import CLIENT, SECRET, provider


@pytest.fixture(scope="module")
def oidc_pdp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root: Path = tmp_path_factory.mktemp("oidc")
    grpc_port, admin_port = free_port(), free_port()
    url = f"http://127.0.0.1:{admin_port}"
    with provider(root, f"{url}/console/callback") as issuer:
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
        process = Process(
            [sys.executable, "-m", "pdp.cli", "serve", "--config", str(yaml)],
            root / "pdp.log",
            env={"PDP_CONSOLE_SECRET": SECRET},
        )

        def up() -> bool:
            try:
                return httpx.get(f"{url}/health").status_code == 200
            except httpx.HTTPError:
                return False

        process.wait_until(up, timeout=60)
        try:
            yield url
        finally:
            process.stop()


def test_sign_in_with_the_identity_provider_and_out(browser: WebDriver, oidc_pdp: str):
    page = Page(browser, oidc_pdp)
    browser.delete_all_cookies()
    page.open("/console/")
    login = page.wait(ready.presence_of_element_located((By.NAME, "login")))  # the IdP's page
    login.send_keys("gov")
    browser.find_element(By.NAME, "password").send_keys("anything")
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    page.wait(ready.staleness_of(login))  # then the IdP's consent page
    page.wait(ready.element_to_be_clickable((By.CSS_SELECTOR, "button[type=submit]"))).click()
    page.wait(ready.text_to_be_present_in_element((By.ID, "user"), "gov"))
    page.heading("Connections")  # the admin API answered with the provider's token
    browser.find_element(By.ID, "signout").click()
    page.wait(ready.url_contains("/console/signedout"))
    assert httpx.get(f"{oidc_pdp}/jobs", cookies=_cookies(browser)).status_code == 401


def _cookies(browser: WebDriver) -> dict[str, str]:
    return {c["name"]: c["value"] for c in browser.get_cookies()}


def test_a_callback_this_browser_did_not_start_is_refused(oidc_pdp: str):
    client = httpx.Client(base_url=oidc_pdp)
    started = client.get("/console/signin")
    assert started.status_code == 303
    location = started.headers["location"]
    assert "code_challenge_method=S256" in location and "code_challenge=" in location
    state = httpx.URL(location).params["state"]
    stranger = httpx.Client(base_url=oidc_pdp)  # no state cookie
    refused = stranger.get("/console/callback", params={"code": "x", "state": state})
    assert refused.status_code == 400 and "pdp_console" not in stranger.cookies
    # the right browser with a code the IdP never issued: the IdP refuses, no session
    wrong = client.get("/console/callback", params={"code": "forged", "state": state})
    assert wrong.status_code == 502 and "pdp_console" not in client.cookies
    assert client.get("/console/callback", params={"code": "x", "state": state}).status_code == 400
