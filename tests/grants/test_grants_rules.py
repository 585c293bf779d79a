"""The privilege tables, as decision tables: object type x policy access -> native privileges."""

from __future__ import annotations

import pytest

from pdp.core import Access, AccessGrantMapping, PolicyGrant
from pdp.grants.databricks import DatabricksDialect
from pdp.grants.postgres import PostgresDialect
from pdp.grants.snowflake import SnowflakeDialect
from pdp.policy import ObjectType as T

R, W = Access.READ, Access.WRITE
DML = {"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE"}

SNOWFLAKE = [
    (T.TABLE, R, {"SELECT"}),
    (T.TABLE, W, DML),
    *[
        (kind, access, {"SELECT"})
        for kind in (
            T.VIEW,
            T.MATERIALIZED_VIEW,
            T.EXTERNAL_TABLE,
            T.EVENT_TABLE,
            T.ICEBERG_TABLE,
            T.DYNAMIC_TABLE,
        )
        for access in (R, W)
    ],
]
DATABRICKS = [
    (T.TABLE, R, {"SELECT"}),
    (T.TABLE, W, {"SELECT", "MODIFY"}),
    (T.EXTERNAL_TABLE, R, {"SELECT"}),
    (T.EXTERNAL_TABLE, W, {"SELECT", "MODIFY"}),
    *[
        (kind, access, {"SELECT"})
        for kind in (T.VIEW, T.MATERIALIZED_VIEW, T.STREAMING_TABLE)
        for access in (R, W)
    ],
    (T.FOREIGN_TABLE, R, {"SELECT"}),
    (T.FOREIGN_TABLE, W, set()),  # a write policy on a foreign table issues nothing at all
    (T.VOLUME, R, {"READ_VOLUME"}),
    (T.VOLUME, W, {"READ_VOLUME", "WRITE_VOLUME"}),
    (T.FUNCTION, R, {"EXECUTE"}),
    (T.FUNCTION, W, {"EXECUTE", "MANAGE"}),
    (T.MODEL, R, {"EXECUTE"}),
    (T.MODEL, W, {"EXECUTE", "MANAGE"}),
]
POSTGRES = [
    (T.TABLE, R, {"SELECT"}),
    (T.TABLE, W, DML),
    *[
        (kind, access, {"SELECT"})
        for kind in (T.VIEW, T.MATERIALIZED_VIEW, T.FOREIGN_TABLE)
        for access in (R, W)
    ],
]
DEFAULT = AccessGrantMapping()


@pytest.mark.parametrize(
    ("dialect", "table"),
    [
        (SnowflakeDialect(), SNOWFLAKE),
        (DatabricksDialect(), DATABRICKS),
        (PostgresDialect(), POSTGRES),
    ],
    ids=["snowflake", "databricks", "postgresql"],
)
def test_privilege_table(dialect, table) -> None:
    for kind, access, expected in table:
        rule = dialect.rule(kind)
        assert rule is not None, kind
        got = rule.privileges(DEFAULT, (PolicyGrant("p", access),))
        assert got == expected, (kind, access)


@pytest.mark.parametrize(
    ("dialect", "kinds"),
    [
        (SnowflakeDialect(), [T.STREAMING_TABLE, T.FOREIGN_TABLE, T.VOLUME, T.FUNCTION, T.MODEL]),
        (DatabricksDialect(), [T.EVENT_TABLE, T.ICEBERG_TABLE, T.DYNAMIC_TABLE]),
        (PostgresDialect(), [T.EXTERNAL_TABLE, T.VOLUME, T.STREAMING_TABLE]),
    ],
)
def test_kinds_a_platform_lacks_get_nothing(dialect, kinds) -> None:
    assert all(dialect.rule(kind) is None for kind in kinds)


def test_read_and_write_policies_combine_but_foreign_write_adds_nothing() -> None:
    foreign = DatabricksDialect().rule(T.FOREIGN_TABLE)
    both = (PolicyGrant("r", R), PolicyGrant("w", W))
    assert foreign.privileges(DEFAULT, both) == {"SELECT"}
    assert foreign.privileges(DEFAULT, (PolicyGrant("w", W),)) == frozenset()


def test_the_pdp_mapping_decides_what_a_write_policy_yields() -> None:
    # A write policy mapped to READ only (Trino lets it SELECT, nothing more) gets SELECT only.
    read_only = AccessGrantMapping(write=frozenset({Access.READ}))
    table = SnowflakeDialect().rule(T.TABLE)
    assert table.privileges(read_only, (PolicyGrant("w", W),)) == {"SELECT"}
    # OWN has no native counterpart: OWNERSHIP is never granted.
    owning = AccessGrantMapping(write=frozenset({Access.READ, Access.WRITE, Access.OWN}))
    assert table.privileges(owning, (PolicyGrant("w", W),)) == DML
