"""pdp.yaml's `console.signIn`: the console's client of the IdP that `auth:` names."""

from __future__ import annotations

import pytest

from devstack.configs import make_tree
from pdp.config.errors import ConfigError
from pdp.console import DevSignIn, OidcSignIn, sign_in_method
from pdp.service.config import load_pdp_config

IDP = "{issuer: 'https://idp.example', audience: api://pdp, jwksUri: 'https://idp.example/jwks'}"
CONSOLE = "console: {signIn: {clientId: pdp-console, clientSecretEnv: CONSOLE_SECRET, resource: api://pdp}}\n"


def config(tmp_path, auth: str, extra: str):  # type: ignore[no-untyped-def]
    path = make_tree(tmp_path).pdp_yaml(50051, auth)
    path.write_text(path.read_text() + extra)
    return load_pdp_config(path)


def test_the_console_client_of_the_configured_idp(tmp_path, monkeypatch):
    monkeypatch.setenv("CONSOLE_SECRET", "s3cret")
    client = config(tmp_path, IDP, CONSOLE).console
    assert client is not None
    assert (client.issuer, client.client_id, client.resource) == (
        "https://idp.example",
        "pdp-console",
        "api://pdp",
    )
    assert client.client_secret is not None and client.client_secret.reveal() == "s3cret"
    assert client.scope == "openid"
    assert isinstance(sign_in_method(client, None, "dev", False), OidcSignIn)


@pytest.mark.parametrize(
    ("auth", "extra", "words"),
    [
        ("none", CONSOLE, "console.signIn: needs `auth:` naming your identity provider"),
        (IDP, "console: {signIn: {}}\n", "clientId"),
        (IDP, "console: {signIn: {clientId: c, clientSecret: inline}}\n", "never inline"),
        (IDP, "console: {login: {}}\n", "login"),
    ],
)
def test_console_problems_name_the_field(tmp_path, monkeypatch, auth, extra, words):
    monkeypatch.setenv("CONSOLE_SECRET", "s3cret")
    with pytest.raises(ConfigError) as raised:
        config(tmp_path, auth, extra)
    assert words in str(raised.value)


def test_which_sign_in_the_console_offers():
    # absent `console:`: the development picker where pdp.yaml allows one, else none at all
    assert sign_in_method(None, None, "dev", False) is None
    assert isinstance(sign_in_method(None, "http://127.0.0.1:1/token", "dev", False), DevSignIn)
    assert isinstance(sign_in_method(None, None, "dev", True), DevSignIn)
