"""The seam to SQL platforms: one method, `execute(sql) -> Result`.

The Snowflake connector, psycopg and the in-memory grant ledger used in tests all sit behind it,
so the planner and reader never know which one they talk to."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Result:
    columns: tuple[str, ...]  # lower case, as the platform named them
    rows: list[tuple[Any, ...]]

    def records(self) -> Iterator[dict[str, Any]]:
        for row in self.rows:
            yield dict(zip(self.columns, row, strict=True))


class SqlSession(Protocol):
    def execute(self, sql: str) -> Result: ...

    def close(self) -> None: ...


class DbApiSession:
    """Any DB-API 2.0 connection (snowflake-connector-python, psycopg) as a SqlSession."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    def execute(self, sql: str) -> Result:
        cursor = self._connection.cursor()
        try:
            cursor.execute(sql)
            if cursor.description is None:
                return Result((), [])
            columns = tuple(str(d[0]).lower() for d in cursor.description)
            return Result(columns, [tuple(row) for row in cursor.fetchall()])
        finally:
            cursor.close()

    def close(self) -> None:
        self._connection.close()
