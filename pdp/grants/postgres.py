"""PostgreSQL: the same role-per-user model as Snowflake, verifiable on a local server.

PostgreSQL names a table without its database, so each statement carries the database it must
run in (`Step.where`); roles are cluster-wide and run in the maintenance database."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from pdp.grants import pgview, rls
from pdp.grants.datapolicies import Applying, Native, describe
from pdp.grants.dialect import RoleDialect
from pdp.grants.model import (
    Current,
    Desired,
    Member,
    Principal,
    Rule,
    Securable,
    State,
)
from pdp.grants.roles import ordered
from pdp.grants.session import SqlSession
from pdp.grants.snowflake import quote
from pdp.policy import DataSource, ObjectType
from pdp.policy.model import MaskingPolicy, RowFilterPolicy

SCHEMA, TABLE, COLUMN = "SCHEMA", "TABLE", "COLUMN"
ORDER = ("USAGE", "SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE")
_SELECT = frozenset({"SELECT"})
_WRITE = frozenset({"INSERT", "UPDATE", "DELETE", "TRUNCATE"})

# Same policy as Snowflake: DML only on base tables, everything else read-only. `ON TABLE`
# covers every relation kind in PostgreSQL's GRANT.
RULES: dict[ObjectType, Rule] = {
    ObjectType.TABLE: Rule(TABLE, _SELECT, _WRITE),
    ObjectType.VIEW: Rule(TABLE, _SELECT),
    ObjectType.MATERIALIZED_VIEW: Rule(TABLE, _SELECT),
    ObjectType.FOREIGN_TABLE: Rule(TABLE, _SELECT),
}
_MANAGED = {SCHEMA: frozenset({"USAGE"}), TABLE: _SELECT | _WRITE, COLUMN: _SELECT}


@dataclass(frozen=True)
class PostgresDialect(RoleDialect):
    prefix: str = "pdp"
    # the schema (in each governed database) holding the governed views of masked tables;
    # None: no views, masked columns are only refused
    policy_schema: str | None = None
    _fold = str.lower
    _managed = _MANAGED

    def securable(self, source: DataSource) -> Securable:
        return Securable(TABLE, self._table_name(source), TABLE)

    def data_policies(self, source: DataSource, applying: tuple[Applying, ...]) -> str | Native:
        """Row filters on base tables become row-level security; filters on other kinds of
        relation (RLS applies to tables only) are withheld. A mask leaves its columns out of
        the user's SELECT (`column_grants`): refused natively, never shown unmasked; with a
        `policy_schema`, a governed view shows them masked (`pgview`)."""
        problems = []
        for one in applying:
            if not isinstance(one.policy, RowFilterPolicy):
                continue
            if source.type is not ObjectType.TABLE:
                problems.append(
                    f"{describe(one.policy)} cannot be enforced natively on a PostgreSQL "
                    f"{source.type} (row-level security applies to tables only)"
                )
            elif (problem := rls.native_filter(one)) is not None:
                problems.append(problem)
        if problems:
            return "; ".join(problems)
        filtered = any(isinstance(one.policy, RowFilterPolicy) for one in applying)
        return Native(frozenset({"TRUNCATE"}) if filtered else frozenset())

    def rule(self, kind: ObjectType) -> Rule | None:
        return RULES.get(kind)

    def parents(self, securable: Securable) -> tuple[tuple[Securable, str], ...]:
        if securable.container:
            return ()
        return ((Securable(SCHEMA, securable.name[:2], SCHEMA), "USAGE"),)

    def principal(self, user: str) -> Principal:
        return f"{self.prefix}_user_{user}".lower()


class PostgresSql:
    def create_role(self, role: Principal) -> str:
        return f"CREATE ROLE {quote(role)} NOLOGIN"

    def grant(self, privileges: Iterable[str], securable: Securable, role: Principal) -> str:
        return f"GRANT {self._on(privileges, securable)} TO {quote(role)}"

    def revoke(self, privileges: Iterable[str], securable: Securable, role: Principal) -> str:
        return f"REVOKE {self._on(privileges, securable)} FROM {quote(role)}"

    def grant_role(self, role: Principal, member: Member) -> str:
        return f"GRANT {quote(role)} TO {quote(member[1])}"

    def revoke_role(self, role: Principal, member: Member) -> str:
        return f"REVOKE {quote(role)} FROM {quote(member[1])}"

    def where(self, securable: Securable) -> str:
        return securable.name[0]

    def label(self, securable: Securable) -> str:
        """A column is named by its table: its grant waits on the table's row security."""
        if securable.family == COLUMN:
            return rls.label(Securable(TABLE, securable.name[:3], TABLE))
        return rls.label(securable)

    @staticmethod
    def _on(privileges: Iterable[str], securable: Securable) -> str:
        names = ", ".join(ordered(privileges, ORDER))
        if securable.family == COLUMN:  # (database, schema, table, column)
            names = f"{names} ({quote(securable.name[3])})"
        local = ".".join(quote(p) for p in securable.name[1:3])  # no database part
        return f"{names} ON {securable.keyword} {local}"


