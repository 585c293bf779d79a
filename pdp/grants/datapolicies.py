"""Data policies (masks, row filters) seen from a native platform. Pure: no I/O.

Trino applies masks and row filters per query; a native grant does not. So for every user and
data source the planner asks which active data policies apply to the user there (the audience
rule `PolicySnapshot.data_policies` answers for Trino too), and the target either enforces each
of them natively or the read is withheld: a user never reads natively more than Trino shows.

Coverage is by registry path, whether or not a Trino catalog exposes the source. A mask counts on
every data source its `what` covers (by tag: every source with a column so tagged), whatever
columns the registry lists: the native table has all its columns, listed or not. Trino's admins
(`immuta.user.admin`) are a Trino cluster setting with no native counterpart, so natively they
are treated like anyone else; a mask that exempts the data source's owners exempts them here too.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from pdp.core.datapolicy import render_filter
from pdp.policy import DataSource, PolicySnapshot, PolicyStatus, Subject
from pdp.policy.model import MaskingPolicy, RowFilterPolicy
from pdp.policy.snapshot import _source_tags as source_tags

DataPolicy = MaskingPolicy | RowFilterPolicy


@dataclass(frozen=True, slots=True)
class Applying:
    """A data policy that applies to one user on one data source; `predicate` is the row
    filter rendered with the user's values (None for a mask); `tagged` are the columns of the
    source a mask covers through the registry's column tags (its named columns are in
    `policy.columns`)."""

    policy: DataPolicy
    predicate: str | None = None
    tagged: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Native:
    """The platform enforces the policies natively; `bypassing` are the privileges that would
    escape that enforcement (PostgreSQL's TRUNCATE ignores row security), left out."""

    bypassing: frozenset[str] = frozenset()


def describe(policy: DataPolicy) -> str:
    """`mask 'amount-hidden' on amount`, `row filter 'emea-only'`: how a plan names a policy."""
    if isinstance(policy, RowFilterPolicy):
        return f"row filter {policy.name!r}"
    on = [", ".join(sorted(policy.columns))] if policy.columns else []
    if policy.column_tags:
        on.append("columns tagged " + ", ".join(sorted(policy.column_tags)))
    return f"mask {policy.name!r} on {' and '.join(on) or 'no column'}"


def not_native(applying: tuple[Applying, ...], platform: str) -> str:
    """Why a read is withheld where `platform` enforces none of `applying` natively."""
    names = "; ".join(describe(a.policy) for a in applying)
    return f"{names} cannot be enforced natively on {platform}"


class DataPolicyIndex:
    """The active data policies by the registry paths they cover, built once per plan."""

    def __init__(self, snapshot: PolicySnapshot) -> None:
        self._snapshot = snapshot
        covering: defaultdict[str, list[DataPolicy]] = defaultdict(list)
        policies: tuple[DataPolicy, ...] = (*snapshot.masking, *snapshot.row_filters)
        for policy in policies:
            if policy.status is PolicyStatus.ACTIVE:
                for path in snapshot.data_paths.get(policy.name, ()):
                    covering[path].append(policy)
        self._covering = {path: tuple(found) for path, found in covering.items()}
        self._group_only = tuple(
            p
            for p in policies
            if p.status is PolicyStatus.ACTIVE and not p.audience.exclude and p.audience.groups
        )

    def __bool__(self) -> bool:
        return bool(self._covering)

    def covered(self, path: str) -> bool:
        return path in self._covering

    def for_user(self, subject: Subject) -> UserDataPolicies:
        """The data policies natively applying to `subject`. Trino adds to the directory's
        groups those of its group provider, which grant sync never sees: so a policy only
        for some groups applies natively to everyone it does not name otherwise (whom Trino
        may find in the group), never to fewer users than Trino."""
        named, rendered_filters = self._snapshot.data_policies(subject)
        masks, filters = set(named), dict(rendered_filters)
        attributes = dict(subject.attributes)
        for policy in self._group_only:
            if isinstance(policy, RowFilterPolicy):
                if policy.name not in filters:
                    rendered = render_filter(
                        policy.template, subject.name, subject.groups, attributes
                    )
                    filters[policy.name] = f"({rendered})"
            else:
                masks.add(policy.name)
        return UserDataPolicies(self, subject, frozenset(masks), filters)

    def on(self, path: str) -> tuple[DataPolicy, ...]:
        return self._covering.get(path, ())


@dataclass(frozen=True)
class UserDataPolicies:
    index: DataPolicyIndex
    subject: Subject
    masks: frozenset[str]  # names of the active masks whose audience includes the user
    filters: dict[str, str]  # active row filters whose audience includes the user -> SQL

    def on(self, path: str, source: DataSource) -> tuple[Applying, ...]:
        found = []
        for policy in self.index.on(path):
            if isinstance(policy, RowFilterPolicy):
                if policy.name in self.filters:
                    found.append(Applying(policy, self.filters[policy.name]))
            elif policy.name in self.masks and not (
                policy.except_owners and _owns(self.subject, source)
            ):
                found.append(Applying(policy, tagged=_tagged(policy, source)))
        return tuple(found)


def _tagged(policy: MaskingPolicy, source: DataSource) -> frozenset[str]:
    if not policy.column_tags:
        return frozenset()
    return frozenset(
        column
        for column, tags in source_tags(source).items()
        if not policy.column_tags.isdisjoint(tags)
    )


def _owns(subject: Subject, source: DataSource) -> bool:
    return ("user", subject.name) in source.owners or any(
        ("group", group) in source.owners for group in subject.groups
    )
