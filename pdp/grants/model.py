"""Values the grant planner works on: securables, grant states, changes, plans and reports."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum

from pdp.core import Access, AccessGrantMapping, PolicyGrant, granting
from pdp.core.model import POLICY_ACCESS
from pdp.grants.datapolicies import Applying

Principal = str
"""A Snowflake or PostgreSQL role, or a Databricks user principal, as the platform spells it."""

Privileges = frozenset[str]


@dataclass(frozen=True, slots=True)
class Securable:
    """An object privileges are granted on.

    Identity is (family, name). `keyword` is how statements name the kind (`MATERIALIZED VIEW`),
    and is left out of equality because Snowflake's SHOW GRANTS reports a view as TABLE before
    bundle 2026_06 and as VIEW after it: both must match the same registered object."""

    family: str
    name: tuple[str, ...]  # fully qualified; containers (database, schema) have fewer than 3 parts
    keyword: str = field(default="", compare=False)
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Securables key every state dict; hashing the nested tuple each time dominated plans.
        object.__setattr__(self, "_hash", hash((self.family, self.name)))

    def __hash__(self) -> int:
        return self._hash

    @property
    def container(self) -> bool:
        return len(self.name) < 3


State = dict[Principal, dict[Securable, Privileges]]
"""principal -> securable -> privileges held."""

Member = tuple[str, str]
"""Who holds a managed role: ("USER" | "ROLE", name)."""


@dataclass(frozen=True, slots=True)
class Rule:
    """The native privileges one object type gets on one platform.

    `read` and `write` are keyed by the Trino access value the policy yields through the
    accessGrantMapping, so a WRITE policy under the default mapping (READ, WRITE) gets both.
    `enforced` lists the policy access types the platform honours at all for this type."""

    keyword: str
    read: Privileges
    write: Privileges = frozenset()
    enforced: frozenset[Access] = POLICY_ACCESS

    def privileges(
        self, mapping: AccessGrantMapping, grants: tuple[PolicyGrant, ...]
    ) -> Privileges:
        honoured = [g for g in grants if g.access in self.enforced]
        result: Privileges = frozenset()
        if granting(mapping, honoured, Access.READ):
            result |= self.read
        if granting(mapping, honoured, Access.WRITE):
            result |= self.write
        return result


@dataclass(frozen=True)
class Desired:
    """What a target must look like at one snapshot revision."""

    revision: str
    grants: State
    principals: frozenset[Principal]  # every principal the product manages on the target
    members: Mapping[Principal, frozenset[Member]] = field(default_factory=dict)
    scope: frozenset[Securable] = frozenset()  # governed objects and parents, retired included
    notes: tuple[str, ...] = ()
    # "<user> on <data source>: <why>": reads not granted because a data policy applies that
    # the platform cannot enforce natively
    withheld: tuple[str, ...] = ()
    # "<principal> on <table>: <columns> left out (<masks>)": reads narrowed to the columns
    # no mask covers (PostgreSQL)
    columns: tuple[str, ...] = ()
    # object -> managed principal -> the data policies the platform enforces natively for it
    enforced: Mapping[Securable, Mapping[Principal, tuple[Applying, ...]]] = field(
        default_factory=dict
    )


@dataclass(frozen=True)
class Current:
    """What a target holds now, restricted to managed principals and privileges."""

    grants: State
    roles: frozenset[Principal] = frozenset()  # managed roles that exist (role platforms)
    members: Mapping[Principal, frozenset[Member]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Change:
    principal: Principal
    securable: Securable
    add: Privileges
    remove: Privileges


class Phase(IntEnum):
    """Apply order. Revokes run before grants so an interrupted run never leaves more access
    than either the old or the new policy allowed (fail closed). Native data policies tighten
    before anything is granted and loosen after everything is revoked."""

    CREATE_ROLE = 1
    TIGHTEN = 2
    REVOKE = 3
    GRANT_PARENT = 4
    GRANT = 5
    GRANT_ROLE = 6
    REVOKE_PARENT = 7
    LOOSEN = 8


@dataclass(frozen=True, slots=True)
class Step:
    """One changing call. `text` is printed by `pdp grants plan`; for SQL targets it is exactly
    the statement that runs. `where` names the database a PostgreSQL statement runs in."""

    phase: Phase
    subject: str  # the object or role a failure is reported against
    text: str
    where: str = ""
    payload: object = None  # platform request when it is not `text` (Databricks PATCH)
    # The object whose native data policies this step depends on or sets up: when a TIGHTEN
    # step with a gate fails, later steps with the same gate are skipped (fail closed).
    gate: str = ""


@dataclass(frozen=True)
class Plan:
    target: str
    revision: str
    steps: tuple[Step, ...]
    notes: tuple[str, ...] = ()
    failing: tuple[str, ...] = ()  # steps known, at plan time, to fail when applied: why
    withheld: tuple[str, ...] = ()  # Desired.withheld: grants left out because of data policies
    columns: tuple[str, ...] = ()  # Desired.columns: reads narrowed to the unmasked columns

    @property
    def empty(self) -> bool:
        return not self.steps


@dataclass(frozen=True, slots=True)
class StepFailure:
    step: Step
    error: str


@dataclass(frozen=True)
class Report:
    """The outcome of `apply`: what ran, what failed, and the plan a fresh read still shows."""

    target: str
    revision: str
    applied: tuple[Step, ...]
    failed: tuple[StepFailure, ...]
    drift: Plan | None  # None when verification itself failed

    @property
    def clean(self) -> bool:
        return not self.failed and self.drift is not None and self.drift.empty
