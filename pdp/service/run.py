"""Running the PDP: load and watch its configuration, serve gRPC, publish revisions."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import grpc

from pdp.admin import create_app
from pdp.admin.auth import bearer, trusted_header
from pdp.admin.server import serving
from pdp.api import HEARTBEAT_SECONDS
from pdp.auth import Secret, Validator, ValidatorConfig
from pdp.auth.devissuer import DEV_USER_CLIENT, DevIssuer
from pdp.auth.grpc import BearerAuthInterceptor
from pdp.collector import Frozen
from pdp.config.errors import Problem
from pdp.config.listen import ensure_listen_free
from pdp.config.load import PolicyInputs
from pdp.config.watch import Watched
from pdp.console import mount_console, sign_in_method
from pdp.control import (
    ControlPlane,
    CrawlerFactory,
    JobRunner,
    Scheduler,
    SnapshotFeed,
    SyncRunner,
    platform_crawlers,
)
from pdp.control.catalogs import fronted
from pdp.core.model import ClusterSettings
from pdp.grants.syncer import syncer_from
from pdp.policy import PolicySnapshot, Revisions
from pdp.policy.model import Technology
from pdp.service import monitor
from pdp.service.config import DevIssuerSettings, PdpConfig
from pdp.service.reload import (
    PdpYaml,
    first_inputs,
    first_policy,
    watch_cluster,
    watch_inputs,
    watch_policy,
)
from pdp.service.server import PdpServicer, start_server
from pdp.store import Store
from pdp.store.engine import safe_url

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Control:
    """The control plane of a PDP with a store, built in one direction."""

    store: Store
    inputs: Watched[PolicyInputs]  # the policy files, which the feed composes with the store
    feed: SnapshotFeed
    runner: SyncRunner
    plane: ControlPlane
    scheduler: Scheduler


@dataclass
class RunningPdp:
    server: grpc.aio.Server
    port: int
    policy: Watched[Any]  # the files: a snapshot, or with a store the inputs it is composed of
    cluster: Watched[ClusterSettings]
    resources: contextlib.AsyncExitStack
    revisions: Revisions
    pdp_yaml: PdpYaml
    tasks: list[asyncio.Task]
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
            self.control.job_runner.stopping.set()  # no job waits any longer for the store
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


def _validator(
    auth: ValidatorConfig | None, resources: contextlib.AsyncExitStack
) -> Validator | None:
    if auth is None:
        return None
    validator = Validator(auth)
    resources.callback(validator.close)
    return validator


def _background(
    config: PdpConfig,
    revisions: Revisions,
    watched: tuple[Watched[Any], ...],
    interval: Callable[[], float],
    frozen: Frozen,
) -> list[asyncio.Task]:
    """The tasks that follow the PDP's revisions and files once it serves: warnings, reloads,
    grant sync, the collector's step."""
    tasks = [asyncio.create_task(_log_warnings(revisions)), asyncio.create_task(_collect(frozen))]
    tasks += [asyncio.create_task(w.run(interval)) for w in watched]
    syncer = syncer_from(config.grants, monitor.grant_sync_outcome)
    if syncer is not None:
        tasks.append(asyncio.create_task(syncer.run(revisions)))
    return tasks


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
    validator = _validator(auth, resources)
    cluster = watch_cluster(config)
    control = None
    policy: Watched[Any]
    if config.store is None:
        policy, revisions = _files_only(config)
    else:
        control = await _control(config, cluster, resources, crawler_factory, schedule_tick)
        policy, revisions = control.inputs, control.feed.revisions
    pdp_yaml = PdpYaml(config, policy, cluster, inputs=control is not None)
    feed = control.feed if control is not None else None
    catalog_files = control.plane.trino_catalog_files if control is not None else None
    degraded = Degraded(feed, revisions, catalog_files)
    serving_grpc = asyncio.Event()
    tasks = [asyncio.create_task(control.feed.run())] if control is not None else []
    if control is not None:
        tasks.append(asyncio.create_task(control.scheduler.run()))
    tasks += await _monitoring(config, resources, serving_grpc, degraded, revisions)

    def rejected() -> tuple[Problem, ...]:
        return (*pdp_yaml.watched.rejected, *policy.rejected, *cluster.rejected)

    frozen = Frozen()
    frozen.settle()  # before serving: one full collection, then everything alive frozen
    servicer = PdpServicer(revisions, lambda: cluster.current, rejected=rejected, degraded=degraded)
    interceptors = [BearerAuthInterceptor(validator)] if validator is not None else []
    server, port = await start_server(servicer, listen or config.listen, interceptors, config.tls)
    serving_grpc.set()
    watched = (pdp_yaml.watched, policy, cluster)
    tasks += _background(config, revisions, watched, pdp_yaml.interval, frozen)
    admin_port = None
    if control is not None and config.admin is not None:
        admin_port = await _admin(
            config, control, auth, revisions, degraded, resources, admin_listen
        )
    plane, scheduler = (control.plane, control.scheduler) if control else (None, None)
    running = (server, port, policy, cluster, resources, revisions, pdp_yaml, tasks)
    return RunningPdp(*running, plane, feed, admin_port, scheduler)


def _files_only(config: PdpConfig) -> tuple[Watched[PolicySnapshot], Revisions]:
    """Without a store the policy files are the snapshot."""
    log.info("control plane off: pdp.yaml names no `store:` (no object sync, no admin API)")
    first = first_policy(config)
    revisions = Revisions(first.loaded.value)
    return watch_policy(config, revisions, first), revisions


