"""The native policies of one table, shared by Snowflake (`sfpolicy`) and Unity Catalog
(`ucpolicy`). Pure: no I/O.

Which masks and row filters a platform can enforce exactly (`native`, before the column types
are known), and, once the table's columns and types are read, the policies it gets (`plan_table`):
one mask per masked column, one row policy ANDing the table's filters as Trino ANDs them, each
exempting the users holding a grant on the table to whom it does not apply. Everyone else,
including principals the product does not manage, reads masked values and filtered rows; a
filter naming the user (`@user`, `@attribute(x)`) gives each user their own predicate, and no
row to a session that is none of them. A user whose policy cannot be expressed exactly on the
table's actual columns is withheld. The mask SQL both platforms read alike (partial reveals,
rounding of decimals) is written here once.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from pdp.core.datapolicy import REVEAL_PAD, Placeholder, quote_literal
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


def native(
    source: DataSource,
    applying: tuple[Applying, ...],
    platform: str = "Snowflake",
    tables: frozenset[ObjectType] = frozenset({ObjectType.TABLE}),
    escapes: tuple[str, ...] = ("\\",),
) -> str | Native:
    """Native where the object takes policies and each row filter, as rendered for this user,
    evaluates alike (`escapes`: what the platform reads in a string literal its own way:
    Snowflake a backslash, Unity Catalog a backslash and a doubled quote; a filter holding one,
    in its text or in the user's values, is withheld). Every mask kind has an exact translation
    on some column type: the columns' types, read from the platform, settle masks when the
    target plans (`plan_table`)."""
    problems = []
    for one in applying:
        policy = one.policy
        if source.type not in tables:
            problems.append(f"{describe(policy)}: a {source.type} takes no policy here")
        elif isinstance(policy, RowFilterPolicy) and (problem := _filter_problem(one, escapes)):
            problems.append(f"{describe(policy)} uses {problem}")
    if problems:
        return "; ".join(problems) + f", which {platform} cannot enforce exactly"
    # TRUNCATE ignores row access policies: a filtered user would empty rows they cannot see
    filtered = any(isinstance(one.policy, RowFilterPolicy) for one in applying)
    return Native(frozenset({"TRUNCATE"}) if filtered else frozenset())


_ESCAPES = {"\\": "a backslash", "''": "a doubled quote"}


def _filter_problem(one: Applying, escapes: tuple[str, ...]) -> str | None:
    """`@user` and `@attribute(x)` render as string literals per user (`plan_table` gives each
    user their own predicate); `@groups` is withheld (`rls.untranslatable` says why)."""
    policy = one.policy
    assert isinstance(policy, RowFilterPolicy)
    if '"' in policy.where:
        return "a quoted name"
    if held := [_ESCAPES[e] for e in escapes if e in (one.predicate or policy.where)]:
        return f"{' or '.join(held)} (as rendered here)"
    return untranslatable(policy.template)


# --- masks both platforms spell alike -------------------------------------------------------


def reveal(policy: MaskingPolicy) -> str:
    """keepFirst / keepLast of a string `val` as Trino masks it (`pdp.core.datapolicy`):
    `count` characters kept, a fixed pad for the rest, a value no longer than `count` all pad,
    NULL for a negative count. Snowflake and Spark SQL read this alike."""
    count = policy.count
    if count < 0:
        return "NULL"
    pad = quote_literal(REVEAL_PAD)
    if count == 0:
        shown = pad
    elif policy.kind is MaskKind.KEEP_LAST:
        shown = f"CONCAT({pad}, SUBSTR(val, LENGTH(val) - {count} + 1))"
    else:
        shown = f"CONCAT(SUBSTR(val, 1, {count}), {pad})"
    return f"CASE WHEN val IS NULL THEN NULL WHEN LENGTH(val) > {count} THEN {shown} ELSE {pad} END"


def rounded(digits: int, precision: int, scale: int, type_: str) -> str:
    """`round` of a decimal(precision, scale) `val` as Trino rounds it: half away from zero
    (Snowflake's ROUND and Spark's round of a fixed-point number do the same, exactly, in
    decimal), NULL where the result leaves the type's range, and NULL on a 38-digit type
    (Trino cannot widen it to round). Snowflake and Spark SQL read this alike."""
    if digits >= scale:
        return "val"
    if precision >= 38:
        return "NULL"
    r = f"ROUND(val, {digits})"
    bound = "1" + "0" * (precision - scale)
    return f"CASE WHEN ABS({r}) < {bound} THEN CAST({r} AS {type_}) END"


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
    plan = _TablePlan.of(prefix, table, enforced, holders, columns, flavor)
    # Policies with a problem of their own withhold every user they apply to; a user withheld
    # for another reason leaves the policy in place for everyone else. So every problem is
    # found before any exemption is written.
    mask_on = plan.mask_columns()
    broken = plan.check_masks(mask_on)
    args, unusable = plan.check_filters()
    wanted = plan.mask_policies(mask_on, broken)
    rows = plan.rows_policy(args, unusable)
    return [*wanted, *([rows] if rows else [])], plan.withheld


@dataclass
class _TablePlan:
    """`plan_table`'s working state for one table."""

    prefix: str
    table: Securable
    holders: frozenset[Principal]
    columns: Mapping[str, str]
    flavor: Flavor
    by_folded: dict[str, list[str]]  # folded column name -> the platform's spellings
    masks: dict[str, set[Principal]]  # mask policy -> principals it applies to
    filters: dict[str, set[Principal]]  # row filter -> principals it applies to
    found: dict[str, Applying]
    rendered: dict[str, dict[Principal, str]]  # row filter -> user -> their predicate
    withheld: dict[Principal, str] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        prefix: str,
        table: Securable,
        enforced: Mapping[Principal, tuple[Applying, ...]],
        holders: frozenset[Principal],
        columns: Mapping[str, str],
        flavor: Flavor,
    ) -> _TablePlan:
        plan = cls(prefix, table, holders, columns, flavor, {}, {}, {}, {}, {})
        for name in columns:
            plan.by_folded.setdefault(name.lower(), []).append(name)
        for principal, applying in enforced.items():
            for one in applying:
                plan.found.setdefault(one.policy.name, one)
                into = plan.masks if isinstance(one.policy, MaskingPolicy) else plan.filters
                into.setdefault(one.policy.name, set()).add(principal)
                if one.predicate is not None:
                    plan.rendered.setdefault(one.policy.name, {})[principal] = one.predicate
        return plan

    def exempt(self, policy: str, kind: dict[str, set[Principal]]) -> str:
        free = sorted(self.holders - kind[policy] - self.withheld.keys())
        return self.flavor.exempt(free) if free else ""

    def mask_columns(self) -> dict[str, list[str]]:
        """Platform column -> the mask policies covering it."""
        mask_on: dict[str, list[str]] = {}
        for name in sorted(self.masks):
            policy = self.found[name].policy
            assert isinstance(policy, MaskingPolicy)
            for folded in policy.columns | self.found[name].tagged:
                for column in self.by_folded.get(folded, ()):
                    mask_on.setdefault(column, []).append(name)
        return mask_on

    def check_masks(self, mask_on: Mapping[str, list[str]]) -> set[str]:
        """The masked columns that cannot be expressed; their users are withheld."""
        broken: set[str] = set()
        for column, names in mask_on.items():
            problem = ""
            type_ = self.columns[column]
            if len(names) > 1:
                problem = f"masks {', '.join(map(repr, names))} all cover column {column}"
            elif self.flavor.masked(self._mask(names[0]), type_) is None:
                problem = f"mask {names[0]!r} on {column} {type_} has no exact translation"
            if problem:
                broken.add(column)
                for name in names:
                    for principal in self.masks[name]:
                        self.withheld.setdefault(principal, problem)
        return broken

    def check_filters(self) -> tuple[dict[str, str], set[str]]:
        """(folded column word -> platform column, the row filters that cannot be expressed);
        the users of the latter are withheld."""
        args: dict[str, str] = {}
        unusable: set[str] = set()
        for name in sorted(self.filters):
            for word in _columns(self._filter(name)):
                candidates = self.by_folded.get(word.lower(), [])
                problem = ""
                if len(candidates) != 1:
                    problem = f"row filter {name!r}: no single column {word}"
                elif self.flavor.collated(self.columns[candidates[0]]):
                    problem = f"row filter {name!r}: column {word} has a collation"
                else:
                    args[word.lower()] = candidates[0]
                if problem:
                    unusable.add(name)
                    for principal in self.filters[name]:
                        self.withheld.setdefault(principal, problem)
        return args, unusable

    def mask_policies(self, mask_on: Mapping[str, list[str]], broken: set[str]) -> list[Wanted]:
        wanted: list[Wanted] = []
        for column in sorted(set(mask_on) - broken):
            first = mask_on[column][0]
            type_ = self.columns[column]
            masked = self.flavor.masked(self._mask(first), type_)
            free = self.exempt(first, self.masks)
            body = f"CASE WHEN {free} THEN val ELSE {masked} END" if free else str(masked)
            name = self.flavor.case(mask_name(self.prefix, self.table, column, type_))
            wanted.append(Wanted(MASK, name, f"(val {type_})", type_, body, (column,)))
        return wanted

    def rows_policy(self, args: Mapping[str, str], unusable: set[str]) -> Wanted | None:
        live = [n for n in sorted(self.filters) if n not in unusable]
        if not live:
            return None
        used = sorted({w.lower() for n in live for w in _columns(self._filter(n))})
        parts = []
        for name in live:
            free = self.exempt(name, self.filters)
            mine = {p: v for p, v in self.rendered.get(name, {}).items() if p not in self.withheld}
            predicate = _predicate(self.found[name], mine, self.flavor)
            parts.append(f"({free} OR {predicate})" if free else predicate)
        typed = [f"{w} {self.columns[args[w]]}" for w in used]
        name = self.flavor.case(rows_name(self.prefix, self.table, typed))
        columns = tuple(args[w] for w in used)
        return Wanted(ROWS, name, f"({', '.join(typed)})", "BOOLEAN", " AND ".join(parts), columns)

    def _mask(self, name: str) -> MaskingPolicy:
        policy = self.found[name].policy
        assert isinstance(policy, MaskingPolicy)
        return policy

    def _filter(self, name: str) -> RowFilterPolicy:
        policy = self.found[name].policy
        assert isinstance(policy, RowFilterPolicy)
        return policy


