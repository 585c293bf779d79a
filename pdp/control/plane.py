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
from pdp.control.cascade import CascadeWork, settings_json
from pdp.control.catalogs import KEY as TRINO_CATALOGS
from pdp.control.catalogs import Proposal, check_claims, check_mapping, governed, propose
from pdp.control.objectsync import CrawlerFactory, SyncRunner
from pdp.control.permissions import Caller
from pdp.core.model import fold
from pdp.crawl.base import Check, connect_failure
from pdp.crawl.network import NetworkPolicy
from pdp.objects.errors import InvalidInput, NotFound
from pdp.objects.keys import check_connection_key
from pdp.objects.paths import Kind, ObjectPath
from pdp.objects.settings import RemoteState
from pdp.policy.model import Technology
from pdp.store import (
    KEEP,
    ConnectionRecord,
    ConnectionState,
    DataRequest,
    Job,
    JobState,
    JobTrigger,
    JobType,
    ObjectRecord,
    PrincipalKind,
    Reader,
    References,
    RequestState,
    Role,
    Store,
    not_governed_in_trino,
    redact,
)
from pdp.store.model import DEFAULT_FAIL_SAFE, DEFAULT_SCHEDULE, check_schedule, utcnow
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


def job_json(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "type": job.type.value,
        "trigger": job.trigger.value,
        "state": job.state.value,
        "connection": job.connection_key,
        "path": job.path,
        "createdAt": _iso(job.created_at),
        "startedAt": _iso(job.started_at),
        "endedAt": _iso(job.ended_at),
        "stats": dict(job.stats),
        "errors": list(job.errors),
    }


def connection_json(record: ConnectionRecord) -> dict[str, Any]:
    return {
        "connectionKey": record.key,
        "technology": record.technology.value,
        "endpoint": dict(record.endpoint),
        "credentials": redact(record.credentials),
        "settings": dict(record.settings),
        "schedule": record.schedule,
        "nextSync": _iso(record.next_sync(utcnow())),
        "state": record.state.value,
        "failSafeThreshold": record.fail_safe_threshold,
        "createdAt": _iso(record.created_at),
        "updatedAt": _iso(record.updated_at),
        "lastSync": _iso(record.last_sync_at),
    }


def ungoverned_json(sources: list[Any]) -> dict[str, Any]:
    """How many active data sources no Trino catalog exposes, and their databases."""
    return {
        "count": len(sources),
        "databases": sorted({s.database for s in sources}),
    }


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()