def column(table: Securable, name: str) -> Securable:
    """One column of a table, for a column-level SELECT."""
    return Securable(COLUMN, (*table.name, name), TABLE)


def masked_columns(applying: tuple[Applying, ...]) -> tuple[frozenset[str], tuple[str, ...]]:
    """The columns (case-folded, as Trino compares them) the masks of `applying` cover, and
    how the plan names those masks."""
    masks = [(a.policy, a.tagged) for a in applying if isinstance(a.policy, MaskingPolicy)]
    covered = frozenset(n.lower() for p, tagged in masks for n in (*p.columns, *tagged))
    return covered, tuple(describe(p) for p, _ in masks)


def column_grants(
    desired: Desired,
    columns: Mapping[Securable, Mapping[str, str]],
    views: Mapping[Securable, Securable] | None = None,
) -> Desired:
    """Masks on PostgreSQL: a user a mask applies to gets SELECT on each column of the table
    the mask does not cover instead of SELECT on the table (which covers every column, today's
    and tomorrow's), so the masked columns are refused: never more than Trino shows. A column
    added later is not granted (a column-level grant names its column): the next sync grants
    it if no mask covers it. `columns` are the table's columns as PostgreSQL has them; a
    table it lacks gets no column at all. Writes stay: a WHERE or RETURNING naming a masked
    column needs SELECT on it. `views`: the governed view of a masked table (`pgview`), which
    the plan names beside the columns left out."""
    grants = {principal: dict(held) for principal, held in desired.grants.items()}
    notes = list(desired.columns)
    for table in sorted(desired.enforced, key=lambda t: t.name):
        for principal, applying in sorted(desired.enforced[table].items()):
            covered, masks = masked_columns(applying)
            held = grants.get(principal, {})
            if not masks or "SELECT" not in held.get(table, frozenset()):
                continue
            rest = held[table] - {"SELECT"}
            if rest:
                held[table] = rest
            else:
                del held[table]
            present = tuple(columns.get(table, {}))
            left_out = [c for c in present if c.lower() in covered]
            for name in present:
                if name.lower() not in covered:
                    held[column(table, name)] = _SELECT
            if not present:
                out = "no column granted (PostgreSQL has no such relation)"
            else:
                out = f"{', '.join(left_out)} left out" if left_out else "no masked column there"
            view = (views or {}).get(table)
            shown = f"; shown masked in {pgview.label(view)}" if view is not None else ""
            notes.append(f"{principal} on {rls.label(table)}: {out} ({'; '.join(masks)}){shown}")
    return replace(desired, grants=grants, columns=tuple(notes))


def after_table_revokes(current: State, desired: Desired) -> State:
    """`current` as it stands once the planned table-level SELECT revokes ran: PostgreSQL's
    REVOKE SELECT ON TABLE takes the column-level SELECTs of that table with it, so those must
    be granted again (the diff then sees them missing)."""
    result: State = {}
    for principal, held in current.items():
        want = desired.grants.get(principal, {})
        gone = {
            t.name
            for t, privileges in held.items()
            if t.family == TABLE and "SELECT" in privileges and "SELECT" not in want.get(t, ())
        }
        result[principal] = (
            {s: p for s, p in held.items() if not (s.family == COLUMN and s.name[:3] in gone)}
            if gone
            else held
        )
    return result


