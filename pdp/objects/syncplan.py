"""Object sync as a pure function: stored tree + remote listings -> the changes to make.

The crawler lists containers remotely and hands the listings over; `plan_sync` compares them
with what the store holds and says what to insert, what is present again, missing or unknown,
and how each known table's columns changed. The store applies the plan in one transaction, in
bulk. Keeping the comparison here means the rules (status of new objects, the `New` tag,
never marking anything missing after a failed listing, the fail-safe) are tested without a
database.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from pdp.objects.paths import KINDS, Kind, ObjectPath
from pdp.objects.settings import (
    Node,
    RemoteState,
    effective_settings,
    new_child_override,
)

DEFAULT_FAIL_SAFE = 0.75
FAIL_SAFE_MINIMUM = 4  # below this many present tables the fail-safe never trips

Names = tuple[str, ...]  # remote names below the connection; () is the connection itself


def fold_names(names: Iterable[str]) -> Names:
    return tuple(name.casefold() for name in names)


@dataclass(frozen=True, slots=True)
class RemoteColumn:
    name: str
    type: str
    nullable: bool = True
    position: int = 0


@dataclass(frozen=True, slots=True)
class RemoteObject:
    """One child a listing showed. `columns` is for tables; None means not listed."""

    name: str
    remote_type: str | None = None
    columns: tuple[RemoteColumn, ...] | None = None


@dataclass(frozen=True, slots=True)
class Listing:
    """The children of one container, or why they could not be listed (`children` None)."""

    parent: Names
    children: tuple[RemoteObject, ...] | None
    error: str | None = None

    @classmethod
    def failed(cls, parent: Names, error: str) -> Listing:
        return cls(parent, None, error)


@dataclass(frozen=True, slots=True)
class FailSafeTrip:
    """Why the fail-safe stopped a sync: `missing` of the `present` tables would have gone,
    more than the connection's `threshold` (a fraction)."""

    missing: int
    present: int
    threshold: float


@dataclass(frozen=True, slots=True)
class StoredNode:
    """What the plan needs of one stored object."""

    id: int
    parent_id: int | None
    names: Names
    is_active: bool | None = None
    activate_new_children: bool | None = None
    remote_state: RemoteState = RemoteState.PRESENT

    @property
    def kind(self) -> Kind:
        return KINDS[len(self.names)]


@dataclass(frozen=True, slots=True)
class StoredColumn:
    id: int
    name: str
    type: str
    nullable: bool
    position: int


@dataclass(frozen=True, slots=True)
class NewObject:
    """An object to insert. `parent` is the names of its parent (stored or inserted before)."""

    parent: Names
    name: str
    kind: Kind
    remote_type: str | None
    is_active: bool | None
    columns: tuple[RemoteColumn, ...] = ()


@dataclass(frozen=True, slots=True)
class ColumnAdd:
    object_id: int
    column: RemoteColumn
    new: bool  # tag it `New`: added to a table that was known before this sync


@dataclass(frozen=True, slots=True)
class ColumnChange:
    column_id: int
    column: RemoteColumn


@dataclass(frozen=True, slots=True)
class ColumnDelete:
    object_id: int
    column_id: int
    name: str


@dataclass(frozen=True, slots=True)
class Issue:
    path: Names
    message: str


@dataclass
class SyncPlan:
    inserts: list[NewObject] = field(default_factory=list)  # parents before children
    seen: list[int] = field(default_factory=list)  # stored objects the listings showed
    missing: list[int] = field(default_factory=list)  # gone, with their stored subtrees
    unknown: list[int] = field(default_factory=list)  # containers whose listing failed
    column_adds: list[ColumnAdd] = field(default_factory=list)
    column_changes: list[ColumnChange] = field(default_factory=list)
    column_deletes: list[ColumnDelete] = field(default_factory=list)
    errors: list[Issue] = field(default_factory=list)  # failed listings, unknown parents
    conflicts: list[Issue] = field(default_factory=list)  # ambiguous names, skipped
    stats: Counter[str] = field(default_factory=Counter)  # "<kind>.<what>" -> count
    fail_safe: str | None = None  # why nothing may be applied, when the fail-safe tripped
    fail_safe_trip: FailSafeTrip | None = None  # the same, in numbers

    @property
    def changes(self) -> bool:
        return bool(
            self.inserts
            or self.missing
            or self.unknown
            or self.column_adds
            or self.column_changes
            or self.column_deletes
        )


