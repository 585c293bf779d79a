"""The object tree of each connection: objects and their settings, columns, tags and object
permissions, and applying an object sync to it."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
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

from pdp.core.model import fold
from pdp.objects.errors import Conflict, InvalidInput
from pdp.objects.paths import KINDS, Kind, ObjectPath
from pdp.objects.settings import (
    EffectiveSettings,
    Node,
    RemoteState,
    check_enable_limit,
    effective_is_active,
    effective_settings,
)
from pdp.objects.syncplan import Listing, RemoteColumn, StoredNode, plan_sync
from pdp.store.base import (
    KEEP,
    MAX_PAGE,
    Override,
    Transaction,
    check_override,
    like_escape,
    nodes_of,
    object_record,
    permission_record,
    stored_path,
)
from pdp.store.connections import ConnectionWrites
from pdp.store.model import (
    ColumnRecord,
    ObjectRecord,
    Page,
    Permission,
    PrincipalKind,
    Role,
    utcnow,
)
from pdp.store.schema import (
    column_tags,
    columns,
    connections,
    object_permissions,
    object_tags,
    objects,
)
from pdp.store.treesync import SyncOutcome, apply_plan, load_nodes, narrow


class ObjectTree(Transaction):
    """Reading the tree."""

    def object(self, path: ObjectPath) -> ObjectRecord:
        chain = self._chain(path)
        return object_record(chain[-1], stored_path(chain))

    def effective_settings(self, path: ObjectPath) -> EffectiveSettings:
        """Effective `isActive` / `activateNewChildren` with where each comes from."""
        chain = self._chain(path)
        return effective_settings(nodes_of(stored_path(chain), chain))

    def child_count(self, path: ObjectPath) -> int:
        return self._child_count(self._chain(path)[-1].id)

    def _child_count(self, object_id: int) -> int:
        return self._db.execute(
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
            return self._db.execute(select(func.count()).select_from(tree)).scalar_one()
        first = select(tree.c.id).limit(at_most).subquery()
        return self._db.execute(select(func.count()).select_from(first)).scalar_one()

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
        stored = stored_path(chain)
        nodes = nodes_of(stored, chain)
        last = nodes[-1]
        values: dict[str, bool | None] = {}
        if is_active is not KEEP:
            check_override("isActive", is_active)
            values["is_active"] = is_active
        if activate_new_children is not KEEP:
            check_override("activateNewChildren", activate_new_children)
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
            parent_path = stored_path(chain)
            conditions.append(objects.c.parent_id == chain[-1].id)
            parent_active = effective_is_active(nodes_of(parent_path, chain)).value
        if kind is not None:
            conditions.append(objects.c.kind == Kind(kind).value)
        if remote_state is not None:
            conditions.append(objects.c.remote_state == RemoteState(remote_state).value)
        if search_text:
            pattern = "%" + like_escape(fold(search_text)) + "%"
            conditions.append(objects.c.name_folded.like(pattern, escape="\\"))
        if is_active is not None:
            # Active: not missing, and enabled here, or inheriting from an active parent.
            enabled: ColumnElement[bool] = objects.c.is_active.is_(True)
            if parent_active:
                enabled = or_(enabled, objects.c.is_active.is_(None))
            active = and_(objects.c.remote_state != RemoteState.MISSING.value, enabled)
            conditions.append(active if is_active else not_(active))
        where = and_(true(), *conditions)
        count = self._db.execute(select(func.count()).where(where)).scalar_one()
        rows = self._db.execute(
            select(objects, connections.c.key)
            .join(connections, connections.c.id == objects.c.connection_id)
            .where(where)
            .order_by(objects.c.name_folded, objects.c.id)
            .offset(offset)
            .limit(size)
        ).all()
        hits = tuple(
            object_record(
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
        base = stored_path(chain)
        nodes = nodes_of(base, chain)
        blocked = any(n.remote_state is RemoteState.MISSING for n in nodes)
        value = next((n.is_active for n in reversed(nodes) if n.is_active is not None), False)
        tree = select(objects.c.id).where(objects.c.parent_id == chain[-1].id).cte(recursive=True)
        tree = tree.union_all(select(objects.c.id).where(objects.c.parent_id == tree.c.id))
        rows = self._db.execute(select(objects).where(objects.c.id.in_(select(tree.c.id)))).all()
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
        return Page(len(found), tuple(object_record(row, p) for _, p, row in page))

    # --- columns, tags ------------------------------------------------------------------------

    def columns(self, path: ObjectPath) -> list[ColumnRecord]:
        object_id = self._chain(path)[-1].id
        rows = self._db.execute(
            select(columns).where(columns.c.object_id == object_id).order_by(columns.c.position)
        ).all()
        tags: dict[int, set[str]] = {}
        for column_id, tag in self._db.execute(
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
            self._db.execute(
                select(object_tags.c.tag).where(object_tags.c.object_id == object_id)
            ).scalars()
        )

    # --- permissions --------------------------------------------------------------------------

    def permissions(self, path: ObjectPath, *, inherited: bool = False) -> list[Permission]:
        """Grants on `path`; with `inherited`, also those on its ancestors (a Data Owner of a
        node owns everything below it)."""
        chain = self._chain(path)
        stored = stored_path(chain)
        paths = {row.id: p for row, p in zip(chain, stored.ancestors(), strict=True)}
        ids = list(paths) if inherited else [chain[-1].id]
        rows = self._db.execute(
            select(object_permissions)
            .where(object_permissions.c.object_id.in_(ids))
            .order_by(object_permissions.c.id)
        ).all()
        return [permission_record(row, paths[row.object_id]) for row in rows]

    def holds_any_permission(self, user: str, groups: Iterable[str] = ()) -> bool:
        """Whether the user, or one of the groups, holds any object permission anywhere."""
        names = sorted(groups)
        mine = [
            and_(
                object_permissions.c.principal_kind == PrincipalKind.USER.value,
                object_permissions.c.principal == user,
            )
        ]
        if names:
            mine.append(
                and_(
                    object_permissions.c.principal_kind == PrincipalKind.GROUP.value,
                    object_permissions.c.principal.in_(names),
                )
            )
        query = select(object_permissions.c.id).where(or_(*mine)).limit(1)
        return self._db.execute(query).first() is not None

    # --- the stored tree, for a crawl ----------------------------------------------------------

    def stored_tree(self, key: str) -> list[StoredNode]:
        """A connection's stored objects, parents first (what a crawl compares against)."""
        nodes, _ = load_nodes(self._db, self._connection_row(key).id)
        return nodes


