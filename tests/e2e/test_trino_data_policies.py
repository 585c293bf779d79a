"""Trino's own OPA data-filtering system tests (TestOpaAccessControlDataFilteringSystem, see
real-trino.md section 7), ported to the real Trino 476 asking the real sidecar: row filtering,
column masking, both together; plus every mask kind on every common column type (Trino rejects
a mask whose type differs, so each generated expression must type-check), and hostile attribute
values reaching Trino only as SQL literals."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.conftest import E2E, POLICIES, PROPERTIES, USERS, eventually

# The first test also pays for creating the tables (and, run alone, for starting Trino).
pytestmark = pytest.mark.timeout(600)

S = "memory.sample_schema"
ROWS = [
    ("customer", "customer_one", 101),
    ("customer", "customer_two", 102),
    ("internal_user", "some_internal_user", 103),
    ("partner", "o'brien", 104),
]
DATA_POLICIES = """
  - name: sample-readers
    access: READ
    who: {anyone: true}
    what: {schemas: [e2e.memory.sample_schema]}
masks:
  - name: name-last-3
    columns: {tags: [PII.Name]}
    what: {dataSources: [e2e.memory.sample_schema.restricted_table]}
    mask: {keepLast: 3}
  - name: phone-null
    columns: {names: [user_phone]}
    what: {dataSources: [e2e.memory.sample_schema.restricted_table]}
    mask: null
  - name: name-null-for-frank            # NULL beats the partial reveal above
    columns: {names: [user_name]}
    what: {dataSources: [e2e.memory.sample_schema.restricted_table]}
    mask: null
    onlyFor: {users: [frank]}
TYPED_MASKS
rowFilters:
  - name: no-customers
    what: {dataSources: [e2e.memory.sample_schema.restricted_table]}
    where: "user_type <> 'customer'"
    exceptFor: {users: [mallory]}
  - name: by-name-attribute
    what: {dataSources: [e2e.memory.sample_schema.restricted_table]}
    where: "user_name IN @attribute(names)"
    onlyFor: {users: [mallory]}
"""
HOSTILE = "customer_one'); DROP TABLE memory.sample_schema.restricted_table; --"
DATA_USERS = f"""
  mallory:
    attributes:
      names: ["o'brien", "{HOSTILE}", "x' OR '1'='1"]
