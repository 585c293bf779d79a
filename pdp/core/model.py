"""Immutable values the decision core works on.

Object names are compared case-insensitively: Trino lower-cases identifiers, while Snowflake and
Databricks report them in their own case. Folding both sides means a registered table can never
be mistaken for an unregistered one (which would put it under the usually wider
non-data-source rule).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar


class Access(StrEnum):
    """Trino access values of the seeds; READ and WRITE double as policy access types."""

    READ = "READ"
    WRITE = "WRITE"
    OWN = "OWN"
    CREATE = "CREATE"


ALL_ACCESS = frozenset(Access)
POLICY_ACCESS = frozenset({Access.READ, Access.WRITE})

TableKey = tuple[str, str, str]
"""(catalog, schema, table), folded to lower case."""
_V = TypeVar("_V")


def fold(name: str) -> str:
    return name.casefold()


def table_key(catalog: str, schema: str, table: str) -> TableKey:
    return (fold(catalog), fold(schema), fold(table))


# --- what a request names ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Identity:
    user: str
    groups: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class CatalogRef:
    catalog: str


@dataclass(frozen=True, slots=True)
class SchemaRef:
    catalog: str
    schema: str


@dataclass(frozen=True, slots=True)
class TableRef:
    catalog: str
    schema: str
    table: str

    @property
    def key(self) -> TableKey:
        return table_key(self.catalog, self.schema, self.table)


@dataclass(frozen=True, slots=True)
class ColumnRef:
    catalog: str
    schema: str
    table: str
    column: str


@dataclass(frozen=True, slots=True)
class FunctionRef:
    """`catalog`/`schema` are empty for ExecuteTableProcedure, which names only the procedure."""

    catalog: str
    schema: str
    function: str


@dataclass(frozen=True, slots=True)
class UserRef:
    user: str


@dataclass(frozen=True, slots=True)
class SessionPropertyRef:
    name: str
    catalog: str = ""


Resource = (
    CatalogRef | SchemaRef | TableRef | ColumnRef | FunctionRef | UserRef | SessionPropertyRef
)


def name_of(resource: Resource) -> str:
    """The dotted name of what a resource names, e.g. `hive.sales.orders`."""
    return ".".join(v for f in resource.__slots__ if (v := getattr(resource, f)))


@dataclass(frozen=True, slots=True)
class Request:
    identity: Identity
    operation: str
    resource: Resource | None = None
    target: Resource | None = None


# --- configuration the core applies ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccessGrantMapping:
    """Policy access type -> Trino access values it yields."""

    read: frozenset[Access] = frozenset({Access.READ})
    write: frozenset[Access] = frozenset({Access.READ, Access.WRITE})

    def __getitem__(self, policy_access: Access) -> frozenset[Access]:
        return self.write if policy_access is Access.WRITE else self.read


DEFAULT_MAPPING = AccessGrantMapping()
NOBODY = re.compile(r"(?!)")


@dataclass(frozen=True, slots=True)
class Settings:
    """One Trino cluster's rules: the properties file plus the effective accessGrantMapping."""

    datasource_operations: frozenset[Access] = frozenset({Access.READ, Access.WRITE})
    non_datasource_operations: frozenset[Access] = ALL_ACCESS
    admin: re.Pattern[str] = NOBODY
    mapping: AccessGrantMapping = DEFAULT_MAPPING
    # False: the cluster's Trino is configured without the row-filter and column-mask URIs, so
    # it applies no data policy; reading (or changing) a table one applies to is then denied.
    data_policy_uris: bool = True

    def is_admin(self, user: str) -> bool:
        return self.admin.fullmatch(user) is not None


@dataclass(frozen=True, slots=True)
class ClusterSettings:
    """What a cluster's own files say: its properties, and its accessGrantMapping if it has one."""

    properties: Settings = Settings()  # its `mapping` is not used: see `effective`
    mapping: AccessGrantMapping | None = None

    def effective(self, central: AccessGrantMapping) -> Settings:
        """The settings decisions use. A cluster's own accessGrantMapping overrides the
        PDP-level (`central`) one; this is the only place that rule is applied."""
        return dataclasses.replace(self.properties, mapping=self.mapping or central)


