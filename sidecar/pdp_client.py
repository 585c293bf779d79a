"""The sidecar's one seam to the PDP: registry, entitlements, and the revision watch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import grpc

from pdp.api import KEEPALIVE_CLIENT, SILENCE_SECONDS, pb, rpc
from pdp.auth import AsyncTokenSource, TokenError
from pdp.auth.grpc import bearer_interceptors
from pdp.collector import made_frozen
from pdp.config.errors import Problem
from pdp.core.model import AccessGrantMapping, Identity, Registry, TableKey
from pdp.policy.delta import RevisionDelta
from pdp.wire import proto
from pdp.wire.proto import Grants


class PdpUnavailable(Exception):
    """The PDP could not answer; whatever depended on it is denied."""


# gRPC waits 1 s after a failed connection attempt, then 1.6 times longer each time, up to
# 2 minutes: a PDP back after a restart would be found only when the wait runs out (seconds
# later). Try again every 0.1 s at first, at most every 0.5 s: an attempt against a PDP that
# is away is one refused TCP connection. (The connection deadline keeps its default of 20 s,
# `grpc.min_reconnect_backoff_ms`: a slow handshake still succeeds.)
RECONNECT = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
]


class PdpClient:
    def __init__(
        self,
        target: str,
        timeout: float,
        tokens: AsyncTokenSource | None = None,
        tls: grpc.ChannelCredentials | None = None,
    ) -> None:
        options = [
            ("grpc.max_receive_message_length", 256 * 1024 * 1024),
            *KEEPALIVE_CLIENT,
            *RECONNECT,
        ]
        interceptors = bearer_interceptors(tokens) if tokens else None
        self._channel = (
            grpc.aio.secure_channel(target, tls, options=options, interceptors=interceptors)
            if tls
            else grpc.aio.insecure_channel(target, options=options, interceptors=interceptors)
        )
        self._stub = rpc.PolicyDecisionPointStub(self._channel)
        self._timeout = timeout
        self._tokens = tokens
        # The configuration edits the PDP said it rejected, as of its last revision event.
        self.rejected: tuple[Problem, ...] = ()
        self.warnings: tuple[str, ...] = ()  # the PDP's snapshot warnings, likewise
        # Why the PDP said it is degraded (its store unreachable), as of its last revision
        # event; empty when all is well.
        self.degraded = ""

    async def registry(self) -> tuple[str, Registry, AccessGrantMapping]:
        try:
            message = await self._stub.GetRegistry(pb.RegistryRequest(), timeout=self._timeout)
        except (grpc.aio.AioRpcError, TokenError) as exc:
            raise PdpUnavailable(f"GetRegistry: {_describe(exc)}") from exc
        try:
            registry, mapping = proto.registry_from_pb(message)
        except ValueError as exc:
            raise PdpUnavailable(f"GetRegistry: {exc}") from exc
        return message.revision, registry, mapping

    async def entitlements(
        self, identity: Identity
    ) -> tuple[str, Sequence[int] | Grants, frozenset[str], dict[str, str], frozenset[TableKey]]:
        """The revision, the positions in that revision's registry of the policies that apply
        to the user (or, from a PDP before compact entitlements, their grants per table), their
        data policies (masks, rendered row filters) and what they own."""
        try:
            message = await self._stub.GetEntitlements(
                pb.EntitlementsRequest(identity=proto.identity_to_pb(identity), compact=True),
                timeout=self._timeout,
            )
        except (grpc.aio.AioRpcError, TokenError) as exc:
            raise PdpUnavailable(f"GetEntitlements: {_describe(exc)}") from exc
        masks, filters = proto.data_policies_from_pb(message)
        owned = proto.owned_from_pb(message)
        if message.tables:
            return message.revision, proto.table_grants_from_pb(message), masks, filters, owned
        return message.revision, message.policies, masks, filters, owned

    async def revisions(
        self, held: str | None = None
    ) -> AsyncIterator[tuple[str, RevisionDelta | None]]:
        """Yields the current revision, then each new one or the same one again as a heartbeat,
        until the stream breaks or falls silent for SILENCE_SECONDS; each with what changed
        from the revision before it (the first: from `held`, the revision the caller holds),
        when the PDP sent that (None: drop everything)."""
        call = None
        try:
            call = self._stub.WatchRevision(
                pb.WatchRequest(revision=held or "", relative_targets=True)
            )
            while True:
                try:
                    async with asyncio.timeout(SILENCE_SECONDS):
                        event = await call.read()
                except TimeoutError:
                    raise PdpUnavailable(
                        f"WatchRevision: nothing heard for {SILENCE_SECONDS:g}s "
                        "(PDP frozen or network silent)"
                    ) from None
                if event is grpc.aio.EOF:
                    raise PdpUnavailable("WatchRevision: the PDP ended the stream")
                delta = (  # kept until followed; in a thread (9 ms for 100 of 100,000 tables)
                    await asyncio.to_thread(made_frozen, proto.delta_from_pb, event.delta)
                    if event.HasField("delta")
                    else None
                )
                self.rejected = tuple(
                    Problem(p.file, p.line or None, p.message) for p in event.rejected
                )
                self.warnings = tuple(event.warnings)
                self.degraded = event.degraded
                yield event.revision, delta
        except (grpc.aio.AioRpcError, TokenError) as exc:
            raise PdpUnavailable(f"WatchRevision: {_describe(exc)}") from exc
        finally:
            if call is not None:
                call.cancel()

    async def close(self) -> None:
        await self._channel.close()
        if self._tokens is not None:
            await self._tokens.aclose()


def _describe(exc: Exception) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    return f"cannot get a token: {exc}"
