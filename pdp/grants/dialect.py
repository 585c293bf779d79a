"""What the planner needs to know about a platform, without talking to it."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar, Protocol

from pdp.grants.datapolicies import Applying, Native
from pdp.grants.model import Member, Principal, Privileges, Rule, Securable
from pdp.policy import DataSource, ObjectType


class NameCase(StrEnum):
    """How registry names become the names the platform stores.

    `unquoted`: a name that would be a valid unquoted identifier is folded the way the platform
    folds unquoted identifiers (Snowflake: upper, PostgreSQL: lower); anything else is kept as
    written. This matches what a person typing the name in a worksheet gets.
    `exact`: the registry already holds the stored names (object sync), use them verbatim."""

    UNQUOTED = "unquoted"
    EXACT = "exact"


# a name that needs no quotes; a role prefix must be one
UNQUOTED = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")


def stored_name(name: str, case: NameCase, fold: Callable[[str], str]) -> str:
    if case is NameCase.UNQUOTED and UNQUOTED.fullmatch(name):
        return fold(name)
    return name


@dataclass(frozen=True)
class Naming:
    """Per-target naming options shared by all dialects."""

    case: NameCase = NameCase.UNQUOTED
    users: Mapping[str, str] = field(default_factory=dict)  # directory user -> platform user


@dataclass(frozen=True)
class RoleDialect:
    """The role-per-user model Snowflake and PostgreSQL share: a user's grants go to one managed
    role named from `prefix`, granted to the platform user. Subclasses give the platform's case
    fold and the privileges the product owns per securable family."""

    prefix: str
    naming: Naming = field(default_factory=Naming)
    exact_parents: bool = True  # managed roles hold nothing but our grants
    _fold: ClassVar[Callable[[str], str]]
    _managed: ClassVar[Mapping[str, Privileges]]

    def __post_init__(self) -> None:
        if not UNQUOTED.fullmatch(self.prefix):
            raise ValueError(f"role prefix {self.prefix!r} must be a plain identifier")

    def _stored(self, name: str) -> str:
        return stored_name(name, self.naming.case, type(self)._fold)

    def _table_name(self, source: DataSource) -> tuple[str, str, str]:
        return (
            self._stored(source.database),
            self._stored(source.schema),
            self._stored(source.name),
        )

    def managed(self, securable: Securable) -> Privileges:
        return self._managed.get(securable.family, frozenset())

    def member(self, user: str) -> Member:
        return ("USER", self.naming.users.get(user) or self._stored(user))


class Dialect(Protocol):
    """A platform's privilege tables and naming rules. Pure: no I/O."""

    def securable(self, source: DataSource) -> Securable: ...

    def rule(self, kind: ObjectType) -> Rule | None:
        """None: the platform has no such object type, so nothing is granted on it."""
        ...

    def parents(self, securable: Securable) -> tuple[tuple[Securable, str], ...]:
        """The containers a grant on `securable` needs, with the privilege needed on each."""
        ...

    def managed(self, securable: Securable) -> Privileges:
        """The privileges the product owns on this kind of securable; all others are left alone."""
        ...

    def principal(self, user: str) -> Principal:
        """Where a user's grants go: their managed role, or the user principal itself."""
        ...

    def member(self, user: str) -> Member | None:
        """Who must hold the user's managed role; None when grants go to the user directly."""
        ...

    def data_policies(self, source: DataSource, applying: tuple[Applying, ...]) -> str | Native:
        """Native when the target enforces these data policies on `source` natively and
        exactly; otherwise why not, and the user's grants on it are withheld."""
        ...

    @property
    def exact_parents(self) -> bool:
        """True when every grant on a managed principal is ours (a managed role), so a parent
        privilege no child needs can always go. False when principals are shared with other
        administrators: then a parent privilege is only revoked when this run removes the last
        managed grant beneath it (reference counting)."""
        ...