def plan_sync(
    key: str,
    stored: Sequence[StoredNode],
    columns: Mapping[int, Sequence[StoredColumn]],
    listings: Iterable[Listing],
    fail_safe_threshold: float = DEFAULT_FAIL_SAFE,
) -> SyncPlan:
    """Compare `listings` with the `stored` tree of connection `key` (its columns by table id).

    Rules: a new object's status comes from the nearest `activateNewChildren` above it; a child
    no longer listed is missing with its subtree; a failed listing marks its container unknown
    and nothing below it missing; columns added to a table known before get the `New` tag,
    columns of new tables do not; names that fold to the same name in one listing are skipped
    as ambiguous. If more than `fail_safe_threshold` of the connection's present tables (and at
    least four) would go missing, `fail_safe` says why and the plan must not be applied."""
    planner = _Planner(key, stored, columns)
    listed: set[Names] = set()
    for listing in listings:
        parent_names = fold_names(listing.parent)
        if parent_names in listed:
            planner.plan.errors.append(Issue(listing.parent, "listed twice in one sync; ignored"))
            continue
        listed.add(parent_names)
        planner.take(listing)
    return planner.finish(fail_safe_threshold)


class _Planner:
    """The state of one `plan_sync`: the stored tree by names and by parent, the objects new
    in this sync, and the stored ones gone or back."""

    def __init__(
        self,
        key: str,
        stored: Sequence[StoredNode],
        columns: Mapping[int, Sequence[StoredColumn]],
    ) -> None:
        self.plan = SyncPlan()
        self.key, self.stored, self.columns = key, stored, columns
        self.by_names = {fold_names(node.names): node for node in stored}
        self.children: dict[int | None, list[StoredNode]] = {}
        for node in stored:
            self.children.setdefault(node.parent_id, []).append(node)
        self.inserted: dict[Names, Node] = {}  # folded names -> node, for objects new here
        self.missing: set[int] = set()
        self.now_present: set[int] = set()

    def chain_of(self, names: Names) -> list[Node]:
        """The nodes from the connection down to `names`, stored or new; [] if one is
        unknown."""
        chain = []
        for depth in range(len(names) + 1):
            folded = fold_names(names[:depth])
            known = self.by_names.get(folded)
            if known is not None:
                chain.append(
                    Node(
                        ObjectPath(self.key, known.names),
                        known.is_active,
                        known.activate_new_children,
                        known.remote_state,
                    )
                )
            elif folded in self.inserted:
                chain.append(self.inserted[folded])
            else:
                return []
        return chain

    def mark_missing(self, node: StoredNode) -> None:
        stack = [node]
        while stack:
            current = stack.pop()
            if current.id in self.missing:
                continue
            self.missing.add(current.id)
            if current.remote_state is not RemoteState.MISSING:
                self.plan.stats[f"{current.kind}.missing"] += 1
            stack.extend(self.children.get(current.id, ()))

    def take(self, listing: Listing) -> None:
        """One container's listing, listed once in this sync."""
        plan = self.plan
        parent = self.by_names.get(fold_names(listing.parent))
        chain = self.chain_of(listing.parent)
        if not chain:
            plan.errors.append(Issue(listing.parent, "listed a container the store does not know"))
            return
        if len(listing.parent) >= len(KINDS) - 1:
            plan.errors.append(Issue(listing.parent, "a table has no children to list"))
            return
        if listing.children is None:
            plan.errors.append(Issue(listing.parent, listing.error or "listing failed"))
            plan.stats[f"{KINDS[len(listing.parent)]}.failed"] += 1
            if parent is not None:
                plan.unknown.append(parent.id)
            return
        kind = KINDS[len(listing.parent) + 1]
        counts = Counter(child.name.casefold() for child in listing.children)
        ambiguous = {name for name, count in counts.items() if count > 1}
        for name in sorted(ambiguous):
            plan.conflicts.append(
                Issue((*listing.parent, name), "several remote objects have this name; skipped")
            )
            plan.stats[f"{kind}.skipped"] += counts[name]
        stored_children = {
            node.names[-1].casefold(): node
            for node in (self.children.get(parent.id, ()) if parent is not None else ())
        }
        override = new_child_override(effective_settings(chain))
        for child in listing.children:
            if child.name.casefold() not in ambiguous:
                self.child(listing.parent, kind, override, child, stored_children)
        for folded, node in stored_children.items():
            if folded not in counts:
                self.mark_missing(node)

    def child(
        self,
        parent: Names,
        kind: Kind,
        override: bool | None,
        child: RemoteObject,
        stored_children: Mapping[str, StoredNode],
    ) -> None:
        """One listed child: new (inserted with the status its parent gives new children),
        or known (seen, maybe back, its columns compared)."""
        plan = self.plan
        if child.columns is not None:
            child = _unique_columns(plan, (*parent, child.name), child)
        known = stored_children.get(child.name.casefold())
        if known is None:
            names = (*parent, child.name)
            columns = (child.columns or ()) if kind is Kind.TABLE else ()
            plan.inserts.append(
                NewObject(parent, child.name, kind, child.remote_type, override, columns)
            )
            self.inserted[fold_names(names)] = Node(
                ObjectPath(self.key, names), override, None, RemoteState.PRESENT
            )
            plan.stats[f"{kind}.added"] += 1
            return
        plan.seen.append(known.id)
        if known.remote_state is RemoteState.PRESENT:
            plan.stats[f"{kind}.unchanged"] += 1
        else:
            self.now_present.add(known.id)
            plan.stats[f"{kind}.returned"] += 1
        if kind is Kind.TABLE and child.columns is not None:
            _compare_columns(plan, known.id, self.columns.get(known.id, ()), child.columns)

    def finish(self, fail_safe_threshold: float) -> SyncPlan:
        """The plan, with the fail-safe's verdict."""
        plan = self.plan
        plan.missing = sorted(self.missing - self.now_present)
        present = [
            n for n in self.stored if n.kind is Kind.TABLE and n.remote_state is RemoteState.PRESENT
        ]
        going = sum(1 for n in present if n.id in self.missing)
        if len(present) >= FAIL_SAFE_MINIMUM and going > fail_safe_threshold * len(present):
            plan.fail_safe_trip = FailSafeTrip(going, len(present), fail_safe_threshold)
            plan.fail_safe = (
                f"fail-safe: this sync would mark {going} of {len(present)} present tables "
                f"missing (more than {fail_safe_threshold:.0%}); nothing was changed"
            )
        return plan


