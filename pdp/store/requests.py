"""Data source requests: what a sync asks a table's owners to look at (added, deleted columns)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update

from pdp.objects.errors import Conflict, NotFound
from pdp.objects.keys import key_identity
from pdp.objects.paths import ObjectPath
from pdp.objects.tags import NEW_TAG
from pdp.store.base import Transaction, request_record
from pdp.store.model import DataRequest, RequestKind, RequestState, utcnow
from pdp.store.schema import column_tags, columns, connections, objects, requests


class Requests(Transaction):
    """Reading requests."""

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
        rows = self._db.execute(query).all()
        paths = self._paths_of({row.object_id for row in rows})
        return [request_record(row, paths[row.object_id]) for row in rows]

    def request(self, request_id: int) -> DataRequest:
        row = self._db.execute(
            select(requests, connections.c.key)
            .join(connections, connections.c.id == requests.c.connection_id)
            .where(requests.c.id == request_id)
        ).first()
        if row is None:
            raise NotFound("requestId", request_id, "no such request")
        return request_record(row, self._paths_of({row.object_id})[row.object_id])

    def _paths_of(self, object_ids: set[int]) -> dict[int, ObjectPath]:
        """Paths of a few objects, walking up parent ids (the tree is four levels deep)."""
        found: dict[int, tuple[int | None, str, str]] = {}
        wanted = set(object_ids)
        while wanted - found.keys():
            rows = self._db.execute(
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


class RequestWrites(Requests):
    """Resolving requests."""

    def resolve_request(self, request_id: int, user: str, *, now: datetime | None = None) -> None:
        """The owner validates an added column (its `New` tag comes off) or acknowledges a
        deleted one."""
        row = self._db.execute(select(requests).where(requests.c.id == request_id)).first()
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
            self._db.execute(
                delete(column_tags).where(
                    column_tags.c.column_id == column_id.scalar_subquery(),
                    column_tags.c.tag == NEW_TAG,
                )
            )
        self._db.execute(
            update(requests)
            .where(requests.c.id == request_id)
            .values(state=state.value, resolved_at=now or utcnow(), resolved_by=user)
        )
