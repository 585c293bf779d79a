"""Snowflake: privilege table, identifier quoting, GRANT/REVOKE text and SHOW GRANTS parsing.

Grants go to one managed account role per user, `<PREFIX>_USER_<USER>`, granted to the user.
Privileges granted to users directly (bundle 2025_02) only count with secondary roles ALL, so
they are not used."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pdp.grants.datapolicies import Applying, Native, not_native
from pdp.grants.dialect import RoleDialect
from pdp.grants.model import Current, Member, Principal, Privileges, Rule, Securable, State
from pdp.grants.roles import ordered
from pdp.grants.session import SqlSession
from pdp.policy import DataSource, ObjectType

DATABASE, SCHEMA, TABLE = "DATABASE", "SCHEMA", "TABLE"  # securable families
USAGE = frozenset({"USAGE"})
WRITE = frozenset({"INSERT", "UPDATE", "DELETE", "TRUNCATE"})
ORDER = ("USAGE", "SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE")
_SELECT = frozenset({"SELECT"})

# The seed table for Snowflake. Only base tables take DML: every other kind is read-only as far as
# policies go, even where Snowflake itself knows more privileges (INSERT on event tables).
RULES: dict[ObjectType, Rule] = {
    ObjectType.TABLE: Rule("TABLE", _SELECT, WRITE),
    ObjectType.VIEW: Rule("VIEW", _SELECT),
    ObjectType.MATERIALIZED_VIEW: Rule("MATERIALIZED VIEW", _SELECT),
    ObjectType.EXTERNAL_TABLE: Rule("EXTERNAL TABLE", _SELECT),
    ObjectType.EVENT_TABLE: Rule("EVENT TABLE", _SELECT),
    ObjectType.ICEBERG_TABLE: Rule("ICEBERG TABLE", _SELECT),
    ObjectType.DYNAMIC_TABLE: Rule("DYNAMIC TABLE", _SELECT),
}
_TABLE_KINDS = frozenset(rule.keyword for rule in RULES.values())
_MANAGED = {DATABASE: USAGE, SCHEMA: USAGE, TABLE: _SELECT | WRITE}


def quote(identifier: str) -> str:
    """The one quoting function: every emitted name part goes through it."""
    return '"' + identifier.replace('"', '""') + '"'


def qualified(name: Iterable[str]) -> str:
    return ".".join(quote(part) for part in name)


def split_name(text: str) -> tuple[str, ...]:
    """Parse SHOW GRANTS' `name` column: dot-separated parts, quoted where case-sensitive."""
    parts: list[str] = []
    index = 0
    while index <= len(text):
        if text.startswith('"', index):
            end, chunk = index + 1, []
            while True:
                close = text.index('"', end)  # ValueError on an unterminated quote
                chunk.append(text[end:close])
                if text.startswith('"', close + 1):
                    chunk.append('"')
                    end = close + 2
                    continue
                break
            parts.append("".join(chunk))
            index = close + 1
        else:
            dot = text.find(".", index)
            dot = len(text) if dot < 0 else dot
            parts.append(text[index:dot])
            index = dot
        if index < len(text) and text[index] != ".":
            raise ValueError(f"malformed object name {text!r}")
        index += 1
    return tuple(parts)


@dataclass(frozen=True)
class SnowflakeDialect(RoleDialect):
    prefix: str = "PDP"
    # (database, schema) holding the masking and row access policies; None: data policies
    # are not enforced natively and the reads they cover are withheld
    policy_schema: tuple[str, str] | None = None
    _fold = str.upper
    _managed = _MANAGED

    def securable(self, source: DataSource) -> Securable:
        rule = RULES.get(source.type)
        return Securable(TABLE, self._table_name(source), rule.keyword if rule else TABLE)

    def data_policies(self, source: DataSource, applying: tuple[Applying, ...]) -> str | Native:
        if self.policy_schema is None:
            return not_native(applying, "Snowflake") + " (the target names no policySchema)"
        from pdp.grants import tablepolicy  # imports rls, which takes this module's quoting

        return tablepolicy.native(source, applying)

    def rule(self, kind: ObjectType) -> Rule | None:
        return RULES.get(kind)

    def parents(self, securable: Securable) -> tuple[tuple[Securable, str], ...]:
        if securable.container:
            return ()
        database, schema = securable.name[0], securable.name[:2]
        return (
            (Securable(DATABASE, (database,), DATABASE), "USAGE"),
            (Securable(SCHEMA, schema, SCHEMA), "USAGE"),
        )

    def principal(self, user: str) -> Principal:
        # Upper case so the role also works unquoted (`USE ROLE pdp_user_alice`).
        return f"{self.prefix}_USER_{user}".upper()