# --- what the PDP knows at one revision ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PolicyGrant:
    policy: str
    access: Access  # READ or WRITE


Targeted = tuple[PolicyGrant, frozenset[TableKey]]
"""An active policy and the Trino tables it targets (the same for every user of a revision)."""


@dataclass(frozen=True, slots=True)
class Retargeted:
    """The policy at `position` of `Registry.policies` with the tables it targets at a new
    revision: whole `schemas` (all the tables the registry it applies to holds in them) and
    single `tables`. How a revision's delta moves a sidecar's policy table.

    `relative`: those are the tables it gained; it targets what it did at the revision before
    (the policy at its previous position) less the delta's changed tables and those `gone`,
    plus them. A table change retargets every policy covering the tables: listed whole, each
    would name all its tables (thousands) where this names the few that moved, or none."""

    position: int
    grant: PolicyGrant
    schemas: frozenset[tuple[str, str]] = frozenset()
    tables: frozenset[TableKey] = frozenset()
    gone: frozenset[TableKey] = frozenset()
    relative: bool = False
    # How many tables it targets at the new revision, which a relative form is checked by:
    # what the sidecar held for it must have been what the PDP did (-1: not said).
    count: int = -1


class PolicyGrants(Mapping[TableKey, tuple[PolicyGrant, ...]]):
    """A user's grants (data source -> granting policies, in policy order) held as the policies
    that apply to the user, each with its targets shared with every other user: no object per
    table. A granted table's policies are found on first ask and remembered (at most one entry
    per table the user sees, as a dict of them would hold)."""

    __slots__ = ("_asked", "_keys", "_targets", "policies")

    def __init__(self, policies: Sequence[Targeted] = ()) -> None:
        self.policies = tuple(policies)
        self._asked: dict[TableKey, tuple[PolicyGrant, ...]] = {}
        self._keys: frozenset[TableKey] | None = None
        # the policies' targets counted with repeats: at least the tables granted
        self._targets = sum(len(tables) for _, tables in self.policies)

    def get(self, key: TableKey, default: object = None) -> object:  # type: ignore[override]
        found = self._asked.get(key)
        if found is None:
            if self._keys is not None and key not in self._keys:
                return default
            found = tuple(g for g, tables in self.policies if key in tables)
            if not found:
                return default
            self._asked[key] = found
        return found

    def __getitem__(self, key: TableKey) -> tuple[PolicyGrant, ...]:
        found = self.get(key)
        if found is None:
            raise KeyError(key)
        return found  # type: ignore[return-value]

    def __contains__(self, key: object) -> bool:
        return any(key in tables for _, tables in self.policies)

    def keys(self) -> frozenset[TableKey]:  # type: ignore[override]
        """Every table granted by some policy (a set, so that `&` with another is C-fast)."""
        if self._keys is None:
            self._keys = frozenset().union(*(tables for _, tables in self.policies))
        return self._keys

    def __iter__(self) -> Iterator[TableKey]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    @property
    def size(self) -> int:
        """The most entries this user's grants will hold alone (the targets are shared),
        however much they are asked: the policies, and per table granted at most one lookup
        remembered and one member of `keys()`. A cheap weight fixed when the view is cached,
        so a cache bounded by it stays bounded as the view fills (issue 26)."""
        return len(self.policies) + 2 * self._targets

    @property
    def held(self) -> int:
        """The entries held for this user alone now (at most `size`)."""
        return len(self.policies) + len(self._asked) + (len(self._keys) if self._keys else 0)


ColumnTags = Mapping[str, frozenset[str]]
"""Folded column name -> its tags, each with all its parent tags (`PII.Email` also gives `PII`)."""


_NONE: frozenset[TableKey] = frozenset()


