"""Databricks Unity Catalog: privilege table, securable types, PATCH bodies and raw reads.

Grants go to the user principal directly. Three SDK traps are avoided on purpose:
* the securable type is passed as a plain lower-case string (the enum renders as
  `SecurableType.TABLE` in the path);
* current grants are read as raw JSON, because the typed response silently drops privileges the
  SDK does not know, and a reconciler must never misjudge what it cannot see;
* the full name is URL-quoted by us, because the SDK puts it into the path unescaped."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

import orjson

from pdp.core.model import Access, fold
from pdp.grants import tablepolicy
from pdp.grants.datapolicies import Applying, Native, not_native
from pdp.grants.dialect import Naming
from pdp.grants.model import (
    Change,
    Member,
    Phase,
    Plan,
    Principal,
    Privileges,
    Rule,
    Securable,
    State,
    Step,
)
from pdp.policy import DataSource, ObjectType

API = "/api/2.1/unity-catalog/permissions"
CATALOG, SCHEMA, TABLE, VOLUME, FUNCTION = "catalog", "schema", "table", "volume", "function"

_SELECT, _MODIFY = frozenset({"SELECT"}), frozenset({"MODIFY"})
_EXECUTE, _MANAGE = frozenset({"EXECUTE"}), frozenset({"MANAGE"})

# The seed table for Unity Catalog. Foreign tables honour read policies only: a write policy on
# one issues nothing at all, not even SELECT. Registered models are granted through the
# `function` securable type, as Terraform does; the API has no separate kind for views either.
RULES: dict[ObjectType, Rule] = {
    ObjectType.TABLE: Rule(TABLE, _SELECT, _MODIFY),
    ObjectType.EXTERNAL_TABLE: Rule(TABLE, _SELECT, _MODIFY),
    ObjectType.VIEW: Rule(TABLE, _SELECT),
    ObjectType.MATERIALIZED_VIEW: Rule(TABLE, _SELECT),
    ObjectType.STREAMING_TABLE: Rule(TABLE, _SELECT),
    ObjectType.FOREIGN_TABLE: Rule(TABLE, _SELECT, enforced=frozenset({Access.READ})),
    ObjectType.VOLUME: Rule(VOLUME, frozenset({"READ_VOLUME"}), frozenset({"WRITE_VOLUME"})),
    ObjectType.FUNCTION: Rule(FUNCTION, _EXECUTE, _MANAGE),
    ObjectType.MODEL: Rule(FUNCTION, _EXECUTE, _MANAGE),
}
_MANAGED: dict[str, Privileges] = {
    CATALOG: frozenset({"USE_CATALOG"}),
    SCHEMA: frozenset({"USE_SCHEMA"}),
    TABLE: _SELECT | _MODIFY,
    VOLUME: frozenset({"READ_VOLUME", "WRITE_VOLUME"}),
    FUNCTION: _EXECUTE | _MANAGE,
}
ORDER = ("USE_CATALOG", "USE_SCHEMA", "SELECT", "MODIFY", "READ_VOLUME", "WRITE_VOLUME")


def normalize(privilege: str) -> str:
    """The API accepts `USE CATALOG` and stores `USE_CATALOG`; compare in the stored form."""
    return privilege.strip().upper().replace(" ", "_")


def full_name(securable: Securable) -> str:
    return ".".join(securable.name)


def quoted_name(securable: Securable) -> str:
    """URL-quoted full name: `#` or `?` in a name would otherwise cut the path."""
    return quote(full_name(securable), safe="")


def gate(securable: Securable) -> str:
    """How the steps setting up an object's masks and row filters name it (`Step.gate`)."""
    return f"TABLE {full_name(securable)}"


def path(securable: Securable) -> str:
    return f"{API}/{securable.family}/{quoted_name(securable)}"


@dataclass(frozen=True)
class DatabricksDialect:
    naming: Naming = field(default_factory=Naming)
    exact_parents: bool = False  # user principals are shared with the workspace's admins
    # (catalog, schema) holding the mask and row filter UDFs; None: data policies are not
    # enforced natively and the reads they cover are withheld
    policy_schema: tuple[str, str] | None = None
    prefix: str = "pdp"  # of the UDFs' names

    def securable(self, source: DataSource) -> Securable:
        rule = RULES.get(source.type)
        family = rule.keyword if rule else TABLE
        # Unity Catalog stores every object name in lower case.
        name = (source.database.lower(), source.schema.lower(), source.name.lower())
        return Securable(family, name, family)

    def data_policies(self, source: DataSource, applying: tuple[Applying, ...]) -> str | Native:
        platform = "Databricks Unity Catalog"
        if self.policy_schema is None:
            return not_native(applying, platform) + " (the target names no policySchema)"
        tables = frozenset({ObjectType.TABLE, ObjectType.EXTERNAL_TABLE})
        found = tablepolicy.native(source, applying, platform, tables, escapes=("\\", "''"))
        if isinstance(found, Native) and found.bypassing:
            # MODIFY carries TRUNCATE, which is not shown to respect row filters: filtered
            # users write through Trino only
            return Native(_MODIFY)
        return found

    def rule(self, kind: ObjectType) -> Rule | None:
        return RULES.get(kind)

    def parents(self, securable: Securable) -> tuple[tuple[Securable, str], ...]:
        if securable.container:
            return ()
        return (
            (Securable(CATALOG, securable.name[:1], CATALOG), "USE_CATALOG"),
            (Securable(SCHEMA, securable.name[:2], SCHEMA), "USE_SCHEMA"),
        )

    def managed(self, securable: Securable) -> Privileges:
        return _MANAGED.get(securable.family, frozenset())

    def principal(self, user: str) -> Principal:
        return self.naming.users.get(user) or user

    def member(self, user: str) -> Member | None:
        return None


