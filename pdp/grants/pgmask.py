"""The masks of the policy files in PostgreSQL SQL, giving what Trino gives. Pure: no I/O.

Trino masks a column of its `postgresql` catalog by the column's Trino type, which the
connector derives from the PostgreSQL type (`text` is `varchar`, `numeric(10,2)` is
`decimal(10,2)`, ...). So each translation starts from that Trino type and follows Trino's mask
(pdp.core.datapolicy) step by step with PostgreSQL functions whose results are the same:
`sha256` is built in (PostgreSQL 11+), `substr`/`length`/`concat` count characters as Trino
does, and `round(numeric, d)` breaks ties away from zero like Trino's decimal rounding. Where
Trino's mask is NULL (a hash of a `date`, a constant longer than the column) the rendering is
NULL. Anything not known to be identical is None, and the caller withholds it: rounding a
`double` or `real` (Trino rounds the binary value, PostgreSQL its decimal rendering), a type the
connector maps to no Trino type by default (`numeric` without precision, arrays, `json`, ...),
`char(n)` (padding differs) and constants that would need rounding or a lenient parse.
"""

from __future__ import annotations

import decimal
import math
import re

from pdp.core.datapolicy import mask_expression, null_of, parse_type, quote_literal
from pdp.core.model import MaskKind
from pdp.policy.model import MaskingPolicy

# PostgreSQL's format_type() -> the type Trino's PostgreSQL connector reads it as
_SAME = {
    "text": "varchar",
    "character varying": "varchar",
    "smallint": "smallint",
    "integer": "integer",
    "bigint": "bigint",
    "double precision": "double",
    "real": "real",
    "boolean": "boolean",
    "date": "date",
    "timestamp without time zone": "timestamp(6)",
}
_VARCHAR = re.compile(r"character varying\((\d+)\)")
_NUMERIC = re.compile(r"numeric\((\d+),(\d+)\)")
_TIMESTAMP = re.compile(r"timestamp\((\d)\) without time zone")
_INTEGERS = {"smallint": (16, 4), "integer": (32, 8), "bigint": (64, 16)}  # bits, hex digits
_DATE = r"\d{4}-\d{2}-\d{2}"
MIN_ROUND = -38  # Trino rounds a decimal(38, s) to at most 38 places left of the point


def trino_type(pg_type: str) -> str | None:
    """The Trino type of a column of this PostgreSQL type (as `format_type` spells it), or None
    where the connector's default mapping has none or it is not known here."""
    if pg_type in _SAME:
        return _SAME[pg_type]
    if m := _VARCHAR.fullmatch(pg_type):
        return f"varchar({m.group(1)})"
    if (m := _NUMERIC.fullmatch(pg_type)) and int(m.group(1)) <= 38:
        return f"decimal({m.group(1)},{m.group(2)})"
    if m := _TIMESTAMP.fullmatch(pg_type):
        return f"timestamp({m.group(1)})"
    return None


def masked(policy: MaskingPolicy, column: str, pg_type: str) -> str | None:
    """`column` (quoted SQL) masked by `policy` as PostgreSQL SQL of type `pg_type`, equal for
    every value to what Trino's mask gives; None when no exact rendering is known."""
    null = f"CAST(NULL AS {pg_type})"
    if policy.kind is MaskKind.NULL:
        return null
    trino = trino_type(pg_type)
    if trino is None:
        return None
    expression, _ = mask_expression(policy.rule(), "val", trino)
    t = parse_type(trino)
    if expression == null_of(t):
        return null  # Trino's mask is NULL on this type
    if expression == '"val"':
        return column  # rounding a whole number to places it does not have: unchanged
    match policy.kind:
        case MaskKind.HASH:
            return _hash(column, pg_type, t.base, t.length)
        case MaskKind.CONSTANT:
            return _constant(policy, pg_type, t.base, t.params)
        case MaskKind.KEEP_FIRST | MaskKind.KEEP_LAST:
            return _reveal(column, pg_type, t.length, policy.count, policy.kind)
        case MaskKind.ROUND:
            return _round(column, pg_type, t.base, t.params, policy.count)
    return None


