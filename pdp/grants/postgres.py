"""PostgreSQL: the same role-per-user model as Snowflake, verifiable on a local server.

PostgreSQL names a table without its database, so each statement carries the database it must
run in (`Step.where`); roles are cluster-wide and run in the maintenance database."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pdp.grants import rls
from pdp.grants.datapolicies import Applying, Native, describe
from pdp.grants.dialect import Naming, stored_name
from pdp.grants.model import Current, Member, Principal, Privileges, Rule, Securable, State
from pdp.grants.roles import ordered
from pdp.grants.session import SqlSession
from pdp.grants.snowflake import PREFIX, quote
from pdp.policy import DataSource, ObjectType
from pdp.policy.model import RowFilterPolicy

SCHEMA, TABLE = "SCHEMA", "TABLE"
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
_MANAGED = {SCHEMA: frozenset({"USAGE"}), TABLE: _SELECT | _WRITE}


@dataclass(frozen=True)
class PostgresDialect:
    prefix: str = "pdp"
    naming: Naming = field(default_factory=Naming)
    exact_parents: bool = True

    def __post_init__(self) -> None:
        if not PREFIX.fullmatch(self.prefix):
            raise ValueError(f"role prefix {self.prefix!r} must be a plain identifier")

    def _stored(self, name: str) -> str:
        return stored_name(name, self.naming.case, str.lower)

    def securable(self, source: DataSource) -> Securable:
        name = (
            self._stored(source.database),
            self._stored(source.schema),
            self._stored(source.name),
        )
        return Securable(TABLE, name, TABLE)

    def data_policies(self, source: DataSource, applying: tuple[Applying, ...]) -> str | Native:
        """Row filters on base tables become row-level security; masks, and filters on other
        kinds of relation (RLS applies to tables only), are withheld."""
        problems = []
        for one in applying:
            if not isinstance(one.policy, RowFilterPolicy):
                problems.append(f"{describe(one.policy)} cannot be enforced natively on PostgreSQL")
            elif source.type is not ObjectType.TABLE:
                problems.append(
                    f"{describe(one.policy)} cannot be enforced natively on a PostgreSQL "
                    f"{source.type} (row-level security applies to tables only)"
                )
            elif (problem := rls.native_filter(one)) is not None:
                problems.append(problem)
        return "; ".join(problems) if problems else Native(frozenset({"TRUNCATE"}))

    def rule(self, kind: ObjectType) -> Rule | None:
        return RULES.get(kind)

    def parents(self, securable: Securable) -> tuple[tuple[Securable, str], ...]:
        if securable.container:
            return ()
        return ((Securable(SCHEMA, securable.name[:2], SCHEMA), "USAGE"),)

    def managed(self, securable: Securable) -> Privileges:
        return _MANAGED.get(securable.family, frozenset())

    def principal(self, user: str) -> Principal:
        return f"{self.prefix}_user_{user}".lower()

    def member(self, user: str) -> Member:
        return ("USER", self.naming.users.get(user) or self._stored(user))


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
        return rls.label(securable)

    @staticmethod
    def _on(privileges: Iterable[str], securable: Securable) -> str:
        names = ", ".join(ordered(privileges, ORDER))
        local = ".".join(quote(p) for p in securable.name[1:])  # no database part in PostgreSQL
        return f"{names} ON {securable.keyword} {local}"


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
    for role, schema, table, privilege in [*relations.rows, *schemas.rows]:
        if table is None:
            securable = Securable(SCHEMA, (database, str(schema)), SCHEMA)
        else:
            securable = Securable(TABLE, (database, str(schema), str(table)), TABLE)
        if privilege in dialect.managed(securable):
            held.setdefault(str(role), {}).setdefault(securable, set()).add(str(privilege))
    return {r: {s: frozenset(p) for s, p in objs.items()} for r, objs in held.items()}
