"""The connection upgrade manager (spec §8): the state machine of an integration's upgrade.

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

Matching lives in `pdp.control.matching`, the checks of `validate` in
`pdp.control.credentials`, the legacy API the upgrade retires (§8.5) in `pdp.control.legacy`.
"""

from __future__ import annotations

import builtins
import logging
import threading
import uuid
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

from sqlalchemy import update

from pdp.control import permissions as perm
from pdp.control.credentials import credential_checks
from pdp.control.legacy import as_connection, source_json
from pdp.control.matching import (
    REASONS,
    Match,
    apply_match,
    apply_matches,
    index_listings,
    match_source,
)
from pdp.control.objectsync import crawl, database_bound, listing_bound
from pdp.control.permissions import Caller, Forbidden
from pdp.control.plane import ControlPlane, ValidationFailed, job_json
from pdp.objects.errors import Conflict, DuplicateKey, InvalidInput, NotFound
from pdp.objects.keys import check_connection_key, key_identity
from pdp.objects.paths import Kind, ObjectPath
from pdp.objects.syncplan import Listing
from pdp.policy.model import Technology
from pdp.store import (
    ConnectionRecord,
    ConnectionState,
    Job,
    JobState,
    JobTrigger,
    JobType,
    Reader,
    Store,
    Writer,
)
from pdp.store import legacy as lg
from pdp.store.legacy import Integration, LegacySource, MatchReason, MatchState, UpgradeState
from pdp.store.model import utcnow
from pdp.store.schema import connections
from pdp.store.treesync import load_tree

log = logging.getLogger(__name__)


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


class UpgradeManager:
    """The upgrade steps. Blocking (store and platform I/O)."""

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
        record = as_connection(self.store, integration, endpoint, credentials)
        checks, checked = credential_checks(self.plane, record, sources)
        if checked.endpoint != record.endpoint:  # the cluster's adminUsers, kept
            endpoint = checked.endpoint
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
        with self.store.read() as reader:
            integration = _resolvable(reader, name)
            owner, source = lg.get_source(reader, source_id)
            if owner.id != integration.id:
                raise NotFound("dataSourceId", source_id, f"not a data source of {name!r}")
            key = integration.display_name
            assert key is not None
            connection = reader.connection(key)
        listings = self._relist(connection, source) if action == "retry" else []
        with self.store.write() as writer:
            integration = _resolvable(writer, name)
            source = lg.get_source(writer, source_id)[1]
            if action == "match":
                _match_to(writer, integration, source, key, path)
            elif action == "retry":
                _rematch(writer, source, key, listings)
            else:
                given_up = MatchState.DISABLED if action == "disable" else MatchState.DELETED
                lg.update_source(writer, source.id, match_state=given_up)
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

    def _relist(self, connection: ConnectionRecord, source: LegacySource) -> builtins.list[Listing]:
        """The listings of the containers down to the source's schema, again (`retry`)."""
        listings: builtins.list[Listing] = []
        crawler = self.plane.crawler_factory(connection)
        try:
            parent: tuple[str, ...] = ()
            for name_here in (*source.names[:2], ""):
                listing = crawler.list(parent)
                listings.append(listing)
                if listing.children is None or not name_here:
                    break
                spelled = [c.name for c in listing.children if c.name == name_here] or [
                    c.name for c in listing.children if c.name.casefold() == name_here.casefold()
                ]
                if len(spelled) != 1:
                    break
                parent = (*parent, spelled[0])
        finally:
            crawler.close()
        return listings

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


def _resolvable(reader: Reader, name: str) -> Integration:
    integration = lg.get_integration(reader, name)
    if integration.upgrade_state not in (S.PARTIAL, S.UPGRADED):
        raise WrongStep(integration, "resolve")
    return integration


def _match_to(
    writer: Writer, integration: Integration, source: LegacySource, key: str, path: str | None
) -> None:
    """`resolve` by `match`: the source becomes the table `path` names, if no other data
    source of the integration is matched to it."""
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
        and ObjectPath.parse_url(s.matched_path).url.casefold() == record.path.url.casefold()
    ]
    if claimed:
        raise Conflict("path", path, f"data source {claimed[0].id} is matched to it")
    apply_match(writer, source, record.path)


def _rematch(writer: Writer, source: LegacySource, key: str, listings: Sequence[Listing]) -> None:
    """`resolve` by `retry`: the fresh listings applied, then matched as the upgrade does."""
    if listings and listings[0].children is not None:
        writer.sync(key, listings)
    found = match_source(source.names, index_listings(listings))
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
