"""Signing keys for token validation: a fixed key set, or a cached remote JWKS.

The validator asks `cached(kid)` first (never blocks) and calls `get(kid)` (may block on the
network) only on a miss, from a worker thread when it runs inside an event loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import httpx
import jwt

from pdp.auth.credentials import check_endpoint_url
from pdp.auth.errors import Unauthenticated

logger = logging.getLogger("pdp.auth")

# A PDP must answer fast even when the IdP is slow (PyJWKClient's default is 30 s).
DEFAULT_TIMEOUT = 5.0
DEFAULT_LIFESPAN = 300.0
# At most one fetch per interval however many unknown `kid`s arrive, yet short enough that a
# key rotated at the IdP is picked up within seconds (PyJWKClient waits 30 s).
DEFAULT_MIN_REFRESH_INTERVAL = 1.0
_MAX_JWKS_BYTES = 512 * 1024

VerificationKey = Any  # a cryptography public key object, as PyJWT's `PyJWK.key` returns it


class KeySource(Protocol):
    def cached(self, kid: str) -> VerificationKey | None:
        """The key if it is known and current; never blocks."""

    def get(self, kid: str) -> VerificationKey:
        """The key, fetching if needed; raises Unauthenticated if there is none."""


def parse_jwks(jwks: object) -> dict[str, VerificationKey]:
    """Signing keys by `kid`; keys without a kid, for encryption, or of unknown type are skipped."""
    if not isinstance(jwks, Mapping) or not isinstance(jwks.get("keys"), list):
        raise ValueError("not a JWK set")
    keys: dict[str, VerificationKey] = {}
    for jwk in jwks["keys"]:
        if not isinstance(jwk, Mapping) or not isinstance(jwk.get("kid"), str):
            continue
        if jwk.get("use", "sig") != "sig":
            continue
        try:
            keys[jwk["kid"]] = jwt.PyJWK(dict(jwk)).key
        except jwt.PyJWTError:
            continue
    if not keys:
        raise ValueError("the JWK set has no usable signing key")
    return keys


class StaticKeys:
    """A fixed key set, e.g. for tests or an IdP whose keys are shipped as a file."""

    def __init__(self, jwks: Mapping[str, Any]) -> None:
        self._keys = parse_jwks(jwks)

    def cached(self, kid: str) -> VerificationKey | None:
        return self._keys.get(kid)

    def get(self, kid: str) -> VerificationKey:
        key = self._keys.get(kid)
        if key is None:
            raise Unauthenticated(f"no signing key with kid {kid[:64]!r}")
        return key


class RemoteKeys:
    """A JWKS URL, cached for `lifespan` and refetched early when an unknown `kid` shows up.

    A failed fetch keeps the previous keys (a warm cache keeps validating while the IdP is
    down); with no keys at all every token is rejected.
    """

    def __init__(
        self,
        uri: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        lifespan: float = DEFAULT_LIFESPAN,
        min_refresh_interval: float = DEFAULT_MIN_REFRESH_INTERVAL,
        http: httpx.Client | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        check_endpoint_url(uri, "JWKS URI")
        self.uri = uri
        self._lifespan = lifespan
        self._min_interval = min_refresh_interval
        self._owns_http = http is None
        # Redirects are not followed: the JWKS location is configuration, not a server's choice.
        self._http = http or httpx.Client(timeout=timeout, follow_redirects=False)
        self._clock = clock
        self._keys: dict[str, VerificationKey] = {}
        self._fetched_at = float("-inf")
        self._attempted_at = float("-inf")
        self._lock = threading.Lock()

    def cached(self, kid: str) -> VerificationKey | None:
        if self._clock() - self._fetched_at >= self._lifespan:
            return None
        return self._keys.get(kid)

    def get(self, kid: str) -> VerificationKey:
        if (key := self.cached(kid)) is not None:
            return key
        known = self._keys.get(kid)
        # A stale but known key is served at once while a single caller refreshes.
        if self._lock.acquire(blocking=known is None):
            try:
                if self.cached(kid) is None:
                    self._refresh()
            finally:
                self._lock.release()
        key = self._keys.get(kid)
        if key is not None:
            return key
        if not self._keys:
            raise Unauthenticated("signing keys are unavailable (JWKS could not be fetched)")
        raise Unauthenticated(f"no signing key with kid {kid[:64]!r}")

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def _refresh(self) -> None:
        now = self._clock()
        if now - self._attempted_at < self._min_interval:
            return
        self._attempted_at = now
        try:
            response = self._http.get(self.uri, headers={"Accept": "application/json"})
            response.raise_for_status()
            if len(response.content) > _MAX_JWKS_BYTES:
                raise ValueError("the JWK set is too large")
            self._keys = parse_jwks(response.json())
            self._fetched_at = now
        except (httpx.HTTPError, ValueError) as error:
            logger.warning("cannot fetch JWKS from %s: %s", self.uri, error)
