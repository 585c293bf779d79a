"""Snowflake masking and row access policies for the masks and row filters of the policy files.

Pure, except `read`. The policies live in one governed schema (the target's `policySchema`),
as `tablepolicy.plan_table` lays them out: each masked column gets one masking policy, each
filtered table one row access policy ANDing its filters, as Trino ANDs them. Who is exempt is
said through the managed per-user roles:
`IS_ROLE_IN_SESSION('<PREFIX>_USER_<NAME>')` for each user holding a grant on the table to whom
the policy does not apply. Everyone else, including roles the product does not manage, reads
masked values and filtered rows: never more than Trino shows a user the policy applies to.

A policy is named by a hash of its table, column(s) and their types, so its signature never
changes under one name; a changed body is `ALTER ... SET BODY` (one statement: no window where
raw data is readable), a changed signature a new policy swapped in atomically (`FORCE`, or one
`ALTER TABLE` dropping the old row access policy and adding the new).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pdp.core.datapolicy import MIN_HASH_LENGTH, REVEAL_PAD, quote_literal
from pdp.core.model import MaskKind
from pdp.grants.model import Phase, Principal, Securable, Step
from pdp.grants.session import SqlSession
from pdp.grants.snowflake import qualified, quote
from pdp.grants.tablepolicy import MASK, ROWS, Flavor, Wanted, reveal, rounded
from pdp.policy.model import MaskingPolicy

# Snowflake types whose values no Trino string type holds: a partial reveal or a hash gives
# NULL there, as in Trino; any other non-string type (VARIANT, ...) is withheld.
_NOT_TEXT = re.compile(r"(NUMBER|FLOAT|DATE|TIME|TIMESTAMP_\w+|BOOLEAN|BINARY)\b.*")
_VARCHAR = re.compile(r"VARCHAR\((\d+)\)")
_NUMBER = re.compile(r"NUMBER\((\d+),(\d+)\)")


def _is_role_in_session(principals: list[Principal]) -> str:
    return " OR ".join(f"IS_ROLE_IN_SESSION({quote_literal(p)})" for p in principals)


def masked_value(policy: MaskingPolicy, type_: str) -> str | None:
    """The masked value of `val` in Snowflake SQL, equal to what Trino's mask gives for the
    same value (pdp.core.datapolicy), or None when it cannot be made exact.

    Trino's Snowflake connector reads NUMBER(p,s) with s > 0 as decimal(p,s), FLOAT as double;
    a NUMBER(p,0) (INT and its synonyms) it reads as bigint in some releases and as decimal in
    others, so a hash of it (a number from bigint, NULL from decimal) and rounding it to tens
    are withheld."""
    upper = type_.upper()
    text = _VARCHAR.fullmatch(upper)
    if policy.kind is MaskKind.NULL:
        return "NULL"
    if text is None:
        return _not_text(policy, upper)
    bound = int(text.group(1))
    if policy.kind is MaskKind.CONSTANT:
        if policy.value is None or not isinstance(policy.value, str):
            return None  # Trino renders numbers and booleans as text in its own way
        return quote_literal(policy.value) if len(policy.value) <= bound else "NULL"
    if policy.kind is MaskKind.HASH:
        if bound < MIN_HASH_LENGTH:
            return "NULL"
        return _cut("UPPER(SHA2(val, 256))", bound, 64)
    if policy.kind is MaskKind.ROUND:
        return "NULL"  # Trino rounds numbers only
    return _cut(reveal(policy), bound, policy.count + len(REVEAL_PAD))


def _not_text(policy: MaskingPolicy, upper: str) -> str | None:
    if policy.kind is MaskKind.CONSTANT or not _NOT_TEXT.fullmatch(upper):
        return None  # Trino renders constants its own way; VARIANT and the like are unknown
    number = _NUMBER.fullmatch(upper)
    whole = number is not None and number.group(2) == "0"  # bigint or decimal in Trino
    if whole and (
        policy.kind is MaskKind.HASH or (policy.kind is MaskKind.ROUND and policy.count < 0)
    ):
        return None  # a number or NULL as hash; different ranges when rounded
    if policy.kind is MaskKind.ROUND:
        if number:
            return rounded(policy.count, int(number.group(1)), int(number.group(2)), upper)
        return None if upper.startswith("FLOAT") else "NULL"  # double rounding is not exact
    return "NULL"  # Trino's partial reveal and hash give NULL on these types


def _cut(expression: str, bound: int, longest: int) -> str:
    """Trino casts a string mask to the column's varchar(n), cutting it to n characters."""
    return expression if longest <= bound else f"SUBSTR({expression}, 1, {bound})"


