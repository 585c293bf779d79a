"""The compiled, immutable view of registry + policies + directory + mapping at one revision."""

from __future__ import annotations

import dataclasses
import functools
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pdp.core.datapolicy import render_filter
from pdp.core.model import (
    DEFAULT_MAPPING,
    AccessGrantMapping,
    ColumnTags,
    Identity,
    MaskRule,
    PolicyGrant,
    PolicyGrants,
    Registry,
    Settings,
    TableKey,
    Targeted,
    View,
    fold,
)
from pdp.policy.builtin import NEW_COLUMN_TAG
from pdp.policy.model import (
    DataSource,
    DirectoryUser,
    MaskingPolicy,
    Policy,
    PolicyStatus,
    RowFilterPolicy,
    Subject,
    Targets,
    Technology,
)
from pdp.policy.sourcesets import changed

Grants = dict[str, tuple[PolicyGrant, ...]]
UserDataPolicies = tuple[frozenset[str], dict[str, str]]  # mask policy names; filter -> SQL


@dataclass(frozen=True)
class PolicySnapshot:
    revision: str
    sources: Mapping[str, DataSource] = field(default_factory=dict)  # folded path -> source
    policies: tuple[Policy, ...] = ()
    directory: Mapping[str, DirectoryUser] = field(default_factory=dict)
    mapping: AccessGrantMapping = DEFAULT_MAPPING
    targets: Mapping[str, frozenset[str]] = field(default_factory=dict)  # policy -> paths
    registry: Registry = field(default_factory=Registry)
    trino_paths: Mapping[str, TableKey] = field(default_factory=dict)
    # Registered but inactive or deleted: no policy reaches them, yet grant sync must still look
    # at them on platforms where grants can only be read object by object (Databricks).
    retired: Mapping[str, DataSource] = field(default_factory=dict)
    # Active policies by what their `who` names, so a user's grants are found without testing
    # every policy: ("anyone",), ("user", name), ("group", name), ("attribute", key, value).
    by_who: Mapping[tuple[str, ...], tuple[int, ...]] = field(default_factory=dict)
    # An active policy's index in `policies` -> its position in `registry.policies` (policies
    # that target no Trino table have none): what a user's entitlements send.
    positions: Mapping[int, int] = field(default_factory=dict)
    # Data policies (staged ones too, for `pdp explain`) and the Trino tables each one covers.
    masking: tuple[MaskingPolicy, ...] = ()
    row_filters: tuple[RowFilterPolicy, ...] = ()
    data_targets: Mapping[str, frozenset[TableKey]] = field(default_factory=dict)
    # The same by registry path (folded), Trino catalog or not: grant sync withholds or enforces
    # data policies natively, where a data source need not be exposed through Trino at all.
    data_paths: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # ("user", name) / ("group", name) -> the Trino tables that principal owns (store only)
    owned_by: Mapping[tuple[str, str], frozenset[TableKey]] = field(default_factory=dict)
    # What `pdp.policy.audit` finds (principals nobody is, policies selecting nothing): said by
    # `pdp check`, the reload log and /health; no decision depends on it.
    warnings: tuple[str, ...] = ()
    # The data sources compiled (indexes no decision reads directly): the next compile of
    # the same sources reuses them, and what was resolved in them (`compile`'s `previous`).
    objects: Objects | None = field(default=None, compare=False, repr=False)

    @classmethod
    def compile(
        cls,
        revision: str,
        sources: Iterable[DataSource],
        policies: Iterable[Policy],
        directory: Mapping[str, DirectoryUser],
        mapping: AccessGrantMapping = DEFAULT_MAPPING,
        retired: Iterable[DataSource] = (),
        masking: Iterable[MaskingPolicy] = (),
        row_filters: Iterable[RowFilterPolicy] = (),
        *,
        complete: bool = True,
        previous: PolicySnapshot | None = None,
    ) -> PolicySnapshot:
        """`complete`: False when data sources may exist beyond `sources` (the store unknown);
        the registry then denies what it does not list (`Registry.complete`). `previous`: an
        earlier snapshot whose compiled parts are reused where their inputs are equal (the
        data sources' indexes, each policy's targets): the result is the same as without it,
        at a cost in proportion to what changed."""
        sources = tuple(sources)
        policies = tuple(policies)
        masking, row_filters = tuple(masking), tuple(row_filters)
        held = previous.objects if previous is not None else None
        objects = Objects.of(sources, held)
        if objects is held:  # the same data sources: what `previous` resolved holds
            known = _Reused(previous, None)
        else:  # patched: resolved again for the change only; else compiled afresh
            known = _Reused(previous if objects.change else None, objects.change)
        data_targets, data_paths = known.data_targets(objects, (*masking, *row_filters))
        masks, filters = _active_by_table(masking, row_filters, data_targets)
        targets = {p.name: known.targets(objects, p) for p in policies}
        positions, targeted = _trino_targets(policies, targets, objects.trino_paths, known)
        registry = dataclasses.replace(
            objects.tagged,
            masks={k: v for k, v in masks.items() if v},
            filters={k: v for k, v in filters.items() if v},
            complete=complete,
            policies=tuple(targeted),
        )
        by_path = objects.by_path
        return cls(
            revision=revision,
            sources=by_path,
            policies=policies,
            directory=dict(directory),
            mapping=mapping,
            targets=targets,
            registry=registry,
            trino_paths=objects.trino_paths,
            retired={p: s for s in retired if (p := fold(s.path)) not in by_path},
            by_who=_by_who(policies),
            positions=positions,
            masking=masking,
            row_filters=row_filters,
            data_targets=data_targets,
            data_paths=data_paths,
            owned_by=objects.owned_by,
            objects=objects,
        )

    def subject(self, user: str, groups: Iterable[str] = ()) -> Subject:
        known = self.directory.get(user)
        if known is None:
            return Subject(user, frozenset(groups), {})
        return Subject(user, known.groups | frozenset(groups), known.attributes)

    def applying(self, subject: Subject) -> list[int]:
        """The indexes in `policies` of the active policies that apply to `subject`, in order."""
        keys = [("anyone",), ("user", subject.name)]
        keys += [("group", group) for group in subject.groups]
        keys += [("attribute", k, v) for k, values in subject.attributes.items() for v in values]
        candidates = sorted({i for key in keys for i in self.by_who.get(key, ())})
        # named the subject somewhere; `match: all` may still say no
        return [i for i in candidates if self.policies[i].applies_to(subject)]

    def grants(self, subject: Subject) -> Grants:
        """Data source path -> the active policies that apply to `subject` and target it."""
        found: defaultdict[str, list[PolicyGrant]] = defaultdict(list)
        for index in self.applying(subject):
            policy = self.policies[index]
            grant = PolicyGrant(policy.name, policy.access)
            for path in self.targets.get(policy.name, ()):
                found[path].append(grant)
        return {path: tuple(grants) for path, grants in found.items()}

    def trino_positions(self, subject: Subject) -> list[int]:
        """The positions in `registry.policies` of the policies that give `subject` grants on
        Trino tables: a user's entitlements."""
        positions = self.positions
        return [positions[i] for i in self.applying(subject) if i in positions]

    def trino_grants(self, subject: Subject) -> PolicyGrants:
        """Trino table -> the active policies that apply to `subject` and target it."""
        return self.registry.grants(self.trino_positions(subject))

    def data_policies(self, subject: Subject) -> UserDataPolicies:
        """The active masking policies that apply to `subject` (by name: the registry says
        which tables and columns they cover), and the active row-level policies that apply,
        each with its predicate rendered with the subject's values."""
        masks = frozenset(
            m.name
            for m in self.masking
            if m.status is PolicyStatus.ACTIVE and m.audience.includes(subject)
        )
        attributes = dict(subject.attributes)
        filters = {
            f.name: "(" + render_filter(f.template, subject.name, subject.groups, attributes) + ")"
            for f in self.row_filters
            if f.status is PolicyStatus.ACTIVE and f.audience.includes(subject)
        }
        return masks, filters

    def owned(self, subject: Subject) -> frozenset[TableKey]:
        """The Trino tables `subject` owns: Data Owner granted to them or one of their groups
        on the table or above."""
        if not self.owned_by:
            return frozenset()
        found: set[TableKey] = set(self.owned_by.get(("user", subject.name), ()))
        for group in subject.groups:
            found |= self.owned_by.get(("group", group), frozenset())
        return frozenset(found)

    @functools.cached_property
    def _outside_trino(self) -> tuple[frozenset[Technology], Mapping[Technology, int]]:
        """The platforms of the data sources Trino exposes, and per platform how many active
        sources no Trino catalog exposes: counted once per snapshot, as every sidecar worker
        following the PDP asks `ungoverned` with each heartbeat (a walk of 100,000 sources
        took the PDP about 25 ms each time: 50 clusters would have kept it busy)."""
        exposed = frozenset(self.sources[path].technology for path in self.trino_paths)
        outside: defaultdict[Technology, int] = defaultdict(int)
        for path, source in self.sources.items():
            if path not in self.trino_paths:
                outside[source.technology] += 1
        return exposed, dict(outside)

    def ungoverned(self, fronted: Iterable[Technology] = ()) -> tuple[str, ...]:
        """Why the snapshot governs less than it should (the PDP's and sidecars' /health report
        it as "degraded"): active data sources no Trino catalog exposes, on the platforms Trino
        fronts: those `fronted` names (Trino's catalog files show a catalog of theirs) and those
        with a data source some catalog exposes. A platform only read natively (a
        Snowflake-only install) is governed by grant sync, not through Trino."""
        exposed, outside = self._outside_trino
        platforms = exposed.union(fronted)
        ungoverned = sum(count for platform, count in outside.items() if platform in platforms)
        if not ungoverned:
            return ()
        return (
            f"{ungoverned} active data sources are not governed in Trino "
            "(no Trino catalog is mapped to their database: trinoCatalogs)",
        )

    @property
    def new_tag_targeted(self) -> bool:
        """Whether an active masking policy selects columns by the `New` tag (the built-in
        New Column Added policy or a user's): object sync then opens data source requests."""
        return any(
            m.status is PolicyStatus.ACTIVE and NEW_TAG_FOLDED in m.column_tags
            for m in self.masking
        )

    def view(self, settings: Settings, identity: Identity) -> View:
        subject = self.subject(identity.user, identity.groups)
        masks, filters = self.data_policies(subject)
        return View(
            settings,
            self.registry,
            self.trino_grants(subject),
            masks,
            filters,
            self.owned(subject),
        )


