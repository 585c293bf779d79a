"""Token validation against the real IdP's JWKS, and against a fixed key set."""

from __future__ import annotations

import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pdp.auth import (
    PermissionDenied,
    RemoteKeys,
    StaticKeys,
    TokenSource,
    Unauthenticated,
    Validator,
    ValidatorConfig,
)
from pdp.auth.validator import token_scopes
from tests.auth.support import PDP_AUDIENCE, REJECTED_TOKENS, Idp, Recorder


def config_for(idp: Idp, **overrides: Any) -> ValidatorConfig:
    values: dict[str, Any] = {
        "issuer": idp.issuer,
        "audience": (PDP_AUDIENCE,),
        "jwks_uri": idp.jwks_uri,
        "required_scopes": ("pdp.decide",),
    }
    return ValidatorConfig(**{**values, **overrides})


def idp_token(idp: Idp, scope: str = "pdp.decide", **kw: Any) -> str:
    with TokenSource(idp.secret_client(scope=scope, **kw)) as source:
        return source.token()


@pytest.fixture
def validator(idp: Idp) -> Iterator[Validator]:
    with contextlib.closing(Validator(config_for(idp))) as validator:
        yield validator


def test_accepts_a_real_token(idp: Idp, validator: Validator) -> None:
    principal = validator.validate(idp_token(idp, scope="pdp.decide pdp.read"))
    assert principal.subject == "sidecar-basic"
    assert principal.client_id == "sidecar-basic"
    assert principal.scopes == {"pdp.decide", "pdp.read"}
    assert principal.issuer == idp.issuer


def test_accepts_a_token_from_the_certificate_client(idp: Idp, validator: Validator) -> None:
    with TokenSource(idp.certificate_client(algorithm="PS256")) as source:
        assert validator.validate(source.token()).subject == "sidecar-cert"


@pytest.mark.parametrize("case", list(REJECTED_TOKENS))
def test_rejects(idp: Idp, validator: Validator, case: str) -> None:
    make, reason = REJECTED_TOKENS[case]
    with pytest.raises(Unauthenticated, match=reason):
        validator.validate(make(idp))


def test_missing_scope_is_permission_denied(idp: Idp, validator: Validator) -> None:
    with pytest.raises(PermissionDenied, match=r"pdp\.decide"):
        validator.validate(idp_token(idp, scope="pdp.read"))


def test_pinned_token_type(idp: Idp) -> None:
    pinned = Validator(config_for(idp, token_type="application/at+jwt"), StaticKeys(idp.jwks()))
    assert pinned.validate(idp_token(idp)).subject == "sidecar-basic"  # oidc-provider: at+jwt
    with pytest.raises(Unauthenticated, match="token type"):
        pinned.validate(idp.forge(header={"typ": "JWT"}))


@pytest.mark.parametrize(
    "claims",
    [
        # made when the test runs, not when it is collected (the IdP may take a while to start)
        lambda: {"exp": int(time.time()) - 10},  # expired, but within the 30 s leeway
        lambda: {"aud": ["api://other", PDP_AUDIENCE]},
        lambda: {"scope": None, "scp": "pdp.decide other"},  # Entra user token
        lambda: {"scope": None, "scp": ["pdp.decide"]},  # Okta
        lambda: {"scope": None, "roles": ["pdp.decide"]},  # Entra app-only token
    ],
    ids=["expired-within-leeway", "audience-list", "scp-string", "scp-list", "roles"],
)
def test_accepts(idp: Idp, validator: Validator, claims: Callable[[], dict[str, Any]]) -> None:
    assert "pdp.decide" in validator.validate(idp.forge(**claims())).scopes


def test_token_for_another_resource_of_the_same_issuer_is_refused(
    idp: Idp, validator: Validator
) -> None:
    with pytest.raises(Unauthenticated, match="audience"):
        validator.validate(idp_token(idp, scope="trino", resource="api://trino"))


# --- JWKS fetching --------------------------------------------------------------------------