"""
TYPES = {
    "v": ("varchar", "'alice@example.com'"),
    "v5": ("varchar(5)", "'abcde'"),
    "v40": ("varchar(40)", "'a bounded value'"),
    "c3": ("char(3)", "'abc'"),
    "ti": ("tinyint", "TINYINT '7'"),
    "si": ("smallint", "SMALLINT '1234'"),
    "i": ("integer", "123456"),
    "b": ("bigint", "BIGINT '1234567890123'"),
    "d": ("decimal(10,2)", "DECIMAL '1234.56'"),
    "dbl": ("double", "DOUBLE '1234.5678'"),
    "r": ("real", "REAL '12.5'"),
    "dt": ("date", "DATE '2024-02-29'"),
    "ts": ("timestamp(3)", "TIMESTAMP '2024-02-29 12:34:56.789'"),
    "bo": ("boolean", "true"),
    "arr": ("array(varchar)", "ARRAY['a', 'b']"),
    "rw": ("row(a integer, b varchar)", "ROW(1, 'x')"),
    "m": ("map(varchar, integer)", "MAP(ARRAY['k'], ARRAY[1])"),
}
MASK_KINDS = {
    "typed_null": "null",
    "typed_hash": "hash",
    "typed_constant": "{constant: 0}",
    "typed_reveal": "{keepLast: 4}",
    "typed_round": "{round: -1}",
}


def typed_masks() -> str:
    columns = ", ".join(TYPES)
    return "".join(
        f"  - name: all-{table}\n"
        f"    columns: {{names: [{columns}]}}\n"
        f"    what: {{dataSources: [e2e.memory.sample_schema.{table}]}}\n"
        f"    mask: {mask}\n"
        for table, mask in MASK_KINDS.items()
    )


def _values(rows: list[tuple[str, str, int]]) -> str:
    return ", ".join("('{}', '{}', {})".format(t, n.replace("'", "''"), p) for t, n, p in rows)


@pytest.fixture(scope="module")
def data(e2e: E2E) -> Iterator[E2E]:
    columns = "user_type varchar, user_name varchar(20), user_phone integer"
    typed = ", ".join(f"{name} {type_}" for name, (type_, _) in TYPES.items())
    values = ", ".join(value for _, value in TYPES.values())
    nulls = ", ".join("NULL" for _ in TYPES)
    extremes = ", ".join(  # rounding these up leaves the type's range
        {"i": "2147483647", "d": "DECIMAL '99999999.99'"}.get(name, "NULL") for name in TYPES
    )
    first, *others = MASK_KINDS
    statements = [
        f"CREATE SCHEMA {S}",
        f"CREATE TABLE {S}.restricted_table ({columns})",
        f"INSERT INTO {S}.restricted_table VALUES {_values(ROWS)}",
        f"CREATE TABLE {S}.unrestricted_table AS SELECT * FROM {S}.restricted_table",
        f"CREATE TABLE {S}.{first} (k integer, {typed})",
        f"INSERT INTO {S}.{first} VALUES (1, {values}), (2, {nulls}), (3, {extremes})",
        *(f"CREATE TABLE {S}.{table} AS SELECT * FROM {S}.{first}" for table in others),
    ]
    for sql in statements:
        e2e.query("admin", sql)
    policies = POLICIES + DATA_POLICIES.replace("TYPED_MASKS\n", typed_masks())
    e2e.write_policies(policies)
    e2e.tree.write("users.yaml", USERS + DATA_USERS)
    try:
        eventually(lambda: _names(e2e, "bob") == {"****ser", "****ien"}, 15)
        yield e2e
    finally:
        e2e.write_policies(POLICIES)
        e2e.tree.write("users.yaml", USERS)
        for table in ("restricted_table", "unrestricted_table", *MASK_KINDS):
            e2e.query("admin", f"DROP TABLE IF EXISTS {S}.{table}")
        e2e.query("admin", f"DROP SCHEMA IF EXISTS {S}")


def _names(e2e: E2E, user: str, table: str = "restricted_table") -> set[object]:
    try:
        return e2e.column(user, f"SELECT user_name FROM {S}.{table}")
    except Exception:
        return set()


def _rows(e2e: E2E, user: str, table: str) -> set[tuple[object, ...]]:
    rows = e2e.query(user, f"SELECT user_type, user_name, user_phone FROM {S}.{table}")
    return {tuple(row) for row in rows}


ALL = {(t, n, p) for t, n, p in ROWS}


def test_row_filtering(data: E2E) -> None:
    """testRowFilteringEnabled: admin sees every row of both tables, bob only non-customers of
    the restricted one."""
    assert _rows(data, "admin", "restricted_table") == ALL
    assert _rows(data, "admin", "unrestricted_table") == ALL
    assert data.column("bob", f"SELECT user_type FROM {S}.restricted_table") == {
        "internal_user",
        "partner",
    }
    assert _rows(data, "bob", "unrestricted_table") == ALL


def test_column_masking(data: E2E) -> None:
    """testBatchColumnMasking: bob's names masked to the last 3 characters, phones NULL,
    user_type untouched; admin and the unrestricted table unmasked."""
    assert _rows(data, "bob", "restricted_table") == {
        ("internal_user", "****ser", None),
        ("partner", "****ien", None),
    }
    assert data.column("admin", f"SELECT user_name FROM {S}.restricted_table") == {
        n for _, n, _ in ROWS
    }
    assert _rows(data, "bob", "unrestricted_table") == ALL


def test_column_masking_and_row_filtering(data: E2E) -> None:
    """testColumnMaskingAndRowFiltering: with a NULL mask on user_name (frank only, and it
    wins over the partial reveal) and the row filter."""
    assert data.column("frank", f"SELECT user_name FROM {S}.restricted_table") == {None}
    assert data.column("frank", f"SELECT user_type FROM {S}.restricted_table") == {
        "internal_user",
        "partner",
    }


def test_filter_columns_are_usable_in_where_and_aggregates(data: E2E) -> None:
    assert data.query("bob", f"SELECT count(*) FROM {S}.restricted_table") == [[2]]
    assert data.query(
        "bob", f"SELECT count(*) FROM {S}.restricted_table WHERE user_type = 'customer'"
    ) == [[0]]


def test_hostile_attribute_values_are_only_literals(data: E2E) -> None:
    """mallory's attribute values contain quotes, a semicolon, a DROP TABLE and a tautology:
    the one value equal to a row's name matches that row, nothing else happens."""
    assert _rows(data, "mallory", "restricted_table") == {("partner", "****ien", None)}
    assert _rows(data, "admin", "restricted_table") == ALL  # the table is still there