def _hex_digest(text: str) -> str:
    """Trino's sha256(to_utf8(x)) as lower-case hex."""
    return f"encode(sha256(convert_to({text}, 'UTF8')), 'hex')"


def _hash(column: str, pg_type: str, base: str, length: int | None) -> str | None:
    if base == "varchar":  # to_hex(sha256(to_utf8(c))), upper case, cut to varchar(n)
        digest = f"upper({_hex_digest(column)})"
        if length is not None and length < 64:
            digest = f"substr({digest}, 1, {length})"
        return f"CAST({digest} AS {pg_type})"
    if base in ("integer", "bigint"):  # the first 4 / 8 bytes of the digest, big-endian, signed
        bits, digits = _INTEGERS[base]
        head = f"left({_hex_digest(f'CAST({column} AS text)')}, {digits})"
        return f"CAST(CAST('x' || {head} AS bit({bits})) AS {pg_type})"
    return None


def _constant(
    policy: MaskingPolicy, pg_type: str, base: str, params: tuple[int, ...]
) -> str | None:
    value = policy.value
    if value is None:
        return None
    if base == "varchar":
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        return f"CAST({quote_literal(text)} AS {pg_type})"
    if base == "boolean" and isinstance(value, bool):
        return f"CAST({'TRUE' if value else 'FALSE'} AS boolean)"
    if isinstance(value, bool):
        return None
    if base in _INTEGERS and isinstance(value, int):
        return f"CAST({value} AS {pg_type})"
    if base == "decimal" and isinstance(value, int | float):
        digits = decimal.Decimal(repr(value))
        exponent = digits.as_tuple().exponent
        if not isinstance(exponent, int) or -exponent > params[1]:
            return None  # would be rounded to the scale: not compared here
        return f"CAST({quote_literal(format(digits, 'f'))} AS {pg_type})"
    if base in ("double", "real") and isinstance(value, int | float):
        number = float(value)
        if not math.isfinite(number):
            return None
        return f"CAST({quote_literal(repr(number))} AS {pg_type})"
    if base == "date" and isinstance(value, str) and re.fullmatch(_DATE, value):
        return f"CAST({quote_literal(value)} AS {pg_type})"
    if base == "timestamp" and isinstance(value, str):
        places = params[0] if params else 6
        if re.fullmatch(rf"{_DATE}( \d{{2}}:\d{{2}}:\d{{2}}(\.\d{{1,{places}}})?)?", value):
            return f"CAST({quote_literal(value)} AS {pg_type})"
    return None


def _reveal(
    column: str, pg_type: str, length: int | None, count: int, kind: MaskKind
) -> str | None:
    pad = "'****'"
    if count == 0:
        shown = pad
    elif kind is MaskKind.KEEP_LAST:
        shown = f"concat({pad}, substr({column}, length({column}) - {count} + 1))"
    else:
        shown = f"concat(substr({column}, 1, {count}), {pad})"
    reveal = (
        f"CASE WHEN {column} IS NULL THEN NULL WHEN length({column}) > {count} "
        f"THEN {shown} ELSE {pad} END"
    )
    if length is not None:
        reveal = f"substr({reveal}, 1, {length})"
    return f"CAST({reveal} AS {pg_type})"


def _round(
    column: str, pg_type: str, base: str, params: tuple[int, ...], digits: int
) -> str | None:
    if digits < MIN_ROUND:
        return None
    if base in _INTEGERS:  # digits < 0 here: whole numbers are returned as they are
        bits = _INTEGERS[base][0]
        low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        r = f"round(CAST({column} AS numeric(38, 0)), {digits})"
        return f"CASE WHEN {r} BETWEEN {low} AND {high} THEN CAST({r} AS {pg_type}) END"
    if base == "decimal":  # precision < 38 and digits < scale here
        precision, scale = params
        r = f"round(CAST({column} AS numeric(38, {scale})), {digits})"
        bound = "1" + "0" * (precision - scale)
        return f"CASE WHEN abs({r}) < {bound} THEN CAST({r} AS {pg_type}) END"
    return None  # double, real: Trino rounds the binary value
