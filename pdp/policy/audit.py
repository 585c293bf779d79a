"""Warnings about a compiled snapshot: policies that name a principal nobody in the directory
is, and policies that select no data source. Nothing here changes a decision: a policy naming
`finance-team` where the directory says `finance` is valid, and silently grants nobody, so
`pdp check`, the reload log and `/health` say so.

A pure function of the snapshot, computed once when it is compiled. Without a directory (no
`users:` in the files) there is nothing to compare names with, and principals are not checked.
A group may still reach a user through the groups Trino sends with each request: the warning
says that; a user's attributes come only from the directory."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pdp.policy.builtin import is_builtin
from pdp.policy.model import Targets
from pdp.policy.snapshot import PolicySnapshot, _index, _resolve, _what


def audit(snapshot: PolicySnapshot) -> tuple[str, ...]:
    """Every warning about `snapshot`, in the order the policies are listed."""
    found: list[str] = []
    directory = _Directory(snapshot)
    for policy in snapshot.policies:
        label = f"policy {policy.name!r}"
        if not policy.anyone:
            found += directory.unmatched(label, policy.users, policy.groups, policy.attributes)
        if _names_targets(_what(policy)) and not snapshot.targets.get(policy.name):
            found.append(f"{label} selects no data source (none of its `what` is registered)")
    data_policies = [("mask", m.name, m.on, m.audience) for m in snapshot.masking]
    data_policies += [("row filter", f.name, f.on, f.audience) for f in snapshot.row_filters]
    for kind, name, on, audience in data_policies:
        if is_builtin(name):
            continue
        label = f"{kind} {name!r}"
        found += directory.unmatched(label, audience.users, audience.groups, audience.attributes)
        if not snapshot.data_targets.get(name) and not _selects(snapshot, on):
            found.append(f"{label} selects no data source (none of its `what` is registered)")
    return tuple(found)


class _Directory:
    """Who the directory knows: users, the groups and the attribute values they hold."""

    def __init__(self, snapshot: PolicySnapshot) -> None:
        users = snapshot.directory.values()
        self.known = bool(snapshot.directory)
        self.users = set(snapshot.directory)
        self.groups = {group for user in users for group in user.groups}
        self.attributes = {
            (key, value)
            for user in users
            for key, values in user.attributes.items()
            for value in values
        }

    def unmatched(
        self,
        label: str,
        users: Iterable[str],
        groups: Iterable[str],
        attributes: Mapping[str, frozenset[str]],
    ) -> list[str]:
        if not self.known:
            return []
        found = [
            f"{label}: user {u!r} is not in the directory"
            for u in sorted(users)
            if u not in self.users
        ]
        found += [
            f"{label}: group {g!r} has no member in the directory "
            "(only a group Trino sends with a request can match it)"
            for g in sorted(groups)
            if g not in self.groups
        ]
        found += [
            f"{label}: attribute {key}={value!r}: no user in the directory has it"
            for key, values in sorted(attributes.items())
            for value in sorted(values)
            if (key, value) not in self.attributes
        ]
        return found


def _names_targets(what: Targets) -> bool:
    """Whether `what` names anything (one that names nothing is reported by the file reader)."""
    return bool(
        what.data_sources or what.connections or what.databases or what.schemas or what.tags
    )


def _selects(snapshot: PolicySnapshot, on: Targets) -> bool:
    """Whether a data policy's `what` reaches a registered data source, Trino table or not
    (`data_targets` holds only the tables Trino reads)."""
    if not (on.everything or _names_targets(on)):
        return True  # names nothing: the file reader says so
    return bool(_resolve(_index(snapshot.sources), snapshot.sources, on))
