"""Parsing `auth:` blocks: the documented shapes work, and every mistake names its key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import hashes, serialization

from pdp.auth import (
    ClientCertificate,
    ClientCredentials,
    ClientSecret,
    ConfigError,
    ValidatorConfig,
    client_auth_from_config,
    server_auth_from_config,
)
from pdp.auth.assertion import x5t
from pdp.auth.trino import PasswordLogin, trino_auth_from_config
from tests.auth.support import GeneratedCertificate, make_certificate

ENV = {"SIDECAR_SECRET": "s3cr3t-value", "KEY_PASSWORD": "open sesame"}


@pytest.fixture(scope="module")
def pem_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    directory = tmp_path_factory.mktemp("pem")
    certificate = make_certificate("cfg")
    other = make_certificate("other")
    encrypted = certificate.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(ENV["KEY_PASSWORD"].encode()),
    )
    files = {
        "cert": certificate.certificate_pem,
        "key": certificate.private_key_pem,
        "encrypted_key": encrypted,
        "other_key": other.private_key_pem,
        "secret": b"from-a-file\n",
        "empty": b"",
    }
    paths = {}
    for name, content in files.items():
        path: Path = directory / name
        path.write_bytes(content)
        paths[name] = str(path)
    return {"paths": paths, "certificate": certificate}


def client_block(text: str, pem: dict[str, Any] | None = None) -> Any:
    if pem is not None:
        text = text.format(**pem["paths"])
    return yaml.safe_load(text)["auth"]


def test_client_secret_from_the_environment() -> None:
    block = client_block("""
auth:
  tokenEndpoint: https://login.example.com/tenant/oauth2/v2.0/token
  clientId: sidecar
  scope: api://pdp/.default
  clientSecretEnv: SIDECAR_SECRET
""")
    credentials = ClientCredentials.from_mapping(block, env=ENV)
    assert credentials == ClientCredentials(
        "https://login.example.com/tenant/oauth2/v2.0/token",
        "sidecar",
        ClientSecret(credentials.credential.secret),  # type: ignore[union-attr]
        scope="api://pdp/.default",
    )
    assert isinstance(credentials.credential, ClientSecret)
    assert credentials.credential.secret.reveal() == "s3cr3t-value"
    assert credentials.auth_method == "client_secret_basic"
    assert "s3cr3t-value" not in repr(credentials)


def test_client_secret_from_a_file_sent_in_the_body(pem_files: dict[str, Any]) -> None:
    block = client_block(
        """
auth:
  tokenEndpoint: http://127.0.0.1:9000/token
  clientId: sidecar
  scope: [pdp.decide, pdp.read]
  resource: api://pdp
  clientSecretFile: {secret}
  clientSecretMethod: client_secret_post
""",
        pem_files,
    )
    credentials = ClientCredentials.from_mapping(block, env={})
    assert credentials.scope == "pdp.decide pdp.read"
    assert credentials.resource == "api://pdp"
    assert credentials.auth_method == "client_secret_post"
    assert credentials.credential.secret.reveal() == "from-a-file"  # type: ignore[union-attr]


def test_relative_files_resolve_against_the_config_directory(pem_files: dict[str, Any]) -> None:
    directory = Path(pem_files["paths"]["cert"]).parent
    block = {**BASE, "certificateFile": "cert", "privateKeyFile": "key"}
    credentials = ClientCredentials.from_mapping(block, env={}, base=directory)
    assert credentials.auth_method == "private_key_jwt"
    login = trino_auth_from_config(
        {"username": "svc", "passwordFile": "secret"}, env={}, base=directory
    )
    assert isinstance(login, PasswordLogin) and login.password.reveal() == "from-a-file"


@pytest.mark.parametrize("thumbprint", ["hex", "hex-colons", "base64url"])
def test_client_certificate(pem_files: dict[str, Any], thumbprint: str) -> None:
    certificate: GeneratedCertificate = pem_files["certificate"]
    digest = certificate.certificate.fingerprint(hashes.SHA1())
    pasted = {
        "hex": digest.hex().upper(),
        "hex-colons": ":".join(f"{b:02x}" for b in digest),
        "base64url": x5t(certificate.certificate),
    }[thumbprint]
    block = client_block(
        f"""
