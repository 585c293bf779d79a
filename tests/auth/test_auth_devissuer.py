"""The development issuer, used through the same client and validator code as a real IdP."""

from __future__ import annotations

import logging

import grpc
import grpc.aio
import httpx
import pytest

from pdp.auth import (
    AsyncTokenSource,
    ClientCredentials,
    ClientSecret,
    InvalidClient,
    InvalidScope,
    InvalidTarget,
    Secret,
    TokenSource,
    Validator,
)
from pdp.auth.devissuer import DevIssuer
from pdp.auth.grpc import BearerAuthInterceptor, bearer_interceptors, current_principal


async def test_issues_tokens_the_validator_accepts(caplog: pytest.LogCaptureFixture) -> None:
    issuer = DevIssuer.with_generated_client("pdp-dev", scopes=("pdp.decide", "pdp.read"))
    with caplog.at_level(logging.WARNING, logger="pdp.auth.devissuer"):
        async with issuer.serving() as url:
            assert url.startswith("http://127.0.0.1:")
            async with httpx.AsyncClient() as http:
                discovery = (await http.get(f"{url}/.well-known/openid-configuration")).json()
            validator = Validator(issuer.validator_config(required_scopes=("pdp.decide",)))
            for method in ("client_secret_basic", "client_secret_post"):
                credentials = issuer.client_credentials(method=method)  # type: ignore[arg-type]
                async with AsyncTokenSource(credentials) as tokens:
                    principal = await validator.validate_async(await tokens.token())
                assert principal.subject == principal.client_id == "pdp-dev"
                assert principal.scopes == {"pdp.decide", "pdp.read"}
            validator.close()
    assert discovery["issuer"] == url
    assert discovery["token_endpoint"] == f"{url}/token"
    assert discovery["jwks_uri"] == f"{url}/jwks"
    assert "development" in caplog.text.lower() and "never use it in production" in caplog.text


async def test_client_errors_are_oauth_errors() -> None:
    issuer = DevIssuer({"svc": Secret("right")}, scopes=("pdp.decide",))
    async with issuer.serving() as url:
        endpoint = f"{url}/token"
        wrong = ClientCredentials(endpoint, "svc", ClientSecret(Secret("wrong")))
        async with AsyncTokenSource(wrong) as tokens:
            with pytest.raises(InvalidClient):
                await tokens.token()
        good = issuer.client_credentials()
        for changes, expected in (
            ({"scope": "admin"}, InvalidScope),
            ({"resource": "api://x"}, InvalidTarget),
        ):
            settings = ClientCredentials(endpoint, "svc", good.credential, **changes)
            async with AsyncTokenSource(settings) as tokens:
                with pytest.raises(expected):
                    await tokens.token()
        async with httpx.AsyncClient() as http:
            challenge = await http.post(
                endpoint, data={"grant_type": "client_credentials"}, auth=("svc", "wrong")
            )
            password = await http.post(
                endpoint, data={"grant_type": "password"}, auth=("svc", "right")
            )
            get = await http.get(endpoint)
    assert challenge.status_code == 401 and "Basic" in challenge.headers["www-authenticate"]
    assert challenge.headers["cache-control"] == "no-store"
    assert password.json()["error"] == "unsupported_grant_type"
    assert get.status_code == 405


def test_basic_credentials_are_form_decoded() -> None:
    issuer = DevIssuer({"a:b%c": Secret("p@ss w+rd")})
    with issuer.running() as url, TokenSource(issuer.client_credentials()) as tokens:
        assert url == issuer.issuer
        assert tokens.token()


def test_stops_listening_on_exit() -> None:
    issuer = DevIssuer.with_generated_client()
    with issuer.running() as url:
        assert httpx.get(f"{url}/jwks").json()["keys"][0]["kid"].startswith("dev-")
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/jwks")


async def test_binds_loopback_only() -> None:
    issuer = DevIssuer.with_generated_client()
    with pytest.raises(ValueError, match="loopback only"):
        async with issuer.serving(host="0.0.0.0"):
            pass


def test_generated_secret_stays_hidden() -> None:
    issuer = DevIssuer.with_generated_client("pdp-dev")
    with issuer.running():
        credentials = issuer.client_credentials()
    assert isinstance(credentials.credential, ClientSecret)
    assert len(credentials.credential.secret.reveal()) >= 32
    assert credentials.credential.secret.reveal() not in repr(credentials)


async def test_demo_path_sidecar_to_pdp_over_grpc() -> None:
    """What `pdp up` wires: dev issuer → sidecar token source → gRPC → PDP interceptor."""
    issuer = DevIssuer.with_generated_client("sidecar")

    async def who(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        principal = current_principal()
        assert principal is not None
        return principal.subject.encode()

    async with issuer.serving():
        validator = Validator(issuer.validator_config(required_scopes=("pdp.decide",)))
        server = grpc.aio.server(interceptors=[BearerAuthInterceptor(validator)])
        port = server.add_insecure_port("127.0.0.1:0")
        server.add_generic_rpc_handlers(
            [
                grpc.method_handlers_generic_handler(
                    "demo.Pdp", {"Who": grpc.unary_unary_rpc_method_handler(who)}
                )
            ]
        )
        await server.start()
        try:
            async with (
                AsyncTokenSource(issuer.client_credentials()) as tokens,
                grpc.aio.insecure_channel(
                    f"127.0.0.1:{port}", interceptors=bearer_interceptors(tokens)
                ) as channel,
            ):
                assert await channel.unary_unary("/demo.Pdp/Who")(b"") == b"sidecar"
        finally:
            await server.stop(None)
            validator.close()
