"""The compiled, immutable view of registry + policies + directory + mapping at one revision."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pdp.core.model import (
    DEFAULT_MAPPING,
    AccessGrantMapping,
    Identity,
    PolicyGrant,
    Registry,
    Settings,
    TableKey,
    View,
    fold,
)
from pdp.policy.model import DataSource, DirectoryUser, Policy, PolicyStatus, Subject

Grants = dict[str, tuple[PolicyGrant, ...]]


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

    @classmethod
    def compile(
        cls,
        revision: str,
        sources: Iterable[DataSource],
        policies: Iterable[Policy],
        directory: Mapping[str, DirectoryUser],
        mapping: AccessGrantMapping = DEFAULT_MAPPING,
        retired: Iterable[DataSource] = (),
    ) -> PolicySnapshot:
        by_path = {fold(s.path): s for s in sources}
        policies = tuple(policies)
        trino_paths = {path: s.trino_key for path, s in by_path.items() if s.trino_key}
        return cls(
            revision=revision,
            sources=by_path,
            policies=policies,
            directory=dict(directory),
            mapping=mapping,
            targets=_targets(by_path, policies),
            registry=Registry.of(set(trino_paths.values())),
            trino_paths=trino_paths,
            retired={p: s for s in retired if (p := fold(s.path)) not in by_path},
            by_who=_by_who(policies),
        )

    def subject(self, user: str, groups: Iterable[str] = ()) -> Subject:
        known = self.directory.get(user)
        if known is None:
            return Subject(user, frozenset(groups), {})
        return Subject(user, known.groups | frozenset(groups), known.attributes)

    def grants(self, subject: Subject) -> Grants:
        """Data source path -> the active policies that apply to `subject` and target it."""
        keys = [("anyone",), ("user", subject.name)]
        keys += [("group", group) for group in subject.groups]
        keys += [("attribute", k, v) for k, values in subject.attributes.items() for v in values]
        candidates = sorted({i for key in keys for i in self.by_who.get(key, ())})
        found: defaultdict[str, list[PolicyGrant]] = defaultdict(list)
        for index in candidates:  # named the subject somewhere; `match: all` may still say no
            policy = self.policies[index]
            if policy.applies_to(subject):
                grant = PolicyGrant(policy.name, policy.access)
                for path in self.targets.get(policy.name, ()):
                    found[path].append(grant)
        return {path: tuple(grants) for path, grants in found.items()}

    def trino_grants(self, subject: Subject) -> dict[TableKey, tuple[PolicyGrant, ...]]:
        result: dict[TableKey, tuple[PolicyGrant, ...]] = {}
        for path, grants in self.grants(subject).items():
            key = self.trino_paths.get(path)
            if key is not None:
                result[key] = result.get(key, ()) + grants
        return result

    def view(self, settings: Settings, identity: Identity) -> View:
        subject = self.subject(identity.user, identity.groups)
        return View(settings, self.registry, self.trino_grants(subject))


def _targets(
    sources: Mapping[str, DataSource], policies: tuple[Policy, ...]
) -> dict[str, frozenset[str]]:
    index: defaultdict[tuple[str, str], set[str]] = defaultdict(set)
    for path, source in sources.items():
        conn, db, schema = fold(source.connection), fold(source.database), fold(source.schema)
        index["connection", conn].add(path)
        index["database", f"{conn}.{db}"].add(path)
        index["schema", f"{conn}.{db}.{schema}"].add(path)
        for tag in source.tags:
            parts = tag.split(".")
            for depth in range(1, len(parts) + 1):  # a policy on a parent tag covers its children
                index["tag", ".".join(parts[:depth])].add(path)
    result = {}
    for policy in policies:
        paths = set(policy.data_sources & sources.keys())
        for kind, names in (
            ("connection", policy.connections),
            ("database", policy.databases),
            ("schema", policy.schemas),
            ("tag", policy.tags),
        ):
            for name in names:
                paths |= index.get((kind, name), set())
        result[policy.name] = frozenset(paths)
    return result


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
