"""The PostgreSQL renderings of the masks, as a decision table: (mask, PostgreSQL column type)
-> the SQL of the governed view, NULL where Trino's mask is NULL, or None (withheld) where no
rendering is known to give Trino's value. The values themselves are compared with Trino's on a
real server in test_grants_pgview.py and, through a real Trino, in tests/e2e."""

from __future__ import annotations

import pytest

from pdp.core.model import Constant, MaskKind
from pdp.grants.pgmask import masked, trino_type
from pdp.policy.model import MaskingPolicy, Targets

C = '"c"'
HEX = "encode(sha256(convert_to(\"c\", 'UTF8')), 'hex')"
INT_HEX = "encode(sha256(convert_to(CAST(\"c\" AS text), 'UTF8')), 'hex')"


def _mask(kind: MaskKind, value: Constant | None = None, count: int = 0) -> MaskingPolicy:
    return MaskingPolicy("m", kind, Targets(), frozenset({"c"}), value=value, count=count)


@pytest.mark.parametrize(
    ("pg", "trino"),
    [
        ("text", "varchar"),
        ("character varying", "varchar"),
        ("character varying(20)", "varchar(20)"),
        ("integer", "integer"),
        ("numeric(10,2)", "decimal(10,2)"),
        ("numeric(39,2)", None),  # beyond Trino's decimal
        ("numeric", None),  # the connector ignores it by default (decimal-mapping strict)
        ("timestamp without time zone", "timestamp(6)"),
        ("timestamp(3) without time zone", "timestamp(3)"),
        ("timestamp with time zone", None),
        ("character(5)", None),
        ("integer[]", None),
        ("json", None),
    ],
)
def test_the_trino_type_of_a_postgresql_column(pg: str, trino: str | None) -> None:
    assert trino_type(pg) == trino


@pytest.mark.parametrize(
    ("mask", "pg", "sql"),
    [
        # null: any type, even one Trino does not map
        (_mask(MaskKind.NULL), "json", "CAST(NULL AS json)"),
        (_mask(MaskKind.NULL), "numeric", "CAST(NULL AS numeric)"),
        # hash: upper-case hex of sha256 for strings, cut to the bound; integers from its bytes
        (_mask(MaskKind.HASH), "text", f"CAST(upper({HEX}) AS text)"),
        (
            _mask(MaskKind.HASH),
            "character varying(20)",
            f"CAST(substr(upper({HEX}), 1, 20) AS character varying(20))",
        ),
        (_mask(MaskKind.HASH), "character varying(8)", "CAST(NULL AS character varying(8))"),
        (
            _mask(MaskKind.HASH),
            "bigint",
            f"CAST(CAST('x' || left({INT_HEX}, 16) AS bit(64)) AS bigint)",
        ),
        (
            _mask(MaskKind.HASH),
            "integer",
            f"CAST(CAST('x' || left({INT_HEX}, 8) AS bit(32)) AS integer)",
        ),
        (_mask(MaskKind.HASH), "smallint", "CAST(NULL AS smallint)"),  # Trino: NULL
        (_mask(MaskKind.HASH), "date", "CAST(NULL AS date)"),
        (_mask(MaskKind.HASH), "numeric", None),
        (_mask(MaskKind.HASH), "character(20)", None),
        # constants: Trino's value where it has one, NULL where Trino's is NULL
        (_mask(MaskKind.CONSTANT, "n/a"), "text", "CAST('n/a' AS text)"),
        (_mask(MaskKind.CONSTANT, "it's"), "text", "CAST('it''s' AS text)"),
        (
            _mask(MaskKind.CONSTANT, "n/a"),
            "character varying(2)",
            "CAST(NULL AS character varying(2))",
        ),
        (_mask(MaskKind.CONSTANT, True), "text", "CAST('true' AS text)"),
        (_mask(MaskKind.CONSTANT, -5), "integer", "CAST(-5 AS integer)"),
        (_mask(MaskKind.CONSTANT, "x"), "integer", "CAST(NULL AS integer)"),
        (_mask(MaskKind.CONSTANT, 1.5), "numeric(10,1)", "CAST('1.5' AS numeric(10,1))"),
        (_mask(MaskKind.CONSTANT, 1.25), "numeric(10,1)", None),  # would round
        (_mask(MaskKind.CONSTANT, 0.1), "double precision", "CAST('0.1' AS double precision)"),
        (_mask(MaskKind.CONSTANT, False), "boolean", "CAST(FALSE AS boolean)"),
        (_mask(MaskKind.CONSTANT, "2020-01-01"), "date", "CAST('2020-01-01' AS date)"),
        (_mask(MaskKind.CONSTANT, "20200101"), "date", None),  # Python reads it, Trino may not
        (
            _mask(MaskKind.CONSTANT, "2020-01-01 10:00:00.123"),
            "timestamp(3) without time zone",
            "CAST('2020-01-01 10:00:00.123' AS timestamp(3) without time zone)",
        ),
        (
            _mask(MaskKind.CONSTANT, "2020-01-01 10:00:00.1234"),
            "timestamp(3) without time zone",
            None,
        ),
        # partial reveals: strings only (NULL elsewhere, as in Trino)
        (
            _mask(MaskKind.KEEP_FIRST, count=2),
            "text",
            'CAST(CASE WHEN "c" IS NULL THEN NULL WHEN length("c") > 2 THEN '
            "concat(substr(\"c\", 1, 2), '****') ELSE '****' END AS text)",
        ),
        (
            _mask(MaskKind.KEEP_LAST, count=4),
            "character varying(6)",
            'CAST(substr(CASE WHEN "c" IS NULL THEN NULL WHEN length("c") > 4 THEN '
            "concat('****', substr(\"c\", length(\"c\") - 4 + 1)) ELSE '****' END, 1, 6) "
            "AS character varying(6))",
        ),
        (_mask(MaskKind.KEEP_FIRST, count=2), "integer", "CAST(NULL AS integer)"),
        (_mask(MaskKind.KEEP_FIRST, count=-1), "text", "CAST(NULL AS text)"),
        # rounding: numeric rounding of integers and decimals, NULL out of range
        (_mask(MaskKind.ROUND, count=1), "integer", C),  # nothing to round
        (
            _mask(MaskKind.ROUND, count=-1),
            "integer",
            'CASE WHEN round(CAST("c" AS numeric(38, 0)), -1) BETWEEN -2147483648 AND '
            '2147483647 THEN CAST(round(CAST("c" AS numeric(38, 0)), -1) AS integer) END',
        ),
        (
            _mask(MaskKind.ROUND, count=1),
            "numeric(10,2)",
            'CASE WHEN abs(round(CAST("c" AS numeric(38, 2)), 1)) < 100000000 THEN '
            'CAST(round(CAST("c" AS numeric(38, 2)), 1) AS numeric(10,2)) END',
        ),
        (_mask(MaskKind.ROUND, count=2), "numeric(10,2)", C),
        (_mask(MaskKind.ROUND, count=1), "double precision", None),  # Trino rounds binary
        (_mask(MaskKind.ROUND, count=1), "real", None),
        (_mask(MaskKind.ROUND, count=-39), "bigint", None),
        (_mask(MaskKind.ROUND, count=1), "text", "CAST(NULL AS text)"),
    ],
)
def test_each_mask_renders_as_trino_masks_or_is_withheld(
    mask: MaskingPolicy, pg: str, sql: str | None
) -> None:
    assert masked(mask, C, pg) == sql
