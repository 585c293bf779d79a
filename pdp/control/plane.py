"""The control plane's operations, as the admin API (and tests) call them.

Every method is blocking (store and platform I/O): the admin API runs them in its thread pool.
Each checks the caller's permission first (`pdp.control.permissions`) and raises the typed
errors of `pdp.objects.errors` (400/404/409), `Forbidden` (403) or `ValidationFailed` (422).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pdp.control import permissions as perm
from pdp.control.cascade import CascadeWork
from pdp.control.catalogs import KEY as TRINO_CATALOGS
from pdp.control.catalogs import Proposal, check_claims, check_mapping, governed, propose
from pdp.control.objectsync import CrawlerFactory, SyncRunner
from pdp.control.permissions import Caller
from pdp.control.views import (
    CascadeStarted,
    CatalogMapping,
    ConnectionView,
    Deleted,
    ObjectView,
    Permissions,
    SettingsChanged,
    TableDetails,
    TableSource,
    Ungoverned,
)
from pdp.core.model import fold
from pdp.crawl.base import Check, connect_failure
from pdp.crawl.network import NetworkPolicy
from pdp.objects.errors import DuplicateKey, InvalidInput, NotFound
from pdp.objects.keys import check_connection_key
from pdp.objects.paths import Kind, ObjectPath
from pdp.objects.settings import RemoteState
from pdp.policy.model import Technology
from pdp.store import (
    KEEP,
    ConnectionRecord,
    DataRequest,
    Job,
    JobState,
    JobTrigger,
    JobType,
    NewConnection,
    ObjectRecord,
    Page,
    PrincipalKind,
    Reader,
    References,
    RequestState,
    Role,
    Store,
    not_governed_in_trino,
)
from pdp.store.legacy import UpgradeState
from pdp.store.model import DEFAULT_FAIL_SAFE, DEFAULT_SCHEDULE, check_schedule
from pdp.store.rows import technology as parse_technology

log = logging.getLogger(__name__)

CASCADE_JOB_THRESHOLD = 10_000  # pdp.yaml `control.cascadeJobThreshold`


class ValidationFailed(Exception):
    """422: the platform refused the connection details; `checks` says which check failed."""

    def __init__(self, checks: list[Check]) -> None:
        failed = [c.name for c in checks if not c.ok]
        super().__init__(f"credential validation failed: {', '.join(failed)}")
        self.checks = checks


@dataclass(frozen=True)
class Registration:
    key: str
    technology: str
    endpoint: Mapping[str, Any]
    credentials: Mapping[str, Any]
    is_active: bool | None = None
    activate_new_children: bool | None = None
    force_recursive: bool = False
    schedule: str = DEFAULT_SCHEDULE
    fail_safe_threshold: float = DEFAULT_FAIL_SAFE
    settings: Mapping[str, Any] | None = None


class ControlPlane:
    def __init__(
        self,
        store: Store,
        runner: SyncRunner,
        crawler_factory: CrawlerFactory,
        *,
        cascade_threshold: int = CASCADE_JOB_THRESHOLD,
        references: References | None = None,
        network: NetworkPolicy | None = None,
        declared: Callable[[], Any] | None = None,
        cluster: Callable[[], Any] | None = None,
        trino_catalog_files: Path | None = None,
    ):
        self.store = store
        # the secret references pdp.yaml allows in connection details (none by default) and
        # where connection checks may connect (`control.network`); see pdp.store.secrets
        self.references = references or References()
        self.network = network or NetworkPolicy.of()
        self.runner = runner
        self.job_runner = runner.jobs  # the process's job runner: syncs and cascades
        self.crawler_factory = crawler_factory
        # a settings change reaching more descendants than this runs as a cascade job
        self.cascade_threshold = cascade_threshold
        # The policy files' documents (registry YAML), for the upgrade manager to offer the
        # connections they declare by hand.
        self.declared = declared
        # The Trino cluster's settings (`clusterProperties`): the upgrade manager checks that
        # the system user matches its `immuta.user.admin`.
        self.cluster = cluster
        # Trino's catalog files (`control.trinoCatalogFiles`), to propose the `trinoCatalogs`
        # of a connection registered without them.
        self.trino_catalog_files = trino_catalog_files

    def may_claim(
        self,
        caller: Caller,
        key: str,
        technology: Technology,
        endpoint: Mapping[str, Any],
        mapping: Mapping[str, str],
    ) -> None:
        """403 when connection `key` would claim Trino catalogs that somebody else governs:
        its `trinoCatalogs`, or for a Trino connection every catalog of its Trino (catalogs.py).
        The claimants: the policy files, the other connections and the legacy integrations not
        yet finalized (a finalized one's connection holds its claims)."""
        if caller.has(perm.GOVERNANCE) or (technology is not Technology.TRINO and not mapping):
            return
        docs = self.declared() if self.declared is not None else None
        declared = (*docs.sources, *docs.retired) if docs is not None else ()
        mappings: dict[str, Mapping[str, str]] = {}
        listed: dict[str, list[str]] = {}
        with self.store.read() as reader:
            for connection in reader.connections():
                if connection.technology is Technology.TRINO:
                    listed[connection.key] = _names(reader, ObjectPath(connection.key))
                else:
                    mappings[connection.key] = connection.settings.get(TRINO_CATALOGS) or {}
            for integration in reader.integrations():
                names = {fold(integration.name), fold(integration.display_name or "")}
                if integration.upgrade_state is UpgradeState.FINALIZED or fold(key) in names:
                    continue
                if integration.technology is Technology.TRINO:
                    sources = reader.sources_of(integration)
                    listed[integration.name] = sorted({s.database for s in sources})
                else:
                    mappings[integration.name] = integration.settings.get(TRINO_CATALOGS) or {}
        claimed = governed(key, declared, mappings, listed)
        check_claims(
            caller,
            technology,
            mapping,
            claimed,
            propose(technology, endpoint, self.trino_catalog_files),
            trinos=[other for other in listed if fold(other) != fold(key)],
        )

    def admit(self, caller: Caller) -> None:
        """403 unless the caller holds some control-plane permission: checked before anything
        else, so that answers to others never tell which connections or objects exist."""
        with self.store.read() as reader:
            perm.require_read(reader, caller)

    # --- connections ------------------------------------------------------------------------

    def _record(
        self,
        key: str,
        technology: Technology,
        endpoint: Mapping[str, Any],
        credentials: Mapping[str, Any],
    ) -> ConnectionRecord:
        """What the connection checks run against: these endpoint and credentials (sealed),
        every other field its default."""
        sealed = self.store.secrets.seal(credentials, "connection.credentials")
        return NewConnection(key, technology, endpoint, credentials).checkable(sealed)

    def check(self, record: ConnectionRecord) -> list[Check]:
        try:
            crawler = self.crawler_factory(record)
        except Exception as error:  # the configuration's problems, in our words
            return [Check("connect", False, f"{type(error).__name__}: {error}")]
        try:
            return list(crawler.check())
        except Exception as error:  # a driver's surprise: what failed, not what it said
            return [Check("connect", False, connect_failure(error))]
        finally:
            crawler.close()

    def validate(
        self,
        caller: Caller,
        technology: str,
        endpoint: Mapping[str, Any],
        credentials: Mapping[str, Any],
    ) -> list[Check]:
        perm.require_validate(caller)
        self.references.check(endpoint, "endpoint")
        self.references.check(credentials, "credentials")
        record = self._record(
            "validate", parse_technology(technology, "connection.technology"), endpoint, credentials
        )
        return self.check(record)

    def register(
        self, caller: Caller, registration: Registration
    ) -> tuple[str, Job | None, Proposal | None]:
        """Register and start the first sync: (key, job, the `trinoCatalogs` proposal made
        for a non-Trino connection registered without them, else None)."""
        perm.require_register(caller)
        self.references.check(registration.endpoint, "connection.endpoint")
        self.references.check(registration.credentials, "connection.credentials")
        key = check_connection_key(registration.key)
        technology = parse_technology(registration.technology, "connection.technology")
        check_schedule(registration.schedule)
        settings, proposal = self._registered_catalogs(caller, key, technology, registration)
        with self.store.read() as reader:  # 409 before talking to the platform
            try:
                existing = reader.connection(key)
            except NotFound:
                existing = None
        if existing is not None:
            raise DuplicateKey("connectionKey", key, f"connection {existing.key!r} exists already")
        record = self._record(key, technology, registration.endpoint, registration.credentials)
        checks = self.check(record)
        if not all(c.ok for c in checks):
            raise ValidationFailed(checks)
        new = NewConnection(
            key,
            technology,
            endpoint=registration.endpoint,
            credentials=registration.credentials,
            settings=settings,
            schedule=registration.schedule,
            is_active=registration.is_active,
            activate_new_children=registration.activate_new_children,
            fail_safe_threshold=registration.fail_safe_threshold,
        )
        with self.store.write() as writer:
            writer.register(new)
            if not caller.has(perm.GOVERNANCE):  # the registrant manages what they registered
                writer.grant(
                    ObjectPath(key),
                    caller.name,
                    Role.INFRASTRUCTURE_ADMIN,
                    granted_by=caller.name,
                )
        job = self.runner.start(
            ObjectPath(key),
            JobTrigger.REGISTRATION,
            force_recursive=registration.force_recursive,
        )
        return key, job, proposal

    def _registered_catalogs(
        self, caller: Caller, key: str, technology: Technology, registration: Registration
    ) -> tuple[dict[str, Any], Proposal | None]:
        """The settings to register with: `trinoCatalogs` as given (checked, and the caller
        allowed to map them), else for a non-Trino connection as proposed from the Trino
        catalog files (the proposal returned too)."""
        settings = dict(registration.settings or {})
        if TRINO_CATALOGS in settings:
            settings[TRINO_CATALOGS] = check_mapping(
                technology, settings[TRINO_CATALOGS], "connection.trinoCatalogs"
            )
            self.may_claim(caller, key, technology, registration.endpoint, settings[TRINO_CATALOGS])
            return settings, None
        if technology is Technology.TRINO:
            self.may_claim(caller, key, technology, registration.endpoint, {})
            return settings, None
        proposal = propose(technology, registration.endpoint, self.trino_catalog_files)
        if proposal.catalogs:
            settings[TRINO_CATALOGS] = proposal.catalogs
        return settings, proposal

    def connection(self, caller: Caller, key: str) -> ConnectionView:
        with self.store.read() as reader:
            perm.require_read(reader, caller)
            record = reader.connection(key)
            return ConnectionView(record, Ungoverned.of(not_governed_in_trino(reader, key)))

    def update_connection(
        self,
        caller: Caller,
        key: str,
        endpoint: Mapping[str, Any] | None,
        credentials: Mapping[str, Any] | None,
        schedule: str | None = None,
        fail_safe_threshold: float | None = None,
        trino_catalogs: Mapping[str, str] | None = None,
    ) -> ConnectionView:
        """Change what may change. `trino_catalogs` replaces the whole mapping (empty: none)."""
        with self.store.read() as reader:
            perm.require_manage_connection(reader, caller, key)
            current = reader.connection(key)
        self.references.check(endpoint, "endpoint")
        self.references.check(credentials, "credentials")
        mapping = None
        where = endpoint if endpoint is not None else current.endpoint
        if trino_catalogs is not None:
            mapping = check_mapping(current.technology, trino_catalogs, "trinoCatalogs")
            self.may_claim(caller, key, current.technology, where, mapping)
        if current.technology is Technology.TRINO and endpoint is not None:
            self.may_claim(caller, key, current.technology, where, {})
        if endpoint is not None or credentials is not None:
            sealed_new = (
                self.store.secrets.seal(credentials, "connection.credentials")
                if credentials is not None
                else current.credentials
            )
            record = ConnectionRecord(
                **{
                    **{f: getattr(current, f) for f in current.__dataclass_fields__},
                    "endpoint": dict(endpoint) if endpoint is not None else current.endpoint,
                    "credentials": sealed_new,
                }
            )
            checks = self.check(record)
            if not all(c.ok for c in checks):
                raise ValidationFailed(checks)
        with self.store.write() as writer:
            settings = None
            if mapping is not None:  # the other settings as they are now, in this transaction
                now = writer.connection(key).settings
                settings = {k: v for k, v in now.items() if k != TRINO_CATALOGS}
                if mapping:
                    settings[TRINO_CATALOGS] = mapping
            updated = writer.update_connection(
                key,
                endpoint=endpoint,
                credentials=credentials,
                settings=settings,
                schedule=schedule,
                fail_safe_threshold=fail_safe_threshold,
            )
            return ConnectionView(updated, Ungoverned.of(not_governed_in_trino(writer, key)))

    # --- objects ----------------------------------------------------------------------------

    def object(self, caller: Caller, path: ObjectPath) -> ObjectView:
        with self.store.read() as reader:
            perm.require_read(reader, caller)
            record = reader.object(path)
            effective = reader.effective_settings(path)
            connection = reader.connection(path.key)
            mapping = None
            if connection.technology is not Technology.TRINO and record.kind is not Kind.CONNECTION:
                catalogs = connection.settings.get(TRINO_CATALOGS) or {}
                database = fold(record.path.names[0])
                mapping = CatalogMapping(
                    next((c for d, c in catalogs.items() if fold(d) == database), None)
                )
            below = [
                s
                for s in not_governed_in_trino(reader, path.key)
                if tuple(map(fold, (s.database, s.schema, s.name)))[: len(record.path.names)]
                == tuple(map(fold, record.path.names))
            ]
            table = None
            if record.kind is Kind.TABLE:
                active = effective.is_active.value and record.remote_state is not (
                    RemoteState.MISSING
                )
                source = (
                    TableSource(record.data_source_id, active) if record.data_source_id else None
                )
                table = TableDetails(tuple(reader.columns(path)), source)
            return ObjectView(
                record,
                effective,
                reader.child_count(path),
                tuple(sorted(reader.tags(path))),
                tuple(
                    p for p in reader.permissions(path, inherited=True) if p.role is Role.DATA_OWNER
                ),
                connection.last_sync_at,
                Ungoverned.of(below),
                mapping,
                table,
            )

    def search(
        self,
        caller: Caller,
        path: ObjectPath | None,
        *,
        recursive: bool = False,
        offset: int = 0,
        size: int = 100,
        kind: str | None = None,
        remote_state: str | None = None,
        search_text: str | None = None,
        is_active: bool | None = None,
    ) -> Page[ObjectRecord]:
        kind_value = _enum(Kind, kind, "kind")
        state_value = _enum(RemoteState, remote_state, "remoteState")
        with self.store.read() as reader:
            perm.require_read(reader, caller)
            options: dict[str, Any] = {
                "offset": offset,
                "size": size,
                "kind": kind_value,
                "remote_state": state_value,
                "search_text": search_text,
                "is_active": is_active,
            }
            if path is not None and recursive:
                return reader.search(path, **options)
            return reader.children(path, **options)

    def set_settings(
        self, caller: Caller, path: ObjectPath, values: Mapping[str, bool | None]
    ) -> SettingsChanged | CascadeStarted:
        """Change the overrides of one node. A change whose cascade reaches more than
        `cascade_threshold` descendants is checked now (403, 404, the 100,000 rule: 400) and
        applied by a `cascade` job: the answer is then `CascadeStarted` (the API's 202)."""
        overrides = {
            "is_active": values.get("isActive", KEEP),
            "activate_new_children": values.get("activateNewChildren", KEEP),
        }
        if path.kind is not Kind.TABLE:  # a table has no descendants: never a job
            with self.store.read() as reader:
                perm.require_manage_object(reader, caller, path)
                bound = self.cascade_threshold + 1
                descendants = reader.descendant_count(path, at_most=bound)
                if descendants > self.cascade_threshold:
                    reader.check_settings(path, **overrides)
                    stored = reader.object(path).path
                    descendants = reader.descendant_count(path)
            if descendants > self.cascade_threshold:
                return self._cascade(caller, stored, overrides, descendants)
        with self.store.write() as writer:
            perm.require_manage_object(writer, caller, path)
            effective = writer.set_settings(path, **overrides)
        return SettingsChanged(path, effective)

    def _cascade(
        self, caller: Caller, path: ObjectPath, overrides: dict[str, Any], descendants: int
    ) -> CascadeStarted:
        """Start the cascade job, which holds the connection's job lock (as a sync does: one
        job per connection across replicas); the job once it is accepted, or `JobRunning`
        (409) when a job of the connection runs."""
        work = CascadeWork(self.store, path, overrides, descendants, caller.name)
        job = self.job_runner.run(JobType.CASCADE, path.key, work)
        assert job is not None  # a cascade always has something to run
        log.info("settings of %s (%d descendants): cascade job %s", path.url, descendants, job.id)
        return CascadeStarted(path, job.id, descendants)

    def join(self, timeout: float = 30.0) -> None:
        """Wait for this process's jobs: syncs and cascades (tests, shutdown)."""
        self.job_runner.join(timeout)

    def crawl(self, caller: Caller, path: ObjectPath, force_recursive: bool = False) -> Job | None:
        with self.store.read() as reader:
            perm.require_manage_object(reader, caller, path)
            reader.object(path)
        return self.runner.start(path, JobTrigger.MANUAL, force_recursive=force_recursive)

    def delete(self, caller: Caller, path: ObjectPath) -> Deleted:
        with self.store.write() as writer:
            if path.parent is None:
                perm.require_manage_connection(writer, caller, path.key)
            else:
                perm.require_manage_object(writer, caller, path)
            stored = writer.object(path).path
            count = writer.delete_object(path)
        return Deleted(stored, count)

    # --- permissions ------------------------------------------------------------------------

    def grant(
        self,
        caller: Caller,
        path: ObjectPath,
        principal: str,
        role: str,
        principal_kind: str = "user",
        revoke: bool = False,
    ) -> Permissions:
        with self.store.read() as reader:  # permission before the body's values
            perm.require_manage_connection(reader, caller, path.key)
        role_value = _enum(Role, role, "role")
        kind_value = _enum(PrincipalKind, principal_kind, "principalKind")
        assert role_value is not None and kind_value is not None
        with self.store.write() as writer:
            perm.require_manage_connection(writer, caller, path.key)
            if revoke:
                writer.revoke(path, principal, role_value, principal_kind=kind_value)
            else:
                writer.grant(
                    path, principal, role_value, principal_kind=kind_value, granted_by=caller.name
                )
            return self._permissions(writer, path)

    def permissions(self, caller: Caller, path: ObjectPath) -> Permissions:
        with self.store.read() as reader:
            perm.require_read(reader, caller)
            return self._permissions(reader, path)

    @staticmethod
    def _permissions(reader: Reader, path: ObjectPath) -> Permissions:
        stored = reader.object(path).path
        return Permissions(stored, path, tuple(reader.permissions(path, inherited=True)))

    # --- jobs -------------------------------------------------------------------------------

    def job(self, caller: Caller, job_id: str) -> Job:
        with self.store.read() as reader:
            perm.require_read(reader, caller)
            return reader.job(job_id)

    def jobs(
        self,
        caller: Caller,
        connection: str | None,
        state: str | None,
        offset: int = 0,
        size: int = 100,
    ) -> Page[Job]:
        state_value = _enum(JobState, state, "state")
        with self.store.read() as reader:
            perm.require_read(reader, caller)
            return reader.jobs(connection=connection, state=state_value, offset=offset, size=size)

    # --- data source requests ---------------------------------------------------------------

    def requests(
        self,
        caller: Caller,
        state: str | None = None,
        connection: str | None = None,
        path: ObjectPath | None = None,
    ) -> tuple[DataRequest, ...]:
        """The requests the caller may see: all of them for GOVERNANCE, else those on objects
        they own; filtered by state, connection and object path (at or below it)."""
        state_value = _enum(RequestState, state, "state")
        with self.store.read() as reader:
            perm.require_read(reader, caller)
            found = reader.requests(state=state_value, connection=connection)
            if path is not None:
                wanted = tuple(fold(s) for s in path.segments)
                found = [
                    r
                    for r in found
                    if tuple(fold(s) for s in r.path.segments[: len(wanted)]) == wanted
                ]
            if not caller.has(perm.GOVERNANCE):
                owned: dict[ObjectPath, bool] = {}
                mine = []
                for r in found:
                    if r.path not in owned:
                        owned[r.path] = perm.owns(reader, caller, r.path)
                    if owned[r.path]:
                        mine.append(r)
                found = mine
        return tuple(found)

    def request(self, caller: Caller, request_id: int) -> DataRequest:
        with self.store.read() as reader:
            found = reader.request(request_id)
            perm.require_request_owner(reader, caller, found.path)
            return found

    def resolve_request(self, caller: Caller, request_id: int) -> DataRequest:
        """Validate an added column (its `New` tag comes off: the store's next version, and
        with it the next revision, no longer masks it) or acknowledge a deleted one."""
        with self.store.write() as writer:
            found = writer.request(request_id)
            perm.require_request_owner(writer, caller, found.path)
            writer.resolve_request(request_id, caller.name)
            return writer.request(request_id)


def _enum(kind: Any, value: str | None, field: str) -> Any:
    if value is None:
        return None
    try:
        return kind(value)
    except ValueError:
        known = ", ".join(v.value for v in kind)
        raise InvalidInput(field, value, f"expected one of {known}") from None


CHILDREN_PAGE = 1000  # the store's largest page


def _names(reader: Reader, path: ObjectPath) -> list[str]:
    """The names of every child of `path`, page by page."""
    names: list[str] = []
    while True:
        page = reader.children(path, offset=len(names), size=CHILDREN_PAGE)
        names.extend(record.path.name for record in page.hits)
        if not page.hits or len(names) >= page.count:
            return names