SNOWFLAKE = Flavor(_is_role_in_session, masked_value, lambda t: "COLLATE" in t.upper(), str.upper)


# --- current ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Held:
    kind: str
    signature: str
    body: str


@dataclass(frozen=True)
class Current:
    policies: Mapping[str, Held]  # ours, by name, in the governed schema
    masks: Mapping[Securable, Mapping[str, tuple[str, ...]]]  # table -> column -> policy
    rows: Mapping[Securable, tuple[tuple[str, ...], tuple[str, ...]]]  # table -> (policy, cols)
    columns: Mapping[Securable, Mapping[str, str] | None]  # governed table -> column -> type


def read(
    session: SqlSession, schema: tuple[str, str], prefix: str, tables: Iterable[Securable]
) -> Current:
    """Our policies (found by name prefix), where any policy is set on the governed tables and
    on any other table our policies are set on, and the governed tables' columns."""
    where = qualified(schema)
    policies: dict[str, Held] = {}
    for kind, show in ((MASK, "MASKING POLICIES"), (ROWS, "ROW ACCESS POLICIES")):
        head = f"{prefix}_{'MASK' if kind == MASK else 'ROWS'}_"
        for record in session.execute(f"SHOW {show} IN SCHEMA {where}").records():
            name = str(record["name"])
            if name.startswith(head):
                described = session.execute(f"DESCRIBE {kind} {qualified((*schema, name))}")
                one = next(described.records())
                signature, body = str(one["signature"]), str(one["body"])
                policies[name] = Held(kind, signature, body)
    masks: dict[Securable, dict[str, tuple[str, ...]]] = {}
    rows: dict[Securable, tuple[tuple[str, ...], tuple[str, ...]]] = {}

    def note(record: Mapping[str, object], table: Securable) -> None:
        policy = (
            str(record["POLICY_DB"]),
            str(record["POLICY_SCHEMA"]),
            str(record["POLICY_NAME"]),
        )
        if str(record["POLICY_KIND"]) == "MASKING_POLICY":
            masks.setdefault(table, {})[str(record["REF_COLUMN_NAME"])] = policy
        else:
            # a JSON array of the column names the policy is given, in order
            args = json.loads(str(record["REF_ARG_COLUMN_NAMES"] or "[]"))
            rows[table] = (policy, tuple(str(a) for a in args))

    columns: dict[Securable, Mapping[str, str] | None] = {}
    governed = sorted(set(tables), key=lambda t: t.name)
    for table in governed:
        entity = quote_literal(qualified(table.name))
        for record in session.execute(
            f"SELECT * FROM TABLE({quote(table.name[0])}.INFORMATION_SCHEMA.POLICY_REFERENCES("
            f"REF_ENTITY_NAME => {entity}, REF_ENTITY_DOMAIN => 'table'))"
        ).records():
            note(record, table)
        listed = session.execute(f"DESCRIBE TABLE {qualified(table.name)}").records()
        columns[table] = {str(r["name"]): str(r["type"]) for r in listed}
    for name in sorted(policies):
        for record in session.execute(
            f"SELECT * FROM TABLE({quote(schema[0])}.INFORMATION_SCHEMA.POLICY_REFERENCES("
            f"POLICY_NAME => {quote_literal(qualified((*schema, name)))}))"
        ).records():
            ref = (str(record["REF_DATABASE_NAME"]), str(record["REF_SCHEMA_NAME"]))
            table = Securable("TABLE", (*ref, str(record["REF_ENTITY_NAME"])), "TABLE")
            if table not in columns:
                note(record, table)
    return Current(policies, masks, rows, columns)