@pytest.mark.parametrize("table", sorted(MASK_KINDS))
def test_every_mask_kind_type_checks_on_every_column_type(data: E2E, table: str) -> None:
    masked = data.query("bob", f"SELECT * FROM {S}.{table} ORDER BY k")
    plain = data.query("admin", f"SELECT * FROM {S}.{table} ORDER BY k")
    assert len(masked) == len(plain) == 3
    assert masked != plain


def test_mask_values(data: E2E) -> None:
    def row(table: str) -> dict[str, object]:
        rows = data.query("bob", f"SELECT {', '.join(TYPES)} FROM {S}.{table} WHERE k = 1")
        return dict(zip(TYPES, rows[0], strict=True))

    assert all(value is None for value in row("typed_null").values())
    hashed = row("typed_hash")
    assert isinstance(hashed["v"], str) and len(hashed["v"]) == 64
    assert isinstance(hashed["v40"], str) and len(hashed["v40"]) == 40
    assert hashed["v5"] is None and hashed["c3"] is None  # too short for a hash
    assert isinstance(hashed["b"], int) and hashed["b"] != 1234567890123
    assert isinstance(hashed["i"], int) and hashed["i"] != 123456
    assert hashed["si"] is None and hashed["dbl"] is None and hashed["arr"] is None
    constant = row("typed_constant")
    assert (constant["v"], constant["v5"], constant["c3"]) == ("0", "0", "0  ")
    assert (constant["i"], constant["b"], constant["ti"], constant["dbl"]) == (0, 0, 0, 0.0)
    assert constant["dt"] is None and constant["bo"] is None and constant["arr"] is None
    revealed = row("typed_reveal")
    assert (revealed["v"], revealed["v5"], revealed["c3"]) == ("****.com", "****b", "***")
    assert revealed["i"] is None and revealed["dt"] is None
    rounded = row("typed_round")
    assert (rounded["i"], rounded["si"], rounded["ti"]) == (123460, 1230, 10)
    assert rounded["b"] == 1234567890120 and rounded["dbl"] == 1230.0
    assert str(rounded["d"]) == "1230.00" and rounded["v"] is None
    # out of range after rounding: NULL, not a failed query
    assert data.query("bob", f"SELECT i, d FROM {S}.typed_round WHERE k = 3") == [[None, None]]
    # NULL stays NULL under every mask but a constant
    rows = data.query("bob", f"SELECT v, i FROM {S}.typed_reveal WHERE k = 2")
    assert rows == [[None, None]]


def test_a_cluster_without_the_data_policy_uris_denies_what_it_would_not_filter(
    data: E2E,
) -> None:
    """With `pdp.trino.data.policy.uris=absent` (a Trino configured without the row-filter and
    mask URIs would read the restricted table unfiltered and unmasked), bob's reads of it are
    denied; the unrestricted table and admins are unaffected; and back."""
    data.write_properties(PROPERTIES + "pdp.trino.data.policy.uris=absent\n")
    try:
        eventually(lambda: _names(data, "bob") == set(), 15)
        data.denied("bob", f"SELECT user_type FROM {S}.restricted_table")
        assert _rows(data, "bob", "unrestricted_table") == ALL
        assert _rows(data, "admin", "restricted_table") == ALL
    finally:
        data.write_properties(PROPERTIES)
    eventually(lambda: _names(data, "bob") == {"****ser", "****ien"}, 15)