@dataclass(frozen=True, slots=True)
class Registry:
    """The active data sources as Trino names them, indexed for containment questions, and the
    tags of their columns (from the registry files today, from object sync later)."""

    # The tables by catalog and by schema (no empty set), and no set of them all: a revision's
    # delta patches a schema's set, where one of 100,000 tables would be copied whole (10-40
    # ms of a sidecar worker's interpreter at every table change).
    by_catalog: Mapping[str, frozenset[TableKey]] = field(default_factory=dict)
    by_schema: Mapping[tuple[str, str], frozenset[TableKey]] = field(default_factory=dict)
    columns: Mapping[TableKey, ColumnTags] = field(default_factory=dict)
    # The active data policies by the tables they cover, the same for every user (a user's
    # view says which of them apply to that user): masking rules, and row filter policy names.
    masks: Mapping[TableKey, tuple[MaskRule, ...]] = field(default_factory=dict)
    filters: Mapping[TableKey, tuple[str, ...]] = field(default_factory=dict)
    # False when data sources may exist that `tables` does not list: the PDP's store is
    # unreachable and no snapshot of it was saved. An object not listed is then denied, not
    # decided as a non-data source (pdp.core.decide.unregistered).
    complete: bool = True
    # The active subscription policies, in policy order, with the Trino tables each targets
    # (maybe none): a user's entitlements say which apply by their position here.
    policies: tuple[Targeted, ...] = ()

    @classmethod
    def of(
        cls,
        keys: frozenset[TableKey] | set[TableKey],
        columns: Mapping[TableKey, ColumnTags] | None = None,
        masks: Mapping[TableKey, tuple[MaskRule, ...]] | None = None,
        filters: Mapping[TableKey, tuple[str, ...]] | None = None,
        *,
        complete: bool = True,
        policies: Sequence[Targeted] = (),
    ) -> Registry:
        by_catalog: dict[str, set[TableKey]] = {}
        by_schema: dict[tuple[str, str], set[TableKey]] = {}
        for key in keys:
            by_catalog.setdefault(key[0], set()).add(key)
            by_schema.setdefault(key[:2], set()).add(key)
        return cls(
            by_catalog={k: frozenset(v) for k, v in by_catalog.items()},
            by_schema={k: frozenset(v) for k, v in by_schema.items()},
            columns={k: v for k, v in (columns or {}).items() if k in keys and v},
            masks={k: v for k, v in (masks or {}).items() if v},
            filters={k: v for k, v in (filters or {}).items() if v},
            complete=complete,
            policies=tuple(policies),
        )

    def holds(self, key: TableKey) -> bool:
        """Whether the table is registered."""
        return key in self.by_schema.get(key[:2], _NONE)

    @property
    def tables(self) -> frozenset[TableKey]:
        """Every registered table: a set made anew at each call (for what a revision reads
        once; a check asks `holds`)."""
        return frozenset().union(*self.by_schema.values())

    def positions(self) -> dict[str, int]:
        """Each policy's name -> its position in `policies` (made anew: callers keep it)."""
        return {grant.policy: i for i, (grant, _) in enumerate(self.policies)}

    def grants(self, positions: Sequence[int]) -> PolicyGrants:
        """A user's grants from the positions in `policies` of those that apply to them."""
        return PolicyGrants([self.policies[i] for i in positions])

    def split(
        self, tables: frozenset[TableKey], covered: frozenset[TableKey] | None = None
    ) -> tuple[list[tuple[str, str]], list[TableKey]]:
        """`tables` as the schemas whose every table `covered` (default: `tables`) holds, and
        the single tables of the others."""
        by_schema: dict[tuple[str, str], list[TableKey]] = {}
        for key in tables:
            by_schema.setdefault(key[:2], []).append(key)
        whole: list[tuple[str, str]] = []
        single: list[TableKey] = []
        for schema, keys in by_schema.items():
            held = self.by_schema.get(schema, frozenset())
            if len(keys) == len(held) or (covered is not None and held <= covered):
                whole.append(schema)
            else:
                single.extend(keys)
        return whole, single

    def patched(
        self,
        changed: frozenset[TableKey],
        part: Registry,
        policies: Sequence[Retargeted] = (),
        order: Sequence[int] | None = None,
    ) -> Registry:
        """This registry with the entries of the `changed` tables replaced by those `part`
        holds (a changed table `part` does not list is gone), and the `policies` retargeted
        (their whole schemas read in the patched registry): how a revision's delta moves a
        sidecar's registry. Only the changed tables' schemas and catalogs are indexed again.
        `order`, when the list of policies changed: for each position of the new list, the
        position in this one of the policy there (-1: a policy added, which `policies` gives).
        Raises ValueError when the delta does not fit (a position not held, a policy retargeted
        under another name, an added one not given)."""
        if not (changed or part.tables or part.columns or part.masks or part.filters):
            # policies only: every table's entry and index kept as it is (not copied)
            return dataclasses.replace(
                self, policies=self._retargeted(self.by_schema, changed, policies, order)
            )
        added = part.tables
        by_catalog, by_schema = dict(self.by_catalog), dict(self.by_schema)
        for catalog in {key[0] for key in changed}:
            _reindex(by_catalog, catalog, changed, {k for k in added if k[0] == catalog})
        for schema in {key[:2] for key in changed}:
            _reindex(by_schema, schema, changed, {k for k in added if k[:2] == schema})
        return dataclasses.replace(
            self,
            by_catalog=by_catalog,
            by_schema=by_schema,
            policies=self._retargeted(by_schema, changed, policies, order),
            columns=_patched(self.columns, changed, part.columns),
            masks=_patched(self.masks, changed, part.masks),
            filters=_patched(self.filters, changed, part.filters),
        )

    def _retargeted(
        self,
        by_schema: Mapping[tuple[str, str], frozenset[TableKey]],
        changed: frozenset[TableKey],
        policies: Sequence[Retargeted],
        order: Sequence[int] | None,
    ) -> tuple[Targeted, ...]:
        """`patched`'s list of policies: moved by `order`, `policies` retargeted (their whole
        schemas read in `by_schema`, the patched index; a relative one from what it held)."""
        held = self.policies
        if order is not None and not all(-1 <= i < len(held) for i in order):
            raise ValueError("a delta moves a policy from a position not held")
        targeted = list(held) if order is None else [held[i] if i >= 0 else None for i in order]
        for p in policies:
            was = targeted[p.position] if 0 <= p.position < len(targeted) else ()
            if not (was is None or (was and was[0].policy == p.grant.policy)):
                raise ValueError(f"a delta retargets policy {p.grant.policy!r} not held there")
            whole = [by_schema.get(schema, frozenset()) for schema in p.schemas]
            if not p.relative:
                targets = frozenset().union(p.tables, *whole)
            elif was:
                targets = (was[1] - changed - p.gone).union(p.tables, *whole)
                if p.count >= 0 and len(targets) != p.count:
                    raise ValueError(f"policy {p.grant.policy!r} retargeted from other tables")
            else:
                raise ValueError(f"a delta retargets policy {p.grant.policy!r} from nothing held")
            targeted[p.position] = (p.grant, targets)
        if None in targeted:
            raise ValueError("a delta adds a policy without its targets")
        return tuple(t for t in targeted if t is not None)

    def inside(self, catalog: str, schema: str | None = None) -> frozenset[TableKey]:
        if schema is None:
            return self.by_catalog.get(fold(catalog), frozenset())
        return self.by_schema.get((fold(catalog), fold(schema)), frozenset())