Index = dict[tuple[str, str], set[str]]
NEW_TAG_FOLDED = fold(NEW_COLUMN_TAG)


# Past this many data sources added, dropped or changed, the objects are compiled afresh.
PATCHED_AT_MOST = 5_000


@dataclass(frozen=True)
class Change:
    """What differs between two compiled `Objects`: the paths of the data sources dropped,
    added or changed (`fresh`: those at the new one, indexed alone), and the Trino tables
    they name at either."""

    paths: frozenset[str]
    fresh: Mapping[str, DataSource]
    index: Index
    tables: frozenset[TableKey]
    fresh_trino: Mapping[str, TableKey]  # the paths that name one of `tables`, at the new one


@dataclass(frozen=True)
class Objects:
    """Data sources compiled: by folded path, their Trino tables, the index policies' targets
    are resolved in, and the registry of their tables and column tags (no policy yet).
    `change`: what differs from the objects these were patched from (None: compiled afresh).
    """

    sources: tuple[DataSource, ...]
    by_path: Mapping[str, DataSource]
    trino_paths: Mapping[str, TableKey]
    index: Index
    tagged: Registry
    owned_by: Mapping[tuple[str, str], frozenset[TableKey]]
    change: Change | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, sources: tuple[DataSource, ...], held: Objects | None = None) -> Objects:
        """The objects of `sources`: `held` itself when its sources are equal, `held` patched
        when few differ, else compiled afresh."""
        if held is not None and held.sources == sources:
            return held
        if held is not None and (patched := held._patched(sources)) is not None:
            return patched
        by_path = {fold(s.path): s for s in sources}
        trino_paths = {path: s.trino_key for path, s in by_path.items() if s.trino_key}
        columns = _columns(by_path, trino_paths)
        return cls(
            sources,
            by_path,
            trino_paths,
            _index(by_path),
            Registry.of(set(trino_paths.values()), columns),
            _owned_by(by_path, trino_paths),
        )

    def _patched(self, sources: tuple[DataSource, ...]) -> Objects | None:
        """`self` patched to `sources`: only the data sources added, dropped or changed are
        looked at (found by identity first: `changed`), the maps copied, not rebuilt."""
        if len(self.by_path) != len(self.sources):  # a path twice: the last one won
            return None
        gone, new = changed(self.sources, sources)
        if len(gone) + len(new) > PATCHED_AT_MOST:
            return None
        fresh = {fold(s.path): s for s in new}
        gone_paths = {fold(s.path) for s in gone}
        by_path = dict(self.by_path)
        trino_paths = dict(self.trino_paths)
        for path in gone_paths - fresh.keys():
            del by_path[path]
            trino_paths.pop(path, None)
        for path, source in fresh.items():
            by_path[path] = source
            if key := source.trino_key:
                trino_paths[path] = key
            else:
                trino_paths.pop(path, None)
        if len(by_path) != len(sources):  # a path twice: the last one wins, not patched
            return None
        paths = frozenset(gone_paths | fresh.keys())
        tables = frozenset(k for s in (*gone, *new) if (k := s.trino_key))
        fresh_trino = {p: k for p, k in trino_paths.items() if k in tables}
        columns = _columns(by_path, fresh_trino)
        part = Registry.of({k for k in tables if k in fresh_trino.values()}, columns)
        change = Change(paths, fresh, _index(fresh), tables, fresh_trino)
        owners_changed = any(s.owners for s in (*gone, *new))
        patched = Objects(
            sources,
            by_path,
            trino_paths,
            _reindexed(self.index, self.by_path, change),
            self.tagged.patched(tables, part),
            _owned_by(by_path, trino_paths) if owners_changed else self.owned_by,
            change,
        )
        return patched


