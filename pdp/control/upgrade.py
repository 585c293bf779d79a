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
import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from pdp.control import permissions as perm
from pdp.control.credentials import credential_checks
from pdp.control.jobs import JobRunning, Progress
from pdp.control.legacy import as_connection
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
from pdp.control.plane import ControlPlane, ValidationFailed
from pdp.crawl.base import Check
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
    NewConnection,
    Reader,
    Store,
    Writer,
)
from pdp.store import legacy as lg
from pdp.store.legacy import Integration, LegacySource, MatchReason, MatchState, UpgradeState
from pdp.store.model import utcnow

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


@dataclass(frozen=True, slots=True)
class IntegrationView:
    """An integration as the upgrade shows it: stored, or declared in the policy files only
    (`id` None, `declared_in` says where). `data_source_count` only where it was counted."""

    id: int | None
    name: str
    technology: Technology
    state: UpgradeState
    display_name: str | None = None
    job_id: str | None = None
    data_source_count: int | None = None
    declared_in: str | None = None

    @property
    def next(self) -> tuple[str, ...]:
        return NEXT[self.state]

    @classmethod
    def of(cls, integration: Integration, count: int | None = None) -> IntegrationView:
        return cls(
            integration.id,
            integration.name,
            integration.technology,
            integration.upgrade_state,
            integration.display_name,
            integration.upgrade_job_id,
            count,
        )


@dataclass(frozen=True, slots=True)
class Integrations:
    hits: tuple[IntegrationView, ...]  # not finalized
    finalized: int


@dataclass(frozen=True, slots=True)
class IntegrationStatus:
    view: IntegrationView
    counts: Mapping[MatchState, int]  # every state, in MatchState's order
    job: Job | None


@dataclass(frozen=True, slots=True)
class Validated:
    view: IntegrationView
    checks: tuple[Check, ...]


@dataclass(frozen=True, slots=True)
class Resolved:
    view: IntegrationView
    unresolved: int  # data sources of the integration still unresolved or pending
    source: LegacySource


@dataclass(frozen=True, slots=True)
class Finalized:
    view: IntegrationView
    next_sync: datetime


