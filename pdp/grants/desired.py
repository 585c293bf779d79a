"""Desired state: from the PDP's own snapshot to the native privileges each principal must hold.

The input is `PolicySnapshot.grants(subject)`, the very function behind Trino decisions, and each
privilege set comes from `Rule.privileges`, which asks the core's `granting` rule. Nothing here
does I/O."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from pdp.core import Access
from pdp.core.model import fold
from pdp.grants.datapolicies import Applying, DataPolicyIndex, UserDataPolicies
from pdp.grants.dialect import Dialect
from pdp.grants.errors import UnknownConnection
from pdp.grants.model import Desired, Member, Principal, Privileges, Rule, Securable, State
from pdp.policy import DataSource, PolicySnapshot

_Entry = tuple[Securable, Rule, tuple[tuple[Securable, str], ...], DataSource]


def known_users(snapshot: PolicySnapshot) -> list[str]:
    """Directory users plus users named directly by a policy: everyone a policy can reach
    without a live request (group membership of unknown users is not known ahead of time)."""
    names = set(snapshot.directory)
    for policy in snapshot.policies:
        names |= policy.users
    return sorted(names)


def check_connections(
    target: str, connections: Iterable[str], snapshot: PolicySnapshot, where: str = ""
) -> None:
    """Raise UnknownConnection when a target names a connection the registry does not hold:
    a misspelt name would otherwise plan zero steps and look in sync."""
    known = {
        fold(s.connection): s.connection
        for s in (*snapshot.sources.values(), *snapshot.retired.values())
    }
    unknown = sorted(c for c in connections if fold(c) not in known)
    if unknown:
        names = ", ".join(repr(c) for c in unknown)
        have = ", ".join(sorted(known.values())) or "none"
        raise UnknownConnection(
            f"{where + ': ' if where else ''}target {target!r} names connection(s) {names} "
            f"that hold no data source in the registry (connections: {have})"
        )


def desired_state(
    snapshot: PolicySnapshot, dialect: Dialect, connections: Iterable[str]
) -> Desired:
    wanted = {fold(c) for c in connections}
    notes: list[str] = []
    entries: dict[str, _Entry] = {}
    scope: dict[Securable, Securable] = {}
    for path, source in snapshot.sources.items():
        if fold(source.connection) not in wanted:
            continue
        securable, parents = _locate(dialect, source, scope)
        rule = dialect.rule(source.type)
        if rule is None:
            notes.append(
                f"{source.path}: {source.technology} has no {source.type}; nothing granted"
            )
            continue
        entries[path] = (securable, rule, parents, source)
    for source in snapshot.retired.values():
        if fold(source.connection) in wanted:
            _locate(dialect, source, scope)

    by_principal: defaultdict[Principal, list[str]] = defaultdict(list)
    for user in known_users(snapshot):
        by_principal[dialect.principal(user)].append(user)
    interned: dict[Privileges, Privileges] = {}
    index = DataPolicyIndex(snapshot)
    withheld: list[str] = []
    enforced: dict[Securable, dict[Principal, tuple[Applying, ...]]] = {}
    memo: dict[tuple[int, frozenset[Access]], Privileges] = {}
    grants: State = {}
    members: dict[Principal, frozenset[Member]] = {}
    for principal, users in by_principal.items():
        if len(users) > 1:  # fail closed: neither user gets the other's access
            notes.append(f"users {', '.join(users)} all map to {principal!r}; nothing granted")
            continue
        subject = snapshot.subject(users[0])
        data = index.for_user(subject) if index else None
        native = _Native(dialect, principal, withheld, enforced)
        held = _held(snapshot, users[0], entries, interned, memo, data, native)
        if held:
            grants[principal] = held
            if (member := dialect.member(users[0])) is not None:
                members[principal] = frozenset({member})
    return Desired(
        revision=snapshot.revision,
        grants=grants,
        principals=frozenset(by_principal),
        members=members,
        scope=frozenset(scope),
        notes=tuple(notes),
        withheld=tuple(withheld),
        enforced=enforced,
    )


@dataclass
class _Native:
    """Where one user's data policies go: enforced natively, or the grant withheld."""

    dialect: Dialect
    principal: Principal
    withheld: list[str]
    enforced: dict[Securable, dict[Principal, tuple[Applying, ...]]]
    bypassing: dict[Securable, Privileges] = field(default_factory=dict)

    def enforce(
        self, securable: Securable, applying: tuple[Applying, ...], bypassing: Privileges
    ) -> None:
        mine = self.enforced.setdefault(securable, {})
        before = mine.get(self.principal, ())
        mine[self.principal] = (*before, *(a for a in applying if a not in before))
        self.bypassing[securable] = self.bypassing.get(securable, frozenset()) | bypassing

    def unenforce(self, securable: Securable) -> None:
        mine = self.enforced.get(securable, {})
        mine.pop(self.principal, None)
        if not mine:
            self.enforced.pop(securable, None)


