"""The connection upgrade manager (spec §8) and the legacy API it retires (§8.5).

An *integration* is the legacy model: a connection declared by hand with data sources
registered one by one (`pdp.store.legacy`). Upgrading one turns it into a connection whose
object tree object sync keeps, without a moment where its data sources stop governing:

    not_started -> started (display name) -> validated (credentials) -> upgrading (job)
        -> partial (something unresolved) <-> upgraded (all resolved) -> finalized

* Every step repeated with the same input answers the same and changes nothing; a step out of
  order is a 409 naming the current state and the steps allowed from it.
* Until `finalized` the integration's hand-registered data sources are what the registry
  compiles (`pdp.store.registry`): matched or not, they keep governing, and the new
  connection's objects (state `upgrading`) do not compile. Object sync is off: a manual sync
  answers 409 and the scheduler skips the connection.
* The upgrade job crawls the whole connection, applies it to the store like a sync, then
  matches each legacy data source to its table (exact names, else a unique case-insensitive
  match) and gives the object the data source's id, status override, tags and owners. Schemas
  with schema monitoring on become active with `activateNewChildren`, so their unregistered
  tables come in active; other unregistered tables stay inactive (the default).
* An interrupted job (the process died, the platform was unreachable) leaves the state at
  `upgrading`: `upgrade` again resumes; matching is idempotent.
* After finalize, policies that name data sources by the legacy connection name keep
  applying: the registry carries an alias legacy name -> key (`pdp.control.snapshot`).
"""

from __future__ import annotations

import builtins
import dataclasses
import logging
import re
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx
from sqlalchemy import update

from pdp.auth.client import TokenSource
from pdp.auth.credentials import ClientCredentials
from pdp.auth.errors import TokenError
from pdp.config.errors import ConfigError
from pdp.control import permissions as perm
from pdp.control.objectsync import crawl, database_bound, listing_bound
from pdp.control.permissions import Caller, Forbidden
from pdp.control.plane import ControlPlane, ValidationFailed, job_json
from pdp.core.model import NOBODY
from pdp.crawl.base import Check, connect_failure
from pdp.objects.errors import Conflict, DuplicateKey, InvalidInput, NotFound
from pdp.objects.keys import check_connection_key, key_identity
from pdp.objects.paths import Kind, ObjectPath
from pdp.objects.syncplan import Listing
from pdp.policy.model import ObjectType, Technology
from pdp.store import (
    ConnectionRecord,
    ConnectionState,
    Job,
    JobState,
    JobTrigger,
    JobType,
    PrincipalKind,
    References,
    Role,
    Store,
    Writer,
)
from pdp.store import legacy as lg
from pdp.store.legacy import Integration, LegacySource, MatchReason, MatchState, UpgradeState
from pdp.store.model import DEFAULT_FAIL_SAFE, DEFAULT_SCHEDULE, utcnow
from pdp.store.schema import connections, objects
from pdp.store.treesync import load_tree

log = logging.getLogger(__name__)

ADMIN_USERS = "adminUsers"  # a Trino endpoint's key: the cluster's immuta.user.admin pattern

S = UpgradeState
NEXT: Mapping[UpgradeState, tuple[str, ...]] = {
    S.NOT_STARTED: ("start",),
    S.STARTED: ("start", "validate"),
    S.VALIDATED: ("start", "validate", "upgrade"),
    S.UPGRADING: ("upgrade",),
    S.PARTIAL: ("resolve",),
    S.UPGRADED: ("resolve", "finalize"),
    S.FINALIZED: (),
}

REASONS = {
    MatchReason.NOT_FOUND: "no remote table has this database, schema and table name",
    MatchReason.NOT_VISIBLE: "the system user could not list {where}",
    MatchReason.AMBIGUOUS: "several remote names differ from {name!r} by case only",
    MatchReason.INVALID_NAME: "{name!r} is not a name a remote object can have",
}


class WrongStep(Conflict):
    """409: the step does not follow from the upgrade's current state."""

    def __init__(self, integration: Integration, step: str, why: str = "") -> None:
        state = integration.upgrade_state
        allowed = ", ".join(NEXT[state]) or "nothing: the upgrade is finalized"
        super().__init__(
            "state",
            state.value,
            f"cannot {step} the upgrade of {integration.name!r}: it is {state.value}"
            f"{why}; allowed next: {allowed}",
        )
        self.state = state
        self.allowed = NEXT[state]


class LegacyRetired(InvalidInput):
    """400: a legacy endpoint called for a data source of an upgraded integration."""

    def __init__(self, field: str, value: Any, integration: Integration, replacement: str):
        key = integration.display_name or integration.name
        super().__init__(
            field,
            value,
            f"{integration.name!r} is being (or has been) upgraded to connection {key!r}: "
            f"the legacy data source endpoints no longer apply to it; use {replacement}",
        )
        self.replacement = replacement


def require_upgrade(caller: Caller) -> None:
    if not (caller.has(perm.GOVERNANCE) and caller.has(perm.APPLICATION_ADMIN)):
        missing = [p.value for p in (perm.GOVERNANCE, perm.APPLICATION_ADMIN) if not caller.has(p)]
        raise Forbidden(
            "GOVERNANCE and APPLICATION_ADMIN",
            f"user {caller.name!r} may not upgrade integrations: "
            f"GOVERNANCE and APPLICATION_ADMIN are both needed (missing {', '.join(missing)})",
            caller.name,
        )


def integration_json(integration: Integration, count: int | None = None) -> dict[str, Any]:
    result: dict[str, Any] = {
        "id": integration.id,
        "name": integration.name,
        "technology": integration.technology.value,
        "state": integration.upgrade_state.value,
        "displayName": integration.display_name,
        "jobId": integration.upgrade_job_id,
        "next": list(NEXT[integration.upgrade_state]),
    }
    if count is not None:
        result["dataSourceCount"] = count
    return result