auth:
  tokenEndpoint: https://idp.example/token
  clientId: sidecar
  certificateFile: {{cert}}
  privateKeyFile: {{encrypted_key}}
  privateKeyPasswordEnv: KEY_PASSWORD
  thumbprint: "{pasted}"
  thumbprintHeaders: [x5t, x5t#S256]
  signingAlgorithm: PS256
  assertionAudience: https://idp.example
""",
        pem_files,
    )
    credentials = ClientCredentials.from_mapping(block, env=ENV)
    assert isinstance(credentials.credential, ClientCertificate)
    assert credentials.auth_method == "private_key_jwt"
    assert credentials.credential.algorithm == "PS256"
    assert credentials.credential.thumbprint_headers == ("x5t", "x5t#S256")
    assert credentials.credential.assertion_audience == "https://idp.example"
    assert "PRIVATE KEY" not in repr(credentials)


BASE = {"tokenEndpoint": "https://idp.example/token", "clientId": "sidecar"}
SECRET = {"clientSecretEnv": "SIDECAR_SECRET"}
CERT = {"certificateFile": "{cert}", "privateKeyFile": "{key}"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({**SECRET, "tokenEndpoint": None}, "auth.tokenEndpoint: required"),
        ({**SECRET, "clientId": ""}, "auth.clientId: expected a non-empty"),
        ({**SECRET, "clientSecert": "x"}, "auth.clientSecert: unknown key"),
        ({"clientSecretEnv": "NOT_SET"}, "auth.clientSecretEnv: environment variable NOT_SET"),
        ({**SECRET, "clientSecretFile": "{secret}"}, "auth.clientSecretEnv: give either"),
        ({"clientSecretFile": "{empty}"}, "auth.clientSecretFile: the file is empty"),
        ({"clientSecretFile": "/nonexistent/secret"}, "auth.clientSecretFile: cannot read"),
        ({}, "auth: give clientSecretEnv or clientSecretFile, or certificateFile"),
        (
            {**SECRET, "certificateFile": "{cert}"},
            "auth.certificateFile: give a client secret or a certificate",
        ),
        ({**SECRET, "signingAlgorithm": "RS256"}, "auth.signingAlgorithm: only applies"),
        (
            {**SECRET, "clientSecretMethod": "client_secret_jwt"},
            "auth.clientSecretMethod: 'client_secret_jwt' is not one of",
        ),
        (
            {**SECRET, "tokenEndpoint": "http://idp.example/token"},
            "auth.tokenEndpoint: 'http://idp.example/token' must be an https URL",
        ),
        ({**SECRET, "resource": "pdp"}, "auth.resource: must be an absolute URI"),
        ({**SECRET, "scope": 5}, "auth.scope: expected a string or a list"),
        (
            {"certificateFile": "{cert}", "privateKeyFile": "{other_key}"},
            "auth.privateKeyFile: the private key does not belong",
        ),
        (
            {"certificateFile": "{cert}", "privateKeyFile": "{encrypted_key}"},
            "auth.privateKeyFile: the private key is encrypted: give its password too",
        ),
        (
            {"certificateFile": "{key}", "privateKeyFile": "{key}"},
            "auth.certificateFile: not a PEM certificate",
        ),
        ({**CERT, "thumbprint": "AB" * 20}, "auth.thumbprint: does not match"),
        ({**CERT, "thumbprint": "abc"}, "auth.thumbprint: expected a SHA-1 thumbprint"),
        ({**CERT, "thumbprintHeaders": "kid"}, "auth.thumbprintHeaders: 'kid' is not one of"),
        ({**CERT, "signingAlgorithm": "HS256"}, "auth.signingAlgorithm: 'HS256' is not one of"),
        (
            {**CERT, "assertionAudience": "idp"},
            "auth.assertionAudience: 'idp' must be an https URL",
        ),
        (
            {**CERT, "clientSecretMethod": "client_secret_basic"},
            "auth.clientSecretMethod: only applies to client secrets",
        ),
    ],
)
def test_client_mistakes_name_the_key(
    pem_files: dict[str, Any], changes: dict[str, Any], message: str
) -> None:
    block = {**BASE, **changes}
    block = {
        k: v.format(**pem_files["paths"]) if isinstance(v, str) else v
        for k, v in block.items()
        if v is not None
    }
    with pytest.raises(ConfigError) as caught:
        ClientCredentials.from_mapping(block, env=ENV)
    assert str(caught.value).startswith(message)
    for secret in ENV.values():
        assert secret not in str(caught.value)


def test_server_block() -> None:
    block = yaml.safe_load("""
auth:
  issuer: https://login.microsoftonline.com/tenant-id/v2.0
  audience: [00000000-0000-0000-0000-000000000001, api://pdp]
  jwksUri: https://login.microsoftonline.com/tenant-id/discovery/v2.0/keys
  requiredScope: pdp.decide
  algorithms: [RS256]
  leewaySeconds: 45
  tokenType: JWT
""")["auth"]
    assert ValidatorConfig.from_mapping(block) == ValidatorConfig(
        issuer="https://login.microsoftonline.com/tenant-id/v2.0",
        audience=("00000000-0000-0000-0000-000000000001", "api://pdp"),
        jwks_uri="https://login.microsoftonline.com/tenant-id/discovery/v2.0/keys",
        required_scopes=("pdp.decide",),
        algorithms=("RS256",),
        leeway_seconds=45,
        token_type="JWT",
    )


def test_server_defaults() -> None:
    config = ValidatorConfig.from_mapping(
        {
            "issuer": "https://idp.example",
            "audience": "api://pdp",
            "jwksUri": "https://idp.example/jwks",
        }
    )
    assert config.algorithms == ("RS256", "PS256", "ES256")
    assert config.leeway_seconds == 30
    assert config.required_scopes == ()
    assert config.token_type is None


SERVER = {
    "issuer": "https://idp.example",
    "audience": "api://pdp",
    "jwksUri": "https://idp.example/jwks",
}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"issuer": None}, "pdp.auth.issuer: required"),
        ({"audience": []}, "pdp.auth.audience: required"),
        ({"jwksUri": "http://idp.example/jwks"}, "pdp.auth.jwksUri: must be an https URL"),
        ({"algorithms": ["RS256", "HS256"]}, "pdp.auth.algorithms: 'HS256' is not allowed"),
        ({"algorithms": ["none"]}, "pdp.auth.algorithms: 'none' is not allowed"),
        ({"leewaySeconds": 600}, "pdp.auth.leewaySeconds: must be between 0 and 300"),
        ({"leewaySeconds": "30"}, "pdp.auth.leewaySeconds: expected a number"),
        ({"requiredScopes": "x"}, "pdp.auth.requiredScopes: unknown key"),
    ],
)
def test_server_mistakes_name_the_key(changes: dict[str, Any], message: str) -> None:
    block = {k: v for k, v in {**SERVER, **changes}.items() if v is not None}
    with pytest.raises(ConfigError) as caught:
        ValidatorConfig.from_mapping(block, where="pdp.auth")
    assert str(caught.value).startswith(message)


def test_auth_is_off_only_when_written_so(caplog: pytest.LogCaptureFixture) -> None:
    assert client_auth_from_config("none") is None
    assert "auth: none: authentication is OFF" in caplog.text
    assert server_auth_from_config("none", where="pdp.auth") is None
    assert trino_auth_from_config("none") is None
    for parse in (client_auth_from_config, server_auth_from_config, trino_auth_from_config):
        with pytest.raises(ConfigError, match=r"sidecar\.auth: missing; .* `auth: none`"):
            parse(None, "sidecar.auth")
    with pytest.raises(ConfigError, match="expected a mapping, got str"):
        server_auth_from_config("off")
    assert server_auth_from_config(SERVER) == ValidatorConfig.from_mapping(SERVER)


def test_trino_logins() -> None:
    password = trino_auth_from_config({"username": "svc", "passwordEnv": "SIDECAR_SECRET"}, env=ENV)
    assert password == PasswordLogin("svc", password.password)  # type: ignore[union-attr]
    assert "s3cr3t-value" not in repr(password)
    oauth = trino_auth_from_config({**BASE, "clientSecretEnv": "SIDECAR_SECRET"}, env=ENV)
    assert isinstance(oauth, ClientCredentials)
    with pytest.raises(ConfigError, match="auth: give username/password or tokenEndpoint"):
        trino_auth_from_config(
            {**BASE, "username": "svc", "passwordEnv": "SIDECAR_SECRET"}, env=ENV
        )
    with pytest.raises(ConfigError, match=r"auth\.passwordEnv: give passwordEnv or passwordFile"):
        trino_auth_from_config({"username": "svc"}, env=ENV)