def _locate(
    dialect: Dialect, source: DataSource, scope: dict[Securable, Securable]
) -> tuple[Securable, tuple[tuple[Securable, str], ...]]:
    found = dialect.securable(source)
    securable = scope.setdefault(found, found)
    # setdefault hands back the instance already known, so later dict lookups of the same
    # parent hit on identity instead of comparing names.
    parents = dialect.parents(securable)
    return securable, tuple((scope.setdefault(p, p), privilege) for p, privilege in parents)


def _held(
    snapshot: PolicySnapshot,
    user: str,
    entries: dict[str, _Entry],
    interned: dict[Privileges, Privileges],
    memo: dict[tuple[int, frozenset[Access]], Privileges],
    data: UserDataPolicies | None,
    native: _Native,
) -> dict[Securable, Privileges]:
    """The native privileges of one user. Where data policies apply to the user on an object
    and the platform cannot enforce them exactly, nothing is granted on it (read or write: a
    write reads too, through its WHERE clause) and `withheld` says why."""
    mapping = snapshot.mapping
    held: dict[Securable, Privileges] = {}
    blocked: set[Securable] = set()  # withheld through one registry entry: through none
    for path, policy_grants in snapshot.grants(snapshot.subject(user)).items():
        entry = entries.get(path)
        if entry is None:
            continue
        securable, rule, parents, source = entry
        # The result depends only on which access types grant it, so it is computed once per
        # (rule, access types) and shared: at 10,000 users that is most of the planning time.
        key = (id(rule), frozenset(g.access for g in policy_grants))
        privileges = memo.get(key)
        if privileges is None:
            privileges = memo[key] = _intern(rule.privileges(mapping, policy_grants), interned)
        if not privileges:
            continue
        if securable in blocked:
            continue
        applying = data.on(path, source) if data is not None and data.index.covered(path) else ()
        if applying:
            outcome = native.dialect.data_policies(source, applying)
            if isinstance(outcome, str):
                native.withheld.append(f"{user} on {source.path}: {outcome}")
                # two registry entries naming one platform object: the other grants nothing
                blocked.add(securable)
                held.pop(securable, None)
                native.unenforce(securable)
                continue
            native.enforce(securable, applying, outcome.bypassing)
        if securable in held:  # two registry entries naming one platform object
            privileges = _intern(held[securable] | privileges, interned)
        held[securable] = privileges
        for parent, privilege in parents:
            have = held.get(parent)
            if have is None or privilege not in have:
                held[parent] = _intern((have or frozenset()) | {privilege}, interned)
    for securable, bypassing in native.bypassing.items():
        if securable in held:  # enforced natively: what would escape it is left out
            held[securable] = _intern(held[securable] - bypassing, interned)
    return held


def _intern(privileges: Privileges, interned: dict[Privileges, Privileges]) -> Privileges:
    return interned.setdefault(privileges, privileges)