_K = TypeVar("_K")


def _reindex(
    index: dict[_K, frozenset[TableKey]],
    name: _K,
    changed: frozenset[TableKey],
    added: set[TableKey],
) -> None:
    held = (index.get(name, frozenset()) - changed) | added
    if held:
        index[name] = held
    else:
        index.pop(name, None)


def _patched(
    mine: Mapping[TableKey, _V], changed: frozenset[TableKey], theirs: Mapping[TableKey, _V]
) -> Mapping[TableKey, _V]:
    if not theirs and mine.keys().isdisjoint(changed):
        return mine  # none of the changed tables has an entry: kept, not copied
    merged = dict(mine)
    for key in changed:
        merged.pop(key, None)
    merged.update(theirs)
    return merged


class MaskKind(StrEnum):
    """How a masking policy hides a value. The order is the precedence when two policies mask
    one column: the most restrictive first (docs/decisions.md)."""

    NULL = "null"
    HASH = "hash"
    CONSTANT = "constant"
    KEEP_LAST = "keepLast"  # a partial reveal: the last `count` characters
    KEEP_FIRST = "keepFirst"  # a partial reveal: the first `count` characters
    ROUND = "round"  # numbers rounded to `count` decimal places (negative: tens, hundreds...)


MASK_PRECEDENCE = tuple(MaskKind)

