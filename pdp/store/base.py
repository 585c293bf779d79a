"""What every repository of the store stands on: one transaction (`db`), the store it belongs
to, finding a connection's row and the chain of rows down to a path, and turning rows into
records. The repositories (connections, tree, jobs, requests, legacy) are mix-ins over
`Transaction`; `pdp.store.store` composes them into `Reader` and `Writer`."""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import TYPE_CHECKING, Any, Final, Literal

from sqlalchemy import Connection, Row, select

from pdp.core.model import fold
from pdp.objects.errors import InvalidInput, NotFound
from pdp.objects.keys import key_identity
from pdp.objects.paths import Kind, ObjectPath
from pdp.objects.settings import Node, RemoteState
from pdp.policy.model import Technology
from pdp.store.model import (
    ConnectionRecord,
    ConnectionState,
    DataRequest,
    Job,
    JobState,
    JobTrigger,
    JobType,
    ObjectRecord,
    Permission,
    PrincipalKind,
    RequestKind,
    RequestState,
    Role,
)
from pdp.store.rows import record
from pdp.store.schema import connections, objects, store_version

if TYPE_CHECKING:
    from pdp.store.store import Store


MAX_PAGE = 1000


class Keep(Enum):
    """Leave a setting as it is (`None` means something else: clear the override)."""

    KEEP = "keep"


KEEP: Final = Keep.KEEP
Override = bool | None | Literal[Keep.KEEP]


class Transaction:
    """One open transaction of a `Store`: what every repository reads and writes through."""

    def __init__(self, connection: Connection, store: Store) -> None:
        self._db = connection
        self.store = store

    def version(self) -> int:
        return version_of(self._db)

    def _connection_row(self, key: str) -> Row[Any]:
        row = self._db.execute(
            select(connections).where(connections.c.key_folded == key_identity(key))
        ).first()
        if row is None:
            raise NotFound("connectionKey", key, "no connection with this key")
        return row

    def _chain(self, path: ObjectPath) -> list[Row[Any]]:
        """The object rows from the connection down to `path`."""
        connection_row = self._connection_row(path.key)
        root = self._db.execute(
            select(objects).where(
                objects.c.connection_id == connection_row.id, objects.c.parent_id.is_(None)
            )
        ).one()
        chain = [root]
        for depth, name in enumerate(path.names):
            row = self._db.execute(
                select(objects).where(
                    objects.c.parent_id == chain[-1].id, objects.c.name_folded == fold(name)
                )
            ).first()
            if row is None:
                missing = ObjectPath(path.key, path.names[: depth + 1])
                raise NotFound("path", path.url, f"no object {missing.url!r}")
            chain.append(row)
        return chain


def version_of(connection: Connection) -> int:
    return connection.execute(
        select(store_version.c.version).where(store_version.c.id == 1)
    ).scalar_one()


def check_override(field: str, value: object) -> None:
    if value is not None and not isinstance(value, bool):
        raise InvalidInput(field, value, "expected true, false or null (inherit)")


def check_threshold(value: float) -> float:
    if not isinstance(value, int | float) or not 0 < value <= 1:
        raise InvalidInput("failSafeThreshold", value, "a fraction above 0 and at most 1")
    return float(value)


def like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def stored_path(chain: Sequence[Row[Any]]) -> ObjectPath:
    """The path as stored (the remote spelling), whatever case the caller used."""
    return ObjectPath(chain[0].name, tuple(row.name for row in chain[1:]))


def nodes_of(path: ObjectPath, chain: Sequence[Row[Any]]) -> list[Node]:
    return [
        Node(p, row.is_active, row.activate_new_children, RemoteState(row.remote_state))
        for p, row in zip(path.ancestors(), chain, strict=True)
    ]


def connection_record(row: Row[Any]) -> ConnectionRecord:
    return record(ConnectionRecord, row, {"technology": Technology, "state": ConnectionState})


def object_record(row: Row[Any], path: ObjectPath) -> ObjectRecord:
    return record(ObjectRecord, row, {"kind": Kind, "remote_state": RemoteState}, path=path)


def permission_record(row: Row[Any], path: ObjectPath) -> Permission:
    return record(Permission, row, {"principal_kind": PrincipalKind, "role": Role}, path=path)


def job_record(row: Row[Any]) -> Job:
    return record(Job, row, {"type": JobType, "trigger": JobTrigger, "state": JobState})


def request_record(row: Row[Any], path: ObjectPath) -> DataRequest:
    converted = {"kind": RequestKind, "state": RequestState}
    return record(DataRequest, row, converted, path=path, connection_key=row.key)