def _reindexed(index: Index, by_path: Mapping[str, DataSource], change: Change) -> Index:
    """`index` without the changed paths and with the fresh ones: only the entries they are
    in are copied (the held index is another snapshot's, read meanwhile)."""
    patched = dict(index)
    gone = _index({p: by_path[p] for p in change.paths if p in by_path})
    for key, paths in gone.items():
        if left := patched[key] - paths:
            patched[key] = left
        else:
            del patched[key]
    for key, paths in change.index.items():
        patched[key] = patched.get(key, set()) | paths
    return patched


class _Reused:
    """What `previous` resolved, looked up by the definition it was resolved from, at the
    cost of the data sources that changed since (`Objects.change`); None: nothing is reused."""

    def __init__(self, previous: PolicySnapshot | None, change: Change | None) -> None:
        self.previous, self.change = previous, change
        self.policies = {p.name: p for p in previous.policies} if previous else {}
        data: tuple[MaskingPolicy | RowFilterPolicy, ...] = (
            (*previous.masking, *previous.row_filters) if previous else ()
        )
        self.data_policies = {d.name: d for d in data}
        self.tables = (
            {grant.policy: tables for grant, tables in previous.registry.policies}
            if previous
            else {}
        )

    def targets(self, objects: Objects, policy: Policy) -> frozenset[str]:
        was = self.policies.get(policy.name)
        if self.previous is not None and was is not None and _what(was) == _what(policy):
            held = self.previous.targets[policy.name]
            if (change := self.change) is None:
                return held
            found = _resolve(change.index, change.fresh, _what(policy))
            if not found and held.isdisjoint(change.paths):
                return held
            return frozenset((held - change.paths) | found)
        return frozenset(_resolve(objects.index, objects.by_path, _what(policy)))

    def trino_tables(
        self, policy: Policy, paths: frozenset[str], trino_paths: Mapping[str, TableKey]
    ) -> frozenset[TableKey]:
        previous = self.previous
        reused = previous is not None and previous.targets.get(policy.name) is paths
        if reused and (held := self.tables.get(policy.name)) is not None:
            return held  # the same paths, none of them changed: the same tables
        return frozenset(k for p in paths if (k := trino_paths.get(p)))

    def data_targets(
        self, objects: Objects, data_policies: Iterable[MaskingPolicy | RowFilterPolicy]
    ) -> tuple[dict[str, frozenset[TableKey]], dict[str, frozenset[str]]]:
        data_policies = tuple(data_policies)
        previous = self.previous
        if previous is None:
            same: set[str] = set()
        else:
            same = {d.name for d in data_policies if self.data_policies.get(d.name) == d}
        fresh = _data_targets(
            objects.index,
            objects.by_path,
            objects.trino_paths,
            objects.tagged,
            [d for d in data_policies if d.name not in same],
        )
        data_targets: dict[str, frozenset[TableKey]] = {}
        data_paths: dict[str, frozenset[str]] = {}
        for data_policy in data_policies:  # in the policies' order, as compiled
            name = data_policy.name
            if previous is None or name not in same:
                data_targets[name], data_paths[name] = fresh[0][name], fresh[1][name]
            elif (change := self.change) is None:
                data_targets[name] = previous.data_targets[name]
                data_paths[name] = previous.data_paths[name]
            else:
                data_targets[name], data_paths[name] = _data_targets_patched(
                    objects, change, data_policy, previous
                )
        return data_targets, data_paths