# --- plan -------------------------------------------------------------------------------------


def plan(
    schema: tuple[str, str],
    prefix: str,
    wanted: Mapping[Securable, list[Wanted]],
    current: Current,
) -> list[Step]:
    """Tighten first: create policies, set their bodies and set them on columns and tables
    before any grant; unset and drop what is no longer wanted after every revoke."""
    return [*_tighten(schema, wanted, current), *_loosen(schema, prefix, wanted, current)]


def _tighten(
    schema: tuple[str, str], wanted: Mapping[Securable, list[Wanted]], current: Current
) -> list[Step]:
    steps: list[Step] = []
    created: set[str] = set()
    for table in sorted(wanted, key=lambda t: t.name):
        label = f"TABLE {qualified(table.name)}"

        def step(phase: Phase, text: str, label: str = label) -> None:
            steps.append(Step(phase, label, text, gate=label))

        for want in wanted[table]:
            full = qualified((*schema, want.name))
            held = current.policies.get(want.name)
            if held is None and want.name not in created:
                created.add(want.name)
                step(
                    Phase.TIGHTEN,
                    f"CREATE {want.kind} {full} AS {want.signature} RETURNS {want.returns} "
                    f"-> {want.body}",
                )
            elif held is not None and held.body != want.body and want.name not in created:
                created.add(want.name)
                step(Phase.TIGHTEN, f"ALTER {want.kind} {full} SET BODY -> {want.body}")
            ours = (*schema, want.name)
            on = qualified(table.name)
            if want.kind == MASK:
                column = want.columns[0]
                have = current.masks.get(table, {}).get(column)
                if have != ours:
                    force = " FORCE" if have is not None else ""
                    step(
                        Phase.TIGHTEN,
                        f"ALTER TABLE {on} MODIFY COLUMN {quote(column)} "
                        f"SET MASKING POLICY {full}{force}",
                    )
            else:
                have_rows = current.rows.get(table)
                cols = ", ".join(quote(c) for c in want.columns)
                add = f"ADD ROW ACCESS POLICY {full} ON ({cols})"
                if have_rows is None:
                    step(Phase.TIGHTEN, f"ALTER TABLE {on} {add}")
                elif have_rows != (ours, want.columns):
                    old = qualified(have_rows[0])
                    step(Phase.TIGHTEN, f"ALTER TABLE {on} DROP ROW ACCESS POLICY {old}, {add}")
    return steps


def _loosen(
    schema: tuple[str, str],
    prefix: str,
    wanted: Mapping[Securable, list[Wanted]],
    current: Current,
) -> list[Step]:
    steps: list[Step] = []
    keep = {w.name for ws in wanted.values() for w in ws}
    for table in sorted(current.masks.keys() | current.rows.keys(), key=lambda t: t.name):
        label = f"TABLE {qualified(table.name)}"
        want_names = {w.name for w in wanted.get(table, [])}
        on = qualified(table.name)
        for column, policy in sorted(current.masks.get(table, {}).items()):
            if _ours(policy, schema, prefix) and policy[2] not in want_names:
                text = f"ALTER TABLE {on} MODIFY COLUMN {quote(column)} UNSET MASKING POLICY"
                steps.append(Step(Phase.LOOSEN, label, text, gate=label))
        held_rows = current.rows.get(table)
        if held_rows and _ours(held_rows[0], schema, prefix) and held_rows[0][2] not in want_names:
            text = f"ALTER TABLE {on} DROP ROW ACCESS POLICY {qualified(held_rows[0])}"
            steps.append(Step(Phase.LOOSEN, label, text, gate=label))
    for name in sorted(current.policies.keys() - keep):
        full = qualified((*schema, name))
        steps.append(Step(Phase.LOOSEN, full, f"DROP {current.policies[name].kind} {full}"))
    return steps


def _ours(policy: tuple[str, ...], schema: tuple[str, str], prefix: str) -> bool:
    return policy[:2] == schema and policy[2].startswith(f"{prefix}_")