def _predicate(one: Applying, predicates: Mapping[Principal, str], flavor: Flavor) -> str:
    """A filter's predicate for everyone it applies to. Without placeholders it reads the same
    for every user. With `@user` or `@attribute(x)`, each group of users sharing one rendered
    predicate gets it; a session that is none of them reads no row, and a session holding
    several managed roles only the rows every one of them may read."""
    assert isinstance(one.policy, RowFilterPolicy)
    if not any(isinstance(part, Placeholder) for part in one.policy.template):
        return one.predicate or "FALSE"  # rendered in parentheses
    if not predicates:
        return "FALSE"
    whose: dict[str, list[Principal]] = {}
    for principal in sorted(predicates):
        whose.setdefault(predicates[principal], []).append(principal)
    tests = {predicate: f"({flavor.exempt(users)})" for predicate, users in whose.items()}
    clauses = [f"(NOT {test} OR {predicate})" for predicate, test in tests.items()]
    return f"(({' OR '.join(tests.values())}) AND {' AND '.join(clauses)})"


def _columns(policy: RowFilterPolicy) -> list[str]:
    """The column names a safe predicate (see `native`) refers to, in order of appearance
    (placeholders are values, not names)."""
    text = " ".join(part for part in policy.template if isinstance(part, str))
    words = [m.group(1) for m in _WORD.finditer(text) if m.group(1)]
    seen: dict[str, None] = {}
    for word in words:
        if word.lower() not in _SQL_WORDS:
            seen.setdefault(word, None)
    return list(seen)