def source_json(source: LegacySource) -> dict[str, Any]:
    return {
        "id": source.id,
        "connection": source.integration,
        "database": source.database,
        "schema": source.schema,
        "table": source.table,
        "type": source.type.value,
        "tags": list(source.tags),
        "owners": [dict(o) for o in source.owners],
        "status": "active" if source.active else "inactive",
        "matchState": source.match_state.value,
        "reason": source.match_reason,
        "matchedPath": source.matched_path,
    }


def _invalid_name(name: str) -> bool:
    return not name or name != name.strip() or any(ord(c) < 32 for c in name) or len(name) > 255


@dataclass(frozen=True, slots=True)
class Match:
    names: tuple[str, ...] | None  # the remote spelling, when matched
    reason: MatchReason | None = None
    detail: str = ""


def match_source(names: Sequence[str], listings: Mapping[tuple[str, ...], Listing]) -> Match:
    """Spec §8.4: exact names first, then a case-insensitive match only when unique."""
    parent: tuple[str, ...] = ()
    for name in names:
        if _invalid_name(name):
            return Match(
                None, MatchReason.INVALID_NAME, REASONS[MatchReason.INVALID_NAME].format(name=name)
            )
        listing = listings.get(tuple(n.casefold() for n in parent))
        if listing is None or listing.children is None:
            where = ".".join(parent) or "the connection"
            return Match(
                None,
                MatchReason.NOT_VISIBLE,
                REASONS[MatchReason.NOT_VISIBLE].format(where=where)
                + (f" ({listing.error})" if listing is not None and listing.error else ""),
            )
        remote = [child.name for child in listing.children]
        if name in remote:
            chosen = name
        else:
            folded = [r for r in remote if r.casefold() == name.casefold()]
            if len(folded) > 1:
                return Match(
                    None, MatchReason.AMBIGUOUS, REASONS[MatchReason.AMBIGUOUS].format(name=name)
                )
            if not folded:
                return Match(None, MatchReason.NOT_FOUND, REASONS[MatchReason.NOT_FOUND])
            chosen = folded[0]
        if sum(1 for r in remote if r.casefold() == chosen.casefold()) > 1:
            # The store keeps one object per name case-insensitively; sync skipped them both.
            return Match(
                None, MatchReason.AMBIGUOUS, REASONS[MatchReason.AMBIGUOUS].format(name=name)
            )
        parent = (*parent, chosen)
    return Match(parent)