def _unique_columns(plan: SyncPlan, path: Names, child: RemoteObject) -> RemoteObject:
    """A column name listed twice keeps its first entry and is reported."""
    seen: set[str] = set()
    kept = []
    for column in child.columns or ():
        if column.name in seen:
            plan.conflicts.append(Issue(path, f"column {column.name!r} listed twice; kept once"))
            continue
        seen.add(column.name)
        kept.append(column)
    if len(kept) == len(child.columns or ()):
        return child
    return RemoteObject(child.name, child.remote_type, tuple(kept))


def _compare_columns(
    plan: SyncPlan,
    object_id: int,
    stored: Sequence[StoredColumn],
    remote: Sequence[RemoteColumn],
) -> None:
    known = {column.name: column for column in stored}
    listed = {column.name for column in remote}
    for column in remote:
        before = known.get(column.name)
        if before is None:
            plan.column_adds.append(ColumnAdd(object_id, column, new=True))
            plan.stats["column.added"] += 1
        elif (before.type, before.nullable, before.position) != (
            column.type,
            column.nullable,
            column.position,
        ):
            plan.column_changes.append(ColumnChange(before.id, column))
            plan.stats["column.changed"] += 1
    for gone in stored:
        if gone.name not in listed:
            plan.column_deletes.append(ColumnDelete(object_id, gone.id, gone.name))
            plan.stats["column.deleted"] += 1