class SnowflakeSql:
    """Statement text. Every identifier is quoted from its stored form."""

    def create_role(self, role: Principal) -> str:
        return f"CREATE ROLE IF NOT EXISTS {quote(role)}"

    def grant(self, privileges: Iterable[str], securable: Securable, role: Principal) -> str:
        return f"GRANT {self._on(privileges, securable)} TO ROLE {quote(role)}"

    def revoke(self, privileges: Iterable[str], securable: Securable, role: Principal) -> str:
        return f"REVOKE {self._on(privileges, securable)} FROM ROLE {quote(role)}"

    def grant_role(self, role: Principal, member: Member) -> str:
        return f"GRANT ROLE {quote(role)} TO {member[0]} {quote(member[1])}"

    def revoke_role(self, role: Principal, member: Member) -> str:
        return f"REVOKE ROLE {quote(role)} FROM {member[0]} {quote(member[1])}"

    def where(self, securable: Securable) -> str:
        return ""

    def label(self, securable: Securable) -> str:
        return f"{securable.keyword} {qualified(securable.name)}"

    @staticmethod
    def _on(privileges: Iterable[str], securable: Securable) -> str:
        names = ", ".join(ordered(privileges, ORDER))
        return f"{names} ON {securable.keyword} {qualified(securable.name)}"


def read_current(session: SqlSession, dialect: SnowflakeDialect) -> Current:
    """Managed roles, their managed privileges, and who holds them. Roles are found by prefix,
    so the role of a user who left the directory is still seen and emptied."""
    head = f"{dialect.prefix}_USER_".upper()
    roles = frozenset(
        name
        for record in session.execute(f"SHOW ROLES LIKE '{head}%'").records()
        if (name := str(record["name"])).startswith(head)
    )
    grants: State = {}
    members: dict[Principal, frozenset[Member]] = {}
    for role in sorted(roles):
        held = _grants_to(session, role, dialect)
        if held:
            grants[role] = held
        holders = frozenset(
            (str(r["granted_to"]).upper(), str(r["grantee_name"]))
            for r in session.execute(f"SHOW GRANTS OF ROLE {quote(role)}").records()
            if str(r["granted_to"]).upper() in ("USER", "ROLE")
        )
        if holders:
            members[role] = holders
    return Current(grants, roles, members)


def _grants_to(
    session: SqlSession, role: Principal, dialect: SnowflakeDialect
) -> dict[Securable, Privileges]:
    held: dict[Securable, set[str]] = {}
    for record in session.execute(f"SHOW GRANTS TO ROLE {quote(role)}").records():
        securable = _securable(str(record["granted_on"]), str(record["name"]))
        privilege = str(record["privilege"]).upper()
        if securable is None or privilege not in dialect.managed(securable):
            continue  # OWNERSHIP, grants on warehouses, roles, functions ...: not ours
        held.setdefault(securable, set()).add(privilege)
    return {securable: frozenset(p) for securable, p in held.items()}


def _securable(granted_on: str, name: str) -> Securable | None:
    # Before bundle 2026_06 every table-like object is reported as TABLE; after it, as its own
    # kind with underscores (MATERIALIZED_VIEW). Both land in the TABLE family.
    kind = granted_on.upper().replace("_", " ")
    if kind == DATABASE:
        return Securable(DATABASE, split_name(name), DATABASE)
    if kind == SCHEMA:
        return Securable(SCHEMA, split_name(name), SCHEMA)
    if kind in _TABLE_KINDS:
        return Securable(TABLE, split_name(name), kind)
    return None