class UpgradeManager:
    """The upgrade steps and the legacy API. Blocking (store and platform I/O)."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self.store: Store = plane.store
        self._guard = threading.Lock()
        self._threads: dict[int, threading.Thread] = {}

    # --- reading ----------------------------------------------------------------------------

    def integrations(self, caller: Caller) -> dict[str, Any]:
        require_upgrade(caller)
        with self.store.read() as reader:
            counts = lg.source_counts(reader)
            hits = [integration_json(i, counts.get(i.id, 0)) for i in lg.list_integrations(reader)]
        stored = {h["name"].casefold() for h in hits}
        for name, (technology, entries) in self._declared().items():
            if name.casefold() not in stored:  # declared in the files, not imported yet
                hits.append(
                    {
                        "id": None,
                        "name": name,
                        "technology": technology.value,
                        "state": S.NOT_STARTED.value,
                        "displayName": None,
                        "jobId": None,
                        "next": list(NEXT[S.NOT_STARTED]),
                        "dataSourceCount": len(entries),
                        "declaredIn": "policy files",
                    }
                )
        ready = [h for h in hits if h["state"] != S.FINALIZED.value]
        return {"count": len(ready), "hits": ready, "finalized": len(hits) - len(ready)}

    def status(self, caller: Caller, name: str) -> dict[str, Any]:
        require_upgrade(caller)
        with self.store.read() as reader:
            if lg.find_integration(reader, name) is None:  # declared in the files only?
                for hit in self.integrations(caller)["hits"]:
                    if hit["id"] is None and hit["name"].casefold() == name.casefold():
                        counts = {state.value: 0 for state in MatchState}
                        counts[MatchState.PENDING.value] = hit["dataSourceCount"]
                        return {**hit, "counts": counts, "job": None}
            integration = lg.get_integration(reader, name)
            sources = lg.sources_of(reader, integration)
            job = reader.job(integration.upgrade_job_id) if integration.upgrade_job_id else None
        counts = {state.value: 0 for state in MatchState}
        for source in sources:
            counts[source.match_state.value] += 1
        result = integration_json(integration, len(sources) - counts["deleted"])
        result["counts"] = counts
        result["job"] = job_json(job) if job else None
        return result

    def unresolved(self, caller: Caller, name: str) -> dict[str, Any]:
        require_upgrade(caller)
        with self.store.read() as reader:
            integration = lg.get_integration(reader, name)
            hits = [
                source_json(s)
                for s in lg.sources_of(reader, integration)
                if s.match_state is MatchState.UNRESOLVED
            ]
        return {"count": len(hits), "hits": hits}

    # --- the steps --------------------------------------------------------------------------

    def start(self, caller: Caller, name: str, display_name: str) -> dict[str, Any]:
        require_upgrade(caller)
        key = check_connection_key(display_name)
        with self.store.write() as writer:
            integration = lg.find_integration(writer, name) or self._import(writer, name)
            state = integration.upgrade_state
            if state not in (S.NOT_STARTED, S.STARTED, S.VALIDATED):
                if state is not S.FINALIZED and integration.display_name == key:
                    return integration_json(integration)  # repeated: same answer
                raise WrongStep(integration, "start")
            if integration.display_name == key and state is not S.NOT_STARTED:
                return integration_json(integration)
            try:
                existing = writer.connection(key)
            except NotFound:
                existing = None
            if existing is not None:
                raise DuplicateKey(
                    "displayName", key, f"connection {existing.key!r} exists already"
                )
            other = lg.find_integration(writer, key)
            if other is not None and other.id != integration.id:
                raise DuplicateKey(
                    "displayName", key, f"integration {other.name!r} is named so already"
                )
            for candidate in lg.list_integrations(writer):
                if (
                    candidate.id != integration.id
                    and candidate.display_name
                    and key_identity(candidate.display_name) == key_identity(key)
                ):
                    raise DuplicateKey(
                        "displayName", key, f"the upgrade of {candidate.name!r} uses it already"
                    )
            integration = lg.update_integration(
                writer, integration, display_name=key, upgrade_state=S.STARTED
            )
        return integration_json(integration)

    def _declared(self) -> dict[str, tuple[Technology, list[tuple[Any, bool]]]]:
        """Connections the registry YAML declares by hand: name -> (technology, [(entry,
        active)])."""
        if self.plane.declared is None:
            return {}
        docs = self.plane.declared()
        found: dict[str, tuple[Technology, list[tuple[Any, bool]]]] = {
            name: (technology, []) for name, technology in docs.connections.items()
        }
        for entries, active in ((docs.sources, True), (docs.retired, False)):
            for entry in entries:
                if entry.connection in found:
                    found[entry.connection][1].append((entry, active))
        return found

    def _import(self, writer: Writer, name: str) -> Integration:
        """A connection declared in the registry YAML becomes an integration in the store (its
        entries, tags, status and schema monitoring flags), so its upgrade can be tracked. The
        YAML keeps governing as long as it declares the connection."""
        declared = {n.casefold(): n for n in self._declared()}
        if name.casefold() not in declared:
            lg.get_integration(writer, name)  # 404
        spelled = declared[name.casefold()]
        technology, entries = self._declared()[spelled]
        docs = self.plane.declared() if self.plane.declared else None
        catalogs = {
            e.database: e.trino_catalog
            for e, _ in entries
            if e.trino_catalog and technology is not Technology.TRINO
        }
        integration = lg.create_integration(
            writer, spelled, technology, {}, {}, {"trinoCatalogs": catalogs} if catalogs else None
        )
        for entry, active in entries:
            lg.add_source(
                writer,
                integration,
                entry.database,
                entry.schema,
                entry.name,
                type=entry.type,
                tags=sorted(entry.tags),
                active=active,
            )
        flags = getattr(docs, "schema_monitoring", {}).get(spelled, {})
        if flags:
            integration = lg.update_integration(
                writer,
                integration,
                schema_monitoring={lg.monitor_key(d, s): on for (d, s), on in flags.items()},
                settings={
                    **integration.settings,
                    "schemaSpelling": {lg.monitor_key(d, s): [d, s] for (d, s) in flags},
                },
            )
        return integration

    def _record(
        self,
        integration: Integration,
        endpoint: Mapping[str, Any] | None,
        credentials: Mapping[str, Any] | None,
    ) -> ConnectionRecord:
        now = utcnow()
        sealed = (
            self.store.secrets.seal(credentials, "credentials")
            if credentials is not None
            else integration.credentials
        )
        return ConnectionRecord(
            key=integration.display_name or integration.name,
            technology=integration.technology,
            endpoint=dict(endpoint if endpoint is not None else integration.endpoint),
            credentials=sealed,
            settings=dict(integration.settings),
            schedule=DEFAULT_SCHEDULE,
            state=ConnectionState.UPGRADING,
            fail_safe_threshold=DEFAULT_FAIL_SAFE,
            created_at=now,
            updated_at=now,
        )

    def validate(
        self,
        caller: Caller,
        name: str,
        endpoint: Mapping[str, Any] | None = None,
        credentials: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        require_upgrade(caller)
        self.plane.references.check(endpoint, "endpoint")
        self.plane.references.check(credentials, "credentials")
        with self.store.read() as reader:
            integration = lg.get_integration(reader, name)
            sources = lg.sources_of(reader, integration)
        if integration.upgrade_state not in (S.STARTED, S.VALIDATED):
            raise WrongStep(integration, "validate")
        record = self._record(integration, endpoint, credentials)
        revealed = self.store.secrets.reveal(record.credentials)
        checks = shape_checks(integration.technology, record.endpoint, revealed)
        if (
            all(c.ok for c in checks)
            and integration.technology is Technology.TRINO
            and "oauth" in revealed
        ):
            with self.plane.network.guard():
                oauth = oauth_checks(revealed, self.plane.references)
            checks = [c for c in checks if c.name != "credentials"] + oauth
        if (
            all(c.ok for c in checks)
            and integration.technology is Technology.TRINO
            and not {ADMIN_USERS, "propertiesFile"} & set(record.endpoint)
            and self.plane.cluster is not None
        ):
            # The endpoint does not name the cluster's immuta.user.admin: take the PDP's
            # (clusterProperties), and keep it on the endpoint so that the crawler checks
            # every listing against it too.
            admin = self._cluster_admin()
            checks.append(system_user_check(admin, revealed))
            if admin is not None:
                record = dataclasses.replace(
                    record, endpoint={**record.endpoint, ADMIN_USERS: admin.pattern}
                )
                endpoint = record.endpoint
        if all(c.ok for c in checks):
            checks += self.plane.check(record)
        if all(c.ok for c in checks) and integration.technology is Technology.SNOWFLAKE:
            checks += self._usage_checks(record, sources)
        if not all(c.ok for c in checks):
            raise ValidationFailed(checks)
        with self.store.write() as writer:
            integration = lg.get_integration(writer, name)
            if integration.upgrade_state not in (S.STARTED, S.VALIDATED):
                raise WrongStep(integration, "validate")
            values: dict[str, Any] = {"upgrade_state": S.VALIDATED}
            if endpoint is not None:
                values["endpoint"] = dict(endpoint)
            if credentials is not None:
                values["credentials"] = credentials
            integration = lg.update_integration(writer, integration, **values)
        result = integration_json(integration)
        result["checks"] = [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks]
        return result

    def _cluster_admin(self) -> re.Pattern[str] | None:
        """The cluster's `immuta.user.admin` as the PDP knows it (`clusterProperties`), or None
        when the PDP was given none (the default matches nobody)."""
        assert self.plane.cluster is not None
        admin: re.Pattern[str] = self.plane.cluster().properties.admin
        return None if admin.pattern == NOBODY.pattern else admin

    def _usage_checks(
        self, record: ConnectionRecord, sources: Sequence[LegacySource]
    ) -> list[Check]:
        """Snowflake: the role sees (has USAGE on) every database and schema that holds a
        registered data source: each one's listing must succeed and show it."""
        wanted: dict[str, set[str]] = {}
        for source in sources:
            if source.match_state is not MatchState.DELETED:
                wanted.setdefault(source.database, set()).add(source.schema)
        checks: list[Check] = []
        crawler = self.plane.crawler_factory(record)
        try:
            top = crawler.list(())
            databases = {c.name.casefold() for c in top.children or ()}
            for database, schemas in sorted(wanted.items()):
                if top.children is None or database.casefold() not in databases:
                    checks.append(
                        Check(f"usage:{database}", False, "the role has no USAGE on the database")
                    )
                    continue
                listing = crawler.list((database,))
                seen = {c.name.casefold() for c in listing.children or ()}
                for schema in sorted(schemas):
                    ok = listing.children is not None and schema.casefold() in seen
                    checks.append(
                        Check(
                            f"usage:{database}.{schema}",
                            ok,
                            "the role can use the schema" if ok else "the role has no USAGE on it",
                        )
                    )
        finally:
            crawler.close()
        return checks

    def upgrade(self, caller: Caller, name: str, confirm: bool) -> dict[str, Any]:
        require_upgrade(caller)
        if confirm is not True:
            raise InvalidInput(
                "confirm",
                confirm,
                "upgrading changes how this integration's data sources are managed and retires "
                "its legacy endpoints: send confirm: true to go ahead",
            )
        with self.store.write() as writer:
            integration = lg.get_integration(writer, name)
            state = integration.upgrade_state
            if state is S.UPGRADING:
                running = self._running(integration)
                if running is not None:  # repeated while it runs: the same job
                    return {**integration_json(integration), "jobId": running}
            elif state is not S.VALIDATED:
                raise WrongStep(integration, "upgrade")
            key = integration.display_name
            assert key is not None
            try:
                writer.connection(key)
            except NotFound:
                writer.register_connection(
                    key,
                    integration.technology,
                    endpoint=integration.endpoint,
                    credentials={},
                    settings=integration.settings,
                )
                writer.update_connection(key, state=ConnectionState.UPGRADING)
            # credentials as sealed by the integration (no re-sealing of ciphertext)
            writer.db.execute(
                update(connections)
                .where(connections.c.key_folded == key_identity(key))
                .values(credentials=dict(integration.credentials))
            )
            job = writer.create_job(JobType.UPGRADE, JobTrigger.MANUAL, ObjectPath(key))
            integration = lg.update_integration(
                writer, integration, upgrade_state=S.UPGRADING, upgrade_job_id=job.id
            )
        self._start_job(integration, job)
        return {**integration_json(integration), "jobId": job.id}

    def _running(self, integration: Integration) -> str | None:
        with self._guard:
            thread = self._threads.get(integration.id)
        if thread is not None and thread.is_alive():
            return integration.upgrade_job_id
        return None

    def _start_job(self, integration: Integration, job: Job) -> None:
        thread = threading.Thread(
            target=self._run, args=(integration, job), name=f"pdp-upgrade-{integration.name}"
        )
        thread.daemon = True
        with self._guard:
            self._threads[integration.id] = thread
        thread.start()

    def join(self, timeout: float = 30.0) -> None:
        with self._guard:
            threads = list(self._threads.values())
        for thread in threads:
            thread.join(timeout)

    def _run(self, integration: Integration, job: Job) -> None:
        key = integration.display_name
        assert key is not None
        path = ObjectPath(key)
        try:
            with self.store.job_lock(key, f"upgrade:{uuid.uuid4().hex[:8]}"):
                with self.store.write() as writer:
                    # We hold the lock: an earlier job still marked running was abandoned
                    # (its process stopped); this one resumes the upgrade.
                    for running in (JobState.CREATED, JobState.ACTIVE):
                        for stale in writer.jobs(connection=key, state=running).hits:
                            if stale.id != job.id:
                                writer.update_job(
                                    stale.id,
                                    state=JobState.FAILED,
                                    errors=[*stale.errors, {"message": "abandoned: resumed"}],
                                )
                    job = writer.update_job(job.id, state=JobState.ACTIVE)
                with self.store.read() as reader:
                    connection = reader.connection(key)
                    row_id = reader._connection_row(key).id
                    nodes, _ = load_tree(reader.db, row_id, False)
                crawler = self.plane.crawler_factory(connection)
                try:
                    listings = crawl(
                        crawler,
                        nodes,
                        (),
                        force_recursive=True,
                        concurrency=listing_bound(connection),
                        more=partial(self.plane.crawler_factory, connection),
                        per_database=database_bound(connection),
                    )
                finally:
                    crawler.close()
                if listings[0].children is None:
                    self._fail(job, f"cannot list {key}: {listings[0].error or 'listing failed'}")
                    return
                with self.store.write() as writer:
                    outcome = writer.sync(key, listings, job_id=job.id)
                    if not outcome.applied:  # the tree is new: the fail-safe cannot trip
                        raise RuntimeError(outcome.plan.fail_safe)
                    stats = apply_matches(writer, integration.name, key, listings)
                    stats.update({f"sync.{k}": v for k, v in sorted(outcome.stats.items())})
                    stats["listings"] = len(listings)
                    stats["failedListings"] = sum(1 for x in listings if x.children is None)
                    current = lg.get_integration(writer, integration.name)
                    after = S.PARTIAL if stats["unresolved"] else S.UPGRADED
                    lg.update_integration(writer, current, upgrade_state=after)
                    writer.update_job(job.id, state=JobState.COMPLETED, stats=stats)
                log.info("upgrade job %s of %s: %s", job.id, path.url, stats)
        except Exception as error:
            log.exception("upgrade job %s of %s failed", job.id, integration.name)
            try:
                self._fail(job, f"{type(error).__name__}: {error}")
            except Exception:
                log.exception("cannot record the failure of job %s", job.id)

    def _fail(self, job: Job, message: str) -> None:
        """The state stays `upgrading`: `upgrade` again resumes."""
        with self.store.write() as writer:
            writer.update_job(
                job.id, state=JobState.FAILED, errors=[{"path": job.path, "message": message}]
            )

    def resolve(
        self,
        caller: Caller,
        name: str,
        source_id: str,
        action: str,
        path: str | None = None,
    ) -> dict[str, Any]:
        require_upgrade(caller)
        if action not in ("match", "retry", "disable", "delete"):
            raise InvalidInput("action", action, "expected match, retry, disable or delete")
        listings: builtins.list[Listing] = []
        with self.store.read() as reader:
            integration = lg.get_integration(reader, name)
            if integration.upgrade_state not in (S.PARTIAL, S.UPGRADED):
                raise WrongStep(integration, "resolve")
            owner, source = lg.get_source(reader, source_id)
            if owner.id != integration.id:
                raise NotFound("dataSourceId", source_id, f"not a data source of {name!r}")
            key = integration.display_name
            assert key is not None
            connection = reader.connection(key)
        if action == "retry":  # list the containers down to its schema again, then match
            crawler = self.plane.crawler_factory(connection)
            try:
                parent: tuple[str, ...] = ()
                for name_here in (*source.names[:2], ""):
                    listing = crawler.list(parent)
                    listings.append(listing)
                    if listing.children is None or not name_here:
                        break
                    spelled = [c.name for c in listing.children if c.name == name_here] or [
                        c.name
                        for c in listing.children
                        if c.name.casefold() == name_here.casefold()
                    ]
                    if len(spelled) != 1:
                        break
                    parent = (*parent, spelled[0])
            finally:
                crawler.close()
        with self.store.write() as writer:
            integration = lg.get_integration(writer, name)
            if integration.upgrade_state not in (S.PARTIAL, S.UPGRADED):
                raise WrongStep(integration, "resolve")
            source = lg.get_source(writer, source_id)[1]
            if action == "match":
                if not path:
                    raise InvalidInput("path", path, "name the object path to match it to")
                target = ObjectPath.parse_url(path)
                if key_identity(target.key) != key_identity(key):
                    raise InvalidInput("path", path, f"the path must be below connection {key!r}")
                record = writer.object(target)
                if record.kind is not Kind.TABLE:
                    raise InvalidInput("path", path, "match a data source to a table")
                claimed = [
                    s
                    for s in lg.sources_of(writer, integration)
                    if s.match_state is MatchState.MATCHED
                    and s.id != source.id
                    and s.matched_path
                    and ObjectPath.parse_url(s.matched_path).url.casefold()
                    == record.path.url.casefold()
                ]
                if claimed:
                    raise Conflict("path", path, f"data source {claimed[0].id} is matched to it")
                apply_match(writer, source, record.path)
            elif action == "retry":
                if listings and listings[0].children is not None:
                    writer.sync(key, listings)
                found = match_source(source.names, _index(listings))
                if found.names is not None:
                    try:
                        writer.object(ObjectPath(key, found.names))
                    except NotFound:
                        found = Match(None, MatchReason.NOT_FOUND, REASONS[MatchReason.NOT_FOUND])
                if found.names is not None:
                    apply_match(writer, source, ObjectPath(key, found.names))
                else:
                    assert found.reason is not None
                    lg.update_source(
                        writer,
                        source.id,
                        match_state=MatchState.UNRESOLVED,
                        match_reason=f"{found.reason.value}: {found.detail}",
                    )
            elif action == "disable":
                lg.update_source(writer, source.id, match_state=MatchState.DISABLED)
            else:
                lg.update_source(writer, source.id, match_state=MatchState.DELETED)
            left = sum(
                1
                for s in lg.sources_of(writer, integration)
                if s.match_state in (MatchState.UNRESOLVED, MatchState.PENDING)
            )
            integration = lg.update_integration(
                writer, integration, upgrade_state=S.PARTIAL if left else S.UPGRADED
            )
            source = lg.get_source(writer, source_id)[1]
        return {
            **integration_json(integration),
            "unresolved": left,
            "dataSource": source_json(source),
        }

    def finalize(self, caller: Caller, name: str) -> dict[str, Any]:
        require_upgrade(caller)
        with self.store.write() as writer:
            integration = lg.get_integration(writer, name)
            key = integration.display_name
            if integration.upgrade_state is S.FINALIZED:
                assert key is not None
                record = writer.connection(key)
                return {
                    **integration_json(integration),
                    "nextSync": record.next_sync(utcnow()).isoformat(),
                }
            if integration.upgrade_state is S.PARTIAL:
                left = [
                    s.dotted
                    for s in lg.sources_of(writer, integration)
                    if s.match_state is MatchState.UNRESOLVED
                ]
                raise WrongStep(
                    integration,
                    "finalize",
                    f" with {len(left)} data source(s) unresolved ({', '.join(left[:5])})",
                )
            if integration.upgrade_state is not S.UPGRADED:
                raise WrongStep(integration, "finalize")
            assert key is not None
            # Data sources given up on: disabled ones keep an inactive override on their
            # table if it exists; nothing else to carry over.
            now = utcnow()
            record = writer.update_connection(key, state=ConnectionState.ACTIVE, now=now)
            integration = lg.update_integration(writer, integration, upgrade_state=S.FINALIZED)
        return {**integration_json(integration), "nextSync": record.next_sync(now).isoformat()}

    # --- the legacy API (spec §8.5) -----------------------------------------------------------

    def _live(self, integration: Integration, field: str, value: Any, replacement: str) -> None:
        if integration.upgrade_state in lg.RETIRED_FROM:
            raise LegacyRetired(field, value, integration, replacement)

    @staticmethod
    def _replacement(integration: Integration, *names: str) -> str:
        key = integration.display_name or integration.name
        return ObjectPath(key, tuple(names)).url

    def register_source(self, caller: Caller, body: Mapping[str, Any]) -> dict[str, Any]:
        perm.require_register(caller)
        details = dict(body.get("connection") or {})
        self.plane.references.check(details.get("endpoint"), "connection.endpoint")
        self.plane.references.check(details.get("credentials"), "connection.credentials")
        name = details.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidInput("connection.name", name, "name the integration (connection)")
        with self.store.write() as writer:
            integration = lg.find_integration(writer, name)
            if integration is None:
                try:
                    writer.connection(name)
                    raise Conflict(
                        "connection.name", name, "a connection has this key: use /data instead"
                    )
                except NotFound:
                    pass
                integration = lg.create_integration(
                    writer,
                    name,
                    details.get("technology", ""),
                    details.get("endpoint") or {},
                    details.get("credentials") or {},
                    {"trinoCatalogs": details["trinoCatalogs"]}
                    if details.get("trinoCatalogs")
                    else None,
                )
            self._live(
                integration,
                "connection.name",
                name,
                "PUT /data/settings/"
                + self._replacement(
                    integration, *(str(body.get(k, "")) for k in ("database", "schema", "table"))
                ),
            )
            source = lg.add_source(
                writer,
                integration,
                body.get("database", ""),
                body.get("schema", ""),
                body.get("table", ""),
                type=_object_type(body.get("type")),
                tags=_strings(body.get("tags"), "tags"),
                owners=_owners(body.get("owners")),
                active=_status(body.get("status", "active")),
            )
        return source_json(source)

    def edit_source(
        self, caller: Caller, source_id: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        with self.store.write() as writer:
            integration, source = lg.get_source(writer, source_id)
            self._require_source(writer, caller)
            self._live(
                integration,
                "dataSourceId",
                source_id,
                f"PUT /data/settings/{self._replacement(integration, *source.names)} "
                f"(status) and PUT /data/connection/{self._replacement(integration)} "
                "(connection details)",
            )
            values: dict[str, Any] = {}
            if "tags" in body:
                values["tags"] = _strings(body["tags"], "tags")
            if "owners" in body:
                values["owners"] = _owners(body["owners"])
            if "status" in body:
                values["active"] = _status(body["status"])
            if values:
                source = lg.update_source(writer, source_id, **values)
            details = body.get("connection") or {}
            for part in ("endpoint", "credentials"):
                self.plane.references.check(details.get(part), f"connection.{part}")
            changes = {k: details[k] for k in ("endpoint", "credentials") if k in details}
            if changes:
                lg.update_integration(writer, integration, **changes)
        return source_json(source)

    def delete_source(self, caller: Caller, source_id: str) -> dict[str, Any]:
        with self.store.write() as writer:
            integration, source = lg.get_source(writer, source_id)
            self._require_source(writer, caller)
            self._live(
                integration,
                "dataSourceId",
                source_id,
                f"DELETE /data/object/{self._replacement(integration, *source.names)}",
            )
            lg.delete_source(writer, source_id)
        return {"id": source_id, "deleted": True}

    def detect_remote_changes(self, caller: Caller, name: str) -> dict[str, Any]:
        """The legacy schema monitoring run: tables found in monitored schemas that are not
        registered yet are registered, active."""
        with self.store.read() as reader:
            integration = lg.get_integration(reader, name)
            self._require_source(reader, caller)
            self._live(
                integration,
                "connection",
                name,
                f"POST /data/crawl/{self._replacement(integration)}",
            )
            known = {lg.fold_names(s.names) for s in lg.sources_of(reader, integration)}
        record = self._record(integration, None, None)
        monitored = [k.split("\x00") for k, on in integration.schema_monitoring.items() if on]
        found: list[tuple[str, str, str, str | None]] = []
        errors: list[dict[str, str]] = []
        crawler = self.plane.crawler_factory(record)
        try:
            for database, schema in monitored:
                spelled = _spelling(integration, database, schema)
                listing = crawler.list(spelled)
                if listing.children is None:
                    errors.append({"path": ".".join(spelled), "message": listing.error or "failed"})
                    continue
                for child in listing.children:
                    if lg.fold_names((*spelled, child.name)) not in known:
                        found.append((*spelled, child.name, child.remote_type))
        finally:
            crawler.close()
        added = []
        with self.store.write() as writer:
            integration = lg.get_integration(writer, name)
            for database, schema, table, _ in found:
                added.append(
                    source_json(lg.add_source(writer, integration, database, schema, table))
                )
        return {"added": added, "errors": errors}

    def schema_monitoring(
        self, caller: Caller, name: str, database: str, schema: str, enabled: bool
    ) -> dict[str, Any]:
        with self.store.write() as writer:
            integration = lg.get_integration(writer, name)
            self._require_source(writer, caller)
            self._live(
                integration,
                "integration",
                name,
                f"PUT /data/settings/{self._replacement(integration, database, schema)} "
                "(activateNewChildren)",
            )
            if not isinstance(enabled, bool):
                raise InvalidInput("enabled", enabled, "expected true or false")
            flags = dict(integration.schema_monitoring)
            flags[lg.monitor_key(database, schema)] = enabled
            integration = lg.update_integration(writer, integration, schema_monitoring=flags)
            spellings = dict(integration.settings.get("schemaSpelling", {}))
            spellings[lg.monitor_key(database, schema)] = [database, schema]
            settings = {**integration.settings, "schemaSpelling": spellings}
            integration = lg.update_integration(writer, integration, settings=settings)
        return {
            "integration": integration.name,
            "schemaMonitoring": [
                {"database": d, "schema": s, "enabled": integration.schema_monitoring.get(k, False)}
                for k, (d, s) in sorted(spellings.items())
            ],
        }

    @staticmethod
    def _require_source(reader: Any, caller: Caller) -> None:
        if not caller.has(perm.APPLICATION_ADMIN, perm.CREATE_DATA_SOURCE, perm.GOVERNANCE):
            raise Forbidden(
                "APPLICATION_ADMIN, CREATE_DATA_SOURCE or GOVERNANCE",
                f"user {caller.name!r} may not manage legacy data sources",
                caller.name,
            )


def _spelling(integration: Integration, database: str, schema: str) -> tuple[str, str]:
    spelled = integration.settings.get("schemaSpelling", {}).get(lg.monitor_key(database, schema))
    return (spelled[0], spelled[1]) if spelled else (database, schema)


def _index(listings: Sequence[Listing]) -> dict[tuple[str, ...], Listing]:
    return {tuple(n.casefold() for n in x.parent): x for x in listings}


def apply_match(writer: Writer, source: LegacySource, path: ObjectPath) -> None:
    """The table becomes this data source: its id, status, tags and owners carry over."""
    record = writer.object(path)
    if record.data_source_id != source.id:
        writer.db.execute(
            update(objects).where(objects.c.data_source_id == source.id).values(data_source_id=None)
        )
        writer.db.execute(
            update(objects).where(objects.c.id == record.id).values(data_source_id=source.id)
        )
    writer.set_settings(
        path, is_active=source.active and source.match_state is not MatchState.DISABLED
    )
    for tag in source.tags:
        writer.add_tag(path, tag)
    for owner in source.owners:
        writer.grant(
            path,
            owner["principal"],
            Role.DATA_OWNER,
            principal_kind=PrincipalKind(owner.get("principalKind", "user")),
            granted_by="upgrade",
        )
    lg.update_source(
        writer,
        source.id,
        match_state=MatchState.MATCHED,
        matched_path=record.path.url,
        match_reason=None,
    )


def apply_matches(
    writer: Writer, integration_name: str, key: str, listings: Sequence[Listing]
) -> dict[str, Any]:
    """Match every data source not resolved yet; schema monitoring becomes schema status."""
    integration = lg.get_integration(writer, integration_name)
    by_parent = _index(listings)
    stats = {"matched": 0, "matchedByCase": 0, "unresolved": 0, "alreadyResolved": 0}
    claimed: set[str] = set()
    for source in lg.sources_of(writer, integration):
        if source.match_state in (MatchState.DISABLED, MatchState.DELETED):
            stats["alreadyResolved"] += 1
            continue
        if source.match_state is MatchState.MATCHED and source.matched_path:
            claimed.add(source.matched_path.casefold())
    for source in lg.sources_of(writer, integration):
        if source.match_state in (MatchState.DISABLED, MatchState.DELETED):
            continue
        if source.match_state is MatchState.MATCHED and source.matched_path:
            try:
                apply_match(writer, source, ObjectPath.parse_url(source.matched_path))
                stats["matched"] += 1
                continue
            except NotFound:
                pass
        found = match_source(source.names, by_parent)
        if found.names is not None:
            target = ObjectPath(key, found.names)
            try:
                writer.object(target)
            except NotFound:
                found = Match(None, MatchReason.NOT_FOUND, REASONS[MatchReason.NOT_FOUND])
            else:
                if target.url.casefold() in claimed:
                    found = Match(
                        None,
                        MatchReason.AMBIGUOUS,
                        f"another data source is matched to {target.url} already",
                    )
        if found.names is None:
            assert found.reason is not None
            lg.update_source(
                writer,
                source.id,
                match_state=MatchState.UNRESOLVED,
                match_reason=f"{found.reason.value}: {found.detail}",
                matched_path=None,
            )
            stats["unresolved"] += 1
            continue
        target = ObjectPath(key, found.names)
        claimed.add(target.url.casefold())
        apply_match(writer, source, target)
        stats["matched"] += 1
        if found.names != source.names:
            stats["matchedByCase"] += 1
    for monitored, on in integration.schema_monitoring.items():
        if not on:
            continue
        database, schema = monitored.split("\x00")
        try:
            stored = writer.object(ObjectPath(key, (database, schema)))
        except NotFound:
            continue
        writer.set_settings(stored.path, is_active=True, activate_new_children=True)
    return stats


def system_user(credentials: Mapping[str, Any]) -> Any:
    """Who the platform sees: the user name, or the OAuth client id (the token's subject)."""
    oauth = credentials.get("oauth")
    if isinstance(oauth, Mapping):
        return oauth.get("clientId")
    return credentials.get("username") or credentials.get("user")


def oauth_checks(credentials: Mapping[str, Any], references: References) -> list[Check]:
    """Trino with OAuth 2.0: the `oauth` block (the `auth:` block format of docs/auth.md, a
    client secret or a client certificate) parsed by `pdp.auth`, then a token fetched from the
    identity provider with it. Run it under the network policy (the token endpoint is the
    caller's choice)."""
    try:
        references.check(credentials["oauth"], "credentials.oauth")
        client = ClientCredentials.from_mapping(
            credentials["oauth"], "credentials.oauth", inline=True
        )
    except ConfigError as error:
        return [Check("credentials", False, str(error))]
    except InvalidInput as error:
        return [Check("credentials", False, f"{error.field}: {error.message}")]
    checks = [Check("credentials", True, f"OAuth 2.0 client {client.auth_method}")]
    try:
        with TokenSource(client) as source:
            source.token()
    except (TokenError, httpx.HTTPError) as error:
        detail = f"the identity provider gave no token: {connect_failure(error)}"
        return [*checks, Check("token", False, detail)]
    return [
        *checks,
        Check("token", True, f"the identity provider issued a token to {client.client_id}"),
    ]


def system_user_check(admin: re.Pattern[str] | None, credentials: Mapping[str, Any]) -> Check:
    """The Trino system user must be one the cluster's `immuta.user.admin` names (a pattern,
    matched whole, as the decision core matches it); `admin` None: nothing names it."""
    user = system_user(credentials)
    if admin is None:
        return Check(
            "systemUser",
            False,
            "the cluster's immuta.user.admin is not known: give endpoint.adminUsers (that "
            "pattern) or endpoint.propertiesFile, or clusterProperties in pdp.yaml",
        )
    ok = bool(user) and admin.fullmatch(str(user)) is not None
    return Check(
        "systemUser",
        ok,
        f"the system user {user!r} matches the cluster's immuta.user.admin {admin.pattern!r}"
        if ok
        else f"the system user {user!r} does not match the cluster's immuta.user.admin "
        f"({admin.pattern!r}): set it there, or use that user",
    )


def shape_checks(
    technology: Technology, endpoint: Mapping[str, Any], credentials: Mapping[str, Any]
) -> list[Check]:
    """What each technology's credentials must hold before the platform is asked."""

    def has(*names: str) -> bool:
        return any(
            credentials.get(n) or credentials.get(f"{n}Env") or credentials.get(f"{n}File")
            for n in names
        )

    if technology is Technology.TRINO:
        insecure = endpoint.get("httpScheme") == "http"
        if "oauth" in credentials:  # checked by `oauth_checks`, with the project's clients
            ok, detail = True, "OAuth 2.0 client credentials"
        elif has("username", "user") and has("password"):
            ok, detail = True, "user and password"
        elif has("username", "user") and insecure:
            ok, detail = True, "a user name alone (a cluster without authentication, over http)"
        else:
            ok = False
            detail = (
                "user and password (or passwordEnv / passwordFile) are needed, or an oauth "
                "block (client secret or client certificate); a user name alone only with "
                "endpoint.httpScheme http (a cluster without authentication)"
            )
        checks = [Check("credentials", ok, detail)]
        if ok and ADMIN_USERS in endpoint:  # the cluster's immuta.user.admin, a pattern
            try:
                admin = re.compile(str(endpoint[ADMIN_USERS]))
            except re.error as error:
                return [*checks, Check("systemUser", False, f"endpoint.{ADMIN_USERS}: {error}")]
            checks.append(system_user_check(admin, credentials))
        return checks
    if technology is Technology.SNOWFLAKE:
        ok = bool(credentials.get("role") or endpoint.get("role"))
        return [
            Check("role", ok, "a role is named" if ok else "name the role the system user takes")
        ]
    if technology is Technology.DATABRICKS:
        ok = has("token")
        return [
            Check(
                "token",
                ok,
                "a token is given"
                if ok
                else "an access token (token, tokenEnv or tokenFile) is needed",
            )
        ]
    return [Check("credentials", True, "checked by the platform")]


def _object_type(value: Any) -> ObjectType:
    if value is None:
        return ObjectType.TABLE
    try:
        return ObjectType(str(value).upper())
    except ValueError:
        raise InvalidInput("type", value, "not a table type") from None


def _strings(value: Any, field: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput(field, value, "expected a list of strings")
    return value


def _owners(value: Any) -> list[dict[str, str]]:
    if value is None:
        return []
    result = []
    for owner in value if isinstance(value, list) else [None]:
        if isinstance(owner, str):
            owner = {"principal": owner, "principalKind": "user"}
        if not isinstance(owner, dict) or not owner.get("principal"):
            raise InvalidInput("owners", value, "expected user names or {principal, principalKind}")
        kind = owner.get("principalKind", "user")
        if kind not in ("user", "group"):
            raise InvalidInput("owners", value, "principalKind is user or group")
        result.append({"principal": owner["principal"], "principalKind": kind})
    return result


def _status(value: Any) -> bool:
    if value in ("active", True):
        return True
    if value in ("inactive", False):
        return False
    raise InvalidInput("status", value, "expected active or inactive")