def object_summary(record: ObjectRecord) -> dict[str, Any]:
    return {
        "path": record.path.url,
        "name": record.path.name,
        "kind": record.kind.value,
        "remoteType": record.remote_type,
        "remoteState": record.remote_state.value,
        "overrides": {
            "isActive": record.is_active,
            "activateNewChildren": record.activate_new_children,
        },
        "dataSourceId": record.data_source_id,
    }


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

    def _may_map(
        self,
        caller: Caller,
        key: str,
        technology: Technology,
        endpoint: Mapping[str, Any],
        mapping: Mapping[str, str],
    ) -> None:
        """403 when the caller maps a Trino catalog that somebody else governs (catalogs.py)."""
        if caller.has(perm.GOVERNANCE) or not mapping:
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
        claimed = governed(key, declared, mappings, listed)
        check_claims(
            caller, mapping, claimed, propose(technology, endpoint, self.trino_catalog_files)
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
        now = utcnow()
        return ConnectionRecord(
            key=key,
            technology=technology,
            endpoint=dict(endpoint),
            credentials=self.store.secrets.seal(credentials, "connection.credentials"),
            settings={},
            schedule=DEFAULT_SCHEDULE,
            state=ConnectionState.ACTIVE,
            fail_safe_threshold=DEFAULT_FAIL_SAFE,
            created_at=now,
            updated_at=now,
        )

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
        settings = dict(registration.settings or {})
        proposal = None
        if TRINO_CATALOGS in settings:
            settings[TRINO_CATALOGS] = check_mapping(
                technology, settings[TRINO_CATALOGS], "connection.trinoCatalogs"
            )
            self._may_map(caller, key, technology, registration.endpoint, settings[TRINO_CATALOGS])
        elif technology is not Technology.TRINO:
            proposal = propose(technology, registration.endpoint, self.trino_catalog_files)
            if proposal.catalogs:
                settings[TRINO_CATALOGS] = proposal.catalogs
        with self.store.read() as reader:  # 409 before talking to the platform
            try:
                existing = reader.connection(key)
            except NotFound:
                existing = None
        if existing is not None:
            from pdp.objects.errors import DuplicateKey

            raise DuplicateKey("connectionKey", key, f"connection {existing.key!r} exists already")
        record = self._record(key, technology, registration.endpoint, registration.credentials)
        checks = self.check(record)
        if not all(c.ok for c in checks):
            raise ValidationFailed(checks)
        with self.store.write() as writer:
            writer.register_connection(
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

    def connection(self, caller: Caller, key: str) -> dict[str, Any]:
        with self.store.read() as reader:
            perm.require_read(reader, caller)
            result = connection_json(reader.connection(key))
            result["notGovernedInTrino"] = ungoverned_json(not_governed_in_trino(reader, key))
            return result

    def update_connection(
        self,
        caller: Caller,
        key: str,
        endpoint: Mapping[str, Any] | None,
        credentials: Mapping[str, Any] | None,
        schedule: str | None = None,
        fail_safe_threshold: float | None = None,
        trino_catalogs: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Change what may change. `trino_catalogs` replaces the whole mapping (empty: none)."""
        with self.store.read() as reader:
            perm.require_manage_connection(reader, caller, key)
            current = reader.connection(key)
        self.references.check(endpoint, "endpoint")
        self.references.check(credentials, "credentials")
        mapping = None
        if trino_catalogs is not None:
            mapping = check_mapping(current.technology, trino_catalogs, "trinoCatalogs")
            where = endpoint if endpoint is not None else current.endpoint
            self._may_map(caller, key, current.technology, where, mapping)
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
            result = connection_json(updated)
            result["notGovernedInTrino"] = ungoverned_json(not_governed_in_trino(writer, key))
        return result

    # --- objects ----------------------------------------------------------------------------

    def object(self, caller: Caller, path: ObjectPath) -> dict[str, Any]:
        with self.store.read() as reader:
            perm.require_read(reader, caller)
            record = reader.object(path)
            effective = reader.effective_settings(path)
            connection = reader.connection(path.key)
            result = object_summary(record)
            result["settings"] = settings_json(effective)
            result["childCount"] = reader.child_count(path)
            result["tags"] = sorted(reader.tags(path))
            result["dataOwners"] = [
                {
                    "principal": p.principal,
                    "principalKind": p.principal_kind.value,
                    "at": p.path.url,
                }
                for p in reader.permissions(path, inherited=True)
                if p.role is Role.DATA_OWNER
            ]
            result["lastSync"] = _iso(connection.last_sync_at)
            if connection.technology is not Technology.TRINO and record.kind is not Kind.CONNECTION:
                catalogs = connection.settings.get(TRINO_CATALOGS) or {}
                database = fold(record.path.names[0])
                result["trinoCatalog"] = next(
                    (c for d, c in catalogs.items() if fold(d) == database), None
                )
            below = [
                s
                for s in not_governed_in_trino(reader, path.key)
                if tuple(map(fold, (s.database, s.schema, s.name)))[: len(record.path.names)]
                == tuple(map(fold, record.path.names))
            ]
            result["notGovernedInTrino"] = ungoverned_json(below)
            if record.kind is Kind.TABLE:
                result["columns"] = [
                    {
                        "name": c.name,
                        "type": c.type,
                        "nullable": c.nullable,
                        "position": c.position,
                        "tags": sorted(c.tags),
                    }
                    for c in reader.columns(path)
                ]
                active = effective.is_active.value and record.remote_state is not (
                    RemoteState.MISSING
                )
                result["dataSource"] = (
                    {"id": record.data_source_id, "active": active}
                    if record.data_source_id
                    else None
                )
            return result

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
    ) -> dict[str, Any]:
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
                page = reader.search(path, **options)
            else:
                page = reader.children(path, **options)
            return {"count": page.count, "hits": [object_summary(h) for h in page.hits]}

    def set_settings(
        self, caller: Caller, path: ObjectPath, values: Mapping[str, bool | None]
    ) -> dict[str, Any]:
        """Change the overrides of one node. A change whose cascade reaches more than
        `cascade_threshold` descendants is checked now (403, 404, the 100,000 rule: 400) and
        applied by a `cascade` job: the answer then carries `jobId` (the API's 202)."""
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
        return {"path": path.url, "settings": settings_json(effective)}

    def _cascade(
        self, caller: Caller, path: ObjectPath, overrides: dict[str, Any], descendants: int
    ) -> dict[str, Any]:
        """Start the cascade job, which holds the connection's job lock (as a sync does: one
        job per connection across replicas); the job once it is accepted, or `JobRunning`
        (409) when a job of the connection runs."""
        work = CascadeWork(self.store, path, overrides, descendants, caller.name)
        job = self.job_runner.run(JobType.CASCADE, path.key, work)
        assert job is not None  # a cascade always has something to run
        log.info("settings of %s (%d descendants): cascade job %s", path.url, descendants, job.id)
        return {"path": path.url, "jobId": job.id, "descendants": descendants}

    def join(self, timeout: float = 30.0) -> None:
        """Wait for this process's jobs: syncs and cascades (tests, shutdown)."""
        self.job_runner.join(timeout)

    def crawl(self, caller: Caller, path: ObjectPath, force_recursive: bool = False) -> Job | None:
        with self.store.read() as reader:
            perm.require_manage_object(reader, caller, path)
            reader.object(path)
        return self.runner.start(path, JobTrigger.MANUAL, force_recursive=force_recursive)

    def delete(self, caller: Caller, path: ObjectPath) -> dict[str, Any]:
        with self.store.write() as writer:
            if path.parent is None:
                perm.require_manage_connection(writer, caller, path.key)
            else:
                perm.require_manage_object(writer, caller, path)
            stored = writer.object(path).path
            count = writer.delete_object(path)
        return {"path": stored.url, "childCount": count}

    # --- permissions ------------------------------------------------------------------------

    def grant(
        self,
        caller: Caller,
        path: ObjectPath,
        principal: str,
        role: str,
        principal_kind: str = "user",
        revoke: bool = False,
    ) -> dict[str, Any]:
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

    def permissions(self, caller: Caller, path: ObjectPath) -> dict[str, Any]:
        with self.store.read() as reader:
            perm.require_read(reader, caller)
            return self._permissions(reader, path)

    @staticmethod
    def _permissions(reader: Any, path: ObjectPath) -> dict[str, Any]:
        return {
            "path": reader.object(path).path.url,
            "permissions": [
                {
                    "path": p.path.url,
                    "principal": p.principal,
                    "principalKind": p.principal_kind.value,
                    "role": p.role.value,
                    "grantedBy": p.granted_by,
                    "grantedAt": _iso(p.granted_at),
                    "inherited": p.path != path and p.path.url != path.url,
                }
                for p in reader.permissions(path, inherited=True)
            ],
        }

    # --- jobs -------------------------------------------------------------------------------

    def job(self, caller: Caller, job_id: str) -> dict[str, Any]:
        with self.store.read() as reader:
            perm.require_read(reader, caller)
            return job_json(reader.job(job_id))

    def jobs(
        self,
        caller: Caller,
        connection: str | None,
        state: str | None,
        offset: int = 0,
        size: int = 100,
    ) -> dict[str, Any]:
        state_value = _enum(JobState, state, "state")
        with self.store.read() as reader:
            perm.require_read(reader, caller)
            page = reader.jobs(connection=connection, state=state_value, offset=offset, size=size)
            return {"count": page.count, "hits": [job_json(j) for j in page.hits]}

    # --- data source requests ---------------------------------------------------------------

    def requests(
        self,
        caller: Caller,
        state: str | None = None,
        connection: str | None = None,
        path: ObjectPath | None = None,
    ) -> dict[str, Any]:
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
        return {"count": len(found), "hits": [request_json(r) for r in found]}

    def request(self, caller: Caller, request_id: int) -> dict[str, Any]:
        with self.store.read() as reader:
            found = reader.request(request_id)
            perm.require_request_owner(reader, caller, found.path)
            return request_json(found)

    def resolve_request(self, caller: Caller, request_id: int) -> dict[str, Any]:
        """Validate an added column (its `New` tag comes off: the store's next version, and
        with it the next revision, no longer masks it) or acknowledge a deleted one."""
        with self.store.write() as writer:
            found = writer.request(request_id)
            perm.require_request_owner(writer, caller, found.path)
            writer.resolve_request(request_id, caller.name)
            return request_json(writer.request(request_id))


def request_json(request: DataRequest) -> dict[str, Any]:
    return {
        "id": request.id,
        "kind": request.kind.value,
        "state": request.state.value,
        "connection": request.connection_key,
        "path": request.path.url,
        "column": request.column_name,
        "jobId": request.job_id,
        "createdAt": _iso(request.created_at),
        "resolvedAt": _iso(request.resolved_at),
        "resolvedBy": request.resolved_by,
    }


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
