"""Applying an object sync plan in bulk: a few statements per level, not one per object.

Inserts go in with multi-row `INSERT ... RETURNING` (SQLAlchemy's insertmanyvalues), state
changes with `UPDATE ... WHERE id IN (...)` in chunks, so a 100,000-table connection is a few
hundred statements on either backend.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, bindparam, delete, func, insert, select, text, update

from pdp.core.model import fold
from pdp.objects.paths import KINDS, Kind
from pdp.objects.settings import RemoteState
from pdp.objects.syncplan import (
    Listing,
    Names,
    NewObject,
    RemoteColumn,
    RemoteObject,
    StoredColumn,
    StoredNode,
    SyncPlan,
    fold_names,
)
from pdp.objects.tags import NEW_TAG
from pdp.store.model import RequestKind, RequestState
from pdp.store.schema import column_tags, columns, objects, requests

CHUNK = 5000  # ids per IN list: below SQLite's and psycopg's parameter limits
DEPTH = {kind.value: depth for depth, kind in enumerate(KINDS)}
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SyncOutcome:
    """The plan a sync made and whether it was applied (not when the fail-safe tripped)."""

    plan: SyncPlan
    applied: bool

    @property
    def stats(self) -> dict[str, int]:
        return dict(self.plan.stats)


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def load_nodes(
    connection: Connection, connection_id: int
) -> tuple[list[StoredNode], dict[int, str | None]]:
    """A connection's stored objects, parents first, and the column digest of each table, in
    one query read as tuples."""
    found = connection.execute(
        select(
            objects.c.id,
            objects.c.parent_id,
            objects.c.name,
            objects.c.kind,
            objects.c.is_active,
            objects.c.activate_new_children,
            objects.c.remote_state,
            objects.c.columns_digest,
        ).where(objects.c.connection_id == connection_id)
    ).all()
    rows = sorted(found, key=lambda r: DEPTH[r[3]])
    names: dict[int, Names] = {}
    digests: dict[int, str | None] = {}
    nodes = []
    states = {state.value: state for state in RemoteState}
    table = Kind.TABLE.value
    for object_id, parent_id, name, kind, active, activate, state, digest in rows:
        here = () if parent_id is None else (*names[parent_id], name)
        names[object_id] = here
        if kind == table:
            digests[object_id] = digest
        nodes.append(StoredNode(object_id, parent_id, here, active, activate, states[state]))
    return nodes, digests


def load_columns(connection: Connection, table_ids: Sequence[int]) -> dict[int, list[StoredColumn]]:
    """The stored columns of these tables, by table id, read as tuples in chunks."""
    found: dict[int, list[StoredColumn]] = {}
    wanted = select(
        columns.c.object_id,
        columns.c.id,
        columns.c.name,
        columns.c.type,
        columns.c.nullable,
        columns.c.position,
    )
    for chunk in chunks(sorted(table_ids)):
        for object_id, *fields in connection.execute(
            wanted.where(columns.c.object_id.in_(chunk))
        ).all():
            found.setdefault(object_id, []).append(StoredColumn(*fields))
    return found


def columns_digest(listed: Iterable[RemoteColumn]) -> str:
    """What a table's columns are (names, types, nullability, positions), in 32 hex digits."""
    text_ = "\x1f".join(f"{c.name}\x1e{c.type}\x1e{c.nullable:d}\x1e{c.position}" for c in listed)
    return hashlib.blake2b(text_.encode(), digest_size=16).hexdigest()


@dataclass
class Narrowed:
    """Listings to plan from, with the columns left out of tables whose stored digest says they
    are unchanged; the stored columns of the tables still to compare; the digests to record."""

    listings: list[Listing]
    columns: dict[int, list[StoredColumn]]
    digests: dict[int, str]  # table id -> digest of its listed columns, where it changes


def narrow(
    connection: Connection,
    nodes: Sequence[StoredNode],
    digests: Mapping[int, str | None],
    listings: Sequence[Listing],
) -> Narrowed:
    """Keep column comparison to the tables whose listed columns differ from the digest stored
    with them (or have none); only those tables' columns are read. Follows `plan_sync`'s rules
    on which listing and which child count: the first listing of a container, not a failed
    one, no ambiguous names. A table listed with a column name twice is always compared (so
    that the duplicate is reported each time)."""
    by_names = {fold_names(node.names): node.id for node in nodes}
    seen_parents: set[Names] = set()
    out: list[Listing] = []
    compare: dict[int, str] = {}
    for listing in listings:
        parent = fold_names(listing.parent)
        if listing.children is None or parent in seen_parents or parent not in by_names:
            seen_parents.add(parent)
            out.append(listing)
            continue
        seen_parents.add(parent)
        counts = Counter(child.name.casefold() for child in listing.children)
        children: list[RemoteObject] = []
        stripped = False
        for child in listing.children:
            folded = child.name.casefold()
            table_id = by_names.get((*parent, folded))
            if (
                child.columns is None
                or table_id is None
                or table_id not in digests
                or counts[folded] > 1
            ):
                children.append(child)
                continue
            digest = columns_digest(child.columns)
            if len({c.name for c in child.columns}) < len(child.columns):
                compare[table_id] = columns_digest(_first_of_each(child.columns))
                children.append(child)
            elif digests[table_id] == digest:
                children.append(RemoteObject(child.name, child.remote_type, None))
                stripped = True
            else:
                compare[table_id] = digest
                children.append(child)
        out.append(Listing(listing.parent, tuple(children), listing.error) if stripped else listing)
    stored = load_columns(connection, list(compare)) if compare else {}
    changed = {i: d for i, d in compare.items() if digests.get(i) != d}
    return Narrowed(out, stored, changed)


