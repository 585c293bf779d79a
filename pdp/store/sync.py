"""Applying an object sync plan in bulk: a few statements per level, not one per object.

Inserts go in with multi-row `INSERT ... RETURNING` (SQLAlchemy's insertmanyvalues), state
changes with `UPDATE ... WHERE id IN (...)` in chunks, so a 100,000-table connection is a few
hundred statements on either backend.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, bindparam, delete, func, insert, select, text, update

from pdp.core.model import fold
from pdp.objects.paths import KINDS, Kind
from pdp.objects.settings import RemoteState
from pdp.objects.sync import Names, StoredColumn, StoredNode, SyncPlan, fold_names
from pdp.objects.tags import NEW_TAG
from pdp.store.model import RequestKind, RequestState
from pdp.store.schema import column_tags, columns, objects, requests

CHUNK = 5000  # ids per IN list: below SQLite's and psycopg's parameter limits
DEPTH = {kind.value: depth for depth, kind in enumerate(KINDS)}
T = TypeVar("T")


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def load_tree(
    connection: Connection, connection_id: int, with_columns: bool
) -> tuple[list[StoredNode], dict[int, list[StoredColumn]]]:
    """A connection's stored objects (names from the connection down) and, if asked, the
    columns of its tables, in two queries."""
    rows = connection.execute(
        select(
            objects.c.id,
            objects.c.parent_id,
            objects.c.name,
            objects.c.kind,
            objects.c.is_active,
            objects.c.activate_new_children,
            objects.c.remote_state,
        ).where(objects.c.connection_id == connection_id)
    ).all()
    names: dict[int, Names] = {}
    nodes = []
    for row in sorted(rows, key=lambda r: DEPTH[r.kind]):
        here = () if row.parent_id is None else (*names[row.parent_id], row.name)
        names[row.id] = here
        nodes.append(
            StoredNode(
                row.id,
                row.parent_id,
                here,
                row.is_active,
                row.activate_new_children,
                RemoteState(row.remote_state),
            )
        )
    stored_columns: dict[int, list[StoredColumn]] = {}
    if with_columns:
        for c in connection.execute(
            select(
                columns.c.id,
                columns.c.object_id,
                columns.c.name,
                columns.c.type,
                columns.c.nullable,
                columns.c.position,
            )
            .join(objects, objects.c.id == columns.c.object_id)
            .where(objects.c.connection_id == connection_id)
        ):
            stored_columns.setdefault(c.object_id, []).append(
                StoredColumn(c.id, c.name, c.type, c.nullable, c.position)
            )
    return nodes, stored_columns


def apply_plan(
    connection: Connection,
    connection_id: int,
    nodes: Sequence[StoredNode],
    plan: SyncPlan,
    now: datetime,
    create_requests: bool = False,
    job_id: str | None = None,
) -> None:
    """Write `plan` (made by `pdp.objects.sync.plan_sync` from `nodes`) in this transaction."""
    ids = {fold_names(node.names): node.id for node in nodes}
    new_columns: list[tuple[int, str, str, bool, int]] = []
    for depth in range(1, len(KINDS)):
        batch = [o for o in plan.inserts if len(o.parent) + 1 == depth]
        if not batch:
            continue
        rows = [
            {
                "connection_id": connection_id,
                "parent_id": ids[fold_names(o.parent)],
                "kind": o.kind.value,
                "name": o.name,
                "name_folded": fold(o.name),
                "remote_type": o.remote_type,
                "is_active": o.is_active,
                "activate_new_children": None,
                "remote_state": RemoteState.PRESENT.value,
                "data_source_id": str(uuid.uuid4()) if o.kind is Kind.TABLE else None,
                "first_seen": now,
                "last_seen": now,
            }
            for o in batch
        ]
        new_ids = _insert_objects(connection, rows)
        for o, object_id in zip(batch, new_ids, strict=True):
            ids[fold_names((*o.parent, o.name))] = object_id
            new_columns.extend(
                (object_id, c.name, c.type, c.nullable, c.position) for c in o.columns
            )
    if new_columns:  # columns of new tables come in without the `New` tag
        _insert_columns(connection, new_columns)

    _set_state(connection, plan.seen, {"remote_state": RemoteState.PRESENT.value, "last_seen": now})
    _set_state(connection, plan.missing, {"remote_state": RemoteState.MISSING.value})
    _set_state(connection, plan.unknown, {"remote_state": RemoteState.UNKNOWN.value})

    if plan.column_adds:
        statement = insert(columns).returning(columns.c.id, sort_by_parameter_order=True)
        added = (
            connection.execute(
                statement,
                [
                    {
                        "object_id": a.object_id,
                        "name": a.column.name,
                        "type": a.column.type,
                        "nullable": a.column.nullable,
                        "position": a.column.position,
                    }
                    for a in plan.column_adds
                ],
            )
            .scalars()
            .all()
        )
        tagged = [
            {"column_id": column_id, "tag": NEW_TAG}
            for a, column_id in zip(plan.column_adds, added, strict=True)
            if a.new
        ]
        if tagged:
            connection.execute(insert(column_tags), tagged)
    if plan.column_changes:
        connection.execute(
            update(columns)
            .where(columns.c.id == bindparam("column_id"))
            .values(
                type=bindparam("new_type"),
                nullable=bindparam("new_nullable"),
                position=bindparam("new_position"),
            ),
            [
                {
                    "column_id": c.column_id,
                    "new_type": c.column.type,
                    "new_nullable": c.column.nullable,
                    "new_position": c.column.position,
                }
                for c in plan.column_changes
            ],
        )
    gone = [d.column_id for d in plan.column_deletes]
    for chunk in chunks(gone):
        connection.execute(delete(column_tags).where(column_tags.c.column_id.in_(chunk)))
        connection.execute(delete(columns).where(columns.c.id.in_(chunk)))

    if create_requests:
        made = [
            (a.object_id, a.column.name, RequestKind.COLUMN_ADDED)
            for a in plan.column_adds
            if a.new
        ] + [(d.object_id, d.name, RequestKind.COLUMN_DELETED) for d in plan.column_deletes]
        if made:
            connection.execute(
                insert(requests),
                [
                    {
                        "connection_id": connection_id,
                        "object_id": object_id,
                        "kind": kind.value,
                        "column_name": name,
                        "state": RequestState.PENDING.value,
                        "created_at": now,
                        "job_id": job_id,
                    }
                    for object_id, name, kind in made
                ],
            )


def _insert_objects(connection: Connection, rows: list[dict[str, Any]]) -> Sequence[int]:
    """Insert objects and return their ids in row order.

    PostgreSQL: ids drawn from the table's sequence in one query, rows sent with COPY.
    SQLite: the ids follow the largest one; the write holds SQLite's only write lock (BEGIN
    IMMEDIATE), so nobody takes them meanwhile. (A multi-row INSERT ... RETURNING does not
    promise the order of its rows on SQLite; SQLAlchemy would fall back to a row at a time.)"""
    if connection.dialect.name == "postgresql":
        ids = (
            connection.execute(
                text(
                    "SELECT nextval(pg_get_serial_sequence('objects', 'id')) "
                    "FROM generate_series(1, :n)"
                ),
                {"n": len(rows)},
            )
            .scalars()
            .all()
        )
        names = list(rows[0]) if rows else []
        driver: Any = connection.connection.driver_connection
        with (
            driver.cursor() as cursor,
            cursor.copy(f"COPY objects (id, {', '.join(names)}) FROM STDIN") as copy,
        ):
            for object_id, row in zip(ids, rows, strict=True):
                copy.write_row((object_id, *(row[name] for name in names)))
        return ids
    start = connection.execute(select(func.coalesce(func.max(objects.c.id), 0))).scalar_one()
    given = range(start + 1, start + 1 + len(rows))
    connection.execute(
        insert(objects), [{**row, "id": i} for row, i in zip(rows, given, strict=True)]
    )
    return given


def _insert_columns(
    connection: Connection, rows: Sequence[tuple[int, str, str, bool, int]]
) -> None:
    """The bulk of a first sync (several columns per table) goes past SQLAlchemy's per-row
    parameter processing, straight to the driver, in this transaction: COPY on PostgreSQL,
    `executemany` on SQLite. The values are plain ints, strings and booleans."""
    names = "object_id, name, type, nullable, position"
    driver: Any = connection.connection.driver_connection
    if connection.dialect.name == "postgresql":
        with driver.cursor() as cursor, cursor.copy(f"COPY columns ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    else:
        cursor = driver.cursor()
        try:
            cursor.executemany(f"INSERT INTO columns ({names}) VALUES (?, ?, ?, ?, ?)", rows)
        finally:
            cursor.close()


def _set_state(connection: Connection, ids: Sequence[int], values: dict[str, Any]) -> None:
    for chunk in chunks(sorted(ids)):
        connection.execute(update(objects).where(objects.c.id.in_(chunk)).values(**values))
