"""Connections: the registered platforms, their endpoint, sealed credentials, schedule and
state. `NewConnection` is the one spelling of a connection to register."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from pdp.core.model import fold
from pdp.objects.errors import DuplicateKey
from pdp.objects.keys import check_connection_key, key_identity
from pdp.objects.paths import KINDS, Kind
from pdp.objects.settings import RemoteState
from pdp.policy.model import Technology
from pdp.store.base import Transaction, check_override, check_threshold, connection_record
from pdp.store.model import (
    ConnectionRecord,
    ConnectionState,
    NewConnection,
    check_schedule,
    utcnow,
)
from pdp.store.rows import technology as technology_of
from pdp.store.schema import (
    column_tags,
    columns,
    connections,
    object_permissions,
    object_tags,
    objects,
    requests,
)


class Connections(Transaction):
    """Reading connections."""

    def connection(self, key: str) -> ConnectionRecord:
        return connection_record(self._connection_row(key))

    def connections(self) -> list[ConnectionRecord]:
        rows = self._connection_rows()
        return [connection_record(row) for row in rows]

    def _connection_rows(self) -> Sequence[Row[Any]]:
        return self._db.execute(select(connections).order_by(connections.c.key_folded)).all()


class ConnectionWrites(Connections):
    """Registering, changing and deregistering connections."""

    def register(self, new: NewConnection, *, now: datetime | None = None) -> ConnectionRecord:
        """Store a new connection and its root object. Credentials are sealed first (see
        `pdp.store.secrets`); the key rules apply, uniqueness case-insensitively."""
        check_connection_key(new.key)
        check_schedule(new.schedule)
        check_threshold(new.fail_safe_threshold)
        check_override("isActive", new.is_active)
        check_override("activateNewChildren", new.activate_new_children)
        sealed = self.store.secrets.seal(new.credentials)
        now = now or utcnow()
        self._refuse_taken(new.key)
        connection_id = self._insert_connection(new, sealed, now)
        self._db.execute(
            insert(objects).values(
                connection_id=connection_id,
                parent_id=None,
                kind=Kind.CONNECTION.value,
                name=new.key,
                name_folded=fold(new.key),
                is_active=new.is_active,
                activate_new_children=new.activate_new_children,
                remote_state=RemoteState.PRESENT.value,
                first_seen=now,
                last_seen=now,
            )
        )
        return self.connection(new.key)

    def register_connection(
        self, key: str, technology: Technology | str, *, now: datetime | None = None, **fields: Any
    ) -> ConnectionRecord:
        """`register` spelled with keywords (the fields of `NewConnection`)."""
        return self.register(NewConnection(key, technology_of(technology), **fields), now=now)

    def _refuse_taken(self, key: str) -> None:
        taken = self._db.execute(
            select(connections.c.key).where(connections.c.key_folded == key_identity(key))
        ).first()
        if taken is not None:
            raise DuplicateKey("connectionKey", key, f"connection {taken.key!r} exists already")

    def _insert_connection(
        self, new: NewConnection, sealed: Mapping[str, Any], now: datetime
    ) -> int:
        try:
            return int(
                self._db.execute(
                    insert(connections)
                    .values(
                        key=new.key,
                        key_folded=key_identity(new.key),
                        technology=new.technology.value,
                        endpoint=dict(new.endpoint),
                        credentials=sealed,
                        settings=dict(new.settings),
                        schedule=new.schedule,
                        state=ConnectionState.ACTIVE.value,
                        fail_safe_threshold=new.fail_safe_threshold,
                        created_at=now,
                        updated_at=now,
                    )
                    .returning(connections.c.id)
                ).scalar_one()
            )
        except IntegrityError:  # a concurrent registration won the race
            raise DuplicateKey(
                "connectionKey", new.key, "a connection with this key exists"
            ) from None

    def set_sealed_credentials(self, key: str, sealed: Mapping[str, Any]) -> None:
        """Store credentials sealed elsewhere as they are (an upgrade carries its integration's
        over: ciphertext is not sealed again)."""
        self._db.execute(
            update(connections)
            .where(connections.c.key_folded == key_identity(key))
            .values(credentials=dict(sealed))
        )

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
            values["fail_safe_threshold"] = check_threshold(fail_safe_threshold)
        if last_sync_at is not None:
            values["last_sync_at"] = last_sync_at
        self._db.execute(update(connections).where(connections.c.id == row.id), values)
        return self.connection(key)

    def deregister(self, key: str) -> int:
        """Delete a connection with all its objects, columns, tags, requests and object
        permissions; the number of objects below the connection that went. Jobs stay, as
        history. Nothing on the platform is touched."""
        row = self._connection_row(key)
        count = self._db.execute(
            select(func.count()).where(
                objects.c.connection_id == row.id, objects.c.parent_id.is_not(None)
            )
        ).scalar_one()
        mine = select(objects.c.id).where(objects.c.connection_id == row.id)
        its_columns = select(columns.c.id).where(columns.c.object_id.in_(mine))
        execute = self._db.execute
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
