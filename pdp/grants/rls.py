"""PostgreSQL row-level security for the row filters of the policy files. Pure, except `read`.

How Trino's rule maps onto PostgreSQL's: Trino ANDs every row filter that applies to the user. A
governed table gets `ENABLE ROW LEVEL SECURITY`, one PERMISSIVE policy `USING (true)` for PUBLIC
(without a permissive policy RLS returns no row at all: it keeps every role the product does not
manage, and every exempt user, reading as before), and one RESTRICTIVE policy per row filter and
rendered predicate, TO the managed roles of the users it applies to. PostgreSQL ANDs restrictive
policies with the permissive ones, so a user reads exactly the rows every filter of theirs lets
through. A table is governed while at least one managed role holding a grant on it is filtered.

Each policy is stamped (COMMENT ON POLICY) with the md5 of PostgreSQL's own rendering of its
expression, so an expression edited by hand is found on the next read and put back.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

from pdp.core.datapolicy import Placeholder, Template, quote_literal
from pdp.grants.datapolicies import Applying
from pdp.grants.model import Phase, Principal, Securable, Step
from pdp.grants.session import SqlSession
from pdp.grants.snowflake import quote
from pdp.policy.model import RowFilterPolicy

ALL_ROWS = "true"
MAX_NAME = 63  # PostgreSQL's identifier length (NAMEDATALEN - 1)


# --- which predicates PostgreSQL evaluates exactly as Trino ----------------------------------

_TOKEN = re.compile(
    r"\s+|(?P<string>'(?:[^']|'')*')|(?P<ident>\"(?:[^\"]|\"\")*\")"
    r"|(?P<number>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)|(?P<word>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op><>|!=|<=|>=|=|<|>|\(|\)|,)"
)
_KEYWORDS = frozenset({"and", "or", "not", "in", "is", "null", "true", "false"})
_CONNECTIVES = frozenset({"and", "or", "not", "in", "is"})  # operators spelt as words
_ORDERING = frozenset({"<", ">", "<=", ">="})


def untranslatable(template: Template) -> str | None:
    """None when PostgreSQL evaluates the predicate exactly as Trino does, else what is not.

    Accepted: column names (unquoted, or quoted in lower case), string and number literals,
    `@user` and `@attribute(x)` (rendered as string literals; not `@groups`: Trino adds the
    groups of its group provider, which grant sync does not see), `=`, `<>`, `!=`, `IN`,
    `IS [NOT] NULL`, `AND`, `OR`, `NOT`, parentheses, and `<`, `>`, `<=`, `>=` against a
    number literal.
    Functions, casts, `LIKE` (PostgreSQL's default escape character differs) and ordering
    between strings (PostgreSQL orders text by the database's collation, Trino by code point)
    are not: such a filter is withheld instead."""
    tokens: list[tuple[str, str]] = []
    for part in template:
        if isinstance(part, Placeholder):
            if part.kind == "groups":  # Trino adds its group provider's groups: unknown here
                return "@groups (Trino adds the groups of its group provider)"
            tokens.append(("string", "@" + part.kind))
            continue
        at = 0
        while at < len(part):
            match = _TOKEN.match(part, at)
            if match is None:
                return f"`{part[at:].strip()[:20]}`"
            at = match.end()
            if match.lastgroup is not None:
                tokens.append((match.lastgroup, match.group(0)))
    operand = True  # whether an operand may come next (else an operator, `)` or the end)
    for i, (kind, text) in enumerate(tokens):
        word = text.lower() if kind == "word" else ""
        following = tokens[i + 1] if i + 1 < len(tokens) else ("", "")
        if kind == "word" and following[1] == "(" and word not in _KEYWORDS:
            return f"the function {text}()"
        if kind == "ident" and text != text.lower():
            return f"the quoted name {text} (Trino ignores its case)"
        if text in _ORDERING:
            before = tokens[i - 1][0] if i else ""
            if "number" not in (before, following[0]):
                return f"`{text}` between non-numbers (PostgreSQL orders text by collation)"
        is_operand = kind in ("string", "ident", "number") or (
            kind == "word" and word not in _CONNECTIVES
        )
        if is_operand and not operand:  # `region LIKE`, `DATE '2020-01-01'`, `CASE WHEN`
            return f"`{text}`"
        operand = not is_operand and text != ")"
    return None


def native_filter(applying: Applying) -> str | None:
    """Why a row filter cannot be a PostgreSQL policy, or None when it can."""
    policy = applying.policy
    assert isinstance(policy, RowFilterPolicy)
    problem = untranslatable(policy.template)
    if problem is None:
        return None
    return f"row filter {policy.name!r} uses {problem}, which PostgreSQL does not evaluate as Trino"


# --- desired and current -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RowPolicy:
    name: str
    restrictive: bool
    roles: frozenset[str]  # "public" for PUBLIC
    using: str


@dataclass(frozen=True, slots=True)
class HeldPolicy:
    restrictive: bool
    roles: frozenset[str]
    shaped: bool  # FOR ALL, no WITH CHECK of its own
    intact: bool  # the expression still matches its stamp


@dataclass(frozen=True)
class TableSecurity:
    enabled: bool
    policies: Mapping[str, HeldPolicy]


def filters(
    enforced: Mapping[Principal, tuple[Applying, ...]],
) -> dict[Principal, tuple[Applying, ...]]:
    """The row filters among the data policies enforced on one table, by principal (masks
    are column privileges, not row security)."""
    found = {
        p: tuple(a for a in applying if isinstance(a.policy, RowFilterPolicy))
        for p, applying in enforced.items()
    }
    return {p: applying for p, applying in found.items() if applying}


def policy_name(prefix: str, applying: Applying) -> str:
    """`<prefix>_rls_<filter>_<hash>`: the hash of the filter name and the rendered predicate,
    so a changed predicate is a new policy, created before the old one is dropped."""
    digest = hashlib.sha256(f"{applying.policy.name}\0{applying.predicate}".encode()).hexdigest()
    head = f"{prefix}_rls_"
    slug = re.sub(r"[^a-z0-9_]+", "_", applying.policy.name.lower())
    room = MAX_NAME - len(head) - 11
    return f"{head}{slug[:room]}_{digest[:10]}"


def all_rows_name(prefix: str) -> str:
    return f"{prefix}_rls_rows"


def desired_policies(
    prefix: str, filtered: Mapping[Principal, tuple[Applying, ...]]
) -> dict[str, RowPolicy]:
    """The policies of one governed table, from the filters applying to each managed role."""
    roles: dict[str, set[str]] = {}
    using: dict[str, str] = {}
    for principal, applying in filtered.items():
        for one in applying:
            name = policy_name(prefix, one)
            roles.setdefault(name, set()).add(principal)
            using[name] = one.predicate or "false"
    found = {
        name: RowPolicy(name, True, frozenset(members), using[name])
        for name, members in roles.items()
    }
    found[all_rows_name(prefix)] = RowPolicy(
        all_rows_name(prefix), False, frozenset({"public"}), ALL_ROWS
    )
    return found


def read(session: SqlSession, database: str, prefix: str) -> dict[Securable, TableSecurity]:
    """Tables of `database` with row security on or any policy at all, and their policies."""
    tables = session.execute(
        "SELECT n.nspname, c.relname, c.relrowsecurity FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') "
        "AND (c.relrowsecurity OR EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid))"
    ).rows
    policies = session.execute(
        "SELECT n.nspname, c.relname, p.polname, NOT p.polpermissive, "
        "ARRAY(SELECT CASE WHEN r = 0 THEN 'public' ELSE pg_get_userbyid(r)::text END "
        "FROM unnest(p.polroles) r), p.polcmd = '*' AND p.polwithcheck IS NULL, "
        "md5(coalesce(pg_get_expr(p.polqual, p.polrelid), '')) "
        "= coalesce(obj_description(p.oid, 'pg_policy'), '') "
        "FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace"
    ).rows
    held: dict[Securable, dict[str, HeldPolicy]] = {}
    for schema, table, name, restrictive, roles, shaped, intact in policies:
        key = _table(database, str(schema), str(table))
        held.setdefault(key, {})[str(name)] = HeldPolicy(
            bool(restrictive), frozenset(str(r) for r in roles), bool(shaped), bool(intact)
        )
    return {
        (key := _table(database, str(schema), str(table))): TableSecurity(
            bool(enabled), held.get(key, {})
        )
        for schema, table, enabled in tables
    }


def unmanageable(session: SqlSession, database: str) -> set[Securable]:
    """Tables of `database` whose row security the sync login may not change: only the owner
    (or a member of the owning role) may enable it or create policies."""
    rows = session.execute(
        "SELECT n.nspname, c.relname FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p') AND NOT pg_has_role(c.relowner, 'USAGE')"
    ).rows
    return {_table(database, str(schema), str(table)) for schema, table in rows}


def _table(database: str, schema: str, table: str) -> Securable:
    return Securable("TABLE", (database, schema, table), "TABLE")


# --- plan ------------------------------------------------------------------------------------


def plan(
    prefix: str,
    governed: Mapping[Securable, dict[str, RowPolicy]],
    current: Mapping[Securable, TableSecurity],
) -> list[Step]:
    """Steps that bring row security in line, in a fail-closed order: what tightens (enable,
    create or widen restrictive policies, then the all-rows policy) runs before any grant;
    what loosens (drop a policy, narrow its roles, disable) after every revoke. A table whose
    tightening step fails closes its gate: the grants on it that follow are skipped."""
    ours = f"{prefix}_rls_"
    steps: list[Step] = []
    for table in sorted(governed.keys() | current.keys(), key=lambda s: s.name):
        want = governed.get(table)
        have = current.get(table, TableSecurity(False, {}))
        if want is None:
            steps += _release(table, have, ours)
            continue
        if not have.enabled:
            enable = f"ALTER TABLE {_on(table)} ENABLE ROW LEVEL SECURITY"
            steps.append(_step(Phase.TIGHTEN, table, enable))
        ordered = sorted(want.values(), key=lambda p: (not p.restrictive, p.name))
        for policy in ordered:
            held = have.policies.get(policy.name)
            if held is None:
                steps.append(_step(Phase.TIGHTEN, table, _create(table, policy)))
            elif held.restrictive != policy.restrictive or not held.shaped:
                text = f"DROP POLICY {quote(policy.name)} ON {_on(table)}; {_create(table, policy)}"
                steps.append(_step(Phase.TIGHTEN, table, text))
            else:
                if not held.intact:
                    text = (
                        f"ALTER POLICY {quote(policy.name)} ON {_on(table)} "
                        f"USING ({policy.using}); {_stamp(table, policy.name)}"
                    )
                    steps.append(_step(Phase.TIGHTEN, table, text))
                steps += _roles(table, policy, held.roles)
        for name in sorted(have.policies.keys() - want.keys()):  # by hand, or no longer wanted
            text = f"DROP POLICY {quote(name)} ON {_on(table)}"
            steps.append(_step(Phase.LOOSEN, table, text))
    return steps


def _roles(table: Securable, policy: RowPolicy, held: frozenset[str]) -> list[Step]:
    """Widening a restrictive policy's roles tightens (before grants); narrowing it loosens
    (after revokes): so both, in two steps, when roles come and go in one run."""
    if held == policy.roles:
        return []
    steps = []
    widened = held | policy.roles
    if policy.restrictive and widened != held:
        steps.append(_step(Phase.TIGHTEN, table, _alter_roles(table, policy.name, widened)))
        held = widened
    if held != policy.roles:
        phase = Phase.LOOSEN if policy.restrictive else Phase.TIGHTEN
        steps.append(_step(phase, table, _alter_roles(table, policy.name, policy.roles)))
    return steps


def _release(table: Securable, have: TableSecurity, ours: str) -> list[Step]:
    """A table no longer governed: drop the product's policies (found by name) and, when no
    other policy is left, disable row security. Tables never governed are not touched."""
    mine = sorted(n for n in have.policies if n.startswith(ours))
    if not mine:
        return []
    steps = [_step(Phase.LOOSEN, table, f"DROP POLICY {quote(n)} ON {_on(table)}") for n in mine]
    if have.enabled and len(mine) == len(have.policies):
        steps.append(
            _step(Phase.LOOSEN, table, f"ALTER TABLE {_on(table)} DISABLE ROW LEVEL SECURITY")
        )
    return steps


def _create(table: Securable, policy: RowPolicy) -> str:
    kind = "RESTRICTIVE" if policy.restrictive else "PERMISSIVE"
    roles = ", ".join("PUBLIC" if r == "public" else quote(r) for r in sorted(policy.roles))
    return (
        f"CREATE POLICY {quote(policy.name)} ON {_on(table)} AS {kind} FOR ALL TO {roles} "
        f"USING ({policy.using}); {_stamp(table, policy.name)}"
    )


def _alter_roles(table: Securable, name: str, roles: frozenset[str]) -> str:
    names = ", ".join("PUBLIC" if r == "public" else quote(r) for r in sorted(roles))
    return f"ALTER POLICY {quote(name)} ON {_on(table)} TO {names}"


def _stamp(table: Securable, name: str) -> str:
    """COMMENT ON POLICY with the md5 of PostgreSQL's rendering of the expression (computed by
    the server, hence the DO block), run in the same statement batch as the change."""
    relation, policy = quote_literal(_on(table)), quote_literal(name)
    body = (
        f"BEGIN EXECUTE format('COMMENT ON POLICY %I ON %s IS %L', {policy}, "
        f"{relation}::regclass, (SELECT md5(coalesce(pg_get_expr(p.polqual, p.polrelid), '')) "
        f"FROM pg_policy p WHERE p.polrelid = {relation}::regclass AND p.polname = {policy})); END"
    )
    return do_block(body)


def do_block(body: str) -> str:
    """`DO $pdp$<body>$pdp$`, with a dollar quote the body does not hold (a name holding the
    quote must not end the body early)."""
    tag, n = "$pdp$", 0
    while tag in body:
        n += 1
        tag = f"$pdp{n}$"
    return f"DO {tag}{body}{tag}"


def _on(table: Securable) -> str:
    return ".".join(quote(p) for p in table.name[1:])


def label(securable: Securable) -> str:
    """How plans name a PostgreSQL object: `TABLE "db"."schema"."table"`."""
    return f"{securable.keyword} {'.'.join(quote(p) for p in securable.name)}"


def _step(phase: Phase, table: Securable, text: str) -> Step:
    return Step(phase, label(table), text, table.name[0], gate=label(table))
