"""The PDP gRPC service: decisions, entitlements, the registry and a watch of revisions."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence

import grpc
from cachetools import LRUCache

from pdp.api import HEARTBEAT_SECONDS, KEEPALIVE_SERVER, METADATA_LIMIT, pb, rpc
from pdp.config.errors import Problem
from pdp.config.listen import ensure_listen_free
from pdp.core import decide
from pdp.core.model import ClusterSettings, Identity, PolicyGrants, Settings, View
from pdp.policy import PolicySnapshot, Revisions
from pdp.policy.delta import RevisionDelta
from pdp.service.monitor import measured, streamed
from pdp.wire import proto

log = logging.getLogger(__name__)


class PdpServicer(rpc.PolicyDecisionPointServicer):
    def __init__(
        self,
        revisions: Revisions,
        cluster: Callable[[], ClusterSettings],
        cache_size: int = 10_000,
        rejected: Callable[[], Sequence[Problem]] = tuple,
        degraded: Callable[[], str | None] = lambda: None,
    ) -> None:
        self._revisions, self._cluster, self._rejected = revisions, cluster, rejected
        self._degraded = degraded
        # (revision, identity) -> Trino grants (their tables' grants are remembered as asked)
        self._grants: LRUCache = LRUCache(cache_size)
        self._entitlements: LRUCache = LRUCache(cache_size)  # same key -> encoded message
        # The registry message of the current revision: every sidecar worker asks for it after
        # each revision, and building it for 100,000 tables takes seconds of CPU.
        self._registry: pb.Registry | None = None
        # by whether its retargeted policies may be relative (watchers of both kinds at once)
        self._encoded_delta: dict[bool, tuple[RevisionDelta, pb.RevisionDelta]] = {}

    def _effective(self, snapshot: PolicySnapshot) -> Settings:
        return self._cluster().effective(snapshot.mapping)

    def _trino_grants(self, snapshot: PolicySnapshot, identity: Identity) -> PolicyGrants:
        key = (snapshot.revision, identity)
        grants = self._grants.get(key)
        if grants is None:
            subject = snapshot.subject(identity.user, identity.groups)
            grants = self._grants[key] = snapshot.trino_grants(subject)
        return grants

    def _view(self, snapshot: PolicySnapshot, settings: Settings, identity: Identity) -> View:
        return View(settings, snapshot.registry, self._trino_grants(snapshot, identity))

    @measured("Decide")
    async def Decide(
        self, request: pb.DecideRequest, context: grpc.aio.ServicerContext
    ) -> pb.DecideResponse:
        snapshot = self._revisions.current
        core_request = proto.request_from_pb(request)
        view = self._view(snapshot, self._effective(snapshot), core_request.identity)
        decision = decide(view, core_request)
        return pb.DecideResponse(
            revision=snapshot.revision, decision=proto.decision_to_pb(decision)
        )

    @measured("BatchDecide")
    async def BatchDecide(
        self, request: pb.BatchDecideRequest, context: grpc.aio.ServicerContext
    ) -> pb.BatchDecideResponse:
        snapshot = self._revisions.current
        settings = self._effective(snapshot)
        decisions = []
        for item in request.requests:
            core_request = proto.request_from_pb(item)
            view = self._view(snapshot, settings, core_request.identity)
            decisions.append(proto.decision_to_pb(decide(view, core_request)))
        return pb.BatchDecideResponse(revision=snapshot.revision, decisions=decisions)

    @measured("GetEntitlements")
    async def GetEntitlements(
        self, request: pb.EntitlementsRequest, context: grpc.aio.ServicerContext
    ) -> pb.Entitlements:
        snapshot = self._revisions.current
        identity = proto.identity_from_pb(request.identity)
        key = (snapshot.revision, identity, request.compact)
        cached = self._entitlements.get(key)
        if cached is None:
            subject = snapshot.subject(identity.user, identity.groups)
            masks, filters = snapshot.data_policies(subject)
            cached = self._entitlements[key] = proto.entitlements_to_pb(
                snapshot.revision,
                snapshot.trino_positions(subject) if request.compact else (),
                masks,
                filters,
                snapshot.owned(subject),
            )
            if not request.compact:  # a sidecar before compact entitlements: per table
                grants = self._trino_grants(snapshot, identity)
                cached.tables.extend(proto.table_grants_to_pb(grants))
        return cached

    @measured("GetRegistry")
    async def GetRegistry(
        self, request: pb.RegistryRequest, context: grpc.aio.ServicerContext
    ) -> pb.Registry:
        snapshot = self._revisions.current
        registry = self._registry
        if registry is None or registry.revision != snapshot.revision:
            registry = self._registry = proto.registry_to_pb(
                snapshot.revision, snapshot.registry, snapshot.mapping
            )
        return registry

    @streamed
    async def WatchRevision(
        self, request: pb.WatchRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.RevisionEvent]:
        # Every HEARTBEAT_SECONDS without a change the current revision is sent again, so that
        # a watcher can tell a quiet PDP from a frozen one or a silent network (the stream
        # itself raises only when the connection visibly breaks).
        # Each event also carries the configuration edits rejected (hot reload kept serving the
        # last good one), why the PDP is degraded (its store unreachable) and the snapshot's
        # warnings, so that a sidecar's /health can say so.
        # A new revision carries its delta only when this stream sent the one it starts from.
        # The first event follows the revision the watcher holds, if it says so.
        # A watcher that does not say it reads relative targets is sent whole ones.
        relative = request.relative_targets
        revision = self._revisions.current.revision
        held = request.revision or None
        first = self._revisions.delta_from(held, relative) if held != revision else None
        yield self._event(revision, first)
        while True:
            delta = None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(HEARTBEAT_SECONDS):
                    newer = await self._revisions.after(revision)
                delta = self._revisions.delta_from(revision, relative)
                revision = newer.revision
            yield self._event(revision, delta)

    def _event(self, revision: str, delta: RevisionDelta | None = None) -> pb.RevisionEvent:
        rejected = [
            pb.ConfigProblem(file=p.file, line=p.line or 0, message=p.message)
            for p in self._rejected()
        ]
        current = self._revisions.current
        warnings = current.warnings if current.revision == revision else ()
        return pb.RevisionEvent(
            revision=revision,
            rejected=rejected,
            degraded=self._degraded() or "",
            warnings=warnings,
            delta=None if delta is None else self._delta_pb(delta),
        )

    def _delta_pb(self, delta: RevisionDelta) -> pb.RevisionDelta:
        """Encoded once per revision, however many sidecars follow."""
        encoded = self._encoded_delta.get(delta.relative)
        if encoded is None or encoded[0] is not delta:
            encoded = self._encoded_delta[delta.relative] = (delta, proto.delta_to_pb(delta))
        return encoded[1]


async def start_server(
    servicer: PdpServicer,
    listen: str,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    tls: grpc.ServerCredentials | None = None,
) -> tuple[grpc.aio.Server, int]:
    """Start serving on `listen` (host:port; port 0 picks a free one). Returns the bound port."""
    server = grpc.aio.server(
        interceptors=list(interceptors),
        # Without SO_REUSEPORT off, a second PDP on the same port would start and share it.
        options=[
            ("grpc.max_send_message_length", 256 * 1024 * 1024),
            ("grpc.so_reuseport", 0),
            *KEEPALIVE_SERVER,
            *METADATA_LIMIT,
        ],
    )
    rpc.add_PolicyDecisionPointServicer_to_server(servicer, server)
    ensure_listen_free(listen)  # names the address, unlike gRPC's own error
    try:
        port = server.add_secure_port(listen, tls) if tls else server.add_insecure_port(listen)
    except RuntimeError as exc:  # "Failed to bind to address ..."
        raise OSError(f"cannot listen on {listen}: {exc}") from None
    if port == 0:
        raise OSError(f"cannot listen on {listen}")
    await server.start()
    log.info("PDP serving gRPC on %s", listen.rsplit(":", 1)[0] + f":{port}")
    return server, port
