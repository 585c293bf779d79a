"""Column masks and row filters: which data policies apply to a column or a table, and the SQL
Trino evaluates for them. Pure: no I/O.

Every mask expression is built to have exactly the column's type (Trino rejects a mask of
another type that it cannot coerce), and only from the type the request names: a mask that
cannot produce a value of that type becomes `CAST(NULL AS <type>)`, never an expression that
would fail the query. Identifiers are double-quoted and string values single-quoted with quotes
doubled; user values reach row filters only as such literals (see `render_filter`).
"""

from __future__ import annotations

import datetime
import decimal
import re
from dataclasses import dataclass

from pdp.core.model import (
    MASK_PRECEDENCE,
    Constant,
    Identity,
    MaskKind,
    MaskRule,
    TableKey,
    View,
    fold,
)

# --- what the core answers ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Mask:
    """The mask for one column: the SQL expression, the policy it comes from, and why."""

    expression: str
    policy: str
    kind: MaskKind
    reason: str
    overridden: tuple[str, ...] = ()  # other policies that would mask the column too


@dataclass(frozen=True, slots=True)
class RowFilter:
    expression: str
    policy: str


def column_mask(
    view: View, identity: Identity, table: TableKey, column: str, column_type: str
) -> Mask | None:
    """The mask Trino applies to `column` of `table` for `identity`, or None.

    Admins (immuta.user.admin) are never masked. When several policies mask the column, the
    most restrictive kind wins (MASK_PRECEDENCE), then the policy name in sort order."""
    if view.settings.is_admin(identity.user):
        return None
    name = fold(column)
    tags = view.registry.columns.get(table, {}).get(name, frozenset())
    matching = [rule for rule in _mask_rules(view, table) if rule.covers(name, tags)]
    if not matching:
        return None
    matching.sort(key=lambda r: (MASK_PRECEDENCE.index(r.kind), r.policy))
    rule, others = matching[0], tuple(r.policy for r in matching[1:])
    expression, note = mask_expression(rule, column, column_type)
    why = f"column {column!r}" + (f" tagged {', '.join(sorted(tags))}" if tags else "")
    reason = f"{rule.kind} by policy {rule.policy!r} on {why}" + (f" ({note})" if note else "")
    return Mask(expression, rule.policy, rule.kind, reason, others)


def row_filters(view: View, identity: Identity, table: TableKey) -> tuple[RowFilter, ...]:
    """The row filters on `table` for `identity` (Trino ANDs them), by policy name."""
    if view.settings.is_admin(identity.user):
        return ()
    mine = view.filters
    names = sorted(n for n in view.registry.filters.get(table, ()) if n in mine)
    return tuple(RowFilter(mine[n], n) for n in names)


def data_policies_on(
    view: View, identity: Identity, table: TableKey, masks: bool
) -> tuple[str, ...]:
    """The row-level policies, and with `masks` the masking policies, that apply to `identity`
    on `table`, by name. A masking policy counts when it covers a column the registry knows of
    the table, or any column when the registry knows none."""
    names = {f.policy for f in row_filters(view, identity, table)}
    if masks and not view.settings.is_admin(identity.user):
        columns = view.registry.columns.get(table, {})
        names |= {
            rule.policy
            for rule in _mask_rules(view, table)
            if not columns or any(rule.covers(c, tags) for c, tags in columns.items())
        }
    return tuple(sorted(names))


def _mask_rules(view: View, table: TableKey) -> list[MaskRule]:
    """The masking rules on `table` whose policies apply to the view's user (owners exempt
    where the policy says so), whichever columns they cover."""
    owner = table in view.owned
    return [
        rule
        for rule in view.registry.masks.get(table, ())
        if rule.policy in view.mask_policies and not (owner and rule.except_owners)
    ]


# --- Trino types -----------------------------------------------------------------------------

_INTEGERS = {"tinyint": 8, "smallint": 16, "integer": 32, "int": 32, "bigint": 64}
_FRACTIONAL = {"decimal", "double", "real"}
_STRINGS = {"varchar", "char"}
_SAFE_TYPE = re.compile(
    r"[a-z][a-z0-9_]*(?:\s*\(\s*\d+(?:\s*,\s*\d+)?\s*\))?(?:\s+with(?:out)? time zone)?"
)
MIN_HASH_LENGTH = 16  # a bounded string column shorter than this cannot hold a useful hash


@dataclass(frozen=True, slots=True)
class SqlType:
    text: str  # as the request spelled it, lower-cased
    base: str  # varchar, char, integer, decimal, ..., or "" when it cannot be read safely
    params: tuple[int, ...] = ()

    @property
    def length(self) -> int | None:
        """The bound of varchar(n) / char(n); None when unbounded."""
        if self.base == "char":
            return self.params[0] if self.params else 1
        return self.params[0] if self.base == "varchar" and self.params else None


