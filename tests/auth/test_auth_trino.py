"""The Trino client's authentication, against a stand-in coordinator on 127.0.0.1.

A real Trino server is a JVM tarball no available registry carries. The stand-in answers
`POST /v1/statement` with a finished one-row result and authenticates like Trino's JWT
authenticator (issuer, audience, JWKS; principal from `sub`), or like PASSWORD (HTTP Basic).
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
import trino.auth
import trino.dbapi
import trino.exceptions

from pdp.auth import PermissionDenied, Secret, Unauthenticated, Validator, ValidatorConfig
from pdp.auth.trino import ClientCredentialsAuthentication, PasswordLogin, trino_authentication
from tests.auth.support import TRINO_AUDIENCE, Idp, Recorder


@dataclass
class Coordinator:
    """What the stand-in saw, and whom it refuses."""

    validator: Validator | None = None
    password: tuple[str, str] | None = None
    revoked_jti: set[str] = field(default_factory=set)
    refuse_all: bool = False
    authorizations: list[str] = field(default_factory=list)
    port: int = 0

    def principal(self, authorization: str) -> str | None:
        if self.refuse_all:
            return None
        scheme, _, credentials = authorization.partition(" ")
        if scheme == "Basic" and self.password is not None:
            user, _, password = base64.b64decode(credentials).decode().partition(":")
            return user if (user, password) == self.password else None
        if scheme == "Bearer" and self.validator is not None:
            try:
                principal = self.validator.validate(credentials)
            except (Unauthenticated, PermissionDenied):
                return None
            return None if principal.claims.get("jti") in self.revoked_jti else principal.subject
        return None


def coordinator_handler(state: Coordinator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            authorization = self.headers.get("Authorization", "")
            state.authorizations.append(authorization)
            principal = state.principal(authorization)
            if principal is None:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Bearer realm="trino"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = json.dumps(
                {
                    "id": "q1",
                    "infoUri": f"http://127.0.0.1:{state.port}/ui/query.html?q1",
                    "stats": {"state": "FINISHED"},
                    "columns": [
                        {
                            "name": "principal",
                            "type": "varchar",
                            "typeSignature": {"rawType": "varchar", "arguments": []},
                        }
                    ],
                    "data": [[principal]],
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def coordinator() -> Iterator[Coordinator]:
    state = Coordinator()
    server = ThreadingHTTPServer(("127.0.0.1", 0), coordinator_handler(state))
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
    if state.validator is not None:
        state.validator.close()


def trino_validator(idp: Idp) -> Validator:
    return Validator(ValidatorConfig(idp.issuer, (TRINO_AUDIENCE,), idp.jwks_uri))


def run(coordinator: Coordinator, auth: trino.auth.Authentication, user: str = "svc") -> Any:
    connection = trino.dbapi.connect(
        host="127.0.0.1",
        port=coordinator.port,
        user=user,
        http_scheme="http",
        auth=auth,
        allow_insecure_auth=True,
        max_attempts=1,
    )
    try:
        cursor = connection.cursor()
        cursor.execute("SELECT current_user")
        return cursor.fetchall()
    finally:
        connection.close()


def jti(authorization: str) -> str:
    token = authorization.removeprefix("Bearer ")
    return jwt.decode(token, options={"verify_signature": False})["jti"]


def test_bearer_token_is_refreshed_as_it_expires(
    idp: Idp, coordinator: Coordinator, recorder: Recorder
) -> None:
    coordinator.validator = trino_validator(idp)
    login = idp.certificate_client(scope="trino", resource=TRINO_AUDIENCE)
    auth = trino_authentication(login, http=recorder.client())
    assert run(coordinator, auth, "sidecar-cert") == [["sidecar-cert"]]
    assert run(coordinator, auth, "sidecar-cert") == [["sidecar-cert"]]
    time.sleep(1.1)  # the IdP issues 2 s tokens: now past the refresh point
    assert run(coordinator, auth, "sidecar-cert") == [["sidecar-cert"]]
    first, cached, refreshed = coordinator.authorizations
    assert first == cached and first.startswith("Bearer ")
    assert jti(refreshed) != jti(first)
    assert len(recorder.requests) == 2


def test_401_drops_the_token_and_retries_once(
    idp: Idp, coordinator: Coordinator, recorder: Recorder
) -> None:
    coordinator.validator = trino_validator(idp)
    login = idp.secret_client(scope="trino", resource=TRINO_AUDIENCE)
    auth = trino_authentication(login, http=recorder.client())
    assert isinstance(auth, ClientCredentialsAuthentication)
    revoked = auth.tokens.token()
    coordinator.revoked_jti.add(jti(revoked))
    assert run(coordinator, auth, "sidecar-basic") == [["sidecar-basic"]]
    refused, accepted = coordinator.authorizations
    assert refused == f"Bearer {revoked}" and accepted != refused
    assert len(recorder.requests) == 2


def test_a_persistent_401_is_retried_only_once(
    idp: Idp, coordinator: Coordinator, recorder: Recorder
) -> None:
    coordinator.refuse_all = True
    login = idp.secret_client(scope="trino", resource=TRINO_AUDIENCE)
    with pytest.raises(trino.exceptions.HttpError, match="401"):
        run(coordinator, trino_authentication(login, http=recorder.client()))
    assert len(coordinator.authorizations) == 2
    assert len(recorder.requests) == 2


def test_password_login_uses_basic_auth(coordinator: Coordinator) -> None:
    coordinator.password = ("svc", "pa:ss w+rd")
    auth = trino_authentication(PasswordLogin("svc", Secret("pa:ss w+rd")))
    assert run(coordinator, auth) == [["svc"]]
    with pytest.raises(trino.exceptions.HttpError, match="401"):
        run(coordinator, trino_authentication(PasswordLogin("svc", Secret("wrong"))))
    assert [a.split(" ")[0] for a in coordinator.authorizations] == ["Basic", "Basic"]
