"""The OPA plugin's request most sidecar tests ask: may a user read column id of
hive.sales.orders (the worked example's table)."""

from __future__ import annotations

from typing import Any


def select_orders(user: str = "alice", **context: Any) -> dict[str, Any]:
    """Trino's `SelectFromColumns` check for `user` (no groups); `context`: what else the
    request's context carries (softwareStack, queryId, properties)."""
    return {
        "input": {
            "context": {"identity": {"user": user, "groups": []}, **context},
            "action": {
                "operation": "SelectFromColumns",
                "resource": {
                    "table": {
                        "catalogName": "hive",
                        "schemaName": "sales",
                        "tableName": "orders",
                        "columns": ["id"],
                    }
                },
            },
        }
    }
