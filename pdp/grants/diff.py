"""The minimal change from current to desired grants. Pure; linear in the number of grants."""

from __future__ import annotations

from pdp.grants.dialect import Dialect
from pdp.grants.model import Change, Current, Desired, Privileges, Securable

_NONE: Privileges = frozenset()


def diff(desired: Desired, current: Current, dialect: Dialect) -> list[Change]:
    """Changes in no particular order; `current` must already be limited to managed principals.

    Only privileges in the dialect's managed vocabulary are ever removed, so OWNERSHIP and
    whatever else an administrator granted on the same objects is left alone."""
    changes: list[Change] = []
    for principal in desired.principals | current.grants.keys():
        want = desired.grants.get(principal, {})
        have = current.grants.get(principal, {})
        counted = None if dialect.exact_parents else _parents_of_held(have, dialect)
        # Desired securables first: their keyword comes from the registry, which is exact.
        for securable in [*want, *(s for s in have if s not in want)]:
            wanted = want.get(securable, _NONE)
            held = have.get(securable, _NONE) & dialect.managed(securable)
            add, remove = wanted - held, held - wanted
            if remove and counted is not None and securable.container and securable not in counted:
                remove = _NONE  # no managed grant beneath it went away: not ours to revoke
            if add or remove:
                changes.append(Change(principal, securable, add, remove))
    return changes


def _parents_of_held(have: dict[Securable, Privileges], dialect: Dialect) -> set[Securable]:
    """Containers under which the principal holds a managed grant right now. A parent privilege
    may be revoked only there: the child grants that needed it are ours and are going away."""
    result: set[Securable] = set()
    for securable, privileges in have.items():
        if not securable.container and privileges & dialect.managed(securable):
            result.update(parent for parent, _ in dialect.parents(securable))
    return result
