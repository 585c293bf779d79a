"""The store: connections, the object tree, columns, tags, permissions, jobs and requests.

`Store` opens a database (SQLite file by default, PostgreSQL for replicas), migrates it, and
hands out transactions: `store.read()` gives a `Reader`, `store.write()` a `Writer`. Every
write transaction increments the store version exactly once, at its start, and commits or rolls
back as a whole; the version feeds the PDP revision, so one write (a cascade, a whole sync) is
one revision.

Writers are serialised: on SQLite by `BEGIN IMMEDIATE`, on PostgreSQL by the row lock that
the version increment takes on the single `store_version` row (held until commit). A
read-modify-write inside one `write()` therefore never loses an update, whatever the number of
threads or replicas. Reads do not block and are not blocked.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Final, Literal

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Row,
    and_,
    delete,
    func,
    insert,
    not_,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.exc import IntegrityError

from pdp.core.model import fold
from pdp.objects.errors import Conflict, DuplicateKey, InvalidInput, NotFound
from pdp.objects.keys import check_connection_key, key_identity
from pdp.objects.paths import KINDS, Kind, ObjectPath
from pdp.objects.settings import (
    EffectiveSettings,
    Node,
    RemoteState,
    check_enable_limit,
    effective_is_active,
    effective_settings,
)
from pdp.objects.syncplan import Listing, RemoteColumn, SyncPlan, plan_sync
from pdp.objects.tags import NEW_TAG
from pdp.policy.model import Technology
from pdp.store import migrate
from pdp.store.engine import WRITE, create_store_engine
from pdp.store.locks import job_lock
from pdp.store.model import (
    DEFAULT_FAIL_SAFE,
    DEFAULT_SCHEDULE,
    ColumnRecord,
    ConnectionRecord,
    ConnectionState,
    DataRequest,
    Job,
    JobState,
    JobTrigger,
    JobType,
    ObjectRecord,
    Page,
    Permission,
    PrincipalKind,
    RequestKind,
    RequestState,
    Role,
    check_job_transition,
    check_schedule,
    utcnow,
)
from pdp.store.notify import NOTIFY_CHANNEL
from pdp.store.rows import record
from pdp.store.rows import technology as technology_of
from pdp.store.schema import (
    column_tags,
    columns,
    connections,
    jobs,
    object_permissions,
    object_tags,
    objects,
    requests,
    store_version,
)
from pdp.store.secrets import Secrets
from pdp.store.treesync import apply_plan, load_nodes, narrow

MAX_PAGE = 1000


class Keep(Enum):
    """Leave a setting as it is (`None` means something else: clear the override)."""

    KEEP = "keep"


KEEP: Final = Keep.KEEP
Override = bool | None | Literal[Keep.KEEP]


class Store:
    """One store over one engine. Thread-safe: every transaction takes its own connection."""

    def __init__(self, engine: Engine, secrets: Secrets | None = None) -> None:
        self.engine = engine
        self.secrets = secrets or Secrets()

    @classmethod
    def open(
        cls,
        url: str = "sqlite:///pdp-store.db",
        *,
        secret_key: str | bytes | None = None,
        upgrade: bool = True,
        **engine_options: Any,
    ) -> Store:
        """Open `url` (`sqlite:///path` or `postgresql+psycopg://...`) and bring its schema to
        the newest migration. `secret_key` is the operator's Fernet key for credentials."""
        engine = create_store_engine(url, **engine_options)
        if upgrade:
            migrate.upgrade(engine)
        return cls(engine, Secrets(secret_key))

    def close(self) -> None:
        self.engine.dispose()

    def upgrade(self) -> None:
        """Bring the schema to the newest migration (what `open` does unless `upgrade=False`;
        the PDP calls it when a store it could not reach at start answers)."""
        migrate.upgrade(self.engine)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def name(self) -> str:
        """The store's URL without its password (what the saved snapshot names as its store)."""
        return self.engine.url.render_as_string(hide_password=True)

    # --- transactions ----------------------------------------------------------------------

    @contextmanager
    def read(self) -> Iterator[Reader]:
        """A read-only transaction over one consistent state of the store."""
        with self.engine.connect() as connection:
            if self.dialect == "postgresql":
                connection = connection.execution_options(isolation_level="REPEATABLE READ")
            connection.info[WRITE] = False
            try:
                with connection.begin():
                    yield Reader(connection, self)
            finally:
                connection.info.pop(WRITE, None)

    @contextmanager
    def write(self) -> Iterator[Writer]:
        """A unit of work: all of it commits, with one version increment, or none of it."""
        with self.engine.connect() as connection:
            connection.info[WRITE] = True
            try:
                with connection.begin():
                    version = connection.execute(
                        update(store_version)
                        .where(store_version.c.id == 1)
                        .values(version=store_version.c.version + 1)
                        .returning(store_version.c.version)
                    ).scalar_one()
                    if self.dialect == "postgresql":  # delivered at commit, to LISTENers
                        connection.exec_driver_sql(
                            f"SELECT pg_notify('{NOTIFY_CHANNEL}', %(v)s)", {"v": str(version)}
                        )
                    yield Writer(connection, self, version)
            finally:
                connection.info.pop(WRITE, None)

    # --- version -----------------------------------------------------------------------------

    def version(self) -> int:
        """The store version: one indexed row, cheap enough to poll every second."""
        with self.engine.connect() as connection:
            connection.info[WRITE] = False
            try:
                with connection.begin():
                    return _version(connection)
            finally:
                connection.info.pop(WRITE, None)

    def wait_for_version(self, after: int, timeout: float, interval: float = 0.2) -> int:
        """Poll until the version passes `after` or `timeout` seconds pass; the version."""
        deadline = time.monotonic() + timeout
        while True:
            current = self.version()
            if current > after or time.monotonic() >= deadline:
                return current
            time.sleep(min(interval, max(0.0, deadline - time.monotonic())))

    # --- the job lock ------------------------------------------------------------------------

    def job_lock(self, connection_key: str, holder: str) -> AbstractContextManager[None]:
        """`with store.job_lock(key, job_id):` runs the body only in the one process that holds
        the lock of this connection; others get `LockHeld` at once. See `pdp.store.locks`."""
        return job_lock(self, connection_key, holder)