def _data_targets_patched(
    objects: Objects,
    change: Change,
    data_policy: MaskingPolicy | RowFilterPolicy,
    previous: PolicySnapshot,
) -> tuple[frozenset[TableKey], frozenset[str]]:
    """`_data_targets` of one data policy by what changed: a path is in it by its own source,
    a Trino table by the sources that name it (only those of `change.tables` changed)."""
    found = _data_targets(
        change.index, change.fresh, objects.trino_paths, objects.tagged, [data_policy]
    )
    name = data_policy.name
    paths = (previous.data_paths[name] - change.paths) | found[1][name]
    tag_only = data_policy if isinstance(data_policy, MaskingPolicy) else None
    if tag_only is not None and tag_only.columns:
        tag_only = None  # (a mask naming columns covers its tables whatever their tags)
    keys = {
        k
        for p, k in change.fresh_trino.items()
        if p in paths and (tag_only is None or _tagged(objects.tagged.columns.get(k, {}), tag_only))
    }
    return frozenset((previous.data_targets[name] - change.tables) | keys), frozenset(paths)


@functools.lru_cache(maxsize=4096)  # a registry repeats few tag sets over 100,000 tables
def _with_parents(tags: frozenset[str]) -> frozenset[str]:
    result: set[str] = set()
    for tag in tags:
        parts = tag.split(".")
        result.update(".".join(parts[:depth]) for depth in range(1, len(parts) + 1))
    return frozenset(result)


