"""The native policies of one table, shared by Snowflake (`sfpolicy`) and Unity Catalog
(`ucpolicy`). Pure: no I/O.

Which masks and row filters a platform can enforce exactly (`native`, before the column types
are known), and, once the table's columns and types are read, the policies it gets (`plan_table`):
one mask per masked column, one row policy ANDing the table's filters as Trino ANDs them, each
exempting the users holding a grant on the table to whom it does not apply. Everyone else,
including principals the product does not manage, reads masked values and filtered rows. A user
whose policy cannot be expressed exactly on the table's actual columns is withheld.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from pdp.core.datapolicy import Placeholder
from pdp.core.model import MaskKind
from pdp.grants.datapolicies import Applying, Native, describe
from pdp.grants.model import Principal, Securable
from pdp.grants.rls import untranslatable
from pdp.policy import DataSource, ObjectType
from pdp.policy.model import MaskingPolicy, RowFilterPolicy

MASK, ROWS = "MASKING POLICY", "ROW ACCESS POLICY"
_WORD = re.compile(r"\"(?:[^\"]|\"\")*\"|'(?:[^']|'')*'|\b([A-Za-z_][A-Za-z0-9_]*)\b")
_SQL_WORDS = frozenset({"and", "or", "not", "in", "is", "null", "true", "false"})


# --- which policies a platform enforces exactly (before the column types are known) -----------

_KINDS = frozenset(
    {MaskKind.NULL, MaskKind.HASH, MaskKind.CONSTANT, MaskKind.KEEP_FIRST, MaskKind.KEEP_LAST}
)


def native(
    source: DataSource,
    applying: tuple[Applying, ...],
    platform: str = "Snowflake",
    tables: frozenset[ObjectType] = frozenset({ObjectType.TABLE}),
    escapes: bool = False,
) -> str | Native:
    """Native where each policy has an exact translation for some column type: masks of the
    kinds below, filters with one predicate for everyone that evaluates alike (`escapes`: the
    platform reads backslashes and doubled quotes in string literals its own way, so a filter
    holding either is withheld). The columns' types, read from the platform, settle the rest
    when the target plans (`plan_table`)."""
    problems = []
    for one in applying:
        policy = one.policy
        if source.type not in tables:
            problems.append(f"{describe(policy)}: a {source.type} takes no policy here")
        elif isinstance(policy, MaskingPolicy):
            if policy.kind not in _KINDS:
                problems.append(f"{describe(policy)}: {policy.kind} is not translated")
        elif (problem := _filter_problem(policy)) is not None:
            problems.append(f"{describe(policy)} uses {problem}")
        elif escapes and ("\\" in policy.where or "''" in policy.where):
            problems.append(f"{describe(policy)} uses a backslash or a doubled quote")
    if problems:
        return "; ".join(problems) + f", which {platform} cannot enforce exactly"
    # TRUNCATE ignores row access policies: a filtered user would empty rows they cannot see
    filtered = any(isinstance(one.policy, RowFilterPolicy) for one in applying)
    return Native(frozenset({"TRUNCATE"}) if filtered else frozenset())


def _filter_problem(policy: RowFilterPolicy) -> str | None:
    if any(isinstance(part, Placeholder) for part in policy.template):
        return "@user, @groups or @attribute (one predicate per user)"
    if '"' in policy.where:
        return "a quoted name"
    return untranslatable(policy.template)


# --- desired ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Wanted:
    kind: str  # MASK or ROWS
    name: str  # in the governed schema
    signature: str  # `(val VARCHAR(10))`
    returns: str
    body: str
    columns: tuple[str, ...]  # Snowflake column names it is set on (one for a mask)


@dataclass(frozen=True)
class Flavor:
    """What differs between platforms in the policies of one table."""

    exempt: Callable[[list[Principal]], str]  # SQL true for a session of these principals
    masked: Callable[[MaskingPolicy, str], str | None]  # masked `val` of a column type
    collated: Callable[[str], bool]  # a type whose string comparisons are not binary
    case: Callable[[str], str]  # how policy names are spelt


def mask_name(prefix: str, table: Securable, column: str, type_: str) -> str:
    return f"{prefix}_MASK_{_digest(table.name, column, type_)}"


def rows_name(prefix: str, table: Securable, args: Iterable[str]) -> str:
    return f"{prefix}_ROWS_{_digest(table.name, *args)}"


def _digest(name: tuple[str, ...], *more: str) -> str:
    return hashlib.sha256("\0".join((*name, *more)).encode()).hexdigest()[:12].upper()


def plan_table(
    prefix: str,
    table: Securable,
    enforced: Mapping[Principal, tuple[Applying, ...]],
    holders: frozenset[Principal],
    columns: Mapping[str, str] | None,
    flavor: Flavor,
) -> tuple[list[Wanted], dict[Principal, str]]:
    """The policies of one table, and the users whose grants must be withheld (with why) where
    the table's actual columns make a policy inexact. `columns`: name -> the platform's type, None
    when the table could not be described."""
    if columns is None:
        why = "its columns (and their types) could not be read"
        return [], dict.fromkeys(enforced, why)
    withheld: dict[Principal, str] = {}
    by_folded: dict[str, list[str]] = {}
    for name in columns:
        by_folded.setdefault(name.lower(), []).append(name)
    masks: dict[str, set[str]] = {}  # mask policy -> principals it applies to
    filters: dict[str, set[str]] = {}
    found: dict[str, Applying] = {}
    for principal, applying in enforced.items():
        for one in applying:
            found.setdefault(one.policy.name, one)
            into = masks if isinstance(one.policy, MaskingPolicy) else filters
            into.setdefault(one.policy.name, set()).add(principal)

    def exempt(policy: str, kind: dict[str, set[str]]) -> str:
        free = sorted(holders - kind[policy] - withheld.keys())
        return flavor.exempt(free) if free else ""

    mask_on: dict[str, list[str]] = {}  # Snowflake column -> mask policies covering it
    for name in sorted(masks):
        one = found[name]
        assert isinstance(one.policy, MaskingPolicy)
        for folded in one.policy.columns | one.tagged:
            for column in by_folded.get(folded, ()):
                mask_on.setdefault(column, []).append(name)
    # Policies with a problem of their own withhold every user they apply to; a user withheld
    # for another reason leaves the policy in place for everyone else.
    broken: set[str] = set()  # masked columns that cannot be expressed
    unusable: set[str] = set()  # row filters that cannot be expressed
    for column, names in mask_on.items():
        problem = ""
        if len(names) > 1:
            problem = f"masks {', '.join(map(repr, names))} all cover column {column}"
        elif flavor.masked(found[names[0]].policy, columns[column]) is None:  # type: ignore[arg-type]
            problem = f"mask {names[0]!r} on {column} {columns[column]} has no exact translation"
        if problem:
            broken.add(column)
        for name in names if problem else ():
            for principal in masks[name]:
                withheld.setdefault(principal, problem)
    args: dict[str, str] = {}
    for name in sorted(filters):
        for word in _columns(found[name].policy.where):  # type: ignore[union-attr]
            candidates = by_folded.get(word.lower(), [])
            problem = ""
            if len(candidates) != 1:
                problem = f"row filter {name!r}: no single column {word}"
            elif flavor.collated(columns[candidates[0]]):
                problem = f"row filter {name!r}: column {word} has a collation"
            else:
                args[word.lower()] = candidates[0]
            if problem:
                unusable.add(name)
            for principal in filters[name] if problem else ():
                withheld.setdefault(principal, problem)
    wanted: list[Wanted] = []
    for column in sorted(mask_on):
        names = mask_on[column]
        if column in broken:
            continue
        type_ = columns[column]
        masked = flavor.masked(found[names[0]].policy, type_)  # type: ignore[arg-type]
        free = exempt(names[0], masks)
        body = f"CASE WHEN {free} THEN val ELSE {masked} END" if free else str(masked)
        name = flavor.case(mask_name(prefix, table, column, type_))
        wanted.append(Wanted(MASK, name, f"(val {type_})", type_, body, (column,)))
    live = [n for n in sorted(filters) if n not in unusable]
    if live:
        used = sorted({w.lower() for n in live for w in _columns(found[n].policy.where)})  # type: ignore[union-attr]
        parts = []
        for name in live:
            free = exempt(name, filters)
            predicate = found[name].predicate or "FALSE"  # rendered in parentheses
            parts.append(f"({free} OR {predicate})" if free else predicate)
        signature = ", ".join(f"{w} {columns[args[w]]}" for w in used)
        name = flavor.case(rows_name(prefix, table, [f"{w} {columns[args[w]]}" for w in used]))
        cols = tuple(args[w] for w in used)
        wanted.append(Wanted(ROWS, name, f"({signature})", "BOOLEAN", " AND ".join(parts), cols))
    return wanted, withheld


def _columns(predicate: str) -> list[str]:
    """The column names a safe predicate (see `native`) refers to, in order of appearance."""
    words = [m.group(1) for m in _WORD.finditer(predicate) if m.group(1)]
    seen: dict[str, None] = {}
    for word in words:
        if word.lower() not in _SQL_WORDS:
            seen.setdefault(word, None)
    return list(seen)
