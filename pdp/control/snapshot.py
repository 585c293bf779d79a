"""One snapshot from the policy files and the store, published as one revision.

The revision names the *content* both sources give the snapshot: the files' digest and a digest
of the store's compiled registry (its data sources and retired tables). A store write that does
not change the registry (a job's progress, an unchanged sync) therefore yields the same
revision, which `Revisions.publish` ignores; a sync that found a table, a status change or a
policy edit yields a new one, and the sidecars drop their caches as for any policy edit.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pdp.collector import made_frozen
from pdp.config.load import PolicyInputs
from pdp.core.model import fold
from pdp.policy import DataSource, PolicySnapshot, Revisions
from pdp.policy.delta import RevisionDelta, revision_delta
from pdp.policy.model import ObjectType, Policy, Technology
from pdp.policy.sourcesets import difference, source_set
from pdp.store import Store, StoreRegistry, merge_registries, read_registry
from pdp.store.notify import VersionListener

log = logging.getLogger(__name__)

STORE_POLL_SECONDS = 0.25  # SQLite: the poll is the only way to learn of another write
LISTEN_POLL_SECONDS = 5.0  # PostgreSQL: the safety net behind LISTEN/NOTIFY
UNREAD = -1  # the registry version before the store was ever read
SAVED_FORMAT = "pdp-store-registry/1"


# The last registry digested, its sources as sets and their sums (below): a registry is
# immutable, and the next one differs from it by what a sync wrote, so only that is described.
@dataclasses.dataclass(frozen=True)
class _Digested:
    registry: StoreRegistry
    held: tuple[frozenset[DataSource] | None, ...]  # active, retired (None: with repeats)
    sums: tuple[int, ...]
    digest: str


_digested: _Digested | None = None
# A sum of 2,048-bit hashes: a sum modulo 2**256 could be matched by crafted table names
# (generalized birthday); at 2,048 bits that is out of reach.
_HASH_BYTES = 256
_MODULUS = 1 << (8 * _HASH_BYTES)


def registry_digest(registry: StoreRegistry) -> str:
    """The digest of the registry's content: a multiset hash of its data sources (the sum of
    each one's hash, so a change is digested at the cost of what it adds and drops, the rest
    only hashed as Python objects to find it) and its connections, aliases and whether the
    store was read at all. Equal content, equal digest, in every PDP of a pool."""
    global _digested
    last = _digested
    if last is not None and last.registry is registry:
        return last.digest
    held: list[frozenset[DataSource] | None] = []
    sums: list[int] = []
    for index, sources in enumerate((registry.sources, registry.retired)):
        now = source_set(sources)
        before = last.held[index] if last is not None else None
        if len(now) != len(sources):  # repeats count: summed whole, and not held
            total, now_held = sum(map(_source_hash, sources)), None
        elif last is None or before is None:
            total, now_held = sum(map(_source_hash, sources)), now
        else:
            gone, new = difference(before, now)
            total = last.sums[index] + sum(map(_source_hash, new))
            total, now_held = total - sum(map(_source_hash, gone)), now
        held.append(now_held)
        sums.append(total % _MODULUS)
    digest = hashlib.sha256(f"active {sums[0]:x}\nretired {sums[1]:x}\n".encode())
    for key, technology in sorted(registry.connections.items()):
        digest.update(f"connection\0{key}\0{technology}\n".encode())
    for legacy, key in sorted(registry.aliases.items()):
        digest.update(f"alias\0{legacy}\0{key}\n".encode())
    if not registry.known:  # the same revision would otherwise survive the store's return
        digest.update(b"unknown\n")
    done = _Digested(registry, tuple(held), tuple(sums), digest.hexdigest())
    _digested = done
    return done.digest


def _source_hash(source: DataSource) -> int:
    return int.from_bytes(hashlib.shake_256(_describe(source).encode()).digest(_HASH_BYTES))


def _describe(source: DataSource) -> str:
    tags = ",".join(sorted(source.tags))
    columns = ";".join(f"{name}={','.join(sorted(t))}" for name, t in source.columns)
    owners = ",".join(sorted(f"{kind}:{name}" for kind, name in source.owners))
    return "\0".join(
        (
            columns,
            owners,
            source.connection,
            source.technology.value,
            source.database,
            source.schema,
            source.name,
            source.type.value,
            tags,
            source.trino_catalog or "",
        )
    )


def compose(
    inputs: PolicyInputs, registry: StoreRegistry, previous: PolicySnapshot | None = None
) -> PolicySnapshot:
    """Files + store: one snapshot whose revision changes when either content changes.
    `previous`: the snapshot in force, whose compiled parts are reused where they can be."""
    docs = inputs.documents
    merged = merge_registries(docs.sources, docs.retired, registry)
    if merged.shadowed:
        log.debug(
            "the policy files declare store connections %s: their entries govern",
            ", ".join(sorted(merged.shadowed)),
        )
    revision = hashlib.sha256(f"{inputs.digest}\0{registry_digest(registry)}".encode()).hexdigest()[
        :16
    ]
    snapshot_inputs = with_aliases(inputs, registry.aliases) if registry.aliases else inputs
    return snapshot_inputs.compile(
        revision, merged.sources, merged.retired, complete=registry.known, previous=previous
    )


def alias_policy(policy: Policy, aliases: Mapping[str, str]) -> Policy:
    """A policy whose targets name an upgraded integration by its legacy name also targets
    the connection it became (both names apply; nothing in the files is rewritten)."""
    folded = {fold(legacy): fold(key) for legacy, key in aliases.items()}

    def widen(paths: frozenset[str]) -> frozenset[str]:
        extra = set()
        for path in paths:
            head, dot, rest = path.partition(".")
            if head in folded:
                extra.add(folded[head] + dot + rest)
        return paths | extra

    return dataclasses.replace(
        policy,
        data_sources=widen(policy.data_sources),
        connections=widen(policy.connections),
        databases=widen(policy.databases),
        schemas=widen(policy.schemas),
    )


def with_aliases(inputs: PolicyInputs, aliases: Mapping[str, str]) -> PolicyInputs:
    docs = inputs.documents
    policies = {name: alias_policy(p, aliases) for name, p in docs.policies.items()}
    return dataclasses.replace(inputs, documents=dataclasses.replace(docs, policies=policies))


def _source_json(source: DataSource) -> dict[str, Any]:
    return {
        "connection": source.connection,
        "technology": source.technology.value,
        "database": source.database,
        "schema": source.schema,
        "name": source.name,
        "type": source.type.value,
        "tags": sorted(source.tags),
        "trinoCatalog": source.trino_catalog,
        "columns": [[name, sorted(tags)] for name, tags in source.columns],
    }


def _source(data: Mapping[str, Any]) -> DataSource:
    return DataSource(
        connection=data["connection"],
        technology=Technology(data["technology"]),
        database=data["database"],
        schema=data["schema"],
        name=data["name"],
        type=ObjectType(data["type"]),
        tags=frozenset(data["tags"]),
        trino_catalog=data["trinoCatalog"],
        columns=tuple((name, frozenset(tags)) for name, tags in data["columns"]),
    )


def save_registry(path: Path, registry: StoreRegistry, store: str) -> None:
    """Write the store's part of the snapshot to `path`, so that a PDP that starts while the
    store is down decides on it instead of on the files alone. Atomically (a file written,
    flushed to disk and renamed over it: a crash leaves the old file or the new one), readable
    by the PDP's user only (it lists every data source), and naming `store` (its URL without a
    password): a snapshot of another store is never used."""
    document = {
        "format": SAVED_FORMAT,
        "store": store,
        "version": registry.version,
        "sources": [_source_json(s) for s in registry.sources],
        "retired": [_source_json(s) for s in registry.retired],
        "connections": {key: t.value for key, t in registry.connections.items()},
        "aliases": dict(registry.aliases),
    }
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(document, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def load_registry(path: Path, store: str) -> StoreRegistry | None:
    """The registry `save_registry` wrote for `store`, or None (no file, not one of ours, or
    of another store)."""
    try:
        document = json.loads(path.read_text())
        if document.get("format") != SAVED_FORMAT:
            raise ValueError(f"format {document.get('format')!r}")
        if document.get("store") != store:
            raise ValueError(f"it is of the store {document.get('store')!r}, not {store!r}")
        return StoreRegistry(
            version=int(document["version"]),
            sources=tuple(_source(s) for s in document["sources"]),
            retired=tuple(_source(s) for s in document["retired"]),
            connections={k: Technology(t) for k, t in document["connections"].items()},
            aliases=dict(document["aliases"]),
        )
    except FileNotFoundError:
        return None
    except Exception as error:
        log.error("ignoring the saved store snapshot %s: %s", path, error)
        return None


class SnapshotFeed:
    """Keeps `revisions` current with the files (`update_files`) and the store.

    On PostgreSQL the feed LISTENs for the notification every store write sends at commit and
    reads the store as soon as one arrives; it still polls the version every `interval`
    seconds (default `LISTEN_POLL_SECONDS`) as the safety net for notifications lost while its
    LISTEN connection was down. On SQLite it reads the store as soon as a write made through
    this process (admin API, object sync) commits, and polls every `STORE_POLL_SECONDS` for the
    writes of other processes.

    A store that does not answer at start is no reason not to start: the feed composes the
    files with the snapshot of the store saved at `saved` (or, with none, with the store's part
    unknown: everything the files do not declare is denied), reports itself `degraded`, and
    migrates and reads the store as soon as it answers (`needs_upgrade`).
    """

    def __init__(
        self,
        inputs: PolicyInputs,
        store: Store,
        registry: StoreRegistry,
        interval: float | None = None,
        *,
        store_error: str | None = None,
        needs_upgrade: bool = False,
        saved: Path | None = None,
    ) -> None:
        self.inputs = inputs
        self.saved = saved  # where the last good store registry is kept (None: nowhere)
        self.store = store
        self.registry = registry
        # the store version the registry's content reflects (None: unknown), for `degraded`
        self.content_version: int | None = registry.version if registry.known else None
        self.listen = store.dialect == "postgresql"
        self.interval = interval or (LISTEN_POLL_SECONDS if self.listen else STORE_POLL_SECONDS)
        self.revisions = Revisions(made_frozen(compose, inputs, registry))
        self.store_available = store_error is None
        self.store_error = store_error
        self.needs_upgrade = needs_upgrade
        self.listener: VersionListener | None = None
        self._dirty = asyncio.Event()
        self._wake = asyncio.Event()

    @classmethod
    def open(
        cls,
        inputs: PolicyInputs,
        store: Store,
        interval: float | None = None,
        *,
        needs_upgrade: bool = False,
        saved: Path | None = None,
    ) -> SnapshotFeed:
        """Read the store now. If it does not answer, start from the registry saved at
        `saved` by an earlier run (the last good snapshot), else from the files alone."""
        try:
            if needs_upgrade:
                store.upgrade()
            registry = read_registry(store)
        except Exception as error:
            last = load_registry(saved, store.name) if saved is not None else None
            if last is None:
                log.error(
                    "store unreachable at start and no snapshot of it saved%s: deciding on the "
                    "policy files, denying every object they do not declare: %s",
                    f" ({saved})" if saved is not None else "",
                    error,
                )
                last = StoreRegistry(version=UNREAD, known=False)
                content_version = None
            else:
                log.error(
                    "store unreachable at start, deciding on the policy files and the store "
                    "snapshot saved at version %s (%s): %s",
                    last.version,
                    saved,
                    error,
                )
                content_version = last.version
                last = dataclasses.replace(last, version=UNREAD)  # re-read once it answers
            feed = cls(
                inputs,
                store,
                last,
                interval,
                store_error=str(error),
                needs_upgrade=True,
                saved=saved,
            )
            feed.content_version = content_version
            return feed
        feed = cls(inputs, store, registry, interval, saved=saved)
        feed._save(registry)
        return feed

    @property
    def degraded(self) -> str | None:
        """Why decisions rest on less than the store as it is now, or None. Says what they
        rest on, never the store's error (the PDP's log has it): health endpoints are open."""
        if self.store_available:
            return None
        if self.content_version is None:
            return (
                "store unreachable and no snapshot of it saved: every object the policy files "
                "do not declare is denied"
            )
        return f"store unreachable: deciding on its snapshot of version {self.content_version}"

    def _save(self, registry: StoreRegistry) -> None:
        if self.saved is None:
            return
        try:
            save_registry(self.saved, registry, self.store.name)
        except Exception as error:
            log.error("cannot save the store snapshot to %s: %s", self.saved, error)

    def update_files(self, inputs: PolicyInputs) -> None:
        self.inputs = inputs
        self._dirty.set()

    async def run(self) -> None:
        """Follow the store (LISTEN and poll) and recompile on any change; until cancelled."""
        loop = asyncio.get_running_loop()

        def wake(_version: int = 0) -> None:
            loop.call_soon_threadsafe(self._wake.set)

        if self.listen:
            self.listener = VersionListener(
                self.store.engine, wake, on_connected=wake, on_lost=wake
            )
            self.listener.start()
        else:
            self.store.committed.append(wake)
        try:
            await asyncio.gather(self._poll(), self._rebuild())
        finally:
            if self.listener is not None:
                await asyncio.to_thread(self.listener.stop)
            if wake in self.store.committed:
                self.store.committed.remove(wake)

    async def _poll(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self._wake.wait()
            self._wake.clear()
            try:
                if self.needs_upgrade:
                    await asyncio.to_thread(self.store.upgrade)
                    self.needs_upgrade = False
                version = await asyncio.to_thread(self.store.version)
                if version != self.registry.version:
                    self.registry = await asyncio.to_thread(read_registry, self.store)
                    self.content_version = self.registry.version
                    self._dirty.set()
                    await asyncio.to_thread(self._save, self.registry)
            except Exception as error:  # keep deciding on the last good snapshot
                if self.store_available:
                    log.error("store unreachable, deciding on the last good snapshot: %s", error)
                self.store_available, self.store_error = False, str(error)
                continue
            if not self.store_available:
                log.info("store reachable again (version %s)", self.registry.version)
            self.store_available, self.store_error = True, None

    async def _rebuild(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            await self._publish()  # whose locals, the snapshot replaced among them, end with it

    async def _publish(self) -> None:
        """Compile and publish; the snapshot and its delta are built frozen (pdp/collector.py)."""
        inputs, registry = self.inputs, self.registry
        current = self.revisions.current
        try:
            snapshot, delta = await asyncio.to_thread(
                made_frozen, _compose_with_delta, current, inputs, registry
            )
        except Exception:
            log.exception("cannot compile the snapshot; keeping the last good one")
            return
        before = current.revision
        self.revisions.publish(snapshot, delta)
        if snapshot.revision != before:
            log.info("revision %s (store version %s)", snapshot.revision, registry.version)

    async def refresh(self) -> None:
        """Read the store now (tests, and after an API write, to shorten the wait)."""
        self.registry = await asyncio.to_thread(read_registry, self.store)
        self.content_version = self.registry.version
        self._dirty.set()


def _compose_with_delta(
    current: PolicySnapshot, inputs: PolicyInputs, registry: StoreRegistry
) -> tuple[PolicySnapshot, RevisionDelta | None]:
    """The snapshot, and what changed from `current` to it: both off the event loop (the
    delta of a large store takes a while; `Revisions.publish` computes it only if absent)."""
    snapshot = compose(inputs, registry, current)
    if snapshot.revision == current.revision:
        return snapshot, None
    return snapshot, revision_delta(current, snapshot)