def _version(connection: Connection) -> int:
    return connection.execute(
        select(store_version.c.version).where(store_version.c.id == 1)
    ).scalar_one()


class Reader:
    """Queries over one transaction. Obtain it from `Store.read()` (or as part of a `Writer`)."""

    def __init__(self, connection: Connection, store: Store) -> None:
        self.db = connection
        self.store = store

    def version(self) -> int:
        return _version(self.db)

    # --- connections -------------------------------------------------------------------------

    def connection(self, key: str) -> ConnectionRecord:
        return _connection_record(self._connection_row(key))

    def connections(self) -> list[ConnectionRecord]:
        rows = self._connection_rows()
        return [_connection_record(row) for row in rows]

    def _connection_rows(self) -> Sequence[Row[Any]]:
        return self.db.execute(select(connections).order_by(connections.c.key_folded)).all()

    def _connection_row(self, key: str) -> Row[Any]:
        row = self.db.execute(
            select(connections).where(connections.c.key_folded == key_identity(key))
        ).first()
        if row is None:
            raise NotFound("connectionKey", key, "no connection with this key")
        return row

    # --- objects -----------------------------------------------------------------------------

    def _chain(self, path: ObjectPath) -> list[Row[Any]]:
        """The object rows from the connection down to `path`."""
        connection_row = self._connection_row(path.key)
        root = self.db.execute(
            select(objects).where(
                objects.c.connection_id == connection_row.id, objects.c.parent_id.is_(None)
            )
        ).one()
        chain = [root]
        for depth, name in enumerate(path.names):
            row = self.db.execute(
                select(objects).where(
                    objects.c.parent_id == chain[-1].id, objects.c.name_folded == fold(name)
                )
            ).first()
            if row is None:
                missing = ObjectPath(path.key, path.names[: depth + 1])
                raise NotFound("path", path.url, f"no object {missing.url!r}")
            chain.append(row)
        return chain

    def object(self, path: ObjectPath) -> ObjectRecord:
        chain = self._chain(path)
        return _object_record(chain[-1], _stored_path(chain))

    def effective_settings(self, path: ObjectPath) -> EffectiveSettings:
        """Effective `isActive` / `activateNewChildren` with where each comes from."""
        chain = self._chain(path)
        return effective_settings(_nodes(_stored_path(chain), chain))

    def child_count(self, path: ObjectPath) -> int:
        return self._child_count(self._chain(path)[-1].id)

    def _child_count(self, object_id: int) -> int:
        return self.db.execute(
            select(func.count()).where(objects.c.parent_id == object_id)
        ).scalar_one()

    def descendant_count(self, path: ObjectPath, at_most: int | None = None) -> int:
        """How many objects are below `path`; with `at_most`, the walk stops there (both
        backends evaluate a recursive CTE lazily), so "more than N?" costs N rows at most."""
        return self._descendant_count(self._chain(path)[-1].id, at_most)

    def _descendant_count(self, object_id: int, at_most: int | None = None) -> int:
        tree = select(objects.c.id).where(objects.c.parent_id == object_id).cte(recursive=True)
        tree = tree.union_all(select(objects.c.id).where(objects.c.parent_id == tree.c.id))
        if at_most is None:
            return self.db.execute(select(func.count()).select_from(tree)).scalar_one()
        first = select(tree.c.id).limit(at_most).subquery()
        return self.db.execute(select(func.count()).select_from(first)).scalar_one()

    def check_settings(
        self,
        path: ObjectPath,
        *,
        is_active: Override = KEEP,
        activate_new_children: Override = KEEP,
    ) -> EffectiveSettings:
        """What `Writer.set_settings` would make of the node, refusing what it would refuse
        (the 100,000 rule), without changing anything: a cascade job checks before it starts."""
        return self._settings_change(path, is_active, activate_new_children)[2]

    def _settings_change(
        self, path: ObjectPath, is_active: Override, activate_new_children: Override
    ) -> tuple[int, dict[str, bool | None], EffectiveSettings]:
        chain = self._chain(path)
        stored = _stored_path(chain)
        nodes = _nodes(stored, chain)
        last = nodes[-1]
        values: dict[str, bool | None] = {}
        if is_active is not KEEP:
            _check_override("isActive", is_active)
            values["is_active"] = is_active
        if activate_new_children is not KEEP:
            _check_override("activateNewChildren", activate_new_children)
            values["activate_new_children"] = activate_new_children
        changed = Node(
            last.path,
            values.get("is_active", last.is_active),
            values.get("activate_new_children", last.activate_new_children),
            last.remote_state,
        )
        before = effective_is_active(nodes).value
        after = effective_settings([*nodes[:-1], changed])
        if after.is_active.value and not before and path.kind is not Kind.SCHEMA:
            descendants = self._descendant_count(chain[-1].id)
            check_enable_limit(stored, descendants, before, after.is_active.value)
        return chain[-1].id, values, after

    def children(
        self,
        path: ObjectPath | None = None,
        *,
        offset: int = 0,
        size: int = 100,
        kind: Kind | None = None,
        remote_state: RemoteState | None = None,
        search_text: str | None = None,
        is_active: bool | None = None,
    ) -> Page[ObjectRecord]:
        """The children of `path` (the connections when None), by name, one page at a time.
        `is_active` filters on the effective status."""
        if not 0 <= size <= MAX_PAGE:
            raise InvalidInput("size", size, f"a page holds 0 to {MAX_PAGE} objects")
        if offset < 0:
            raise InvalidInput("offset", offset, "must not be negative")
        conditions: list[ColumnElement[bool]] = []
        if path is None:
            conditions.append(objects.c.parent_id.is_(None))
            parent_path: ObjectPath | None = None
            parent_active = False
        else:
            chain = self._chain(path)
            parent_path = _stored_path(chain)
            conditions.append(objects.c.parent_id == chain[-1].id)
            parent_active = effective_is_active(_nodes(parent_path, chain)).value
        if kind is not None:
            conditions.append(objects.c.kind == Kind(kind).value)
        if remote_state is not None:
            conditions.append(objects.c.remote_state == RemoteState(remote_state).value)
        if search_text:
            pattern = "%" + _like_escape(fold(search_text)) + "%"
            conditions.append(objects.c.name_folded.like(pattern, escape="\\"))
        if is_active is not None:
            # Active: not missing, and enabled here, or inheriting from an active parent.
            enabled: ColumnElement[bool] = objects.c.is_active.is_(True)
            if parent_active:
                enabled = or_(enabled, objects.c.is_active.is_(None))
            active = and_(objects.c.remote_state != RemoteState.MISSING.value, enabled)
            conditions.append(active if is_active else not_(active))
        where = and_(true(), *conditions)
        count = self.db.execute(select(func.count()).where(where)).scalar_one()
        rows = self.db.execute(
            select(objects, connections.c.key)
            .join(connections, connections.c.id == objects.c.connection_id)
            .where(where)
            .order_by(objects.c.name_folded, objects.c.id)
            .offset(offset)
            .limit(size)
        ).all()
        hits = tuple(
            _object_record(
                row,
                parent_path.child(row.name) if parent_path is not None else ObjectPath(row.key),
            )
            for row in rows
        )
        return Page(count, hits)

    def search(
        self,
        path: ObjectPath,
        *,
        offset: int = 0,
        size: int = 100,
        kind: Kind | None = None,
        remote_state: RemoteState | None = None,
        search_text: str | None = None,
        is_active: bool | None = None,
    ) -> Page[ObjectRecord]:
        """The descendants of `path` (not itself), filtered, ordered by path, one page at a
        time. `is_active` filters on the effective status, computed top-down over the subtree
        in one pass (a subtree is at most a connection: 100,000 tables is a fraction of a
        second)."""
        if not 0 <= size <= MAX_PAGE:
            raise InvalidInput("size", size, f"a page holds 0 to {MAX_PAGE} objects")
        if offset < 0:
            raise InvalidInput("offset", offset, "must not be negative")
        chain = self._chain(path)
        base = _stored_path(chain)
        nodes = _nodes(base, chain)
        blocked = any(n.remote_state is RemoteState.MISSING for n in nodes)
        value = next((n.is_active for n in reversed(nodes) if n.is_active is not None), False)
        tree = select(objects.c.id).where(objects.c.parent_id == chain[-1].id).cte(recursive=True)
        tree = tree.union_all(select(objects.c.id).where(objects.c.parent_id == tree.c.id))
        rows = self.db.execute(select(objects).where(objects.c.id.in_(select(tree.c.id)))).all()
        depth = {k.value: d for d, k in enumerate(KINDS)}
        state: dict[int, tuple[bool, bool, tuple[str, ...]]] = {
            chain[-1].id: (value, blocked, base.names)
        }
        found: list[tuple[tuple[str, ...], ObjectPath, Row[Any]]] = []
        needle = fold(search_text) if search_text else None
        for row in sorted(rows, key=lambda r: depth[r.kind]):
            parent_value, parent_blocked, parent_names = state[row.parent_id]
            here = (*parent_names, row.name)
            mine = parent_value if row.is_active is None else row.is_active
            gone = parent_blocked or row.remote_state == RemoteState.MISSING.value
            state[row.id] = (mine, gone, here)
            if kind is not None and row.kind != Kind(kind).value:
                continue
            if remote_state is not None and row.remote_state != RemoteState(remote_state).value:
                continue
            if needle is not None and needle not in row.name_folded:
                continue
            if is_active is not None and (mine and not gone) is not is_active:
                continue
            found.append((tuple(fold(n) for n in here), ObjectPath(base.key, here), row))
        found.sort(key=lambda hit: hit[0])
        page = found[offset : offset + size]
        return Page(len(found), tuple(_object_record(row, p) for _, p, row in page))

    # --- columns, tags ------------------------------------------------------------------------

    def columns(self, path: ObjectPath) -> list[ColumnRecord]:
        object_id = self._chain(path)[-1].id
        rows = self.db.execute(
            select(columns).where(columns.c.object_id == object_id).order_by(columns.c.position)
        ).all()
        tags: dict[int, set[str]] = {}
        for column_id, tag in self.db.execute(
            select(column_tags.c.column_id, column_tags.c.tag)
            .join(columns, columns.c.id == column_tags.c.column_id)
            .where(columns.c.object_id == object_id)
        ):
            tags.setdefault(column_id, set()).add(tag)
        return [
            ColumnRecord(r.name, r.type, r.nullable, r.position, frozenset(tags.get(r.id, ())))
            for r in rows
        ]

    def tags(self, path: ObjectPath) -> frozenset[str]:
        object_id = self._chain(path)[-1].id
        return frozenset(
            self.db.execute(
                select(object_tags.c.tag).where(object_tags.c.object_id == object_id)
            ).scalars()
        )

    # --- permissions --------------------------------------------------------------------------

    def permissions(self, path: ObjectPath, *, inherited: bool = False) -> list[Permission]:
        """Grants on `path`; with `inherited`, also those on its ancestors (a Data Owner of a
        node owns everything below it)."""
        chain = self._chain(path)
        stored = _stored_path(chain)
        paths = {row.id: p for row, p in zip(chain, stored.ancestors(), strict=True)}
        ids = list(paths) if inherited else [chain[-1].id]
        rows = self.db.execute(
            select(object_permissions)
            .where(object_permissions.c.object_id.in_(ids))
            .order_by(object_permissions.c.id)
        ).all()
        return [_permission(row, paths[row.object_id]) for row in rows]

    # --- jobs, requests -----------------------------------------------------------------------

    def job(self, job_id: str) -> Job:
        row = self.db.execute(select(jobs).where(jobs.c.id == job_id)).first()
        if row is None:
            raise NotFound("jobId", job_id, "no such job")
        return _job(row)

    def jobs(
        self,
        *,
        connection: str | None = None,
        state: JobState | None = None,
        offset: int = 0,
        size: int = 100,
    ) -> Page[Job]:
        if not 0 <= size <= MAX_PAGE:
            raise InvalidInput("size", size, f"a page holds 0 to {MAX_PAGE} jobs")
        conditions: list[ColumnElement[bool]] = []
        if connection is not None:
            conditions.append(jobs.c.connection_key == key_identity(connection))
        if state is not None:
            conditions.append(jobs.c.state == JobState(state).value)
        where = and_(true(), *conditions)
        count = self.db.execute(select(func.count()).select_from(jobs).where(where))
        rows = self.db.execute(
            select(jobs)
            .where(where)
            .order_by(jobs.c.created_at.desc(), jobs.c.id)
            .offset(offset)
            .limit(size)
        ).all()
        return Page(count.scalar_one(), tuple(_job(row) for row in rows))

    def running_job(self, connection: str) -> Job | None:
        """The created or active job of a connection, if any (for 409 answers)."""
        row = self.db.execute(
            select(jobs)
            .where(
                jobs.c.connection_key == key_identity(connection),
                jobs.c.state.in_([JobState.CREATED.value, JobState.ACTIVE.value]),
            )
            .order_by(jobs.c.created_at)
        ).first()
        return None if row is None else _job(row)

    def requests(
        self, *, state: RequestState | None = None, connection: str | None = None
    ) -> list[DataRequest]:
        query = (
            select(requests, connections.c.key)
            .join(connections, connections.c.id == requests.c.connection_id)
            .order_by(requests.c.id)
        )
        if state is not None:
            query = query.where(requests.c.state == RequestState(state).value)
        if connection is not None:
            query = query.where(connections.c.key_folded == key_identity(connection))
        rows = self.db.execute(query).all()
        paths = self._paths_of({row.object_id for row in rows})
        return [_request(row, paths[row.object_id]) for row in rows]

    def request(self, request_id: int) -> DataRequest:
        row = self.db.execute(
            select(requests, connections.c.key)
            .join(connections, connections.c.id == requests.c.connection_id)
            .where(requests.c.id == request_id)
        ).first()
        if row is None:
            raise NotFound("requestId", request_id, "no such request")
        return _request(row, self._paths_of({row.object_id})[row.object_id])

    def _paths_of(self, object_ids: set[int]) -> dict[int, ObjectPath]:
        """Paths of a few objects, walking up parent ids (the tree is four levels deep)."""
        found: dict[int, tuple[int | None, str, str]] = {}
        wanted = set(object_ids)
        while wanted - found.keys():
            rows = self.db.execute(
                select(objects.c.id, objects.c.parent_id, objects.c.name, connections.c.key)
                .join(connections, connections.c.id == objects.c.connection_id)
                .where(objects.c.id.in_(wanted - found.keys()))
            ).all()
            for row in rows:
                found[row.id] = (row.parent_id, row.name, row.key)
            wanted = {p for p, _, _ in found.values() if p is not None} | wanted
        result = {}
        for object_id in object_ids:
            names: list[str] = []
            current: int | None = object_id
            key = found[object_id][2]
            while current is not None:
                parent, name, key = found[current]
                if parent is not None:
                    names.append(name)
                current = parent
            result[object_id] = ObjectPath(key, tuple(reversed(names)))
        return result