async def _control(
    config: PdpConfig,
    cluster: Watched[ClusterSettings],
    resources: contextlib.AsyncExitStack,
    crawler_factory: CrawlerFactory | None,
    schedule_tick: float | None,
) -> Control:
    """Store, feed, jobs, plane and schedule, each built from what is built before it."""
    settings = config.control
    key = config.store_secret_key.reveal() if config.store_secret_key else None
    # No migration here: the feed migrates when it reaches the store, so that a store that is
    # down at start does not keep the PDP from deciding on its policy files.
    assert config.store is not None
    store = await asyncio.to_thread(Store.open, config.store, secret_key=key, upgrade=False)
    resources.callback(store.close)
    first = first_inputs(config)
    feed = await asyncio.to_thread(
        partial(
            SnapshotFeed.open,
            first.loaded.value,
            store,
            settings.store_poll_seconds,
            needs_upgrade=True,
            saved=settings.snapshot_file,
        )
    )
    inputs = watch_inputs(config, feed.update_files, first)
    factory = crawler_factory or platform_crawlers(
        store, settings.secret_references, settings.network
    )
    runner = SyncRunner(
        store,
        factory,
        JobRunner(store),
        requests_wanted=lambda: feed.revisions.current.new_tag_targeted,
    )
    plane = ControlPlane(
        store,
        runner,
        factory,
        cascade_threshold=settings.cascade_job_threshold,
        references=settings.secret_references,
        network=settings.network,
        declared=lambda: feed.inputs.documents,
        cluster=lambda: cluster.current,
        trino_catalog_files=settings.trino_catalog_files,
    )
    scheduler = Scheduler(runner, schedule_tick or settings.schedule_tick_seconds)
    log.info("control plane on: store %s", safe_url(config.store))
    return Control(store, inputs, feed, runner, plane, scheduler)


class Degraded:
    """Why the PDP serves a degraded snapshot (the store down, ungoverned objects on the
    platforms Trino fronts), if it does. Every sidecar worker following the PDP asks with each
    heartbeat (hundreds of times a second for 50 clusters), so Trino's catalog files are read
    again at most once per `every` seconds (and the snapshot counts its ungoverned sources
    once: `PolicySnapshot.ungoverned`)."""

    def __init__(
        self,
        feed: SnapshotFeed | None,
        revisions: Revisions,
        catalog_files: Path | None,
        every: float = HEARTBEAT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._feed, self._revisions, self._catalog_files = feed, revisions, catalog_files
        self._every, self._clock = every, clock
        self._fronted: frozenset[Technology] = frozenset()
        self._read_at: float | None = None

    def __call__(self) -> str | None:
        now = self._clock()
        if self._read_at is None or now - self._read_at >= self._every:
            self._fronted, self._read_at = fronted(self._catalog_files), now
        store = self._feed.degraded if self._feed is not None else None
        reasons = (*([store] if store else []), *self._revisions.current.ungoverned(self._fronted))
        return "; ".join(reasons) if reasons else None


async def _monitoring(
    config: PdpConfig,
    resources: contextlib.AsyncExitStack,
    serving_grpc: asyncio.Event,
    degraded: Callable[[], str | None],
    revisions: Revisions,
) -> list[asyncio.Task]:
    if config.monitoring is None:
        log.info("monitoring: off (no monitoring section in %s)", config.file)
        return []
    await resources.enter_async_context(
        monitor.serving(
            config.monitoring,
            lambda: None if serving_grpc.is_set() else "gRPC not serving yet",
            degraded,
        )
    )
    return [asyncio.create_task(_follow_revisions(revisions))]


async def _admin(
    config: PdpConfig,
    control: Control,
    auth: ValidatorConfig | None,
    revisions: Revisions,
    degraded: Callable[[], str | None],
    resources: contextlib.AsyncExitStack,
    admin_listen: str | None,
) -> int:
    """Serve the admin API; its port."""
    admin = config.admin
    assert admin is not None

    def directory() -> Any:
        return revisions.current.directory

    if auth is not None:
        admin_validator = Validator(replace(auth, required_scopes=admin.required_scopes))
        resources.callback(admin_validator.close)
        authenticate = bearer(admin_validator, directory, admin.user_claim)
    else:
        log.warning("admin API trusts the %s header: tests and loopback only", "X-Pdp-User")
        authenticate = trusted_header(directory)
    app = create_app(
        control.plane,
        authenticate,
        lambda: control.feed.store_available,
        lambda: revisions.current.revision,
        lambda: revisions.current.warnings,
        degraded,
        admin.max_body_bytes,
    )
    dev = config.auth if isinstance(config.auth, DevIssuerSettings) else None
    user_tokens = f"http://{dev.listen}/token" if dev and dev.user_tokens else None
    signin = sign_in_method(config.console, user_tokens, DEV_USER_CLIENT, auth is None)
    cluster = control.plane.cluster or ClusterSettings
    mount_console(app, directory, signin, lambda: (revisions.current, cluster()))  # console.md
    port: int = await resources.enter_async_context(serving(app, admin_listen or admin.listen))
    return port


async def _collect(frozen: Frozen) -> None:
    """The PDP's long-lived objects out of its full collections (pdp/collector.py): once a
    second what requests and revisions brought is frozen, with a settle when the PDP has grown
    and a second passed without requests. A snapshot is compiled frozen, and the one it
    replaces is freed by reference counting."""
    while True:
        frozen.tick(False, monitor.answered())
        await asyncio.sleep(1)


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
