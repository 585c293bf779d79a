"""The real OpenID Connect provider of the auth tests (tests/idp, oidc-provider) with its
development login page on, and one client: the console's, authorization code with PKCE."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.auth.support import IDP_DIR, PDP_AUDIENCE, _ensure_node_modules, _read_ready_line

CLIENT = "pdp-console"
SECRET = "console-test-secret"  # the PDP reads it from PDP_CONSOLE_SECRET


@contextlib.contextmanager
def provider(workdir: Path, console: str, token_ttl: int = 300) -> Iterator[str]:
    """Yields the issuer URL of a provider whose client is the console at `console` (its base
    URL): code + PKCE, refresh tokens, sign-out back to /console/signedout. Access tokens for
    the admin API live `token_ttl` seconds. Any login name signs in (the development page)."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is required for the IdP harness (tests/idp); install Node.js 20+")
    _ensure_node_modules()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key)), "kid": "k1", "use": "sig"}
    jwk.pop("key_ops")  # ["sign"] alone: the provider could not verify its own ID token hints
    config = {
        "signingKeys": [jwk],
        "devInteractions": True,
        "refreshTokens": True,
        "clients": [
            {
                "client_id": CLIENT,
                "client_secret": SECRET,
                "token_endpoint_auth_method": "client_secret_post",
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "redirect_uris": [f"{console}/console/callback"],
                "post_logout_redirect_uris": [f"{console}/console/signedout"],
            }
        ],
        "resources": {PDP_AUDIENCE: {"scope": "pdp.admin", "ttl": token_ttl}},
        "defaultResource": PDP_AUDIENCE,
    }
    path = workdir / "idp.json"
    path.write_text(json.dumps(config))
    with (workdir / "idp.log").open("wb") as log:
        process = subprocess.Popen(
            [node, str(IDP_DIR / "server.mjs"), str(path)],
            cwd=IDP_DIR,
            stdout=subprocess.PIPE,
            stderr=log,
        )
    try:
        yield str(_read_ready_line(process, timeout=20)["issuer"])
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