def _first_of_each(listed: Iterable[RemoteColumn]) -> list[RemoteColumn]:
    seen: set[str] = set()
    kept = []
    for column in listed:
        if column.name not in seen:
            seen.add(column.name)
            kept.append(column)
    return kept


def apply_plan(
    connection: Connection,
    connection_id: int,
    nodes: Sequence[StoredNode],
    plan: SyncPlan,
    now: datetime,
    create_requests: bool = False,
    job_id: str | None = None,
    digests: Mapping[int, str] | None = None,
) -> None:
    """Write `plan` (made by `pdp.objects.syncplan.plan_sync` from `nodes`) in this transaction;
    `digests`: the column digests of compared tables that changed (`narrow`)."""
    _insert_new(connection, connection_id, nodes, plan, now)
    _stamp_seen(connection, nodes, plan, now)
    _set_state(connection, plan.missing, {"remote_state": RemoteState.MISSING.value})
    _set_state(connection, plan.unknown, {"remote_state": RemoteState.UNKNOWN.value})
    if digests:
        connection.execute(
            update(objects)
            .where(objects.c.id == bindparam("object_id"))
            .values(columns_digest=bindparam("digest")),
            [{"object_id": i, "digest": d} for i, d in sorted(digests.items())],
        )
    _add_columns(connection, plan)
    _change_columns(connection, plan)
    gone = [d.column_id for d in plan.column_deletes]
    for chunk in chunks(gone):
        connection.execute(delete(column_tags).where(column_tags.c.column_id.in_(chunk)))
        connection.execute(delete(columns).where(columns.c.id.in_(chunk)))
    if create_requests:
        _request_review(connection, connection_id, plan, now, job_id)


def _insert_new(
    connection: Connection,
    connection_id: int,
    nodes: Sequence[StoredNode],
    plan: SyncPlan,
    now: datetime,
) -> None:
    """The new objects, a level at a time (a parent's id comes before its children), and the
    columns of new tables, which come in without the `New` tag."""
    ids = {fold_names(node.names): node.id for node in nodes}
    new_columns: list[tuple[int, str, str, bool, int]] = []
    for depth in range(1, len(KINDS)):
        batch = [o for o in plan.inserts if len(o.parent) + 1 == depth]
        if not batch:
            continue
        rows = [_object_row(connection_id, ids[fold_names(o.parent)], o, now) for o in batch]
        new_ids = _insert_objects(connection, rows)
        for o, object_id in zip(batch, new_ids, strict=True):
            ids[fold_names((*o.parent, o.name))] = object_id
            new_columns.extend(
                (object_id, c.name, c.type, c.nullable, c.position) for c in o.columns
            )
    if new_columns:
        _insert_columns(connection, new_columns)


def _object_row(
    connection_id: int, parent_id: int, new: NewObject, now: datetime
) -> dict[str, Any]:
    table = new.kind is Kind.TABLE
    return {
        "connection_id": connection_id,
        "parent_id": parent_id,
        "kind": new.kind.value,
        "name": new.name,
        "name_folded": fold(new.name),
        "remote_type": new.remote_type,
        "is_active": new.is_active,
        "activate_new_children": None,
        "remote_state": RemoteState.PRESENT.value,
        "data_source_id": str(uuid.uuid4()) if table else None,
        "first_seen": now,
        "last_seen": now,
        "columns_digest": columns_digest(new.columns) if table else None,
    }


def _add_columns(connection: Connection, plan: SyncPlan) -> None:
    """Columns added to known tables; those new to the owners get the `New` tag."""
    if not plan.column_adds:
        return
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


def _change_columns(connection: Connection, plan: SyncPlan) -> None:
    if not plan.column_changes:
        return
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


def _request_review(
    connection: Connection,
    connection_id: int,
    plan: SyncPlan,
    now: datetime,
    job_id: str | None,
) -> None:
    """A request to the table's owners for each column new to them and each one gone."""
    made = [
        (a.object_id, a.column.name, RequestKind.COLUMN_ADDED) for a in plan.column_adds if a.new
    ] + [(d.object_id, d.name, RequestKind.COLUMN_DELETED) for d in plan.column_deletes]
    if not made:
        return
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


def _stamp_seen(
    connection: Connection, nodes: Sequence[StoredNode], plan: SyncPlan, now: datetime
) -> None:
    """`last_seen` on every object the listings showed, `present` on those that were not.

    The state changes by id, only where it changes. `last_seen` goes by parent where a listing
    showed all the stored children of its container (the usual case: one statement per few
    thousand schemas), by id for the rest."""
    by_id = {node.id: node for node in nodes}
    returned = [i for i in plan.seen if by_id[i].remote_state is not RemoteState.PRESENT]
    _set_state(connection, returned, {"remote_state": RemoteState.PRESENT.value})
    stored_children: Counter[int | None] = Counter(node.parent_id for node in nodes)
    seen_children: dict[int | None, list[int]] = {}
    for object_id in plan.seen:
        seen_children.setdefault(by_id[object_id].parent_id, []).append(object_id)
    whole: list[int] = []
    singly: list[int] = []
    for parent_id, seen in seen_children.items():
        if parent_id is not None and len(set(seen)) == stored_children[parent_id]:
            whole.append(parent_id)
        else:
            singly.extend(seen)
    for chunk in chunks(sorted(whole)):
        connection.execute(
            update(objects).where(objects.c.parent_id.in_(chunk)).values(last_seen=now)
        )
    _set_state(connection, singly, {"last_seen": now})
