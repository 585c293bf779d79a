"""Unity Catalog column masks and row filters for the masks and row filters of the policy files.

Pure, except `read`. The per-table plan shared with Snowflake (`tablepolicy.plan_table`), spelt for
Unity Catalog: SQL UDFs in the target's governed schema (`policySchema`), set with `ALTER TABLE
... ALTER COLUMN ... SET MASK` and `ALTER TABLE ... SET ROW FILTER`, run through the SQL
statement execution API on the target's warehouse. Grants go to user principals, so a user is
exempt by `lower(current_user()) IN (...)`. A changed body is `CREATE OR REPLACE FUNCTION` (one
statement); `SET MASK` and `SET ROW FILTER` replace what a column or table had in one statement.
Each UDF's comment names its table, so a table no longer governed is found and released.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pdp.core.model import MaskKind
from pdp.grants.databricks import MAX_PAGES, ApiClient, full_name, gate
from pdp.grants.model import Phase, Principal, Securable, Step
from pdp.grants.tablepolicy import MASK, Flavor, Wanted, reveal, rounded
from pdp.policy.model import MaskingPolicy

FUNCTIONS, TABLES = "/api/2.1/unity-catalog/functions", "/api/2.1/unity-catalog/tables"
COMMENT = "pdp grant sync: "  # + the governed table's full name
_STRING = "string"
# Types no Trino string type holds: a partial reveal, a hash (but of int and bigint) or
# rounding (but of numbers) gives NULL there, as in Trino.
_NOT_TEXT = re.compile(
    r"(tinyint|smallint|int|bigint|float|double|decimal(\(\d+,\s*\d+\))?|date|timestamp"
    r"|timestamp_ntz|boolean|binary)"
)
_DECIMAL = re.compile(r"decimal\((\d+),\s*(\d+)\)")
_BITS = {"tinyint": 8, "smallint": 16, "int": 32, "bigint": 64}


@dataclass(frozen=True, slots=True)
class Statement:
    """A step's payload when it is SQL for the statement execution API (not a PATCH)."""

    sql: str


def quote(identifier: str) -> str:
    return "`" + identifier.replace("`", "``") + "`"


def qualified(name: Iterable[str]) -> str:
    return ".".join(quote(part) for part in name)


def _literal(value: str) -> str | None:
    """A string literal Spark reads as Trino does: none with a quote or a backslash."""
    return None if "'" in value or "\\" in value else f"'{value}'"


def _current_user_in(principals: list[Principal]) -> str:
    names = [n for n in (_literal(p.lower()) for p in principals) if n]
    return f"lower(current_user()) IN ({', '.join(names)})" if names else "FALSE"


def masked_value(policy: MaskingPolicy, type_: str) -> str | None:
    """The masked `val` in Databricks SQL, equal to Trino's mask for the same value (Trino's
    Delta Lake and Hive connectors read `string` as unbounded `varchar` and the other types as
    their namesakes), or None."""
    type_ = type_.strip().lower()
    if policy.kind is MaskKind.NULL:
        return "NULL"
    if type_ != _STRING:
        return _not_text(policy, type_)
    if policy.kind is MaskKind.HASH:
        return "upper(sha2(val, 256))"
    if policy.kind is MaskKind.CONSTANT:
        return _literal(policy.value) if isinstance(policy.value, str) else None
    if policy.kind is MaskKind.ROUND:
        return "NULL"  # Trino rounds numbers only
    return reveal(policy)


def _not_text(policy: MaskingPolicy, type_: str) -> str | None:
    if policy.kind is MaskKind.CONSTANT or not _NOT_TEXT.fullmatch(type_):
        return None  # Trino renders constants its own way; arrays and the like are unknown
    bits = _BITS.get(type_)
    if policy.kind is MaskKind.HASH and bits is not None and bits >= 32:
        return _hashed(bits)
    if policy.kind is MaskKind.ROUND:
        if bits is not None:
            return _rounded_whole(policy.count, bits, type_)
        if number := _DECIMAL.fullmatch(type_):
            precision, scale = int(number.group(1)), int(number.group(2))
            return rounded(policy.count, precision, scale, f"decimal({precision},{scale})")
        return None if type_ in ("float", "double") else "NULL"  # float rounding is not exact
    return "NULL"


def _hashed(bits: int) -> str:
    """Trino's hash of an int or bigint: the first 4 or 8 bytes of the SHA-256 of its decimal
    text, read as a signed big-endian number (`conv` to base -10 reads 64 bits as signed; 32
    bits are moved into the signed range by hand)."""
    number = f"conv(substr(sha2(CAST(val AS STRING), 256), 1, {bits // 4}), 16, -10)"
    if bits == 64:
        return f"CAST({number} AS BIGINT)"
    return f"CAST((CAST({number} AS BIGINT) + 2147483648) % 4294967296 - 2147483648 AS INT)"


def _rounded_whole(digits: int, bits: int, type_: str) -> str:
    """Rounding a whole number, as Trino: unchanged to decimal places, else half away from
    zero in decimal (no integer overflow), NULL outside the type's range."""
    if digits >= 0:
        return "val"
    r = f"round(CAST(val AS DECIMAL(20,0)), {digits})"
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return f"CASE WHEN {r} BETWEEN {low} AND {high} THEN CAST({r} AS {type_.upper()}) END"


UNITY = Flavor(_current_user_in, masked_value, lambda t: "collate" in t.lower(), str.lower)