def _source_tags(source: DataSource) -> dict[str, frozenset[str]]:
    return {column: _with_parents(tags) for column, tags in source.columns}


def _tagged(columns: ColumnTags, mask: MaskingPolicy) -> bool:
    return any(not mask.column_tags.isdisjoint(tags) for tags in columns.values())


def _what(policy: Policy) -> Targets:
    return Targets(
        policy.data_sources, policy.connections, policy.databases, policy.schemas, policy.tags
    )


def _columns(
    by_path: Mapping[str, DataSource], trino_paths: Mapping[str, TableKey]
) -> dict[TableKey, dict[str, frozenset[str]]]:
    """Each Trino table's columns and their tags (with the tags' parents)."""
    columns: dict[TableKey, dict[str, frozenset[str]]] = {}
    for path, key in trino_paths.items():
        if not (source_columns := by_path[path].columns):
            continue
        table = columns.setdefault(key, {})
        for column, tags in source_columns:  # (sets shared, not copied, where nothing merges)
            parents, before = _with_parents(tags), table.get(column)
            table[column] = parents if before is None else before | parents
    return columns


def _owned_by(
    by_path: Mapping[str, DataSource], trino_paths: Mapping[str, TableKey]
) -> dict[tuple[str, str], frozenset[TableKey]]:
    owned_by: defaultdict[tuple[str, str], set[TableKey]] = defaultdict(set)
    for path, key in trino_paths.items():
        for principal in by_path[path].owners:
            owned_by[principal].add(key)
    return {p: frozenset(keys) for p, keys in owned_by.items()}