def parse_type(text: str) -> SqlType:
    """A Trino type signature as the OPA plugin sends it (`varchar(20)`, `decimal(10,2)`,
    `array(varchar)`, `row("a" integer)`, ...). Only simple types are taken apart; anything
    else keeps `base` "" for composite types, which only a NULL mask handles."""
    lowered = " ".join(text.strip().lower().split())
    if not _SAFE_TYPE.fullmatch(lowered):
        return SqlType(lowered, "")
    base = re.match(r"[a-z0-9_]+", lowered)
    params = tuple(int(p) for p in re.findall(r"\d+", lowered.partition("(")[2]))
    return SqlType(lowered, base.group(0) if base else "", params)


def null_of(column_type: SqlType) -> str:
    """A NULL of the column's type. An untyped NULL coerces to any type, so it stands in where
    the type signature is composite or not plain enough to repeat in SQL."""
    if column_type.base and column_type.base not in {"array", "map", "row"}:
        return f"CAST(NULL AS {column_type.text})"
    return "NULL"


# --- mask expressions ------------------------------------------------------------------------


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def mask_expression(rule: MaskRule, column: str, column_type: str) -> tuple[str, str]:
    """The SQL of `rule` on `column`, and a note when the type made it fall back to NULL."""
    t = parse_type(column_type)
    c = quote_identifier(column)
    expression = _render(rule, c, t)
    if expression is None:
        note = "" if rule.kind is MaskKind.NULL else f"{rule.kind} cannot apply to {t.text}: NULL"
        return null_of(t), note
    return expression, ""


def _render(rule: MaskRule, c: str, t: SqlType) -> str | None:
    match rule.kind:
        case MaskKind.NULL:
            return None
        case MaskKind.HASH:
            return _hash(c, t)
        case MaskKind.CONSTANT:
            return _constant(rule.value, t)
        case MaskKind.KEEP_LAST | MaskKind.KEEP_FIRST:
            return _reveal(c, t, rule.count, last=rule.kind is MaskKind.KEEP_LAST)
        case MaskKind.ROUND:
            return _round(c, t, rule.count)
    return None


def _fit(expression: str, t: SqlType) -> str | None:
    """A varchar expression as a value of the string type `t` (cut to its bound)."""
    if t.base not in _STRINGS:
        return None
    n = t.length
    if n is not None:
        expression = f"substr({expression}, 1, {n})"
    return f"CAST({expression} AS {t.text})"


def _hash(c: str, t: SqlType) -> str | None:
    if t.base in _STRINGS:
        if t.length is not None and t.length < MIN_HASH_LENGTH:
            return None
        return _fit(f"to_hex(sha256(to_utf8({c})))", t)
    digest = f"sha256(to_utf8(CAST({c} AS varchar)))"
    if t.base == "bigint":
        return f"from_big_endian_64(substr({digest}, 1, 8))"
    if t.base in ("integer", "int"):
        return f"from_big_endian_32(substr({digest}, 1, 4))"
    return None


def _constant(value: Constant | None, t: SqlType) -> str | None:
    if value is None:
        return None
    if t.base in _STRINGS:
        text = _text(value)
        if t.length is not None and len(text) > t.length:
            return None
        return f"CAST({quote_literal(text)} AS {t.text})"
    if t.base == "boolean":
        return f"CAST({'TRUE' if value else 'FALSE'} AS boolean)" if type(value) is bool else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _temporal_constant(value, t) if isinstance(value, str) else None
    if t.base in _INTEGERS:
        bits = _INTEGERS[t.base]
        if not isinstance(value, int) or not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
            return None
        return f"CAST({value} AS {t.text})"
    if t.base == "decimal":
        precision, scale = (*t.params, 0, 0)[:2] if t.params else (38, 0)
        if abs(value) >= 10 ** (precision - scale):
            return None
        digits = format(decimal.Decimal(repr(value)), "f")
        return f"CAST(DECIMAL {quote_literal(digits)} AS {t.text})"
    if t.base in ("double", "real"):
        return f"CAST({quote_literal(repr(float(value)))} AS {t.text})"
    return None


def _temporal_constant(value: str, t: SqlType) -> str | None:
    try:
        if t.base == "date":
            datetime.date.fromisoformat(value)
        elif t.base == "timestamp":
            datetime.datetime.fromisoformat(value)
        else:
            return None
    except ValueError:
        return None
    return f"CAST({quote_literal(value)} AS {t.text})"


def _text(value: Constant) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


REVEAL_PAD = "****"


def _reveal(c: str, t: SqlType, count: int, last: bool) -> str | None:
    """Keep `count` characters and replace the rest with a fixed `****` (which hides the
    length too); a value no longer than `count` is hidden entirely; NULL stays NULL."""
    if t.base not in _STRINGS or count < 0:
        return None
    pad = quote_literal(REVEAL_PAD)
    if last:
        shown = f"concat({pad}, substr({c}, length({c}) - {count} + 1))"
    else:
        shown = f"concat(substr({c}, 1, {count}), {pad})"
    if count == 0:
        shown = pad
    return _fit(
        f"CASE WHEN {c} IS NULL THEN NULL WHEN length({c}) > {count} THEN {shown} ELSE {pad} END",
        t,
    )