# --- plan --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Patch:
    """One PATCH of one securable: either all removals or all additions, never both, so no
    privilege is ever listed under add and remove for one principal."""

    securable: Securable
    changes: tuple[Mapping[str, Any], ...]

    def body(self) -> dict[str, Any]:
        return {"changes": [dict(c) for c in self.changes]}


def plan_patches(
    target: str, revision: str, changes: Iterable[Change], notes: tuple[str, ...]
) -> Plan:
    removals: dict[Securable, list[dict[str, Any]]] = {}
    additions: dict[Securable, list[dict[str, Any]]] = {}
    for change in sorted(
        changes, key=lambda c: (c.securable.name, c.securable.family, c.principal)
    ):
        if change.remove:
            entry = {"principal": change.principal, "remove": _ordered(change.remove)}
            removals.setdefault(change.securable, []).append(entry)
        if change.add:
            entry = {"principal": change.principal, "add": _ordered(change.add)}
            additions.setdefault(change.securable, []).append(entry)
    steps = []
    for batch, revoke in ((removals, True), (additions, False)):
        for securable, entries in batch.items():
            if revoke:
                phase = Phase.REVOKE_PARENT if securable.container else Phase.REVOKE
            else:
                phase = Phase.GRANT_PARENT if securable.container else Phase.GRANT
            patch = Patch(securable, tuple(entries))
            text = f"PATCH {path(securable)} {orjson.dumps(patch.body()).decode()}"
            subject = f"{securable.family} {full_name(securable)}"
            # an addition waits for the object's data policies: skipped if setting them failed
            on = "" if revoke or securable.container else gate(securable)
            steps.append(Step(phase, subject, text, "", patch, gate=on))
    steps.sort(key=lambda step: step.phase)
    return Plan(target, revision, tuple(steps), notes)


def _ordered(privileges: Iterable[str]) -> list[str]:
    rank = {name: index for index, name in enumerate(ORDER)}
    return sorted(privileges, key=lambda p: (rank.get(p, len(rank)), p))


# --- read --------------------------------------------------------------------------------------


class ApiClient(Protocol):
    """The part of `databricks.sdk.core.ApiClient` used here (WorkspaceClient.api_client)."""

    def do(
        self,
        method: str,
        path: str | None = None,
        *,
        query: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> Any: ...


MAX_PAGES = 10_000  # a server that keeps sending tokens must not keep us forever


def read_securable(
    api: ApiClient, securable: Securable, managed: Mapping[str, Principal]
) -> dict[Principal, Privileges]:
    """Direct grants on one securable, all pages, for the principals in `managed` (folded name ->
    our spelling: user principals are case-insensitive)."""
    held: dict[Principal, set[str]] = {}
    token: str | None = None
    for _ in range(MAX_PAGES):
        query: dict[str, Any] = {"max_results": 0}  # 0: paginate with the server's page size
        if token:
            query["page_token"] = token
        page = api.do("GET", path(securable), query=query, headers={"Accept": "application/json"})
        for assignment in page.get("privilege_assignments") or ():
            principal = managed.get(fold(assignment.get("principal") or ""))
            if principal is None:  # someone else's, or a deleted principal (principal_id only)
                continue
            privileges = {normalize(p) for p in assignment.get("privileges") or ()}
            held.setdefault(principal, set()).update(privileges)
        token = page.get("next_page_token")
        if not token:  # an empty page may still carry a token; only its absence ends the list
            return {p: frozenset(v) for p, v in held.items()}
    raise RuntimeError(f"{full_name(securable)}: more than {MAX_PAGES} pages of grants")


def invert(per_securable: Mapping[Securable, Mapping[Principal, Privileges]]) -> State:
    state: State = {}
    for securable, holders in per_securable.items():
        for principal, privileges in holders.items():
            state.setdefault(principal, {})[securable] = privileges
    return state
