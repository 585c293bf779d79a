"""Running the PDP: load and watch its configuration, serve gRPC, publish revisions."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import grpc

from pdp.admin import create_app
from pdp.admin.auth import bearer, trusted_header
from pdp.admin.server import serving
from pdp.auth import Secret, Validator, ValidatorConfig
from pdp.auth.devissuer import DEV_USER_CLIENT, DevIssuer
from pdp.auth.grpc import BearerAuthInterceptor
from pdp.config.errors import Problem
from pdp.config.listen import ensure_listen_free
from pdp.config.watch import Watched
from pdp.control import (
    ControlPlane,
    CrawlerFactory,
    Scheduler,
    SnapshotFeed,
    SyncRunner,
    platform_crawlers,
)
from pdp.core.model import ClusterSettings
from pdp.grants.syncer import syncer_from
from pdp.policy import Revisions
from pdp.service import monitor
from pdp.service.config import DevIssuerSettings, PdpConfig
from pdp.service.reload import PdpYaml, watch_cluster, watch_inputs, watch_policy
from pdp.service.server import PdpServicer, start_server
from pdp.store import Store
from pdp.store.engine import safe_url

log = logging.getLogger(__name__)


@dataclass
class RunningPdp:
    server: grpc.aio.Server
    port: int
    policy: Watched[Any]  # the files: a snapshot, or with a store the inputs it is composed of
    cluster: Watched[ClusterSettings]
    resources: contextlib.AsyncExitStack
    revisions: Revisions
    pdp_yaml: PdpYaml
    tasks: list[asyncio.Task] = field(default_factory=list)
    control: ControlPlane | None = None
    feed: SnapshotFeed | None = None
    admin_port: int | None = None
    scheduler: Scheduler | None = None

    async def stop(self, grace: float = 1.0) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.server.stop(grace)
        if self.control is not None:
            self.control.runner.stopping.set()  # no job waits any longer for the store
            await asyncio.to_thread(self.control.join, 10.0)
        await self.resources.aclose()


async def _authentication(
    config: PdpConfig, resources: contextlib.AsyncExitStack
) -> ValidatorConfig | None:
    auth = config.auth
    if isinstance(auth, DevIssuerSettings):
        auth = await _start_dev_issuer(auth, resources)
    if auth is None:
        log.warning("PDP accepts every caller: its configuration says `auth: none`")
    return auth


async def _start_dev_issuer(
    dev: DevIssuerSettings, resources: contextlib.AsyncExitStack
) -> ValidatorConfig:
    # Share the secret with the sidecar `pdp up` starts next, through its environment.
    secret = os.environ.get(dev.client_secret_env) or secrets.token_urlsafe(32)
    os.environ[dev.client_secret_env] = secret
    issuer = DevIssuer(
        {dev.client_id: Secret(secret)},
        scopes=(dev.scope,),
        user_client=DEV_USER_CLIENT if dev.user_tokens else None,
    )
    host, _, port = dev.listen.rpartition(":")
    await resources.enter_async_context(issuer.serving(int(port), host))
    return issuer.validator_config(required_scopes=(dev.scope,))


async def start_pdp(
    config: PdpConfig,
    listen: str | None = None,
    *,
    crawler_factory: CrawlerFactory | None = None,
    admin_listen: str | None = None,
    schedule_tick: float | None = None,
) -> RunningPdp:
    """Start the PDP. With `store:` in pdp.yaml also the control plane: the snapshot composed
    of files and store, object sync jobs and their schedule, and (with `admin:`) the admin API.
    `crawler_factory` replaces the platform crawlers (tests); `schedule_tick` overrides
    `control.scheduleTickSeconds`."""
    ensure_listen_free(listen or config.listen)  # before the development issuer starts
    resources = contextlib.AsyncExitStack()
    auth = await _authentication(config, resources)
    interceptors: list[grpc.aio.ServerInterceptor] = []
    validator = None
    if auth is not None:
        validator = Validator(auth)
        resources.callback(validator.close)
        interceptors.append(BearerAuthInterceptor(validator))
    cluster = watch_cluster(config)
    tasks: list[asyncio.Task] = []
    control = feed = None
    scheduler: Scheduler | None = None
    admin_port = None
    policy: Watched[Any]
    if config.store is None:
        log.info("control plane off: pdp.yaml names no `store:` (no object sync, no admin API)")
        policy = watch_policy(config)
        pdp_yaml = PdpYaml(config, policy, cluster)
        revisions = Revisions(policy.current)
        policy.on_change = revisions.publish
    else:
        key = config.store_secret_key.reveal() if config.store_secret_key else None
        # No migration here: the feed migrates when it reaches the store, so that a store
        # that is down at start does not keep the PDP from deciding on its policy files.
        store = await asyncio.to_thread(Store.open, config.store, secret_key=key, upgrade=False)
        resources.callback(store.close)
        inputs = watch_inputs(config)
        policy = inputs
        pdp_yaml = PdpYaml(config, policy, cluster, inputs=True)
        feed = await asyncio.to_thread(
            partial(
                SnapshotFeed.open,
                inputs.current,
                store,
                config.control.store_poll_seconds,
                needs_upgrade=True,
                saved=config.control.snapshot_file,
            )
        )
        inputs.on_change = feed.update_files
        revisions = feed.revisions
        settings = config.control
        factory = crawler_factory or platform_crawlers(
            store, settings.secret_references, settings.network
        )
        runner = SyncRunner(store, factory)
        control = ControlPlane(
            store,
            runner,
            factory,
            cascade_threshold=settings.cascade_job_threshold,
            references=settings.secret_references,
            network=settings.network,
        )
        the_feed = feed
        control.declared = lambda: the_feed.inputs.documents
        control.trino_catalog_files = config.control.trino_catalog_files
        runner.requests_wanted = lambda: the_feed.revisions.current.new_tag_targeted
        if cluster is not None:
            the_cluster = cluster
            control.cluster = lambda: the_cluster.current
        tasks.append(asyncio.create_task(feed.run()))
        scheduler = Scheduler(runner, schedule_tick or config.control.schedule_tick_seconds)
        tasks.append(asyncio.create_task(scheduler.run()))
        log.info("control plane on: store %s", safe_url(config.store))
    serving_grpc = asyncio.Event()
    the_store_feed = feed

    def degraded() -> str | None:
        store = the_store_feed.degraded if the_store_feed is not None else None
        reasons = (*([store] if store else []), *revisions.current.ungoverned)
        return "; ".join(reasons) if reasons else None

    if config.monitoring is not None:
        await resources.enter_async_context(
            monitor.serving(
                config.monitoring,
                lambda: None if serving_grpc.is_set() else "gRPC not serving yet",
                degraded,
            )
        )
        tasks.append(asyncio.create_task(_follow_revisions(revisions)))
    else:
        log.info("monitoring: off (no monitoring section in %s)", config.file)

    def rejected() -> tuple[Problem, ...]:
        return (*pdp_yaml.watched.rejected, *policy.rejected, *cluster.rejected)

    servicer = PdpServicer(revisions, lambda: cluster.current, rejected=rejected, degraded=degraded)
    server, port = await start_server(servicer, listen or config.listen, interceptors, config.tls)
    serving_grpc.set()
    running = RunningPdp(
        server, port, policy, cluster, resources, revisions, pdp_yaml, tasks, control, feed
    )
    running.scheduler = scheduler
    running.tasks.append(asyncio.create_task(_log_warnings(revisions)))
    for watched in (pdp_yaml.watched, policy, cluster):
        running.tasks.append(asyncio.create_task(watched.run(pdp_yaml.interval)))
    syncer = syncer_from(config.grants, monitor.grant_sync_outcome)
    if syncer is not None:
        running.tasks.append(asyncio.create_task(syncer.run(revisions)))
    if control is not None and config.admin is not None:

        def directory() -> Any:
            return revisions.current.directory

        if validator is not None and auth is not None:
            admin_validator = Validator(replace(auth, required_scopes=config.admin.required_scopes))
            resources.callback(admin_validator.close)
            authenticate = bearer(admin_validator, directory, config.admin.user_claim)
        else:
            log.warning("admin API trusts the %s header: tests and loopback only", "X-Pdp-User")
            authenticate = trusted_header(directory)
        app = create_app(
            control,
            authenticate,
            lambda: feed.store_available if feed else True,
            lambda: revisions.current.revision,
            lambda: revisions.current.warnings,
            degraded,
            config.admin.max_body_bytes,
        )
        admin_port = await resources.enter_async_context(
            serving(app, admin_listen or config.admin.listen)
        )
        running.admin_port = admin_port
    return running


async def _log_warnings(revisions: Revisions) -> None:
    """The snapshot's warnings: all at start, then those a reload (policy edit, sync) adds."""
    before: frozenset[str] = frozenset()
    async for snapshot in revisions.subscribe():
        for warning in snapshot.warnings:
            if warning not in before:
                log.warning("revision %s: %s", snapshot.revision, warning)
        before = frozenset(snapshot.warnings)


async def _follow_revisions(revisions: Revisions) -> None:
    previous = None
    async for snapshot in revisions.subscribe():
        monitor.revision_published(snapshot.revision, previous)
        previous = snapshot.revision