class Writer(Reader):
    """A `Reader` that also writes; obtain it from `Store.write()`. `version` is the store
    version this transaction publishes when it commits."""

    def __init__(self, connection: Connection, store: Store, version: int) -> None:
        super().__init__(connection, store)
        self.published_version = version

    # --- connections -------------------------------------------------------------------------

    def register_connection(
        self,
        key: str,
        technology: Technology | str,
        *,
        endpoint: Mapping[str, Any] | None = None,
        credentials: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
        schedule: str = DEFAULT_SCHEDULE,
        is_active: bool | None = None,
        activate_new_children: bool | None = None,
        fail_safe_threshold: float = DEFAULT_FAIL_SAFE,
        now: datetime | None = None,
    ) -> ConnectionRecord:
        """Store a new connection and its root object. Credentials are sealed first (see
        `pdp.store.secrets`); the key rules apply, uniqueness case-insensitively."""
        check_connection_key(key)
        technology = technology_of(technology)
        check_schedule(schedule)
        _check_threshold(fail_safe_threshold)
        _check_override("isActive", is_active)
        _check_override("activateNewChildren", activate_new_children)
        sealed = self.store.secrets.seal(credentials or {})
        now = now or utcnow()
        taken = self.db.execute(
            select(connections.c.key).where(connections.c.key_folded == key_identity(key))
        ).first()
        if taken is not None:
            raise DuplicateKey("connectionKey", key, f"connection {taken.key!r} exists already")
        try:
            connection_id = self.db.execute(
                insert(connections)
                .values(
                    key=key,
                    key_folded=key_identity(key),
                    technology=technology.value,
                    endpoint=dict(endpoint or {}),
                    credentials=sealed,
                    settings=dict(settings or {}),
                    schedule=schedule,
                    state=ConnectionState.ACTIVE.value,
                    fail_safe_threshold=fail_safe_threshold,
                    created_at=now,
                    updated_at=now,
                )
                .returning(connections.c.id)
            ).scalar_one()
        except IntegrityError:  # a concurrent registration won the race
            raise DuplicateKey("connectionKey", key, "a connection with this key exists") from None
        self.db.execute(
            insert(objects).values(
                connection_id=connection_id,
                parent_id=None,
                kind=Kind.CONNECTION.value,
                name=key,
                name_folded=fold(key),
                is_active=is_active,
                activate_new_children=activate_new_children,
                remote_state=RemoteState.PRESENT.value,
                first_seen=now,
                last_seen=now,
            )
        )
        return self.connection(key)

    def update_connection(
        self,
        key: str,
        *,
        endpoint: Mapping[str, Any] | None = None,
        credentials: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
        schedule: str | None = None,
        state: ConnectionState | None = None,
        fail_safe_threshold: float | None = None,
        last_sync_at: datetime | None = None,
        now: datetime | None = None,
    ) -> ConnectionRecord:
        """Change what may change; the key and the technology are fixed."""
        row = self._connection_row(key)
        values: dict[str, Any] = {"updated_at": now or utcnow()}
        if endpoint is not None:
            values["endpoint"] = dict(endpoint)
        if credentials is not None:
            values["credentials"] = self.store.secrets.seal(credentials)
        if settings is not None:
            values["settings"] = dict(settings)
        if schedule is not None:
            values["schedule"] = check_schedule(schedule)
        if state is not None:
            values["state"] = ConnectionState(state).value
        if fail_safe_threshold is not None:
            values["fail_safe_threshold"] = _check_threshold(fail_safe_threshold)
        if last_sync_at is not None:
            values["last_sync_at"] = last_sync_at
        self.db.execute(update(connections).where(connections.c.id == row.id), values)
        return self.connection(key)

    def deregister(self, key: str) -> int:
        """Delete a connection with all its objects, columns, tags, requests and object
        permissions; the number of objects below the connection that went. Jobs stay, as
        history. Nothing on the platform is touched."""
        row = self._connection_row(key)
        count = self.db.execute(
            select(func.count()).where(
                objects.c.connection_id == row.id, objects.c.parent_id.is_not(None)
            )
        ).scalar_one()
        mine = select(objects.c.id).where(objects.c.connection_id == row.id)
        its_columns = select(columns.c.id).where(columns.c.object_id.in_(mine))
        execute = self.db.execute
        execute(delete(requests).where(requests.c.connection_id == row.id))
        execute(delete(column_tags).where(column_tags.c.column_id.in_(its_columns)))
        execute(delete(columns).where(columns.c.object_id.in_(mine)))
        execute(delete(object_tags).where(object_tags.c.object_id.in_(mine)))
        execute(delete(object_permissions).where(object_permissions.c.object_id.in_(mine)))
        # Children first keeps the self-referencing foreign key satisfied row by row.
        for kind in reversed(KINDS):
            execute(
                delete(objects).where(objects.c.connection_id == row.id, objects.c.kind == kind)
            )
        execute(delete(connections).where(connections.c.id == row.id))
        return count

    # --- objects -----------------------------------------------------------------------------

    def put_object(
        self,
        path: ObjectPath,
        *,
        remote_type: str | None = None,
        is_active: bool | None = None,
        activate_new_children: bool | None = None,
        now: datetime | None = None,
    ) -> ObjectRecord:
        """Insert one object below an existing parent (sync inserts in bulk instead)."""
        parent = path.parent
        if parent is None:
            raise InvalidInput("path", path.url, "register a connection to create its root")
        _check_override("isActive", is_active)
        _check_override("activateNewChildren", activate_new_children)
        chain = self._chain(parent)
        taken = self.db.execute(
            select(objects.c.id).where(
                objects.c.parent_id == chain[-1].id, objects.c.name_folded == fold(path.name)
            )
        ).first()
        if taken is not None:
            raise Conflict("path", path.url, "an object with this name exists already")
        now = now or utcnow()
        self.db.execute(
            insert(objects).values(
                connection_id=chain[0].connection_id,
                parent_id=chain[-1].id,
                kind=path.kind.value,
                name=path.name,
                name_folded=fold(path.name),
                remote_type=remote_type,
                is_active=is_active,
                activate_new_children=activate_new_children,
                remote_state=RemoteState.PRESENT.value,
                data_source_id=str(uuid.uuid4()) if path.kind is Kind.TABLE else None,
                first_seen=now,
                last_seen=now,
            )
        )
        return self.object(path)

    def delete_object(self, path: ObjectPath) -> int:
        """Delete an object and its subtree from the store (a connection path deregisters
        it); the number of objects below it that went."""
        if path.parent is None:
            return self.deregister(path.key)
        object_id = self._chain(path)[-1].id
        count = self._descendant_count(object_id)
        self.db.execute(delete(objects).where(objects.c.id == object_id))  # cascades
        return count

    def set_settings(
        self,
        path: ObjectPath,
        *,
        is_active: Override = KEEP,
        activate_new_children: Override = KEEP,
    ) -> EffectiveSettings:
        """Set (`True`/`False`) or clear (`None`) the overrides on one node; the new effective
        settings. Enabling an object with 100,000 descendants or more is refused (schemas
        excepted); disabling never is."""
        object_id, values, after = self._settings_change(path, is_active, activate_new_children)
        if values:
            self.db.execute(update(objects).where(objects.c.id == object_id).values(**values))
        return after

    # --- columns, tags ------------------------------------------------------------------------

    def set_columns(self, path: ObjectPath, listed: Sequence[RemoteColumn]) -> None:
        """Replace a table's dictionary (no `New` tags: sync tags what it discovers)."""
        row = self._chain(path)[-1]
        if row.kind != Kind.TABLE.value:
            raise InvalidInput("path", path.url, "only tables have columns")
        self.db.execute(delete(columns).where(columns.c.object_id == row.id))
        # the digest no longer says what is stored: the next sync compares this table in full
        self.db.execute(update(objects).where(objects.c.id == row.id).values(columns_digest=None))
        if listed:
            self.db.execute(
                insert(columns),
                [
                    {
                        "object_id": row.id,
                        "name": c.name,
                        "type": c.type,
                        "nullable": c.nullable,
                        "position": c.position,
                    }
                    for c in listed
                ],
            )

    def add_tag(self, path: ObjectPath, tag: str) -> None:
        object_id = self._chain(path)[-1].id
        exists = self.db.execute(
            select(object_tags.c.tag).where(
                object_tags.c.object_id == object_id, object_tags.c.tag == tag
            )
        ).first()
        if exists is None:
            self.db.execute(insert(object_tags).values(object_id=object_id, tag=tag))

    def remove_tag(self, path: ObjectPath, tag: str) -> bool:
        object_id = self._chain(path)[-1].id
        result = self.db.execute(
            delete(object_tags).where(
                object_tags.c.object_id == object_id, object_tags.c.tag == tag
            )
        )
        return result.rowcount > 0

    # --- permissions --------------------------------------------------------------------------

    def grant(
        self,
        path: ObjectPath,
        principal: str,
        role: Role,
        *,
        principal_kind: PrincipalKind = PrincipalKind.USER,
        granted_by: str | None = None,
        now: datetime | None = None,
    ) -> Permission:
        """Grant Data Owner or Infrastructure Admin on a node (idempotent)."""
        role, principal_kind = Role(role), PrincipalKind(principal_kind)
        if not principal:
            raise InvalidInput("principal", principal, "name a user or a group")
        chain = self._chain(path)
        object_id = chain[-1].id
        if role is Role.INFRASTRUCTURE_ADMIN and len(chain) != 1:
            raise InvalidInput("role", role.value, "Infrastructure Admin is granted on connections")
        where = (
            object_permissions.c.object_id == object_id,
            object_permissions.c.principal_kind == principal_kind.value,
            object_permissions.c.principal == principal,
            object_permissions.c.role == role.value,
        )
        row = self.db.execute(select(object_permissions).where(*where)).first()
        if row is None:
            self.db.execute(
                insert(object_permissions).values(
                    object_id=object_id,
                    principal_kind=principal_kind.value,
                    principal=principal,
                    role=role.value,
                    granted_at=now or utcnow(),
                    granted_by=granted_by,
                )
            )
            row = self.db.execute(select(object_permissions).where(*where)).one()
        return _permission(row, _stored_path(chain))

    def revoke(
        self,
        path: ObjectPath,
        principal: str,
        role: Role,
        *,
        principal_kind: PrincipalKind = PrincipalKind.USER,
    ) -> bool:
        object_id = self._chain(path)[-1].id
        result = self.db.execute(
            delete(object_permissions).where(
                object_permissions.c.object_id == object_id,
                object_permissions.c.principal_kind == PrincipalKind(principal_kind).value,
                object_permissions.c.principal == principal,
                object_permissions.c.role == Role(role).value,
            )
        )
        return result.rowcount > 0

    # --- jobs, requests -----------------------------------------------------------------------

    def create_job(
        self,
        type: JobType,
        trigger: JobTrigger,
        path: ObjectPath,
        *,
        now: datetime | None = None,
    ) -> Job:
        job_id = str(uuid.uuid4())
        self.db.execute(
            insert(jobs).values(
                id=job_id,
                connection_key=key_identity(path.key),
                type=JobType(type).value,
                trigger=JobTrigger(trigger).value,
                state=JobState.CREATED.value,
                path=path.url,
                created_at=now or utcnow(),
                stats={},
                errors=[],
            )
        )
        return self.job(job_id)

    def update_job(
        self,
        job_id: str,
        *,
        state: JobState | None = None,
        stats: Mapping[str, Any] | None = None,
        errors: Sequence[Any] | None = None,
        now: datetime | None = None,
    ) -> Job:
        """Move a job along its life cycle and record what it found. `started_at` is set when
        it becomes active, `ended_at` when it finishes."""
        job = self.job(job_id)
        values: dict[str, Any] = {}
        now = now or utcnow()
        if state is not None:
            state = JobState(state)
            check_job_transition(job_id, job.state, state)
            values["state"] = state.value
            if state is JobState.ACTIVE and job.started_at is None:
                values["started_at"] = now
            if state.finished and job.ended_at is None:
                values["ended_at"] = now
        if stats is not None:
            values["stats"] = dict(stats)
        if errors is not None:
            values["errors"] = list(errors)
        if values:
            self.db.execute(update(jobs).where(jobs.c.id == job_id).values(**values))
        return self.job(job_id)

    def resolve_request(self, request_id: int, user: str, *, now: datetime | None = None) -> None:
        """The owner validates an added column (its `New` tag comes off) or acknowledges a
        deleted one."""
        row = self.db.execute(select(requests).where(requests.c.id == request_id)).first()
        if row is None:
            raise NotFound("requestId", request_id, "no such request")
        if row.state != RequestState.PENDING.value:
            raise Conflict("requestId", request_id, f"the request is {row.state} already")
        kind = RequestKind(row.kind)
        state = RequestState.ACKNOWLEDGED
        if kind is RequestKind.COLUMN_ADDED:
            state = RequestState.VALIDATED
            column_id = select(columns.c.id).where(
                columns.c.object_id == row.object_id, columns.c.name == row.column_name
            )
            self.db.execute(
                delete(column_tags).where(
                    column_tags.c.column_id == column_id.scalar_subquery(),
                    column_tags.c.tag == NEW_TAG,
                )
            )
        self.db.execute(
            update(requests)
            .where(requests.c.id == request_id)
            .values(state=state.value, resolved_at=now or utcnow(), resolved_by=user)
        )

    # --- object sync ---------------------------------------------------------------------------

    def sync(
        self,
        key: str,
        listings: Sequence[Listing],
        *,
        create_requests: bool = False,
        job_id: str | None = None,
        now: datetime | None = None,
    ) -> SyncOutcome:
        """Compare the listings with the stored tree and apply the difference in bulk, in this
        transaction. With the fail-safe tripped nothing is applied. `create_requests` (an
        active policy targets `New`) adds column requests for the data owners."""
        connection_row = self._connection_row(key)
        nodes, digests = load_nodes(self.db, connection_row.id)
        narrowed = narrow(self.db, nodes, digests, listings)
        plan = plan_sync(
            connection_row.key,
            nodes,
            narrowed.columns,
            narrowed.listings,
            connection_row.fail_safe_threshold,
        )
        if plan.fail_safe is not None:
            return SyncOutcome(plan, applied=False)
        now = now or utcnow()
        apply_plan(
            self.db,
            connection_row.id,
            nodes,
            plan,
            now,
            create_requests,
            job_id,
            narrowed.digests,
        )
        self.db.execute(
            update(connections).where(connections.c.id == connection_row.id),
            {"last_sync_at": now},
        )
        return SyncOutcome(plan, applied=True)