def _round(c: str, t: SqlType, digits: int) -> str | None:
    """Round to `digits` decimal places. Rounding up can leave the type's range (2147483647
    to 2147483650, 999.9 to 1000 in decimal(4,1)), which Trino reports as an error even under
    TRY: so the rounding is done in decimal(38, s) and an out-of-range result becomes NULL."""
    if t.base in ("double", "real"):
        return f"CAST(round({c}, {digits}) AS {t.text})"
    if t.base in _INTEGERS:
        if digits >= 0:
            return c  # whole numbers are already rounded: nothing is hidden, nothing breaks
        bits = _INTEGERS[t.base]
        low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        r = f"round(CAST({c} AS decimal(38, 0)), {digits})"
        return (
            f"CASE WHEN {r} BETWEEN DECIMAL '{low}' AND DECIMAL '{high}' "
            f"THEN CAST({r} AS {t.text}) END"
        )
    if t.base == "decimal":
        precision, scale = (*t.params, 0, 0)[:2] if t.params else (38, 0)
        if digits >= scale:
            return c
        if precision >= 38:
            return None
        r = f"round(CAST({c} AS decimal(38, {scale})), {digits})"
        bound = "1" + "0" * (precision - scale)
        return f"CASE WHEN abs({r}) < DECIMAL '{bound}' THEN CAST({r} AS {t.text}) END"
    return None


# --- row filter templates --------------------------------------------------------------------


class TemplateError(ValueError):
    pass


PLACEHOLDERS = "@user, @groups, @attribute(name)"
_PLACEHOLDER = re.compile(r"@(user\b|groups\b|attribute\(\s*([^()\s]+)\s*\))")


@dataclass(frozen=True, slots=True)
class Placeholder:
    kind: str  # "user", "groups" or "attribute"
    name: str = ""  # the attribute


Template = tuple[str | Placeholder, ...]


def parse_template(predicate: str) -> Template:
    """A row filter predicate split into SQL text and placeholders, which are only recognised
    outside string literals and quoted identifiers. Rejects `;`, comments, unbalanced quotes or
    parentheses and unknown placeholders, so a predicate cannot become more than one boolean
    expression."""
    parts: list[str | Placeholder] = []
    text, i, depth, n = [], 0, 0, len(predicate)
    while i < n:
        ch = predicate[i]
        if ch in "'\"":
            end = i + 1
            while True:
                end = predicate.find(ch, end)
                if end < 0:
                    what = "string" if ch == "'" else "identifier"
                    raise TemplateError(f"unterminated {what}")
                if end + 1 < n and predicate[end + 1] == ch:  # a doubled quote inside
                    end += 2
                    continue
                break
            text.append(predicate[i : end + 1])
            i = end + 1
            continue
        if ch == ";":
            raise TemplateError("';' is not allowed: a filter is one boolean expression")
        if predicate.startswith("--", i) or predicate.startswith("/*", i):
            raise TemplateError("comments are not allowed")
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise TemplateError("unbalanced ')'")
        if ch == "@":
            match = _PLACEHOLDER.match(predicate, i)
            if match is None:
                raise TemplateError(
                    f"unknown placeholder at {predicate[i : i + 20]!r} (known: {PLACEHOLDERS})"
                )
            parts.append("".join(text))
            text = []
            kind = match.group(1)
            if kind.startswith("attribute"):
                parts.append(Placeholder("attribute", match.group(2)))
            else:
                parts.append(Placeholder(kind))
            i = match.end()
            continue
        text.append(ch)
        i += 1
    if depth:
        raise TemplateError("unbalanced '('")
    parts.append("".join(text))
    if not "".join(p for p in parts if isinstance(p, str)).strip() and len(parts) == 1:
        raise TemplateError("empty predicate")
    return tuple(p for p in parts if p != "")


def render_filter(
    template: Template, user: str, groups: frozenset[str], attributes: dict[str, frozenset[str]]
) -> str:
    """The predicate with each placeholder replaced by SQL literals: `@user` by one string,
    `@groups` and `@attribute(x)` by a parenthesised list for `IN`, sorted; an empty list
    becomes `(NULL)`, which matches no row (`x IN (NULL)` is never true) instead of being a
    syntax error. Values are never spliced as SQL text."""
    out = []
    for part in template:
        if isinstance(part, str):
            out.append(part)
        elif part.kind == "user":
            out.append(quote_literal(user))
        else:
            values = groups if part.kind == "groups" else attributes.get(part.name, frozenset())
            out.append(literal_list(values))
    return "".join(out)


def literal_list(values: frozenset[str] | set[str]) -> str:
    if not values:
        return "(NULL)"
    return "(" + ", ".join(quote_literal(v) for v in sorted(values)) + ")"