class TreeWrites(ConnectionWrites, ObjectTree):
    """Changing the tree (a connection's root comes and goes with the connection)."""

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
        check_override("isActive", is_active)
        check_override("activateNewChildren", activate_new_children)
        chain = self._chain(parent)
        taken = self._db.execute(
            select(objects.c.id).where(
                objects.c.parent_id == chain[-1].id, objects.c.name_folded == fold(path.name)
            )
        ).first()
        if taken is not None:
            raise Conflict("path", path.url, "an object with this name exists already")
        now = now or utcnow()
        self._db.execute(
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
        self._db.execute(delete(objects).where(objects.c.id == object_id))  # cascades
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
            self._db.execute(update(objects).where(objects.c.id == object_id).values(**values))
        return after

    def assign_data_source(self, path: ObjectPath, source_id: str) -> None:
        """The table at `path` becomes data source `source_id` (a legacy data source's id
        carries over to the table it matched); whichever table held the id lets it go."""
        object_id = self._chain(path)[-1].id
        self._db.execute(
            update(objects).where(objects.c.data_source_id == source_id).values(data_source_id=None)
        )
        self._db.execute(
            update(objects).where(objects.c.id == object_id).values(data_source_id=source_id)
        )

    # --- columns, tags ------------------------------------------------------------------------

    def set_columns(self, path: ObjectPath, listed: Sequence[RemoteColumn]) -> None:
        """Replace a table's dictionary (no `New` tags: sync tags what it discovers)."""
        row = self._chain(path)[-1]
        if row.kind != Kind.TABLE.value:
            raise InvalidInput("path", path.url, "only tables have columns")
        self._db.execute(delete(columns).where(columns.c.object_id == row.id))
        # the digest no longer says what is stored: the next sync compares this table in full
        self._db.execute(update(objects).where(objects.c.id == row.id).values(columns_digest=None))
        if listed:
            self._db.execute(
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
        exists = self._db.execute(
            select(object_tags.c.tag).where(
                object_tags.c.object_id == object_id, object_tags.c.tag == tag
            )
        ).first()
        if exists is None:
            self._db.execute(insert(object_tags).values(object_id=object_id, tag=tag))

    def remove_tag(self, path: ObjectPath, tag: str) -> bool:
        object_id = self._chain(path)[-1].id
        result = self._db.execute(
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
        row = self._db.execute(select(object_permissions).where(*where)).first()
        if row is None:
            self._db.execute(
                insert(object_permissions).values(
                    object_id=object_id,
                    principal_kind=principal_kind.value,
                    principal=principal,
                    role=role.value,
                    granted_at=now or utcnow(),
                    granted_by=granted_by,
                )
            )
            row = self._db.execute(select(object_permissions).where(*where)).one()
        return permission_record(row, stored_path(chain))

    def revoke(
        self,
        path: ObjectPath,
        principal: str,
        role: Role,
        *,
        principal_kind: PrincipalKind = PrincipalKind.USER,
    ) -> bool:
        object_id = self._chain(path)[-1].id
        result = self._db.execute(
            delete(object_permissions).where(
                object_permissions.c.object_id == object_id,
                object_permissions.c.principal_kind == PrincipalKind(principal_kind).value,
                object_permissions.c.principal == principal,
                object_permissions.c.role == Role(role).value,
            )
        )
        return result.rowcount > 0

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
        nodes, digests = load_nodes(self._db, connection_row.id)
        narrowed = narrow(self._db, nodes, digests, listings)
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
            self._db,
            connection_row.id,
            nodes,
            plan,
            now,
            create_requests,
            job_id,
            narrowed.digests,
        )
        self._db.execute(
            update(connections).where(connections.c.id == connection_row.id),
            {"last_sync_at": now},
        )
        return SyncOutcome(plan, applied=True)
