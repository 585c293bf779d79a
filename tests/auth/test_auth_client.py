"""The token client against a real authorization server (oidc-provider on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from pdp.auth import (
    AsyncTokenSource,
    ClientCredentials,
    ClientSecret,
    ConfigError,
    InvalidClient,
    InvalidScope,
    InvalidTarget,
    RetryPolicy,
    Secret,
    TokenEndpointUnavailable,
    TokenRequestRejected,
    TokenSource,
)
from pdp.auth.assertion import ASSERTION_TYPE, x5t, x5t_s256
from tests.auth.support import SPECIAL_CLIENT_ID, SPECIAL_SECRET, TRINO_AUDIENCE, Idp, Recorder

FAST_RETRY = RetryPolicy(attempts=3, first_delay=0.01, max_delay=0.02)


def claims_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


# --- client authentication ------------------------------------------------------------------


def test_basic_form_encodes_id_and_secret_before_base64(idp: Idp, recorder: Recorder) -> None:
    with TokenSource(idp.secret_client(SPECIAL_CLIENT_ID), http=recorder.client()) as source:
        token = source.token()

    assert claims_of(token)["client_id"] == SPECIAL_CLIENT_ID
    [request] = recorder.requests
    expected = base64.b64encode(b"a%3Ab%25c:p%40ss%20w%2Brd%2520%3A~.").decode()
    assert request.headers["authorization"] == f"Basic {expected}"
    assert "client_secret" not in recorder.forms()[0]


def test_plain_http_basic_auth_is_what_the_encoding_avoids(idp: Idp) -> None:
    # httpx.BasicAuth does not urlencode; the real server refuses the raw '%' (oauth.md §1.2).
    response = httpx.post(
        idp.token_endpoint,
        data={"grant_type": "client_credentials"},
        auth=(SPECIAL_CLIENT_ID, SPECIAL_SECRET),
        timeout=5,
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_post_method_sends_credentials_in_the_body(idp: Idp, recorder: Recorder) -> None:
    credentials = idp.secret_client("sidecar-post", "client_secret_post", scope="pdp.decide")
    with TokenSource(credentials, http=recorder.client()) as source:
        token = source.token()

    assert claims_of(token)["scope"] == "pdp.decide"
    [request] = recorder.requests
    assert "authorization" not in request.headers
    assert recorder.forms()[0] == {
        "grant_type": "client_credentials",
        "scope": "pdp.decide",
        "client_id": "sidecar-post",
        "client_secret": idp.secrets["sidecar-post"],
    }


@pytest.mark.parametrize(
    ("algorithm", "headers", "audience_is_issuer"),
    [
        ("RS256", ("x5t",), False),
        ("PS256", ("x5t#S256",), False),
        ("RS256", ("x5t", "x5t#S256"), True),
        ("PS256", ("x5t", "x5t#S256"), True),
    ],
)
def test_private_key_jwt_assertion(
    idp: Idp,
    recorder: Recorder,
    algorithm: str,
    headers: tuple[str, ...],
    audience_is_issuer: bool,
) -> None:
    audience = idp.issuer if audience_is_issuer else None
    credentials = idp.certificate_client(
        algorithm=algorithm, thumbprint_headers=headers, assertion_audience=audience
    )
    with TokenSource(credentials, http=recorder.client()) as source:
        token = source.token()
        source.invalidate()
        source.token()

    assert claims_of(token)["sub"] == "sidecar-cert"  # the real IdP accepted the assertion
    first, second = recorder.forms()
    assert first["client_assertion_type"] == ASSERTION_TYPE
    assert first["client_id"] == "sidecar-cert"
    assertion = first["client_assertion"]
    header = jwt.get_unverified_header(assertion)
    certificate = idp.certificate.certificate
    assert header["alg"] == algorithm
    expected_thumbprints = {"x5t": x5t(certificate), "x5t#S256": x5t_s256(certificate)}
    assert {k: v for k, v in header.items() if k.startswith("x5t")} == {
        h: expected_thumbprints[h] for h in headers
    }
    claims = jwt.decode(
        assertion,
        certificate.public_key(),
        algorithms=[algorithm],
        audience=idp.issuer if audience_is_issuer else idp.token_endpoint,
    )
    assert claims["iss"] == claims["sub"] == "sidecar-cert"
    assert isinstance(claims["aud"], str)
    assert claims["iat"] == claims["nbf"] and claims["exp"] - claims["iat"] == 300
    assert abs(claims["iat"] - time.time()) < 5
    # A fresh assertion (new jti) per token request: the server refuses a replayed one.
    assert claims["jti"] != claims_of(second["client_assertion"])["jti"]


def test_a_certificate_given_as_pem_values_gets_a_token(idp: Idp, recorder: Recorder) -> None:
    """As a connection's credentials carry it through the admin API (the store decrypted the
    key): `certificate` and `privateKey` are PEM text, never files."""
    encrypted = idp.certificate.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"key pass"),
    )
    block = {
        "tokenEndpoint": idp.token_endpoint,
        "clientId": "sidecar-cert",
        "scope": "pdp.decide",
        "certificate": idp.certificate.certificate_pem.decode(),
        "privateKey": encrypted.decode(),
        "privateKeyPassword": "key pass",
    }
    credentials = ClientCredentials.from_mapping(block, "credentials", env={}, inline=True)
    assert credentials.auth_method == "private_key_jwt"
    assert "PRIVATE KEY" not in repr(credentials) and "key pass" not in repr(credentials)
    with TokenSource(credentials, http=recorder.client()) as source:
        token = source.token()
    assert claims_of(token)["sub"] == "sidecar-cert"  # the real IdP accepted the assertion


def test_pem_values_are_only_for_connection_credentials(idp: Idp) -> None:
    """pdp.yaml names files; a PEM value there is an unknown key, not a silent fallback."""
    block = {
        "tokenEndpoint": idp.token_endpoint,
        "clientId": "sidecar-cert",
        "certificate": idp.certificate.certificate_pem.decode(),
        "privateKey": idp.certificate.private_key_pem.decode(),
    }
    with pytest.raises(ConfigError, match=r"auth\.certificate: unknown key"):
        ClientCredentials.from_mapping(block, env={})


def test_x5t_is_base64url_of_the_sha1_thumbprint(idp: Idp) -> None:
    from cryptography.hazmat.primitives import hashes

    digest = idp.certificate.certificate.fingerprint(hashes.SHA1())
    assert base64.urlsafe_b64decode(x5t(idp.certificate.certificate) + "=") == digest


def test_resource_indicator_selects_the_audience(idp: Idp, recorder: Recorder) -> None:
    credentials = idp.secret_client(resource=TRINO_AUDIENCE, scope="trino")
    with TokenSource(credentials, http=recorder.client()) as source:
        claims = claims_of(source.token())
    assert claims["aud"] == TRINO_AUDIENCE
    assert recorder.forms()[0]["resource"] == TRINO_AUDIENCE


# --- typed errors ---------------------------------------------------------------------------


def test_unknown_resource_is_invalid_target(idp: Idp) -> None:
    with (
        TokenSource(idp.secret_client(resource="api://nowhere")) as source,
        pytest.raises(InvalidTarget) as caught,
    ):
        source.token()
    assert caught.value.error == "invalid_target"
    assert caught.value.status == 400


def test_scope_outside_the_clients_allowance_is_invalid_scope(idp: Idp) -> None:
    source = TokenSource(idp.secret_client("limited", scope="offline_access"))
    with source, pytest.raises(InvalidScope) as caught:
        source.token()
    assert caught.value.error == "invalid_scope"
    assert "not allowed" in str(caught.value)


def test_grant_not_allowed_for_the_client_is_a_rejection(idp: Idp) -> None:
    # RFC 6749 would say unauthorized_client; oidc-provider says invalid_request. Either way
    # it is a typed rejection carrying the server's description.
    source = TokenSource(idp.secret_client("no-client-credentials"))
    with source, pytest.raises(TokenRequestRejected) as caught:
        source.token()
    assert caught.value.status == 400
    assert caught.value.description == "requested grant type is not allowed for this client"


def test_invalid_client_is_reported_and_not_retried_in_a_loop(idp: Idp, recorder: Recorder) -> None:
    wrong = ClientCredentials(
        idp.token_endpoint, "sidecar-basic", ClientSecret(Secret("not-the-secret"))
    )
    with TokenSource(wrong, http=recorder.client()) as source:
        for _ in range(5):
            with pytest.raises(InvalidClient) as caught:
                source.token()
    assert len(recorder.requests) == 1
    assert caught.value.status == 401
    assert "invalid_client" in str(caught.value)
    assert "not-the-secret" not in str(caught.value)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_endpoint_is_retried_a_bounded_number_of_times(recorder: Recorder) -> None:
    credentials = ClientCredentials(
        f"http://127.0.0.1:{_closed_port()}/token", "c", ClientSecret(Secret("s"))
    )
    with TokenSource(credentials, http=recorder.client(), retry=FAST_RETRY) as source:
        with pytest.raises(TokenEndpointUnavailable, match="failed 3 times"):
            source.token()
        # Within the backoff window the failure is reported without another attempt.
        with pytest.raises(TokenEndpointUnavailable):
            source.token()
    assert len(recorder.requests) == 3


class _FlakyProxy(BaseHTTPRequestHandler):
    """Answers 503 for the first `failures` requests, then forwards to the real IdP."""

    failures = 0
    target = ""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if type(self).failures > 0:
            type(self).failures -= 1
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        upstream = httpx.post(
            self.target,
            content=body,
            headers={
                "Authorization": self.headers.get("Authorization", ""),
                "Content-Type": self.headers["Content-Type"],
            },
            timeout=5,
        )
        self.send_response(upstream.status_code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(upstream.content)))
        self.end_headers()
        self.wfile.write(upstream.content)

    def log_message(self, *args: object) -> None:
        pass


def test_5xx_is_retried_then_succeeds(idp: Idp, recorder: Recorder) -> None:
    handler = type("Proxy", (_FlakyProxy,), {"failures": 2, "target": idp.token_endpoint})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        credentials = ClientCredentials(
            f"http://127.0.0.1:{server.server_address[1]}/token",
            "sidecar-basic",
            ClientSecret(Secret(idp.secrets["sidecar-basic"])),
        )
        with TokenSource(credentials, http=recorder.client(), retry=FAST_RETRY) as source:
            assert claims_of(source.token())["sub"] == "sidecar-basic"
        assert len(recorder.requests) == 3
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# --- caching, refresh and single flight -----------------------------------------------------


async def test_concurrent_async_callers_share_one_request(idp: Idp, recorder: Recorder) -> None:
    async with (
        recorder.async_client() as http,
        AsyncTokenSource(idp.secret_client(), http=http) as source,
    ):
        tokens = await asyncio.gather(*(source.token() for _ in range(50)))
        again = await source.token()
    assert len(set(tokens)) == 1 and again == tokens[0]
    assert len(recorder.requests) == 1


def test_concurrent_threads_share_one_request(idp: Idp, recorder: Recorder) -> None:
    barrier = threading.Barrier(10)
    results: list[str] = []
    with TokenSource(idp.secret_client(), http=recorder.client()) as source:

        def worker() -> None:
            barrier.wait(timeout=5)
            results.append(source.token())

        threads = [threading.Thread(target=worker) for _ in range(10)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
    assert len(results) == 10 and len(set(results)) == 1
    assert len(recorder.requests) == 1


def test_token_is_refreshed_before_it_expires(idp: Idp, recorder: Recorder) -> None:
    # The IdP issues api://trino tokens for 2 s: the refresh margin is half of that.
    credentials = idp.secret_client(resource=TRINO_AUDIENCE, scope="trino")
    with TokenSource(credentials, http=recorder.client()) as source:
        first = source.token()
        assert source.token() == first
        time.sleep(1.1)
        second = source.token()
    assert second != first
    assert claims_of(second)["exp"] >= claims_of(first)["exp"]
    assert len(recorder.requests) == 2


async def test_callers_keep_the_valid_token_while_one_refreshes(idp: Idp) -> None:
    gate = asyncio.Event()
    requests: list[httpx.Request] = []

    async def hold_second_request(request: httpx.Request) -> None:
        requests.append(request)
        if len(requests) == 2:
            await asyncio.wait_for(gate.wait(), timeout=5)

    now = [1000.0]
    async with (
        httpx.AsyncClient(timeout=5, event_hooks={"request": [hold_second_request]}) as http,
        AsyncTokenSource(idp.secret_client(), http=http, clock=lambda: now[0]) as source,
    ):
        first = await source.token()
        now[0] += 300 - 30  # past the refresh point (60 s before expiry), not yet expired
        refresh = asyncio.create_task(source.token())
        while len(requests) < 2:
            await asyncio.sleep(0.01)
        # The refresh is in flight; others get the still-valid token without waiting.
        assert await asyncio.wait_for(source.token(), timeout=1) == first
        gate.set()
        refreshed = await refresh
    assert refreshed != first
    assert len(requests) == 2


def test_invalidate_drops_only_the_rejected_token(idp: Idp, recorder: Recorder) -> None:
    with TokenSource(idp.secret_client(), http=recorder.client()) as source:
        first = source.token()
        source.invalidate("some-older-token")
        assert source.token() == first
        source.invalidate(first)
        second = source.token()
        source.invalidate(first)  # a late 401 for the old token does not drop the new one
        assert source.token() == second != first
    assert len(recorder.requests) == 2


# --- secrets stay secret --------------------------------------------------------------------


def test_secrets_stay_out_of_repr_logs_and_errors(
    idp: Idp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = idp.secrets["sidecar-basic"]
    good = idp.secret_client()
    bad = ClientCredentials(
        idp.token_endpoint, "sidecar-basic", ClientSecret(Secret(secret + "-wrong"))
    )
    certificate = idp.certificate_client()
    with (
        TokenSource(good) as source,
        TokenSource(bad) as failing,
        TokenSource(certificate) as signed,
    ):
        token = source.token()
        signed_token = signed.token()
        with pytest.raises(InvalidClient) as caught:
            failing.token()
        shown = " ".join(
            [
                repr(good),
                repr(bad),
                repr(certificate),
                repr(source),
                repr(failing),
                repr(signed),
                str(caught.value),
                repr(caught.value),
                caplog.text,
            ]
        )
    key_pem = idp.certificate.private_key_pem.decode()
    key_body = "".join(key_pem.splitlines()[1:-1])
    for leaked in (secret, token, signed_token, key_body[:64], key_body[-64:]):
        assert leaked not in shown
    assert "client sidecar-basic could not get a token" in caplog.text
