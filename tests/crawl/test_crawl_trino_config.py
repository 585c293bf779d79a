"""The Trino crawler's endpoint and credentials (no cluster needed; the crawls themselves are in
tests/e2e/test_trino_crawler.py, against the e2e suite's real Trino)."""

from __future__ import annotations

import pytest
import trino.auth

from pdp.auth import ClientCredentials
from pdp.auth.client import TokenSource
from pdp.auth.trino import ClientCredentialsAuthentication, PasswordLogin
from pdp.crawl import CrawlError, open_crawler
from pdp.crawl.trino import TrinoCrawler
from tests.auth.support import make_certificate


def trino_crawler(credentials: dict[str, object], **endpoint: object) -> TrinoCrawler:
    made = open_crawler("trino", {"host": "trino.example", **endpoint}, credentials, {"P": "pw"})
    assert isinstance(made, TrinoCrawler)
    return made


def test_password_login_uses_the_username_as_the_system_user():
    c = trino_crawler({"username": "svc_sync", "passwordEnv": "P"})
    assert c.user == "svc_sync"
    assert isinstance(c.login, PasswordLogin)
    assert isinstance(c._authentication(), trino.auth.BasicAuthentication)
    assert (c.http_scheme, c.port) == ("https", 443)


def test_an_oauth_client_needs_the_user_the_token_maps_to():
    oauth = {"tokenEndpoint": "https://idp/token", "clientId": "sync", "clientSecretEnv": "P"}
    with pytest.raises(CrawlError, match="user"):
        trino_crawler(dict(oauth))
    c = trino_crawler({**oauth, "user": "svc_sync"})
    assert c.user == "svc_sync"
    auth = c._authentication()
    assert isinstance(auth, ClientCredentialsAuthentication)
    assert isinstance(auth.tokens, TokenSource)
    c.close()


def test_an_oauth_client_certificate_is_given_as_pem_values():
    """As the admin API stores it: `certificate` and `privateKey` as text (decrypted by the
    store), never files; a key that is not the certificate's is named."""
    certificate, other = make_certificate("sync"), make_certificate("other")
    oauth = {
        "tokenEndpoint": "https://idp/token",
        "clientId": "sync",
        "user": "svc_sync",
        "certificate": certificate.certificate_pem.decode(),
        "privateKey": certificate.private_key_pem.decode(),
    }
    c = trino_crawler(oauth)
    assert isinstance(c.login, ClientCredentials) and c.login.auth_method == "private_key_jwt"
    assert "PRIVATE KEY" not in repr(vars(c))
    with pytest.raises(CrawlError, match=r"trino\.credentials\.privateKey: the private key does"):
        trino_crawler({**oauth, "privateKey": other.private_key_pem.decode()})
    with pytest.raises(CrawlError, match=r"trino\.credentials\.certificate: not a PEM certificate"):
        trino_crawler({**oauth, "certificate": "-----BEGIN CERTIFICATE-----"})


def test_the_admin_pattern_is_matched_in_full():
    c = trino_crawler({"user": "svc_crawler_x"}, httpScheme="http", adminUsers="svc_[a-z]+")
    listing = c.list(())
    assert listing.children is None
    assert listing.error and "does not match immuta.user.admin" in listing.error


def test_the_password_never_shows():
    c = trino_crawler({"username": "svc_sync", "passwordEnv": "P"})
    assert "'pw'" not in repr(vars(c)) and "'pw'" not in repr(c.login)


@pytest.mark.parametrize("key", ["user", "username"])
def test_a_user_name_alone_is_a_cluster_without_authentication_over_http(key):
    c = trino_crawler({key: "trino-admin"}, httpScheme="http", port=8080)
    assert (c.user, c.login) == ("trino-admin", None)
    with pytest.raises(CrawlError, match=f"credentials.{key}.*only over http"):
        trino_crawler({key: "trino-admin"})
