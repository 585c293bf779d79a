"""The token-response decoder and the refresh rule, as tables."""

from __future__ import annotations

import httpx
import pytest

from pdp.auth import (
    InvalidClient,
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    InvalidTarget,
    MalformedTokenResponse,
    TokenRequestRejected,
    UnauthorizedClient,
    UnsupportedGrantType,
)
from pdp.auth.flow import Token, parse_response


def response(status: int, body: object = None, text: str | None = None) -> httpx.Response:
    if text is not None:
        return httpx.Response(status, text=text)
    return httpx.Response(status, json=body)


@pytest.mark.parametrize(
    ("status", "error", "expected"),
    [
        (400, "invalid_request", InvalidRequest),
        (401, "invalid_client", InvalidClient),
        (400, "invalid_grant", InvalidGrant),
        (400, "unauthorized_client", UnauthorizedClient),
        (400, "unsupported_grant_type", UnsupportedGrantType),
        (400, "invalid_scope", InvalidScope),
        (400, "invalid_target", InvalidTarget),
        (400, "something_new", TokenRequestRejected),
    ],
)
def test_oauth_errors_are_typed(status: int, error: str, expected: type[Exception]) -> None:
    body = {"error": error, "error_description": "why it failed"}
    with pytest.raises(expected) as caught:
        parse_response(response(status, body), sent_at=0)
    assert type(caught.value) is expected
    assert caught.value.error == error
    assert caught.value.description == "why it failed"
    assert caught.value.status == status


def test_entra_error_details_are_kept_for_support() -> None:
    body = {
        "error": "invalid_client",
        "error_description": "AADSTS7000215: Invalid client secret provided.",
        "error_codes": [7000215],
        "trace_id": "t-1",
        "correlation_id": "c-2",
        "timestamp": "ignored",
    }
    with pytest.raises(InvalidClient) as caught:
        parse_response(response(401, body), sent_at=0)
    assert caught.value.details == {
        "error_codes": "[7000215]",
        "trace_id": "t-1",
        "correlation_id": "c-2",
    }
    assert "trace_id=t-1" in str(caught.value) and "AADSTS7000215" in str(caught.value)


@pytest.mark.parametrize(
    ("status", "text", "error"),
    [(400, "<html>Bad Request</html>", "http_400"), (403, "", "http_403"), (302, "", "http_302")],
)
def test_errors_without_an_oauth_body_still_reject(status: int, text: str, error: str) -> None:
    with pytest.raises(TokenRequestRejected) as caught:
        parse_response(response(status, text=text), sent_at=0)
    assert caught.value.error == error


@pytest.mark.parametrize(
    "body",
    [
        {"token_type": "Bearer", "expires_in": 60},
        {"access_token": "", "token_type": "Bearer"},
        {"access_token": "t", "token_type": "DPoP", "expires_in": 60},
        {"access_token": "t", "expires_in": 60},
        {"access_token": "t", "token_type": "Bearer", "expires_in": -5},
        {"access_token": "t", "token_type": "Bearer", "expires_in": "soon"},
        {"access_token": "t", "token_type": "Bearer", "expires_in": True},
        ["not", "an", "object"],
    ],
)
def test_unusable_success_responses_are_malformed(body: object) -> None:
    with pytest.raises(MalformedTokenResponse):
        parse_response(response(200, body), sent_at=0)


@pytest.mark.parametrize(
    ("body", "lifetime", "scope"),
    [
        ({"access_token": "t", "token_type": "Bearer", "expires_in": 3600}, 3600, None),
        ({"access_token": "t", "token_type": "bearer", "expires_in": "3599"}, 3599, None),
        ({"access_token": "t", "token_type": "Bearer", "scope": "a b"}, 300, "a b"),
    ],
)
def test_success_responses(body: dict[str, object], lifetime: float, scope: str | None) -> None:
    token = parse_response(response(200, body), sent_at=100)
    assert token.access_token == "t"
    assert token.expires_at == 100 + lifetime
    assert token.scope == scope


@pytest.mark.parametrize(
    ("lifetime", "refresh_after"),
    [
        (3600, 3240),  # 10 % of the lifetime before expiry
        (300, 240),  # at least 60 s before expiry
        (90, 45),  # never later than half the lifetime
        (2, 1),
    ],
)
def test_refresh_point(lifetime: float, refresh_after: float) -> None:
    token = Token.issued("t", None, lifetime, sent_at=1000)
    assert token.refresh_at == 1000 + refresh_after
    assert token.expires_at == 1000 + lifetime


def test_token_repr_hides_the_token() -> None:
    assert "secret-token" not in repr(Token.issued("secret-token", None, 60, 0))
