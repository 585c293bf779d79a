"""The connection tag orders its parts root first."""

import pytest

from pdp.objects import connection_tag


@pytest.mark.parametrize(
    ("technology", "key", "database", "schema", "tag"),
    [
        ("trino", "hc", "hold", "sales", "Connections.Trino.hc.hold.sales"),
        ("snowflake", "sf", "DB", "PUBLIC", "Connections.Snowflake.sf.DB.PUBLIC"),
        ("databricks", "dbx", "main", "x", "Connections.Databricks.dbx.main.x"),
        ("postgresql", "pg", "app", "public", "Connections.PostgreSQL.pg.app.public"),
        ("trino", "hc", "v1.2", "s", "Connections.Trino.hc.v1\\.2.s"),
    ],
)
def test_connection_tag(technology, key, database, schema, tag):
    assert connection_tag(technology, key, database, schema) == tag