# --- current ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Current:
    functions: Mapping[str, tuple[str, str]]  # ours by name -> (body, comment)
    masks: Mapping[Securable, Mapping[str, str]]  # table -> column -> UDF full name
    rows: Mapping[Securable, tuple[str, tuple[str, ...]]]  # table -> (UDF full name, columns)
    columns: Mapping[Securable, Mapping[str, str] | None]  # governed table -> column -> type


def read(
    api: ApiClient, schema: tuple[str, str], prefix: str, tables: Iterable[Securable]
) -> Current:
    """Our UDFs (by name prefix), and the masks, row filter and columns of the governed tables
    and of every table one of our UDFs names in its comment."""
    functions: dict[str, tuple[str, str]] = {}
    token: str | None = None
    for _ in range(MAX_PAGES):
        query: dict[str, Any] = {"catalog_name": schema[0], "schema_name": schema[1]}
        if token:
            query["page_token"] = token
        page = api.do("GET", FUNCTIONS, query=query, headers={"Accept": "application/json"})
        for info in page.get("functions") or ():
            name = str(info.get("name") or "")
            if name.startswith(f"{prefix}_"):
                body = str(info.get("routine_definition") or "")
                functions[name] = (body, str(info.get("comment") or ""))
        token = page.get("next_page_token")
        if not token:
            break
    governed = set(tables)
    named = {c[len(COMMENT) :] for _, c in functions.values() if c.startswith(COMMENT)}
    extra = {Securable("table", tuple(n.split(".")), "table") for n in named if n.count(".") == 2}
    masks: dict[Securable, dict[str, str]] = {}
    rows: dict[Securable, tuple[str, tuple[str, ...]]] = {}
    columns: dict[Securable, Mapping[str, str] | None] = {}
    for table in sorted(governed | extra, key=lambda t: t.name):
        try:
            info = api.do("GET", f"{TABLES}/{_path(table)}", headers={"Accept": "application/json"})
        except Exception as exc:
            from databricks.sdk.errors import platform

            if not isinstance(exc, platform.NotFound):
                raise
            if table in governed:
                columns[table] = None
            continue
        if table in governed:
            columns[table] = {
                str(c["name"]): str(c.get("type_text") or "") for c in info.get("columns") or ()
            }
        for column in info.get("columns") or ():
            mask = column.get("mask") or {}
            if mask.get("function_name"):
                masks.setdefault(table, {})[str(column["name"])] = str(mask["function_name"])
        row_filter = info.get("row_filter") or {}
        if row_filter.get("function_name"):
            cols = tuple(str(c) for c in row_filter.get("input_column_names") or ())
            rows[table] = (str(row_filter["function_name"]), cols)
    return Current(functions, masks, rows, columns)


def _path(table: Securable) -> str:
    from urllib.parse import quote as url

    return url(full_name(table), safe="")


# --- plan -------------------------------------------------------------------------------------


def plan(
    schema: tuple[str, str],
    prefix: str,
    wanted: Mapping[Securable, list[Wanted]],
    current: Current,
) -> list[Step]:
    """Tighten first: UDFs created or replaced and set before any grant; masks and row filters
    dropped, then our UDFs no longer used, after every revoke."""
    steps: list[Step] = []
    keep = {w.name for ws in wanted.values() for w in ws}
    ours = f"{schema[0]}.{schema[1]}.{prefix}_"

    def step(phase: Phase, table: Securable | None, sql: str, subject: str = "") -> None:
        label = gate(table) if table is not None else subject
        on = label if table is not None else ""
        steps.append(Step(phase, label, sql, payload=Statement(sql), gate=on))

    for table in sorted(wanted, key=lambda t: t.name):
        on = qualified(table.name)
        for want in wanted[table]:
            function = qualified((*schema, want.name))
            body = current.functions.get(want.name, ("", ""))[0]
            if want.name not in current.functions or body != want.body:
                comment = f"'{COMMENT}{full_name(table)}'"
                step(
                    Phase.TIGHTEN,
                    table,
                    f"CREATE OR REPLACE FUNCTION {function}{want.signature} RETURNS "
                    f"{want.returns} COMMENT {comment} RETURN {want.body}",
                )
            full = f"{schema[0]}.{schema[1]}.{want.name}"
            if want.kind == MASK:
                column = want.columns[0]
                if current.masks.get(table, {}).get(column) != full:
                    text = f"ALTER TABLE {on} ALTER COLUMN {quote(column)} SET MASK {function}"
                    step(Phase.TIGHTEN, table, text)
            elif current.rows.get(table) != (full, want.columns):
                cols = ", ".join(quote(c) for c in want.columns)
                step(
                    Phase.TIGHTEN, table, f"ALTER TABLE {on} SET ROW FILTER {function} ON ({cols})"
                )
    for table in sorted(current.masks.keys() | current.rows.keys(), key=lambda t: t.name):
        on = qualified(table.name)
        names = {f"{schema[0]}.{schema[1]}.{w.name}" for w in wanted.get(table, [])}
        for column, function in sorted(current.masks.get(table, {}).items()):
            if function.startswith(ours) and function not in names:
                step(
                    Phase.LOOSEN, table, f"ALTER TABLE {on} ALTER COLUMN {quote(column)} DROP MASK"
                )
        held = current.rows.get(table)
        if held and held[0].startswith(ours) and held[0] not in names:
            step(Phase.LOOSEN, table, f"ALTER TABLE {on} DROP ROW FILTER")
    for name in sorted(current.functions.keys() - keep):
        function = qualified((*schema, name))
        step(Phase.LOOSEN, None, f"DROP FUNCTION IF EXISTS {function}", function)
    return steps