@dataclass(frozen=True, slots=True)
class SyncOutcome:
    """The plan a sync made and whether it was applied (not when the fail-safe tripped)."""

    plan: SyncPlan
    applied: bool

    @property
    def stats(self) -> dict[str, int]:
        return dict(self.plan.stats)


# --- row -> record ---------------------------------------------------------------------------


def _check_override(field: str, value: object) -> None:
    if value is not None and not isinstance(value, bool):
        raise InvalidInput(field, value, "expected true, false or null (inherit)")


def _check_threshold(value: float) -> float:
    if not isinstance(value, int | float) or not 0 < value <= 1:
        raise InvalidInput("failSafeThreshold", value, "a fraction above 0 and at most 1")
    return float(value)


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _stored_path(chain: Sequence[Row[Any]]) -> ObjectPath:
    """The path as stored (the remote spelling), whatever case the caller used."""
    return ObjectPath(chain[0].name, tuple(row.name for row in chain[1:]))


def _nodes(path: ObjectPath, chain: Sequence[Row[Any]]) -> list[Node]:
    return [
        Node(p, row.is_active, row.activate_new_children, RemoteState(row.remote_state))
        for p, row in zip(path.ancestors(), chain, strict=True)
    ]


def _connection_record(row: Row[Any]) -> ConnectionRecord:
    return record(ConnectionRecord, row, {"technology": Technology, "state": ConnectionState})


def _object_record(row: Row[Any], path: ObjectPath) -> ObjectRecord:
    return record(ObjectRecord, row, {"kind": Kind, "remote_state": RemoteState}, path=path)


def _permission(row: Row[Any], path: ObjectPath) -> Permission:
    return record(Permission, row, {"principal_kind": PrincipalKind, "role": Role}, path=path)


def _job(row: Row[Any]) -> Job:
    return record(Job, row, {"type": JobType, "trigger": JobTrigger, "state": JobState})


def _request(row: Row[Any], path: ObjectPath) -> DataRequest:
    converted = {"kind": RequestKind, "state": RequestState}
    return record(DataRequest, row, converted, path=path, connection_key=row.key)
