"""An in-memory Snowflake grant ledger behind the SqlSession seam.

It accepts only the statement shapes grant sync may emit (a strict grammar: anything else is a
ProgrammingError, like a Snowflake parse error), keeps roles, users, objects and grants, and
answers SHOW ROLES / SHOW GRANTS TO ROLE / SHOW GRANTS OF ROLE with Snowflake's column layout.
`layout` picks how `granted_on` names table-like objects: "legacy" (always TABLE) or
"2026_06" (the specific kind, as bundle 2026_06 reports it)."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field

from snowflake.connector.errors import ProgrammingError

from pdp.grants.session import Result
from tests.grants.fakes.numbers import round_half_away

IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
QNAME = rf"{IDENT}(?:\.{IDENT}){{0,2}}"
KIND = (
    r"(?:DATABASE|SCHEMA|TABLE|VIEW|MATERIALIZED VIEW|EXTERNAL TABLE|EVENT TABLE|ICEBERG TABLE"
    r"|DYNAMIC TABLE)"
)
PRIVS = r"[A-Z]+(?:, [A-Z]+)*"
POLICY = r"(?:MASKING POLICY|ROW ACCESS POLICY)"
GRAMMAR = {
    "create_role": re.compile(rf"CREATE ROLE IF NOT EXISTS (?P<role>{IDENT})"),
    "grant": re.compile(
        rf"GRANT (?P<privs>{PRIVS}) ON (?P<kind>{KIND}) (?P<name>{QNAME}) TO ROLE (?P<role>{IDENT})"
    ),
    "revoke": re.compile(
        rf"REVOKE (?P<privs>{PRIVS}) ON (?P<kind>{KIND}) (?P<name>{QNAME}) "
        rf"FROM ROLE (?P<role>{IDENT})"
    ),
    "grant_role": re.compile(
        rf"GRANT ROLE (?P<role>{IDENT}) TO (?P<to>USER|ROLE) (?P<grantee>{IDENT})"
    ),
    "revoke_role": re.compile(
        rf"REVOKE ROLE (?P<role>{IDENT}) FROM (?P<to>USER|ROLE) (?P<grantee>{IDENT})"
    ),
    "show_roles": re.compile(r"SHOW ROLES LIKE '(?P<pattern>[^']*)'"),
    "show_to": re.compile(rf"SHOW GRANTS TO ROLE (?P<role>{IDENT})"),
    "show_of": re.compile(rf"SHOW GRANTS OF ROLE (?P<role>{IDENT})"),
    "create_policy": re.compile(
        rf"CREATE (?P<kind>{POLICY}) (?P<name>{QNAME}) AS (?P<signature>\(.*?\)) "
        r"RETURNS (?P<returns>[A-Z0-9_(), ]+?) -> (?P<body>.+)"
    ),
    "alter_body": re.compile(
        rf"ALTER (?P<kind>{POLICY}) (?P<name>{QNAME}) SET BODY -> (?P<body>.+)"
    ),
    "drop_policy": re.compile(rf"DROP (?P<kind>{POLICY}) (?P<name>{QNAME})"),
    "set_mask": re.compile(
        rf"ALTER TABLE (?P<table>{QNAME}) MODIFY COLUMN (?P<column>{IDENT}) "
        rf"SET MASKING POLICY (?P<name>{QNAME})(?P<force> FORCE)?"
    ),
    "unset_mask": re.compile(
        rf"ALTER TABLE (?P<table>{QNAME}) MODIFY COLUMN (?P<column>{IDENT}) UNSET MASKING POLICY"
    ),
    "add_rows": re.compile(
        rf"ALTER TABLE (?P<table>{QNAME}) (?:DROP ROW ACCESS POLICY (?P<old>{QNAME}), )?"
        rf"ADD ROW ACCESS POLICY (?P<name>{QNAME}) ON \((?P<columns>{IDENT}(?:, {IDENT})*)\)"
    ),
    "drop_rows": re.compile(
        rf"ALTER TABLE (?P<table>{QNAME}) DROP ROW ACCESS POLICY (?P<name>{QNAME})"
    ),
    "show_policies": re.compile(
        rf"SHOW (?P<what>MASKING POLICIES|ROW ACCESS POLICIES) IN SCHEMA (?P<schema>{QNAME})"
    ),
    "describe_policy": re.compile(rf"DESCRIBE (?P<kind>{POLICY}) (?P<name>{QNAME})"),
    "describe_table": re.compile(rf"DESCRIBE TABLE (?P<table>{QNAME})"),
    "references": re.compile(
        rf"SELECT \* FROM TABLE\((?P<db>{IDENT})\.INFORMATION_SCHEMA\.POLICY_REFERENCES\("
        r"(?:REF_ENTITY_NAME => '(?P<entity>(?:[^']|'')*)', REF_ENTITY_DOMAIN => 'table'"
        r"|POLICY_NAME => '(?P<policy>(?:[^']|'')*)')\)\)"
    ),
}
CHANGING = frozenset(
    {"create_role", "grant", "revoke", "grant_role", "revoke_role"}
    | {"create_policy", "alter_body", "drop_policy", "set_mask", "unset_mask"}
    | {"add_rows", "drop_rows"}
)

# What Snowflake accepts on each kind (subset relevant here; OWNERSHIP is never granted by SQL
# we emit, and granting it through GRANT <privs> is rejected like an unknown privilege).
VALID = {
    "DATABASE": {"USAGE", "MONITOR", "CREATE SCHEMA"},
    "SCHEMA": {"USAGE", "MONITOR", "CREATE TABLE"},
    "TABLE": {"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES"},
    "VIEW": {"SELECT", "REFERENCES"},
    "MATERIALIZED VIEW": {"SELECT", "REFERENCES"},
    "EXTERNAL TABLE": {"SELECT", "REFERENCES"},
    "EVENT TABLE": {"SELECT", "INSERT"},
    "ICEBERG TABLE": {"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES"},
    "DYNAMIC TABLE": {"SELECT", "OPERATE", "MONITOR"},
}
SHOW_GRANTS_TO = (
    "created_on",
    "privilege",
    "granted_on",
    "name",
    "granted_to",
    "grantee_name",
    "grant_option",
    "granted_by",
)
SHOW_GRANTS_OF = ("created_on", "role", "granted_to", "grantee_name", "granted_by")
SHOW_ROLES = ("created_on", "name", "is_default", "is_current", "is_inherited", "owner")
CREATED = "2025-01-01 00:00:00.000 -0800"
REFERENCES = (
    "POLICY_DB",
    "POLICY_SCHEMA",
    "POLICY_NAME",
    "POLICY_KIND",
    "REF_DATABASE_NAME",
    "REF_SCHEMA_NAME",
    "REF_ENTITY_NAME",
    "REF_ENTITY_DOMAIN",
    "REF_COLUMN_NAME",
    "REF_ARG_COLUMN_NAMES",
)


def parse(sql: str) -> tuple[str, re.Match[str]] | None:
    """Which statement shape `sql` is, under the strict grammar; None if it is none of them."""
    for statement, pattern in GRAMMAR.items():
        if match := pattern.fullmatch(sql):
            return statement, match
    return None


class Crash(BaseException):
    """The process dies mid-apply: not an Exception, so nothing in the product catches it."""


def ident(text: str) -> str:
    if text.startswith('"'):
        return text[1:-1].replace('""', '"')
    return text.upper()


def split(qname: str) -> tuple[str, ...]:
    return tuple(ident(p) for p in re.findall(IDENT, qname))


def show_name(name: tuple[str, ...]) -> str:
    """How SHOW GRANTS prints a name: parts quoted only where they are case-sensitive."""
    plain = re.compile(r"[A-Z_][A-Z0-9_$]*")
    return ".".join(p if plain.fullmatch(p) else '"' + p.replace('"', '""') + '"' for p in name)


@dataclass
class Ledger:
    owner: str = "SYNC_ADMIN"  # the role grant sync logs in with
    layout: str = "legacy"
    objects: dict[tuple[str, ...], str] = field(default_factory=dict)  # name -> kind
    roles: set[str] = field(default_factory=set)
    users: set[str] = field(default_factory=set)
    # (privilege, name, grantee role, granted_by)
    grants: set[tuple[str, tuple[str, ...], str, str]] = field(default_factory=set)
    holders: set[tuple[str, str, str]] = field(default_factory=set)  # (role, USER|ROLE, name)
    # table -> column -> type, as DESCRIBE TABLE reports it (tables added without: no columns)
    columns: dict[tuple[str, ...], dict[str, str]] = field(default_factory=dict)
    # masking and row access policies: name -> (kind, signature, returns, body)
    policies: dict[tuple[str, ...], tuple[str, str, str, str]] = field(default_factory=dict)
    masked: dict[tuple[tuple[str, ...], str], tuple[str, ...]] = field(default_factory=dict)
    rows: dict[tuple[str, ...], tuple[tuple[str, ...], tuple[str, ...]]] = field(
        default_factory=dict
    )
    data: dict[tuple[str, ...], list[dict[str, object]]] = field(default_factory=dict)  # rows
    log: list[str] = field(default_factory=list)
    changing: int = 0
    crash_after: int | None = None
    fail: Callable[[str], Exception | None] = lambda sql: None

    # --- setup helpers for tests --------------------------------------------------------------

    def add_object(self, kind: str, *name: str, columns: dict[str, str] | None = None) -> None:
        for depth in (1, 2):
            if len(name) > depth:
                self.objects.setdefault(name[:depth], ("DATABASE", "SCHEMA")[depth - 1])
        self.objects[tuple(name)] = kind
        if columns is not None:
            self.columns[tuple(name)] = dict(columns)

    def held(self, role: str) -> set[tuple[str, tuple[str, ...]]]:
        return {(p, n) for p, n, r, _ in self.grants if r == role}

    def session_roles(self, user: str) -> set[str]:
        """The roles in a session of `user` with secondary roles ALL (hierarchy included)."""
        roles, frontier = set(), {("USER", user)}
        while frontier:
            kind, who = frontier.pop()
            for role, to, grantee in self.holders:
                if (to, grantee) == (kind, who) and role not in roles:
                    roles.add(role)
                    frontier.add(("ROLE", role))
        return roles

    def can(self, user: str, privilege: str, *name: str) -> bool:
        """Would `user`, with secondary roles ALL, hold `privilege` on table `name`?"""
        roles = self.session_roles(user)

        def has(p: str, n: tuple[str, ...]) -> bool:
            return any((p, n) in self.held(r) for r in roles)

        return (
            has(privilege, tuple(name))
            and has("USAGE", tuple(name[:1]))
            and has("USAGE", tuple(name[:2]))
        )

    def select(self, user: str, *name: str) -> list[dict[str, object]]:
        """`SELECT * FROM <name>` as `user` reads it: the table's row access policy and
        masking policies evaluated per row (their bodies run in SQLite, with Snowflake's
        IS_ROLE_IN_SESSION, SHA2, CONCAT and ROUND, half away from zero in decimal), after the
        same privilege check as `can`."""
        table = tuple(name)
        if not self.can(user, "SELECT", *name):
            raise ProgrammingError(msg="002003 (02000): does not exist or not authorized.")
        roles = self.session_roles(user)
        db = sqlite3.connect(":memory:")
        db.create_function("IS_ROLE_IN_SESSION", 1, lambda role: role in roles)
        db.create_function(
            "SHA2",
            2,
            lambda v, _bits: None if v is None else hashlib.sha256(v.encode()).hexdigest(),
        )
        db.create_function(
            "CONCAT", -1, lambda *a: None if None in a else "".join(str(x) for x in a)
        )
        db.create_function("ROUND", 2, round_half_away)

        def evaluate(body: str, values: dict[str, object]) -> object:
            names = ", ".join(f"? AS {n}" for n in values) or "NULL AS nothing"
            sql = f"SELECT ({body}) FROM (SELECT {names})"
            return db.execute(sql, list(values.values())).fetchone()[0]

        shown = []
        for row in self.data.get(table, []):
            if table in self.rows:
                key, columns = self.rows[table]
                args = _arguments(self.policies[key][1])
                values = dict(zip(args, (row[c] for c in columns), strict=True))
                if not evaluate(self.policies[key][3], values):
                    continue
            out = dict(row)
            for (where, column), key in self.masked.items():
                if where == table:
                    out[column] = evaluate(self.policies[key][3], {"val": row[column]})
            shown.append(out)
        db.close()
        return shown

    # --- the SqlSession seam ------------------------------------------------------------------

    def execute(self, sql: str) -> Result:
        found = parse(sql)
        if found is None:
            raise ProgrammingError(msg=f"001003 (42000): syntax error in {sql!r}", errno=1003)
        statement, match = found
        if statement in CHANGING:
            if self.crash_after is not None and self.changing >= self.crash_after:
                raise Crash(sql)
            if (injected := self.fail(sql)) is not None:
                raise injected
            self.changing += 1
            self.log.append(sql)
        return getattr(self, "_" + statement)(**match.groupdict())

    def close(self) -> None:
        return None

    # --- statements ---------------------------------------------------------------------------

    def _create_role(self, role: str) -> Result:
        self.roles.add(ident(role))
        return _status("Statement executed successfully.")

    def _grant(self, privs: str, kind: str, name: str, role: str) -> Result:
        target, grantee = self._object(kind, name), self._role(role)
        for privilege in self._privileges(privs, kind):
            self.grants.add((privilege, target, grantee, self.owner))
        return _status("Statement executed successfully.")

    def _revoke(self, privs: str, kind: str, name: str, role: str) -> Result:
        target, grantee = self._object(kind, name), self._role(role)
        for privilege in self._privileges(privs, kind):
            self.grants = {g for g in self.grants if g[:3] != (privilege, target, grantee)}
        return _status("Statement executed successfully.")

    def _grant_role(self, role: str, to: str, grantee: str) -> Result:
        self.holders.add((self._role(role), to, self._grantee(to, grantee)))
        return _status("Statement executed successfully.")

    def _revoke_role(self, role: str, to: str, grantee: str) -> Result:
        self.holders.discard((self._role(role), to, self._grantee(to, grantee)))
        return _status("Statement executed successfully.")

    def _show_roles(self, pattern: str) -> Result:
        regex = re.compile(
            "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern),
            re.IGNORECASE,
        )
        rows = [
            (CREATED, r, "N", "N", "N", self.owner)
            for r in sorted(self.roles)
            if regex.fullmatch(r)
        ]
        return Result(SHOW_ROLES, rows)

    def _show_to(self, role: str) -> Result:
        grantee = self._role(role)
        rows = []
        for privilege, name, to, by in sorted(self.grants):
            if to == grantee:
                kind = self.objects.get(name, "TABLE")
                if self.layout == "legacy" and kind not in ("DATABASE", "SCHEMA"):
                    kind = "TABLE"
                granted_on = kind.replace(" ", "_")
                rows.append(
                    (CREATED, privilege, granted_on, show_name(name), "ROLE", to, "false", by)
                )
        return Result(SHOW_GRANTS_TO, rows)

    def _show_of(self, role: str) -> Result:
        wanted = self._role(role)
        rows = [
            (CREATED, r, to, who, self.owner) for r, to, who in sorted(self.holders) if r == wanted
        ]
        return Result(SHOW_GRANTS_OF, rows)

    def _create_policy(
        self, kind: str, name: str, signature: str, returns: str, body: str
    ) -> Result:
        key = self._in_schema(name)
        if key in self.policies:
            raise ProgrammingError(msg=f"002002 (42710): '{name}' already exists.", errno=2002)
        if kind == "MASKING POLICY" and not re.fullmatch(
            rf"\(val {re.escape(returns)}\)", signature
        ):
            raise ProgrammingError(
                msg="002023 (22023): signature and return type differ", errno=2023
            )
        if kind == "ROW ACCESS POLICY" and returns != "BOOLEAN":
            raise ProgrammingError(msg="002023 (22023): must return BOOLEAN", errno=2023)
        self.policies[key] = (kind, signature, returns, body)
        return _status(f"{kind.title()} {key[2]} successfully created.")

    def _alter_body(self, kind: str, name: str, body: str) -> Result:
        key = self._policy(kind, name)
        held = self.policies[key]
        self.policies[key] = (*held[:3], body)
        return _status("Statement executed successfully.")

    def _drop_policy(self, kind: str, name: str) -> Result:
        key = self._policy(kind, name)
        if key in self.masked.values() or any(p == key for p, _ in self.rows.values()):
            raise ProgrammingError(
                msg=f"003250 (0A000): policy {key[2]} is attached and cannot be dropped",
                errno=3250,
            )
        del self.policies[key]
        return _status(f"{key[2]} successfully dropped.")

    def _set_mask(self, table: str, column: str, name: str, force: str | None) -> Result:
        where, col = self._column(table, column)
        key = self._policy("MASKING POLICY", name)
        if self.policies[key][2] != self.columns[where][col]:
            raise ProgrammingError(msg="002023 (22023): policy and column types differ", errno=2023)
        if (where, col) in self.masked and not force:
            raise ProgrammingError(
                msg=f"003304 (0A000): column {col} already has a masking policy", errno=3304
            )
        self.masked[(where, col)] = key
        return _status("Statement executed successfully.")

    def _unset_mask(self, table: str, column: str) -> Result:
        self.masked.pop(self._column(table, column), None)
        return _status("Statement executed successfully.")

    def _add_rows(self, table: str, old: str | None, name: str, columns: str) -> Result:
        where = self._object("TABLE", table)
        held = self.rows.get(where)
        if old is not None and (held is None or held[0] != self._in_schema(old)):
            raise ProgrammingError(msg=f"003305 (0A000): {old} is not on {table}", errno=3305)
        if old is None and held is not None:
            raise ProgrammingError(
                msg=f"003306 (0A000): {table} already has a row access policy", errno=3306
            )
        key = self._policy("ROW ACCESS POLICY", name)
        cols = tuple(self._column(table, c)[1] for c in re.findall(IDENT, columns))
        arity = len(_arguments(self.policies[key][1]))
        if len(cols) != arity:
            raise ProgrammingError(msg="002023 (22023): wrong number of columns", errno=2023)
        self.rows[where] = (key, cols)
        return _status("Statement executed successfully.")

    def _drop_rows(self, table: str, name: str) -> Result:
        where = self._object("TABLE", table)
        held = self.rows.get(where)
        if held is None or held[0] != self._in_schema(name):
            raise ProgrammingError(msg=f"003305 (0A000): {name} is not on {table}", errno=3305)
        del self.rows[where]
        return _status("Statement executed successfully.")

    def _show_policies(self, what: str, schema: str) -> Result:
        kind = "MASKING POLICY" if what == "MASKING POLICIES" else "ROW ACCESS POLICY"
        at = self._object("SCHEMA", schema)
        found = [
            (CREATED, k[2], k[0], k[1], kind.replace(" ", "_"), self.owner, "")
            for k, held in sorted(self.policies.items())
            if k[:2] == at and held[0] == kind
        ]
        columns = ("created_on", "name", "database_name", "schema_name", "kind", "owner")
        return Result((*columns, "comment"), found)

    def _describe_policy(self, kind: str, name: str) -> Result:
        key = self._policy(kind, name)
        _, signature, returns, body = self.policies[key]
        return Result(
            ("name", "signature", "return_type", "body"), [(key[2], signature, returns, body)]
        )

    def _describe_table(self, table: str) -> Result:
        where = self._object("TABLE", table)
        rows = [(n, t, "COLUMN", "Y") for n, t in self.columns.get(where, {}).items()]
        return Result(("name", "type", "kind", "null?"), rows)

    def _references(self, db: str, entity: str | None, policy: str | None) -> Result:
        if entity is not None:
            where = self._object("TABLE", entity.replace("''", "'"))
            tables = {where}
            wanted = None
        else:
            tables = set(self.objects)
            wanted = self._in_schema((policy or "").replace("''", "'"))
        rows = []
        for (table, column), key in sorted(self.masked.items()):
            if table in tables and wanted in (None, key):
                rows.append((*key, "MASKING_POLICY", *table, "TABLE", column, None))
        for table, (key, cols) in sorted(self.rows.items()):
            if table in tables and wanted in (None, key):
                args = json.dumps(list(cols))
                rows.append((*key, "ROW_ACCESS_POLICY", *table, "TABLE", None, args))
        return Result(REFERENCES, rows)

    def _in_schema(self, name: str) -> tuple[str, ...]:
        parts = split(name)
        if len(parts) != 3 or self.objects.get(parts[:2]) != "SCHEMA":
            raise ProgrammingError(
                msg=f"002003 (02000): SQL compilation error: Schema of '{name}' "
                "does not exist or not authorized.",
                errno=2003,
            )
        return parts

    def _policy(self, kind: str, name: str) -> tuple[str, ...]:
        key = self._in_schema(name)
        if self.policies.get(key, ("",))[0] != kind:
            raise ProgrammingError(
                msg=f"002003 (02000): {kind.title()} '{name}' does not exist or not authorized.",
                errno=2003,
            )
        return key

    def _column(self, table: str, column: str) -> tuple[tuple[str, ...], str]:
        where = self._object("TABLE", table)
        col = ident(column)
        if col not in self.columns.get(where, {}):
            raise ProgrammingError(msg=f"000904 (42000): invalid identifier '{col}'", errno=904)
        return where, col

    # --- checks ---------------------------------------------------------------------------------

    def _object(self, kind: str, name: str) -> tuple[str, ...]:
        parts = split(name)
        if self.objects.get(parts) != kind:
            label = kind.title()
            raise ProgrammingError(
                msg=f"002003 (02000): SQL compilation error: {label} '{name}' "
                "does not exist or not authorized.",
                errno=2003,
            )
        return parts

    def _role(self, text: str) -> str:
        role = ident(text)
        if role not in self.roles:
            raise ProgrammingError(
                msg=f"002003 (02000): Role '{role}' does not exist or not authorized.", errno=2003
            )
        return role

    def _grantee(self, to: str, text: str) -> str:
        name = ident(text)
        known = self.users if to == "USER" else self.roles
        if name not in known:
            raise ProgrammingError(
                msg=f"002003 (02000): {to.title()} '{name}' does not exist or not authorized.",
                errno=2003,
            )
        return name

    @staticmethod
    def _privileges(text: str, kind: str) -> list[str]:
        privileges = text.split(", ")
        for privilege in privileges:
            if privilege not in VALID[kind]:
                raise ProgrammingError(
                    msg=f"003111 (0A000): Invalid privilege {privilege} on {kind}", errno=3111
                )
        if len(set(privileges)) != len(privileges):
            raise ProgrammingError(msg="001003 (42000): duplicate privilege", errno=1003)
        return privileges


def _arguments(signature: str) -> list[str]:
    """The argument names of a policy signature: `(region VARCHAR(10), amount NUMBER(10,2))`."""
    return re.findall(r"(\w+) [A-Z_]+(?:\(\d+(?:,\d+)?\))?", signature)


def _status(text: str) -> Result:
    return Result(("status",), [(text,)])