Constant = str | int | float | bool


@dataclass(frozen=True, slots=True)
class MaskRule:
    """A masking policy that applies to the user, as it stands on one data source: which
    columns (by folded name, or by tag) and how."""

    policy: str
    kind: MaskKind
    columns: frozenset[str] = frozenset()  # folded column names
    tags: frozenset[str] = frozenset()  # folded column tags (a parent tag covers its children)
    value: Constant | None = None  # CONSTANT
    count: int = 0  # KEEP_LAST / KEEP_FIRST: characters kept; ROUND: decimal places
    # The data source's owners are exempt (the built-in New Column Added policy): the user's
    # view says which tables they own (`View.owned`).
    except_owners: bool = False

    def covers(self, column: str, tags: frozenset[str]) -> bool:
        return column in self.columns or not self.tags.isdisjoint(tags)


@dataclass(frozen=True, slots=True)
class View:
    """Everything one decision may look at: the cluster's settings, the registry at one
    revision, the requesting user's policy grants (data source -> granting policies) and the
    data policies that apply to them: the masking policies by name, and the row-level policies
    with their predicates rendered for the user (policy -> SQL, values already quoted)."""

    settings: Settings
    registry: Registry
    grants: Mapping[TableKey, tuple[PolicyGrant, ...]]
    mask_policies: frozenset[str] = frozenset()
    filters: Mapping[str, str] = field(default_factory=dict)
    # The data sources the user owns (Data Owner on the table or above, in the store): masks
    # that exempt owners skip them.
    owned: frozenset[TableKey] = frozenset()
    # What is derived from this view alone and kept as long as it is (pdp.core.readable):
    # never copied to another view, not even by dataclasses.replace.
    derived: dict[str, object] = field(default_factory=dict, init=False, compare=False, repr=False)

    @property
    def size(self) -> int:
        """The most entries the view will hold beyond the registry it shares (compact grants
        fill as they are asked: `PolicyGrants.size`): a cheap weight for caches."""
        grants = self.grants
        held = grants.size if isinstance(grants, PolicyGrants) else len(grants)
        return 1 + held + len(self.mask_policies) + len(self.filters) + len(self.owned)


class Basis(StrEnum):
    """What a decision rests on. `pdp explain`, the logs and the gRPC API (`Decision.rule`)
    all carry these values, so they are a wire format: keep them stable."""

    ADMIN = "admin"  # the user matches immuta.user.admin
    IDENTITY = "identity"  # the caller alone: allowed to all, to oneself, to admins only
    DATA_SOURCE = "data-source"  # a policy grant on a registered data source, or its absence
    NON_DATA_SOURCE = "non-data-source"  # immuta.allowed.non.immuta.datasource.operations
    VISIBLE = "visible"  # a catalog or schema is seen when it holds a readable data source
    METADATA = "metadata"  # information_schema and the like: Trino filters their rows per user
    NO_DATA_POLICY = "no-data-policy"  # row filters and masks: none applies
    # A data policy applies, but the cluster's Trino does not ask for data policies: deny.
    DATA_POLICY_UNASKED = "data-policy-unasked"
    UNKNOWN_OPERATION = "unknown-operation"  # an operation this version does not know: deny
    MALFORMED = "malformed"  # the operation came with a resource of the wrong kind: deny
    PDP_UNAVAILABLE = "pdp-unavailable"  # the sidecar could not ask the PDP: fail closed
    # Not a known data source, but the store that may register it is unknown: fail closed.
    STORE_UNKNOWN = "store-unknown"


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    rule: Basis
    reason: str
    policies: tuple[str, ...] = ()
