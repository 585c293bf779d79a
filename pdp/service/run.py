"""Running the PDP: load and watch its configuration, serve gRPC, publish revisions."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from dataclasses import dataclass, field

import grpc

from pdp.auth import Secret, Validator, ValidatorConfig
from pdp.auth.devissuer import DevIssuer
from pdp.auth.grpc import BearerAuthInterceptor
from pdp.config.errors import Problem
from pdp.config.listen import ensure_listen_free
from pdp.config.watch import Watched
from pdp.core.model import ClusterSettings
from pdp.grants.sync import syncer_from
from pdp.policy import PolicySnapshot, Revisions
from pdp.service import monitor
from pdp.service.config import DevIssuerSettings, PdpConfig
from pdp.service.reload import PdpYaml, watch_cluster, watch_policy
from pdp.service.server import PdpServicer, start_server

log = logging.getLogger(__name__)


@dataclass
class RunningPdp:
    server: grpc.aio.Server
    port: int
    policy: Watched[PolicySnapshot]
    cluster: Watched[ClusterSettings]
    resources: contextlib.AsyncExitStack
    pdp_yaml: PdpYaml
    tasks: list[asyncio.Task] = field(default_factory=list)

    async def stop(self, grace: float = 1.0) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.server.stop(grace)
        await self.resources.aclose()


async def _authentication(
    config: PdpConfig, resources: contextlib.AsyncExitStack
) -> list[grpc.aio.ServerInterceptor]:
    auth = config.auth
    if isinstance(auth, DevIssuerSettings):
        auth = await _start_dev_issuer(auth, resources)
    if auth is None:
        log.warning("PDP accepts every caller: its configuration says `auth: none`")
        return []
    validator = Validator(auth)
    resources.callback(validator.close)
    return [BearerAuthInterceptor(validator)]


async def _start_dev_issuer(
    dev: DevIssuerSettings, resources: contextlib.AsyncExitStack
) -> ValidatorConfig:
    # Share the secret with the sidecar `pdp up` starts next, through its environment.
    secret = os.environ.get(dev.client_secret_env) or secrets.token_urlsafe(32)
    os.environ[dev.client_secret_env] = secret
    issuer = DevIssuer({dev.client_id: Secret(secret)}, scopes=(dev.scope,))
    host, _, port = dev.listen.rpartition(":")
    await resources.enter_async_context(issuer.serving(int(port), host))
    return issuer.validator_config(required_scopes=(dev.scope,))


async def _follow_revisions(revisions: Revisions) -> None:
    previous = None
    async for snapshot in revisions.subscribe():
        monitor.revision_published(snapshot.revision, previous)
        previous = snapshot.revision


async def start_pdp(
    config: PdpConfig,
    listen: str | None = None,
) -> RunningPdp:
    ensure_listen_free(listen or config.listen)  # before the development issuer starts
    resources = contextlib.AsyncExitStack()
    interceptors = await _authentication(config, resources)
    policy = watch_policy(config)
    cluster = watch_cluster(config)
    pdp_yaml = PdpYaml(config, policy, cluster)
    revisions = Revisions(policy.current)
    policy.on_change = revisions.publish
    serving = asyncio.Event()
    monitoring: list[asyncio.Task] = []
    if config.monitoring is not None:
        await resources.enter_async_context(
            monitor.serving(
                config.monitoring, lambda: None if serving.is_set() else "gRPC not serving yet"
            )
        )
        monitoring.append(asyncio.create_task(_follow_revisions(revisions)))
    else:
        log.info("monitoring: off (no monitoring section in %s)", config.file)

    def rejected() -> tuple[Problem, ...]:
        return (*pdp_yaml.watched.rejected, *policy.rejected, *cluster.rejected)

    servicer = PdpServicer(revisions, lambda: cluster.current, rejected=rejected)
    server, port = await start_server(servicer, listen or config.listen, interceptors, config.tls)
    serving.set()
    running = RunningPdp(server, port, policy, cluster, resources, pdp_yaml)
    running.tasks += monitoring
    for watched in (pdp_yaml.watched, policy, cluster):
        running.tasks.append(asyncio.create_task(watched.run(pdp_yaml.interval)))
    syncer = syncer_from(config.grants, monitor.grant_sync_outcome)
    if syncer is not None:
        running.tasks.append(asyncio.create_task(syncer.run(revisions)))
    return running
