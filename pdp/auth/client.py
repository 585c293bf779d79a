"""Token sources: a cached, single-flight client-credentials token for every outbound call.

`TokenSource` serves threads (the Trino client path); `AsyncTokenSource` serves asyncio code
(the sidecar's grpc.aio client). Both drive the same `flow.fetch_token` and `flow.TokenCache`.

Usage: call `token()` before each request; after a 401 / UNAUTHENTICATED from the resource call
`invalidate(that_token)` and retry once.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Generator
from types import TracebackType
from typing import Self

import httpx

from pdp.auth.credentials import ClientCredentials
from pdp.auth.errors import TokenError
from pdp.auth.flow import (
    DEFAULT_RETRY,
    Clock,
    Outcome,
    RetryPolicy,
    Step,
    Token,
    TokenCache,
    fetch_token,
)

# Generous for a slow IdP, still short enough that callers fail closed in bounded time.
DEFAULT_TIMEOUT = 10.0

Flow = Generator[Step, Outcome, Token]


class _Source:
    def __init__(self, credentials: ClientCredentials, retry: RetryPolicy, clock: Clock) -> None:
        self.credentials = credentials
        self._retry = retry
        self._clock = clock
        self._cache = TokenCache(credentials.client_id, retry, clock)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.credentials!r})"

    def invalidate(self, access_token: str | None = None) -> None:
        """Drop the cached token; given a token, only if it is still the cached one.

        Passing the rejected token stops a burst of 401s from causing a burst of refreshes.
        """
        self._cache.invalidate(access_token)

    def _flow(self) -> Flow:
        return fetch_token(self.credentials, self._retry, self._clock)


class TokenSource(_Source):
    """Thread-safe token source. Pass `http` to share a client (its settings are then yours)."""

    def __init__(
        self,
        credentials: ClientCredentials,
        *,
        http: httpx.Client | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__(credentials, retry, clock)
        self._owns_http = http is None
        self._http = http or httpx.Client(timeout=DEFAULT_TIMEOUT)
        self._lock = threading.Lock()

    def token(self) -> str:
        if (fresh := self._cache.fresh()) is not None:
            return fresh
        usable = self._cache.usable()
        # One refresh at a time; others keep using the current token while it is valid.
        if not self._lock.acquire(blocking=usable is None):
            assert usable is not None
            return usable
        try:
            if (ready := self._cache.before_fetch()) is not None:
                return ready
            try:
                token = self._drive(self._flow())
            except TokenError as error:
                return self._cache.failed(error)
            return self._cache.store(token)
        finally:
            self._lock.release()

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _drive(self, flow: Flow) -> Token:
        outcome: Outcome = None
        while True:
            try:
                step = flow.send(outcome)
            except StopIteration as done:
                return done.value
            if isinstance(step, float):
                time.sleep(step)
                outcome = None
                continue
            try:
                outcome = self._http.send(step)
            except httpx.TransportError as error:
                outcome = error


class AsyncTokenSource(_Source):
    """asyncio token source, for the tasks of one event loop."""

    def __init__(
        self,
        credentials: ClientCredentials,
        *,
        http: httpx.AsyncClient | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__(credentials, retry, clock)
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(timeout=DEFAULT_TIMEOUT)
        self._lock = asyncio.Lock()

    async def token(self) -> str:
        if (fresh := self._cache.fresh()) is not None:
            return fresh
        usable = self._cache.usable()
        if usable is not None and self._lock.locked():
            return usable
        async with self._lock:
            if (ready := self._cache.before_fetch()) is not None:
                return ready
            try:
                token = await self._drive(self._flow())
            except TokenError as error:
                return self._cache.failed(error)
            return self._cache.store(token)

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def _drive(self, flow: Flow) -> Token:
        outcome: Outcome = None
        while True:
            try:
                step = flow.send(outcome)
            except StopIteration as done:
                return done.value
            if isinstance(step, float):
                await asyncio.sleep(step)
                outcome = None
                continue
            try:
                outcome = await self._http.send(step)
            except httpx.TransportError as error:
                outcome = error