def _data_targets(
    index: Index,
    by_path: Mapping[str, DataSource],
    trino_paths: Mapping[str, TableKey],
    tagged: Registry,
    data_policies: Iterable[MaskingPolicy | RowFilterPolicy],
) -> tuple[dict[str, frozenset[TableKey]], dict[str, frozenset[str]]]:
    """Per data policy, the Trino tables and the data source paths it applies to."""
    data_targets: dict[str, frozenset[TableKey]] = {}
    data_paths: dict[str, frozenset[str]] = {}
    for data_policy in data_policies:
        paths = _resolve(index, by_path, data_policy.on)
        keys = {k for p in paths if (k := trino_paths.get(p)) is not None}
        if isinstance(data_policy, MaskingPolicy) and not data_policy.columns:
            # a mask by column tag only: just the tables with such a tagged column
            keys = {k for k in keys if _tagged(tagged.columns.get(k, {}), data_policy)}
            paths = {p for p in paths if _tagged(_source_tags(by_path[p]), data_policy)}
        data_targets[data_policy.name] = frozenset(keys)
        data_paths[data_policy.name] = frozenset(paths)
    return data_targets, data_paths


def _active_by_table(
    masking: Iterable[MaskingPolicy],
    row_filters: Iterable[RowFilterPolicy],
    data_targets: Mapping[str, frozenset[TableKey]],
) -> tuple[dict[TableKey, tuple[MaskRule, ...]], dict[TableKey, tuple[str, ...]]]:
    """Per Trino table, the rules of the active masks and the names of the active row filters."""
    masks: defaultdict[TableKey, list[MaskRule]] = defaultdict(list)
    for mask in masking:
        if mask.status is PolicyStatus.ACTIVE:
            rule = mask.rule()
            for key in data_targets[mask.name]:
                masks[key].append(rule)
    filters: defaultdict[TableKey, list[str]] = defaultdict(list)
    for row_filter in row_filters:
        if row_filter.status is PolicyStatus.ACTIVE:
            for key in data_targets[row_filter.name]:
                filters[key].append(row_filter.name)
    return {k: tuple(v) for k, v in masks.items()}, {k: tuple(v) for k, v in filters.items()}


def _index(sources: Mapping[str, DataSource]) -> Index:
    index: defaultdict[tuple[str, str], set[str]] = defaultdict(set)
    for path, source in sources.items():
        conn, db, schema = fold(source.connection), fold(source.database), fold(source.schema)
        index["connection", conn].add(path)
        index["database", f"{conn}.{db}"].add(path)
        index["schema", f"{conn}.{db}.{schema}"].add(path)
        for tag in _with_parents(source.tags):  # a policy on a parent tag covers its children
            index["tag", tag].add(path)
    return dict(index)


def _resolve(index: Index, sources: Mapping[str, DataSource], what: Targets) -> set[str]:
    if what.everything:
        return set(sources)
    paths = set(what.data_sources & sources.keys())
    for kind, names in (
        ("connection", what.connections),
        ("database", what.databases),
        ("schema", what.schemas),
        ("tag", what.tags),
    ):
        for name in names:
            paths |= index.get((kind, name), set())
    return paths


def _trino_targets(
    policies: tuple[Policy, ...],
    targets: Mapping[str, frozenset[str]],
    trino_paths: Mapping[str, TableKey],
    known: _Reused,
) -> tuple[dict[int, int], list[Targeted]]:
    """The active policies, each with the Trino tables it targets, and each one's position
    among them by its index in `policies`. A policy targeting no Trino table (yet) is listed
    too: a table that enters or leaves it then moves its targets, not every later position
    (which a revision's delta could only describe as "drop everything")."""
    positions: dict[int, int] = {}
    targeted: list[Targeted] = []
    for i, policy in enumerate(policies):
        if policy.status is not PolicyStatus.ACTIVE:
            continue
        tables = known.trino_tables(policy, targets[policy.name], trino_paths)
        positions[i] = len(targeted)
        targeted.append((PolicyGrant(policy.name, policy.access), tables))
    return positions, targeted


def _by_who(policies: tuple[Policy, ...]) -> dict[tuple[str, ...], tuple[int, ...]]:
    index: defaultdict[tuple[str, ...], list[int]] = defaultdict(list)
    for i, policy in enumerate(policies):
        if policy.status is not PolicyStatus.ACTIVE:
            continue
        keys: list[tuple[str, ...]] = [("anyone",)] if policy.anyone else []
        keys += [("user", name) for name in policy.users]
        keys += [("group", name) for name in policy.groups]
        keys += [("attribute", k, v) for k, values in policy.attributes.items() for v in values]
        for key in keys:
            index[key].append(i)
    return {key: tuple(ids) for key, ids in index.items()}
