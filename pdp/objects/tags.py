"""Tags the product sets by itself: the connection tag on data sources, `New` on columns."""

from __future__ import annotations

from pdp.objects.paths import escape_name

NEW_TAG = "New"
CONNECTIONS_TAG = "Connections"
_TECHNOLOGY_NAMES = {
    "trino": "Trino",
    "snowflake": "Snowflake",
    "databricks": "Databricks",
    "postgresql": "PostgreSQL",
}


def technology_tag_name(technology: str) -> str:
    return _TECHNOLOGY_NAMES.get(str(technology), str(technology).capitalize())


def connection_tag(technology: str, key: str, database: str, schema: str) -> str:
    """`Connections.<Technology>.<ConnectionKey>.<Database>.<Schema>`, root first, so a policy
    on `Connections.Trino.hc` covers a connection and `Connections.Trino.hc.hold.sales` one
    schema. Dots inside names are escaped as in dotted paths."""
    parts = (technology_tag_name(technology), key, database, schema)
    return ".".join((CONNECTIONS_TAG, *(escape_name(part) for part in parts)))
