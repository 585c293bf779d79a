"""Planning for platforms that grant to one managed role per user (Snowflake, PostgreSQL).

Every grant held by a managed role is the product's, so the diff there is exact. Which users hold
the role is reconciled too, because another user holding it would hold the user's access; roles
holding it (the account's hierarchy, e.g. `GRANT ROLE ... TO ROLE SYSADMIN`) are the
administrators' business and are left alone."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from pdp.grants.dialect import Dialect
from pdp.grants.diff import diff
from pdp.grants.model import (
    Change,
    Current,
    Desired,
    Member,
    Phase,
    Plan,
    Principal,
    Securable,
    Step,
)


class SqlRenderer(Protocol):
    def create_role(self, role: Principal) -> str: ...

    def grant(self, privileges: Iterable[str], securable: Securable, role: Principal) -> str: ...

    def revoke(self, privileges: Iterable[str], securable: Securable, role: Principal) -> str: ...

    def grant_role(self, role: Principal, member: Member) -> str: ...

    def revoke_role(self, role: Principal, member: Member) -> str: ...

    def where(self, securable: Securable) -> str:
        """The database a statement on `securable` must run in ("" for account-wide SQL)."""
        ...

    def label(self, securable: Securable) -> str: ...


def plan_roles(
    target: str, desired: Desired, current: Current, dialect: Dialect, sql: SqlRenderer
) -> Plan:
    steps: list[Step] = []
    for role in sorted(desired.grants.keys() - current.roles):
        steps.append(Step(Phase.CREATE_ROLE, role, sql.create_role(role)))
    # A revoke on an object that left the registry still gets its exact keyword when the
    # registry kept it as retired; otherwise the keyword SHOW GRANTS reported is used.
    known = {s: s for s in desired.scope}
    for change in sorted(diff(desired, current, dialect), key=_order):
        securable = known.get(change.securable, change.securable)
        subject = f"{sql.label(securable)} ({change.principal})"
        where = sql.where(securable)
        if change.remove:
            phase = Phase.REVOKE_PARENT if securable.container else Phase.REVOKE
            text = sql.revoke(change.remove, securable, change.principal)
            steps.append(Step(phase, subject, text, where))
        if change.add:
            phase = Phase.GRANT_PARENT if securable.container else Phase.GRANT
            text = sql.grant(change.add, securable, change.principal)
            steps.append(Step(phase, subject, text, where, gate=sql.label(securable)))
    for role in sorted(desired.members.keys() | current.members.keys()):
        want = desired.members.get(role, frozenset())
        have = {m for m in current.members.get(role, frozenset()) if m[0] == "USER"}
        for member in sorted(have - want):
            steps.append(Step(Phase.REVOKE, role, sql.revoke_role(role, member)))
        for member in sorted(want - have):
            steps.append(Step(Phase.GRANT_ROLE, role, sql.grant_role(role, member)))
    steps.sort(key=lambda step: step.phase)  # stable: keeps the sorted order within a phase
    return Plan(
        target,
        desired.revision,
        tuple(steps),
        desired.notes,
        withheld=desired.withheld,
        columns=desired.columns,
    )


def _order(change: Change) -> tuple[str, tuple[str, ...], str]:
    return (change.principal, change.securable.name, change.securable.family)


def ordered(privileges: Iterable[str], order: tuple[str, ...]) -> list[str]:
    """Privileges in the platform's documented order, so plans are stable and readable."""
    rank = {name: index for index, name in enumerate(order)}
    return sorted(privileges, key=lambda p: (rank.get(p, len(rank)), p))