class UpgradeManager:
    """The upgrade steps. Blocking (store and platform I/O)."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self.store: Store = plane.store
        self.jobs = plane.job_runner  # the process's one job runner

    # --- reading ----------------------------------------------------------------------------

    def integrations(self, caller: Caller) -> Integrations:
        require_upgrade(caller)
        with self.store.read() as reader:
            counts = reader.source_counts()
            hits = [IntegrationView.of(i, counts.get(i.id, 0)) for i in reader.integrations()]
        stored = {h.name.casefold() for h in hits}
        for name, (technology, entries) in self._declared().items():
            if name.casefold() not in stored:  # declared in the files, not imported yet
                hits.append(
                    IntegrationView(
                        None,
                        name,
                        technology,
                        S.NOT_STARTED,
                        data_source_count=len(entries),
                        declared_in="policy files",
                    )
                )
        ready = tuple(h for h in hits if h.state is not S.FINALIZED)
        return Integrations(ready, len(hits) - len(ready))

    def status(self, caller: Caller, name: str) -> IntegrationStatus:
        require_upgrade(caller)
        counts = dict.fromkeys(MatchState, 0)
        with self.store.read() as reader:
            if reader.find_integration(name) is None:  # declared in the files only?
                for hit in self.integrations(caller).hits:
                    if hit.id is None and hit.name.casefold() == name.casefold():
                        counts[MatchState.PENDING] = hit.data_source_count or 0
                        return IntegrationStatus(hit, counts, None)
            integration = reader.integration(name)
            sources = reader.sources_of(integration)
            job = reader.job(integration.upgrade_job_id) if integration.upgrade_job_id else None
        for source in sources:
            counts[source.match_state] += 1
        view = IntegrationView.of(integration, len(sources) - counts[MatchState.DELETED])
        return IntegrationStatus(view, counts, job)

    def unresolved(self, caller: Caller, name: str) -> tuple[LegacySource, ...]:
        require_upgrade(caller)
        with self.store.read() as reader:
            integration = reader.integration(name)
            return tuple(
                s for s in reader.sources_of(integration) if s.match_state is MatchState.UNRESOLVED
            )

    # --- the steps --------------------------------------------------------------------------

    def start(self, caller: Caller, name: str, display_name: str) -> IntegrationView:
        require_upgrade(caller)
        key = check_connection_key(display_name)
        with self.store.write() as writer:
            integration = writer.find_integration(name) or self._import(writer, name)
            state = integration.upgrade_state
            if state not in (S.NOT_STARTED, S.STARTED, S.VALIDATED):
                if state is not S.FINALIZED and integration.display_name == key:
                    return IntegrationView.of(integration)  # repeated: same answer
                raise WrongStep(integration, "start")
            if integration.display_name == key and state is not S.NOT_STARTED:
                return IntegrationView.of(integration)
            try:
                existing = writer.connection(key)
            except NotFound:
                existing = None
            if existing is not None:
                raise DuplicateKey(
                    "displayName", key, f"connection {existing.key!r} exists already"
                )
            other = writer.find_integration(key)
            if other is not None and other.id != integration.id:
                raise DuplicateKey(
                    "displayName", key, f"integration {other.name!r} is named so already"
                )
            for candidate in writer.integrations():
                if (
                    candidate.id != integration.id
                    and candidate.display_name
                    and key_identity(candidate.display_name) == key_identity(key)
                ):
                    raise DuplicateKey(
                        "displayName", key, f"the upgrade of {candidate.name!r} uses it already"
                    )
            integration = writer.update_integration(
                integration, display_name=key, upgrade_state=S.STARTED
            )
        return IntegrationView.of(integration)

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
            writer.integration(name)  # 404
        spelled = declared[name.casefold()]
        technology, entries = self._declared()[spelled]
        docs = self.plane.declared() if self.plane.declared else None
        catalogs = {
            e.database: e.trino_catalog
            for e, _ in entries
            if e.trino_catalog and technology is not Technology.TRINO
        }
        integration = writer.create_integration(
            spelled, technology, {}, {}, {"trinoCatalogs": catalogs} if catalogs else None
        )
        for entry, active in entries:
            writer.add_source(
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
            integration = writer.update_integration(
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
    ) -> Validated:
        require_upgrade(caller)
        self.plane.references.check(endpoint, "endpoint")
        self.plane.references.check(credentials, "credentials")
        with self.store.read() as reader:
            integration = reader.integration(name)
            sources = reader.sources_of(integration)
        if integration.upgrade_state not in (S.STARTED, S.VALIDATED):
            raise WrongStep(integration, "validate")
        record = as_connection(self.store, integration, endpoint, credentials)
        checks, checked = credential_checks(self.plane, record, sources)
        if checked.endpoint != record.endpoint:  # the cluster's adminUsers, kept
            endpoint = checked.endpoint
        if not all(c.ok for c in checks):
            raise ValidationFailed(checks)
        with self.store.write() as writer:
            integration = writer.integration(name)
            if integration.upgrade_state not in (S.STARTED, S.VALIDATED):
                raise WrongStep(integration, "validate")
            values: dict[str, Any] = {"upgrade_state": S.VALIDATED}
            if endpoint is not None:
                values["endpoint"] = dict(endpoint)
            if credentials is not None:
                values["credentials"] = credentials
            integration = writer.update_integration(integration, **values)
        return Validated(IntegrationView.of(integration), tuple(checks))

    def upgrade(self, caller: Caller, name: str, confirm: bool) -> IntegrationView:
        require_upgrade(caller)
        if confirm is not True:
            raise InvalidInput(
                "confirm",
                confirm,
                "upgrading changes how this integration's data sources are managed and retires "
                "its legacy endpoints: send confirm: true to go ahead",
            )
        with self.store.write() as writer:
            integration = writer.integration(name)
            state = integration.upgrade_state
            if state is S.UPGRADING:
                running = self._running(integration)
                if running is not None:  # repeated while it runs: the same job
                    return dataclasses.replace(IntegrationView.of(integration), job_id=running)
            elif state is not S.VALIDATED:
                raise WrongStep(integration, "upgrade")
            key = integration.display_name
            assert key is not None
            try:
                writer.connection(key)
            except NotFound:
                writer.register(
                    NewConnection(
                        key,
                        integration.technology,
                        endpoint=integration.endpoint,
                        settings=integration.settings,
                    )
                )
                writer.update_connection(key, state=ConnectionState.UPGRADING)
            # credentials as sealed by the integration (no re-sealing of ciphertext)
            writer.set_sealed_credentials(key, integration.credentials)
            job = writer.create_job(JobType.UPGRADE, JobTrigger.MANUAL, ObjectPath(key))
            integration = writer.update_integration(
                integration, upgrade_state=S.UPGRADING, upgrade_job_id=job.id
            )
        self._start_job(integration, job)
        return dataclasses.replace(IntegrationView.of(integration), job_id=job.id)

    def _running(self, integration: Integration) -> str | None:
        """The integration's upgrade job, if this process runs it now."""
        running = self.jobs.running_here()
        return integration.upgrade_job_id if integration.upgrade_job_id in running else None

    def _start_job(self, integration: Integration, job: Job) -> None:
        key = integration.display_name
        assert key is not None
        work = UpgradeWork(self.plane, integration.name, key)
        try:
            self.jobs.run(JobType.UPGRADE, key, work, job=job)
        except JobRunning as refused:  # another job of this process holds the connection
            Progress(self.store, job, self.jobs.stopping).fail(
                [{"path": job.path, "message": f"{type(refused).__name__}: {refused}"}]
            )

    def join(self, timeout: float = 30.0) -> None:
        """Wait for this process's jobs (tests, shutdown)."""
        self.jobs.join(timeout)

    def resolve(
        self,
        caller: Caller,
        name: str,
        source_id: str,
        action: str,
        path: str | None = None,
    ) -> Resolved:
        require_upgrade(caller)
        if action not in ("match", "retry", "disable", "delete"):
            raise InvalidInput("action", action, "expected match, retry, disable or delete")
        with self.store.read() as reader:
            integration = _resolvable(reader, name)
            owner, source = reader.source(source_id)
            if owner.id != integration.id:
                raise NotFound("dataSourceId", source_id, f"not a data source of {name!r}")
            key = integration.display_name
            assert key is not None
            connection = reader.connection(key)
        listings = self._relist(connection, source) if action == "retry" else []
        with self.store.write() as writer:
            integration = _resolvable(writer, name)
            source = writer.source(source_id)[1]
            if action == "match":
                _match_to(writer, integration, source, key, path)
            elif action == "retry":
                _rematch(writer, source, key, listings)
            else:
                given_up = MatchState.DISABLED if action == "disable" else MatchState.DELETED
                writer.update_source(source.id, match_state=given_up)
            left = sum(
                1
                for s in writer.sources_of(integration)
                if s.match_state in (MatchState.UNRESOLVED, MatchState.PENDING)
            )
            integration = writer.update_integration(
                integration, upgrade_state=S.PARTIAL if left else S.UPGRADED
            )
            source = writer.source(source_id)[1]
        return Resolved(IntegrationView.of(integration), left, source)

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

    def finalize(self, caller: Caller, name: str) -> Finalized:
        require_upgrade(caller)
        with self.store.write() as writer:
            integration = writer.integration(name)
            key = integration.display_name
            if integration.upgrade_state is S.FINALIZED:
                assert key is not None
                record = writer.connection(key)
                return Finalized(IntegrationView.of(integration), record.next_sync(utcnow()))
            if integration.upgrade_state is S.PARTIAL:
                left = [
                    s.dotted
                    for s in writer.sources_of(integration)
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
            integration = writer.update_integration(integration, upgrade_state=S.FINALIZED)
        return Finalized(IntegrationView.of(integration), record.next_sync(now))


def _resolvable(reader: Reader, name: str) -> Integration:
    integration = reader.integration(name)
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
        for s in writer.sources_of(integration)
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
        writer.update_source(
            source.id,
            match_state=MatchState.UNRESOLVED,
            match_reason=f"{found.reason.value}: {found.detail}",
        )


class UpgradeWork:
    """The upgrade job (a `Work` of the job runner): crawl the whole connection, apply it like
    a sync, match the legacy data sources, in one write with the job's end. Its row is created
    with the upgrade's state change (`job=`); a job of the connection left running by a
    stopped process is failed with `abandoned` and this one resumes the upgrade."""

    busy = "a job of this connection runs already (job {job}); try again when it has ended"
    abandoned = "abandoned: resumed"

    def __init__(self, plane: ControlPlane, integration: str, key: str) -> None:
        self.plane, self.store, self.integration = plane, plane.store, integration
        self.key, self.path = key, ObjectPath(key)

    def admit(self) -> None:
        """Nothing to check: `upgrade` checked the state in the write creating the job."""

    def begin(self, writer: Writer) -> Mapping[str, Any] | None:
        return {}  # not called: the job is given

    def __call__(self, job: Job, progress: Progress) -> None:
        """A failure leaves the state at `upgrading`: `upgrade` again resumes."""
        try:
            self._upgrade(job, progress)
        except Exception as error:
            log.exception("upgrade job %s of %s failed", job.id, self.integration)
            progress.fail([{"path": job.path, "message": f"{type(error).__name__}: {error}"}])

    def _upgrade(self, job: Job, progress: Progress) -> None:
        key = self.key
        with self.store.read() as reader:
            connection = reader.connection(key)
            nodes = reader.stored_tree(key)
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
            message = f"cannot list {key}: {listings[0].error or 'listing failed'}"
            progress.end(JobState.FAILED, {}, [{"path": job.path, "message": message}])
            return
        with self.store.write() as writer:
            outcome = writer.sync(key, listings, job_id=job.id)
            if not outcome.applied:  # the tree is new: the fail-safe cannot trip
                raise RuntimeError(outcome.plan.fail_safe)
            stats = apply_matches(writer, self.integration, key, listings)
            stats.update({f"sync.{k}": v for k, v in sorted(outcome.stats.items())})
            stats["listings"] = len(listings)
            stats["failedListings"] = sum(1 for x in listings if x.children is None)
            current = writer.integration(self.integration)
            after = S.PARTIAL if stats["unresolved"] else S.UPGRADED
            writer.update_integration(current, upgrade_state=after)
            writer.update_job(job.id, state=JobState.COMPLETED, stats=stats)
        log.info("upgrade job %s of %s: %s", job.id, self.path.url, stats)
