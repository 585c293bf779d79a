"""The sidecar's one seam to the PDP: registry, entitlements, and the revision watch."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import grpc

from pdp.api import pb, rpc
from pdp.core.model import AccessGrantMapping, Identity, PolicyGrant, Registry, TableKey
from pdp.service import convert

Metadata = Callable[[], Awaitable[Sequence[tuple[str, str]]]]


class PdpUnavailable(Exception):
    """The PDP could not answer; whatever depended on it is denied."""


class PdpClient:
    def __init__(self, target: str, timeout: float, metadata: Metadata | None = None) -> None:
        self._channel = grpc.aio.insecure_channel(
            target, options=[("grpc.max_receive_message_length", 256 * 1024 * 1024)]
        )
        self._stub = rpc.PolicyDecisionPointStub(self._channel)
        self._timeout = timeout
        self._metadata = metadata

    async def _call_metadata(self) -> Sequence[tuple[str, str]] | None:
        return None if self._metadata is None else await self._metadata()

    async def registry(self) -> tuple[str, Registry, AccessGrantMapping]:
        try:
            message = await self._stub.GetRegistry(
                pb.RegistryRequest(), timeout=self._timeout, metadata=await self._call_metadata()
            )
        except grpc.aio.AioRpcError as exc:
            raise PdpUnavailable(f"GetRegistry: {exc.code().name}: {exc.details()}") from exc
        registry, mapping = convert.registry_from_pb(message)
        return message.revision, registry, mapping

    async def entitlements(
        self, identity: Identity
    ) -> tuple[str, dict[TableKey, tuple[PolicyGrant, ...]]]:
        try:
            message = await self._stub.GetEntitlements(
                pb.EntitlementsRequest(identity=convert.identity_to_pb(identity)),
                timeout=self._timeout,
                metadata=await self._call_metadata(),
            )
        except grpc.aio.AioRpcError as exc:
            raise PdpUnavailable(f"GetEntitlements: {exc.code().name}: {exc.details()}") from exc
        return message.revision, convert.entitlements_from_pb(message)

    async def revisions(self) -> AsyncIterator[str]:
        """Yields the current revision, then each new one, until the stream breaks."""
        try:
            call = self._stub.WatchRevision(pb.WatchRequest(), metadata=await self._call_metadata())
            async for event in call:
                yield event.revision
        except grpc.aio.AioRpcError as exc:
            raise PdpUnavailable(f"WatchRevision: {exc.code().name}: {exc.details()}") from exc

    async def close(self) -> None:
        await self._channel.close()
