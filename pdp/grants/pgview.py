"""PostgreSQL governed views: masked tables read with their masks applied. Pure, except `read`.

PostgreSQL has no column mask. A user a mask applies to gets SELECT on the table's other
columns only (`postgres.column_grants`); with the target's `policySchema`, grant sync also keeps
one view per masked table in that schema (in the table's database), `<schema>_<table>`, which
shows every column, the masked ones through the PostgreSQL rendering of Trino's mask
(`pgmask`). Every user holding READ on the table gets SELECT on its view.

The view is a `security_barrier` view owned by the sync login: it reads the table with the
owner's privileges, so it decides itself, per session, what the invoker sees:

* a masked column is raw for members of the managed roles of the users holding a grant on the
  table whom none of its masks applies to (exactly those reading it raw from the table, which
  grants them SELECT on every column), masked for everyone else;
* each row filter and rendered predicate (as `rls` lays them out) holds for members of the
  roles it applies to, as row security does on the table; everyone else passes it only as a
  member of an exempt holder's role, so a role the product does not manage (granted the view by
  hand) is filtered and masked.

Membership is `pg_has_role(<role>, 'USAGE')` (the privileges a session has, as row security
and grants count them), each test in a scalar subquery PostgreSQL evaluates once per query.
The barrier keeps a user's own functions in a WHERE from seeing rows before the view's filter.
A table with row security the product does not manage gets no view (its policies would be
bypassed): its masked users keep only their column grants, and the plan says so.

Each view is stamped (`COMMENT ON VIEW`) with its table, a digest of the SQL it was made from
and the md5 of PostgreSQL's own rendering of it with its options, so a view edited by hand is
found and put back. Views in the schema without our stamp are left alone, unless they hold a
name we need.

Order (fail closed): a view is created or changed before any grant, first as tight as the
table is now (raw only for who reads the table raw now, unfiltered only for who is unfiltered
now); when the final view is looser, it replaces that one after every revoke.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from pdp.core.datapolicy import quote_literal
from pdp.grants import pgmask, rls
from pdp.grants.datapolicies import Applying, describe
from pdp.grants.model import Phase, Principal, Securable, State, Step
from pdp.grants.session import SqlSession
from pdp.grants.snowflake import quote
from pdp.policy.model import MaskingPolicy

STAMP = "pdp grant sync"
_STAMPED = re.compile(
    rf"{STAMP} \((?P<prefix>[^)]*)\) for (?P<table>.*): (?P<digest>[0-9a-f]{{12}}) "
    r"(?P<rendering>[0-9a-f]{32})"
)
Column = tuple[str, str]  # name, type as format_type() spells it


# --- desired ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Wanted:
    view: Securable  # (database, policy schema, view name)
    table: Securable
    columns: tuple[Column, ...]
    select: str  # the view's query
    tight: str  # the query as tight as the table is now (== select when nothing loosens)
    readers: frozenset[Principal]  # who gets SELECT on it

    @property
    def digest(self) -> str:
        return _digest(self.select)


@dataclass
class Views:
    """The governed views one plan wants, the users each view is withheld from (with why) and
    notes on masked tables that get no view."""

    wanted: dict[Securable, Wanted] = field(default_factory=dict)  # by table
    withheld: dict[Securable, dict[Principal, str]] = field(default_factory=dict)  # by view
    notes: list[str] = field(default_factory=list)


def view_securable(schema: str, table: Securable, taken: set[str]) -> Securable:
    """`<schema>_<table>` in the policy schema; hashed when too long for an identifier or when
    another table of the database would get the same name (`taken`)."""
    name = f"{table.name[1]}_{table.name[2]}"
    if len(name.encode()) > rls.MAX_NAME or name in taken:
        name = f"{name[:40]}_{_digest(chr(0).join(table.name[1:]))}"
    taken.add(name)
    return Securable("TABLE", (table.name[0], schema, name), "TABLE")


def plan_views(
    prefix: str,
    schema: str,
    enforced: Mapping[Securable, Mapping[Principal, tuple[Applying, ...]]],
    grants: State,
    columns: Mapping[Securable, Mapping[str, str]],
    security: Mapping[Securable, rls.TableSecurity],
    tables: frozenset[Securable],
    now: State,
) -> Views:
    """The views of the masked tables. `grants`: desired, table-level SELECT still in place;
    `columns`: each table's columns and types; `security`: row security as read; `tables`: the
    base tables (views and other kinds get no governed view); `now`: the grants held now."""
    views = Views()
    taken: dict[str, set[str]] = {}
    readers, raw = _selecting(grants, enforced), _selecting(now, enforced)
    for table in sorted(enforced, key=lambda t: t.name):
        holders = readers.get(table, frozenset())
        applying = {p: a for p, a in enforced[table].items() if p in holders}
        masked = sorted(p for p, a in applying.items() if masks(a))
        if not masked or table not in columns:
            continue
        label = rls.label(table)
        if table not in tables:
            views.notes.append(
                f"no governed view for {label}: it is not a base table; masked columns stay refused"
            )
            continue
        filtered = any(rls.filters({p: a}) for p, a in applying.items())
        held = security.get(table)
        if held is not None and held.enabled and not filtered:
            views.notes.append(
                f"no governed view for {label}: it has row security the product does not "
                "manage, which a view would bypass; masked columns stay refused"
            )
            continue
        view = view_securable(schema, table, taken.setdefault(table.name[0], set()))
        raw_now = raw.get(table, frozenset())
        typed = tuple(columns[table].items())
        outputs, tight_outputs, blocked = _columns(typed, applying, holders, raw_now)
        where, tight_where = _where(prefix, applying, holders, held)
        source = ".".join(quote(p) for p in table.name[1:])
        select = f"SELECT {', '.join(outputs)} FROM {source}{where}"
        tight = f"SELECT {', '.join(tight_outputs)} FROM {source}{tight_where}"
        views.wanted[table] = Wanted(view, table, typed, select, tight, holders - blocked.keys())
        if blocked:
            views.withheld[view] = blocked
    return views


def _selecting(state: State, tables: Mapping[Securable, object]) -> dict[Securable, frozenset[str]]:
    """Who holds table-level SELECT on each of `tables`, in one pass over `state`."""
    found: dict[Securable, set[Principal]] = {}
    for principal, held in state.items():
        for securable, privileges in held.items():
            if "SELECT" in privileges and securable in tables:
                found.setdefault(securable, set()).add(principal)
    return {t: frozenset(p) for t, p in found.items()}


def masks(applying: tuple[Applying, ...]) -> list[Applying]:
    return [a for a in applying if isinstance(a.policy, MaskingPolicy)]


def _columns(
    typed: tuple[Column, ...],
    applying: Mapping[Principal, tuple[Applying, ...]],
    holders: frozenset[Principal],
    raw_now: frozenset[Principal],
) -> tuple[list[str], list[str], dict[Principal, str]]:
    """The view's select list (final and tight) and the users a column's mask has no exact
    rendering for: they get no SELECT on the view (their masked columns stay refused)."""
    final: list[str] = []
    tight: list[str] = []
    blocked: dict[Principal, str] = {}
    for name, type_ in typed:
        column = quote(name)
        covering: dict[str, MaskingPolicy] = {}
        users: set[Principal] = set()
        for principal, policies in applying.items():
            for one in masks(policies):
                assert isinstance(one.policy, MaskingPolicy)
                if name.lower() in one.policy.columns | one.tagged:
                    covering[one.policy.name] = one.policy
                    users.add(principal)
        if not covering:
            final.append(column)
            tight.append(column)
            continue
        expression = None
        if len(covering) > 1:
            why = f"masks {', '.join(map(repr, sorted(covering)))} all cover column {name}"
        else:
            (policy,) = covering.values()
            expression = pgmask.masked(policy, column, type_)
            why = f"{describe(policy)}: no exact rendering on PostgreSQL for {name} {type_}"
        if expression is None:
            expression = f"CAST(NULL AS {type_})"
            for principal in users:
                blocked.setdefault(principal, why)
        exempt = holders - users
        final.append(_case(exempt, column, expression))
        tight.append(_case(exempt & raw_now, column, expression))
    return final, tight, blocked


def _case(exempt: frozenset[Principal], column: str, masked: str) -> str:
    if not exempt:
        return f"{masked} AS {column}"
    return f"CASE WHEN {_member(exempt)} THEN {column} ELSE {masked} END AS {column}"


def _where(
    prefix: str,
    applying: Mapping[Principal, tuple[Applying, ...]],
    holders: frozenset[Principal],
    held: rls.TableSecurity | None,
) -> tuple[str, str]:
    """One condition per row filter and rendered predicate, as row security has one policy:
    the predicate holds, or the session is none of the roles it applies to and is an exempt
    holder's. The tight condition keeps filtering the roles row security filters with it now
    (`held`), until the grants and row security have caught up."""
    groups = rls.desired_policies(prefix, rls.filters(applying))
    final, tight = [], []
    for name in sorted(groups):
        group = groups[name]
        if not group.restrictive:
            continue
        exempt = holders - group.roles
        now = held.policies.get(name) if held is not None and held.enabled else None
        final.append(_passes(group, exempt))
        tight.append(_passes(group, exempt - now.roles if now is not None else exempt))
    if not final:
        return "", ""
    return " WHERE " + " AND ".join(final), " WHERE " + " AND ".join(tight)


def _passes(group: rls.RowPolicy, exempt: frozenset[Principal]) -> str:
    if not exempt:
        return group.using
    free = f"{_has(exempt)} AND NOT ({_has(group.roles)})"
    return f"({group.using} OR (SELECT {free}))"


def _member(roles: frozenset[Principal]) -> str:
    return f"(SELECT {_has(roles)})"


def _has(roles: frozenset[Principal]) -> str:
    return " OR ".join(f"pg_has_role({quote_literal(r)}, 'USAGE')" for r in sorted(roles))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


# --- current ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Held:
    columns: tuple[Column, ...]
    table: str  # the table its stamp names; "" when not stamped by this prefix
    digest: str  # of the SQL it was made from, per the stamp
    intact: bool  # PostgreSQL's rendering still matches the stamp


def read(session: SqlSession, database: str, schema: str, prefix: str) -> dict[str, Held] | None:
    """The views of the policy schema in `database` and their stamps; None when the schema
    does not exist there."""
    found = session.execute(
        f"SELECT 1 FROM pg_namespace WHERE nspname = {quote_literal(schema)}"
    ).rows
    if not found:
        return None
    held: dict[str, Held] = {}
    for name, comment, rendering, names, types in session.execute(
        "SELECT c.relname, obj_description(c.oid, 'pg_class'), " + _RENDERING + ", "
        "ARRAY(SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = c.oid "
        "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum), "
        "ARRAY(SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        "WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum) "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        f"WHERE n.nspname = {quote_literal(schema)} AND c.relkind = 'v'"
    ).rows:
        stamp = _STAMPED.fullmatch(str(comment or ""))
        ours = stamp is not None and stamp["prefix"] == prefix
        columns = tuple(zip((str(n) for n in names), (str(t) for t in types), strict=True))
        held[str(name)] = Held(
            columns,
            stamp["table"] if stamp and ours else "",
            stamp["digest"] if stamp and ours else "",
            bool(stamp and ours and stamp["rendering"] == rendering),
        )
    return held


# PostgreSQL's rendering of a view (query and options), `c` its pg_class row
_RENDERING = "md5(pg_get_viewdef(c.oid) || coalesce(array_to_string(c.reloptions, ','), ''))"


# --- plan -------------------------------------------------------------------------------------


def plan(
    prefix: str,
    schema: str,
    wanted: Mapping[Securable, Wanted],
    held: Mapping[str, Mapping[str, Held]],
) -> tuple[list[Step], set[Securable]]:
    """Steps bringing the views in line (`held`: by database, then view name), and the views
    dropped and created again in this run (their grants go with them, to be granted again)."""
    steps: list[Step] = []
    recreated: set[Securable] = set()
    names: dict[str, set[str]] = {}
    for want in sorted(wanted.values(), key=lambda w: w.view.name):
        database, _, name = want.view.name
        names.setdefault(database, set()).add(name)
        have = held.get(database, {}).get(name)
        if have is not None and have.intact and have.digest == want.digest:
            continue
        if have is None or not have.table or have.columns != want.columns:
            # new, or dropped and made again (a column changed, or not ours): nobody may read
            # it until the grants that follow
            if have is not None:
                recreated.add(want.view)
            text = _create(prefix, want, want.select, False, dropping=have is not None)
            steps.append(_step(Phase.TIGHTEN, want.view, text))
            continue
        if not (have.intact and have.digest == _digest(want.tight)):
            steps.append(_step(Phase.TIGHTEN, want.view, _create(prefix, want, want.tight, True)))
        if want.tight != want.select:
            steps.append(_step(Phase.LOOSEN, want.view, _create(prefix, want, want.select, True)))
    for database in sorted(held):
        for name, have in sorted(held[database].items()):
            if have.table and name not in names.get(database, set()):
                view = Securable("TABLE", (database, schema, name), "TABLE")
                steps.append(_step(Phase.LOOSEN, view, f"DROP VIEW {_on(view)}"))
    return steps, recreated


def _create(prefix: str, want: Wanted, select: str, replace: bool, dropping: bool = False) -> str:
    view = _on(want.view)
    head = "CREATE OR REPLACE VIEW" if replace else "CREATE VIEW"
    drop = f"DROP VIEW {view}; " if dropping else ""
    stamp = f"{STAMP} ({prefix}) for {'.'.join(quote(p) for p in want.table.name[1:])}: "
    stamp += _digest(select) + " "
    body = (
        f"BEGIN EXECUTE format('COMMENT ON VIEW %s IS %L', {quote_literal(view)}::regclass, "
        f"{quote_literal(stamp)} || (SELECT {_RENDERING} FROM pg_class c "
        f"WHERE c.oid = {quote_literal(view)}::regclass)); END"
    )
    return f"{drop}{head} {view} WITH (security_barrier) AS {select}; {rls.do_block(body)}"


def _on(view: Securable) -> str:
    return ".".join(quote(p) for p in view.name[1:])


def label(view: Securable) -> str:
    """How plans name a governed view: `VIEW "db"."schema"."view"`."""
    return "VIEW " + ".".join(quote(p) for p in view.name)


def _step(phase: Phase, view: Securable, text: str) -> Step:
    """Gated like the grants on the view (PostgreSQL grants it `ON TABLE`): a failed view
    step skips them."""
    return Step(phase, label(view), text, view.name[0], gate=rls.label(view))
