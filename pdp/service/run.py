"""Running the PDP: load and watch its configuration, serve gRPC, publish revisions."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc

from pdp.config.load import load_settings, load_snapshot
from pdp.config.watch import Watched
from pdp.core.model import DEFAULT_MAPPING, Settings
from pdp.policy.snapshot import PolicySnapshot
from pdp.service.config import PdpConfig
from pdp.service.server import PdpServicer, Revisions, start_server


@dataclass
class RunningPdp:
    server: grpc.aio.Server
    port: int
    policy: Watched[PolicySnapshot]
    settings: Watched[Settings] | None
    tasks: list[asyncio.Task] = field(default_factory=list)

    async def stop(self, grace: float = 1.0) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.server.stop(grace)


def watch_policy(config: PdpConfig) -> Watched[PolicySnapshot]:
    paths = [*config.policy_files, *([config.mapping_file] if config.mapping_file else [])]
    return Watched("policy", paths, lambda: load_snapshot(config.policy_files, config.mapping_file))


def watch_pdp_settings(config: PdpConfig) -> Watched[Settings] | None:
    if config.properties_file is None:
        return None
    path = config.properties_file
    return Watched("cluster properties", [path], lambda: load_settings(path, None, DEFAULT_MAPPING))


async def start_pdp(
    config: PdpConfig,
    listen: str | None = None,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
) -> RunningPdp:
    policy = watch_policy(config)
    settings = watch_pdp_settings(config)
    revisions = Revisions(policy.current.revision)
    policy.on_change = lambda snapshot: revisions.publish(snapshot.revision)
    servicer = PdpServicer(
        snapshot=lambda: policy.current,
        settings=(lambda: settings.current) if settings else Settings,
        revisions=revisions,
    )
    server, port = await start_server(servicer, listen or config.listen, interceptors)
    running = RunningPdp(server, port, policy, settings)
    for watched in filter(None, (policy, settings)):
        running.tasks.append(asyncio.create_task(watched.run(config.reload_interval)))
    return running