def _role_filter(prefix: str) -> str:
    head = f"{prefix}_user_".lower()  # validated identifier: safe inside a literal
    return f"left(r.rolname, {len(head)}) = '{head}'"


def read_roles(session: SqlSession, dialect: PostgresDialect) -> Current:
    """Managed roles and who holds them (cluster-wide); grants come from `read_database`."""
    where = _role_filter(dialect.prefix)
    roles = frozenset(
        str(row[0])
        for row in session.execute(f"SELECT r.rolname FROM pg_roles r WHERE {where}").rows
    )
    members: dict[Principal, set[Member]] = {}
    for role, member in session.execute(
        "SELECT r.rolname, m.rolname FROM pg_auth_members a "
        "JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles m ON m.oid = a.member "
        f"WHERE {where}"
    ).rows:
        members.setdefault(str(role), set()).add(("USER", str(member)))
    return Current({}, roles, {r: frozenset(m) for r, m in members.items()})


def role_names(session: SqlSession) -> frozenset[str]:
    """Every role of the cluster: the login roles managed roles are granted to must be here."""
    return frozenset(str(row[0]) for row in session.execute("SELECT rolname FROM pg_roles").rows)


def read_database(session: SqlSession, database: str, dialect: PostgresDialect) -> State:
    where = _role_filter(dialect.prefix)
    held: dict[Principal, dict[Securable, set[str]]] = {}
    relations = session.execute(
        "SELECT r.rolname, n.nspname, c.relname, a.privilege_type FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "CROSS JOIN LATERAL aclexplode(c.relacl) a JOIN pg_roles r ON r.oid = a.grantee "
        f"WHERE {where}"
    )
    schemas = session.execute(
        "SELECT r.rolname, n.nspname, NULL, a.privilege_type FROM pg_namespace n "
        "CROSS JOIN LATERAL aclexplode(n.nspacl) a JOIN pg_roles r ON r.oid = a.grantee "
        f"WHERE {where}"
    )
    # column-level grants (pg_attribute.attacl): how masked users read the other columns
    columns = session.execute(
        "SELECT r.rolname, n.nspname, c.relname, t.attname, a.privilege_type FROM pg_attribute t "
        "JOIN pg_class c ON c.oid = t.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "CROSS JOIN LATERAL aclexplode(t.attacl) a JOIN pg_roles r ON r.oid = a.grantee "
        f"WHERE t.attnum > 0 AND NOT t.attisdropped AND {where}"
    )
    for role, schema, table, attribute, privilege in [
        *((*r[:3], None, r[3]) for r in relations.rows),
        *((*r[:3], None, r[3]) for r in schemas.rows),
        *columns.rows,
    ]:
        if table is None:
            securable = Securable(SCHEMA, (database, str(schema)), SCHEMA)
        elif attribute is None:
            securable = Securable(TABLE, (database, str(schema), str(table)), TABLE)
        else:
            name = (database, str(schema), str(table), str(attribute))
            securable = Securable(COLUMN, name, TABLE)
        if privilege in dialect.managed(securable):
            held.setdefault(str(role), {}).setdefault(securable, set()).add(str(privilege))
    return {r: {s: frozenset(p) for s, p in objs.items()} for r, objs in held.items()}


def table_columns(
    session: SqlSession, database: str, tables: Iterable[Securable]
) -> tuple[dict[Securable, dict[str, str]], set[Securable]]:
    """The columns of `tables` (of `database`) as PostgreSQL has them, in table order, with
    their types (as `format_type` spells them); and which of them are base tables."""
    wanted = {t.name[1:]: t for t in tables if t.name[0] == database}
    found: dict[Securable, dict[str, str]] = {}
    base: set[Securable] = set()
    for schema, table, name, type_, kind in session.execute(
        "SELECT n.nspname, c.relname, t.attname, format_type(t.atttypid, t.atttypmod), "
        "c.relkind FROM pg_attribute t "
        "JOIN pg_class c ON c.oid = t.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE t.attnum > 0 AND NOT t.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f') "
        "ORDER BY n.nspname, c.relname, t.attnum"
    ).rows:
        securable = wanted.get((str(schema), str(table)))
        if securable is not None:
            found.setdefault(securable, {})[str(name)] = str(type_)
            if kind in ("r", "p"):
                base.add(securable)
    return found, base