def test_key_rotation_is_picked_up_without_restart(idp: Idp, recorder: Recorder) -> None:
    clock = [0.0]
    keys = RemoteKeys(idp.jwks_uri, http=recorder.client(), clock=lambda: clock[0])
    validator = Validator(config_for(idp), keys)
    before = idp_token(idp)
    validator.validate(before)
    new_kid = idp.rotate()
    after = idp_token(idp)
    assert jwt.get_unverified_header(after)["kid"] == new_kid
    clock[0] += 1.0  # the refresh rate limit (1 s) has passed; the cache lifespan has not
    assert validator.validate(after).subject == "sidecar-basic"
    assert validator.validate(before).subject == "sidecar-basic"  # old key still published
    assert len(recorder.requests) == 2


def test_a_flood_of_unknown_kids_is_rate_limited(idp: Idp, recorder: Recorder) -> None:
    keys = RemoteKeys(idp.jwks_uri, http=recorder.client(), min_refresh_interval=60)
    validator = Validator(config_for(idp), keys)
    validator.validate(idp_token(idp))
    for _ in range(100):
        with pytest.raises(Unauthenticated, match="no signing key"):
            validator.validate(idp.forge(header={"kid": str(uuid.uuid4())}))
    assert len(recorder.requests) == 1


def test_jwks_down_with_an_empty_cache_fails_closed(idp: Idp, recorder: Recorder) -> None:
    token = idp_token(idp)
    idp.jwks_outage(True)
    try:
        cold = Validator(config_for(idp), RemoteKeys(idp.jwks_uri, http=recorder.client()))
        with pytest.raises(Unauthenticated, match="signing keys are unavailable"):
            cold.validate(token)
    finally:
        idp.jwks_outage(False)


def test_jwks_down_with_a_warm_cache_keeps_validating(
    idp: Idp, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    clock = [0.0]
    keys = RemoteKeys(idp.jwks_uri, http=recorder.client(), clock=lambda: clock[0])
    validator = Validator(config_for(idp), keys)
    token = idp_token(idp)
    validator.validate(token)
    idp.jwks_outage(True)
    try:
        clock[0] += 3600  # far past the cache lifespan: a refetch is due and fails
        with caplog.at_level(logging.WARNING, logger="pdp.auth"):
            assert validator.validate(token).subject == "sidecar-basic"
        assert "cannot fetch JWKS" in caplog.text and "503" in caplog.text
    finally:
        idp.jwks_outage(False)


# --- a fixed key set: the validation logic without any network ------------------------------


def test_static_keys_accept_ps256_and_es256_from_keys_without_alg() -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    jwks = {
        "keys": [
            {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key())), "kid": "r"},
            {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key())), "kid": "e"},
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},  # ignored: not asymmetric
            {
                **json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key())),
                "kid": "x",
                "use": "enc",
            },  # ignored: not for signatures
        ]
    }
    config = ValidatorConfig("https://idp.example", ("api://pdp",), "https://idp.example/jwks")
    validator = Validator(config, StaticKeys(jwks))
    now = int(time.time())
    claims = {
        "iss": "https://idp.example",
        "aud": "api://pdp",
        "sub": "s",
        "iat": now,
        "exp": now + 60,
    }
    for key, kid, algorithm in (
        (rsa_key, "r", "PS256"),
        (rsa_key, "r", "RS256"),
        (ec_key, "e", "ES256"),
    ):
        token = jwt.encode(claims, key, algorithm=algorithm, headers={"kid": kid})
        assert validator.validate(token).subject == "s"
    hs = jwt.encode(claims, "s" * 32, algorithm="HS256", headers={"kid": "hmac"})
    with pytest.raises(Unauthenticated, match="HS256"):
        validator.validate(hs)
    enc = jwt.encode(claims, rsa_key, algorithm="RS256", headers={"kid": "x"})
    with pytest.raises(Unauthenticated, match="no signing key"):
        validator.validate(enc)


@pytest.mark.parametrize(
    ("claims", "scopes"),
    [
        ({"scope": "a b"}, {"a", "b"}),
        ({"scp": "a b"}, {"a", "b"}),
        ({"scp": ["a", "b"]}, {"a", "b"}),
        ({"roles": ["a"], "scope": "b"}, {"a", "b"}),
        ({"scope": 7, "scp": [1, "a"]}, {"a"}),
        ({}, set()),
    ],
)
def test_token_scopes(claims: dict[str, Any], scopes: set[str]) -> None:
    assert token_scopes(claims) == scopes
