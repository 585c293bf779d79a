"""Authentication between the real sidecar and PDP processes.

sidecar --client credentials--> identity provider --JWT--> sidecar --gRPC + bearer--> PDP
"""

from __future__ import annotations

import json

import httpx

from devstack.configs import make_tree
from devstack.processes import free_port, start_pdp, start_sidecar
from tests.auth.support import PDP_AUDIENCE, Idp
from tests.sidecar.test_revocation import BODY

ALLOW = "/v1/data/trino/allow"


def flow(mapping: dict) -> str:
    return json.dumps(mapping)  # JSON is YAML flow syntax


def pdp_auth(idp: Idp, scope: str = "pdp.decide") -> str:
    return flow(
        {
            "issuer": idp.issuer,
            "audience": PDP_AUDIENCE,
            "jwksUri": idp.jwks_uri,
            "requiredScope": scope,
        }
    )


def decide_alice(stack) -> dict:
    return httpx.post(stack.url + ALLOW, json=BODY, timeout=10).json()


def test_secret_client_token_from_the_real_idp_is_accepted(idp, stack_factory, monkeypatch):
    monkeypatch.setenv("SIDECAR_SECRET", idp.secrets["sidecar-basic"])
    sidecar_auth = flow(
        {
            "tokenEndpoint": idp.token_endpoint,
            "clientId": "sidecar-basic",
            "clientSecretEnv": "SIDECAR_SECRET",
            "scope": "pdp.decide",
            "resource": PDP_AUDIENCE,
        }
    )
    stack = stack_factory(pdp_auth=pdp_auth(idp), sidecar_auth=sidecar_auth)
    assert decide_alice(stack) == {"result": True}


def test_certificate_client_token_from_the_real_idp_is_accepted(
    idp, client_certificate, stack_factory, tmp_path
):
    (tmp_path / "client.crt").write_bytes(client_certificate.certificate_pem)
    (tmp_path / "client.key").write_bytes(client_certificate.private_key_pem)
    sidecar_auth = flow(
        {
            "tokenEndpoint": idp.token_endpoint,
            "clientId": "sidecar-cert",
            "certificateFile": str(tmp_path / "client.crt"),
            "privateKeyFile": str(tmp_path / "client.key"),
            "thumbprintHeaders": ["x5t#S256"],
            "scope": "pdp.decide",
            "resource": PDP_AUDIENCE,
        }
    )
    stack = stack_factory(pdp_auth=pdp_auth(idp), sidecar_auth=sidecar_auth)
    assert decide_alice(stack) == {"result": True}


def refused(idp: Idp, root, sidecar_auth: str) -> str:
    """Start a sidecar whose calls the PDP refuses; check it fails closed, return its log."""
    tree = make_tree(root)
    pdp_port, port = free_port(), free_port()
    pdp = start_pdp(tree.pdp_yaml(pdp_port, pdp_auth(idp)), pdp_port)
    try:
        sidecar = start_sidecar(
            tree.sidecar_yaml(port, pdp_port, auth=sidecar_auth), port, wait_connected=False
        )
        try:
            response = httpx.post(f"http://127.0.0.1:{port}{ALLOW}", json=BODY, timeout=10)
            assert response.json() == {"result": False}
            health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).json()
            assert health["pdp"] == "disconnected"
            return sidecar.output()
        finally:
            sidecar.stop()
    finally:
        pdp.stop()


def test_a_sidecar_without_the_required_scope_is_refused_and_fails_closed(
    idp, tmp_path, monkeypatch
):
    monkeypatch.setenv("SIDECAR_SECRET", idp.secrets["sidecar-basic"])
    sidecar_auth = flow(
        {
            "tokenEndpoint": idp.token_endpoint,
            "clientId": "sidecar-basic",
            "clientSecretEnv": "SIDECAR_SECRET",
            "scope": "pdp.read",
            "resource": PDP_AUDIENCE,
        }
    )
    assert "PERMISSION_DENIED" in refused(idp, tmp_path, sidecar_auth)


def test_a_sidecar_sending_no_token_is_refused(idp, tmp_path):
    assert "UNAUTHENTICATED" in refused(idp, tmp_path, "none")


def test_a_sidecar_with_a_wrong_secret_gets_no_token_and_fails_closed(idp, tmp_path, monkeypatch):
    monkeypatch.setenv("SIDECAR_SECRET", "not-the-secret")
    sidecar_auth = flow(
        {
            "tokenEndpoint": idp.token_endpoint,
            "clientId": "sidecar-basic",
            "clientSecretEnv": "SIDECAR_SECRET",
            "scope": "pdp.decide",
        }
    )
    log = refused(idp, tmp_path, sidecar_auth)
    assert "invalid_client" in log and "not-the-secret" not in log


def test_the_development_issuer_path_of_pdp_up(stack_factory, monkeypatch):
    monkeypatch.setenv("DEV_SECRET", "s3cret-for-this-test")
    issuer_port = free_port()
    dev = flow(
        {
            "devIssuer": {
                "listen": f"127.0.0.1:{issuer_port}",
                "clientId": "sidecar-dev",
                "clientSecretEnv": "DEV_SECRET",
            }
        }
    )
    client = flow(
        {
            "tokenEndpoint": f"http://127.0.0.1:{issuer_port}/token",
            "clientId": "sidecar-dev",
            "clientSecretEnv": "DEV_SECRET",
            "scope": "pdp.decide",
        }
    )
    stack = stack_factory(pdp_auth=dev, sidecar_auth=client)
    assert decide_alice(stack) == {"result": True}
    assert "DEVELOPMENT token issuer" in stack.pdp.output()
    assert "s3cret-for-this-test" not in stack.pdp.output() + stack.sidecar.output()
