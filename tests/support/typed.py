"""A table with a column of each type the masks act on, and rows at the edges (NULLs, empty
strings, unicode, negative numbers, the types' bounds): read through PostgreSQL's governed
views natively (tests/grants/test_grants_pgview.py) and through Trino (tests/e2e)."""

from __future__ import annotations


def typed_table(schema: str) -> str:
    """The statements that create `schema`.typed and fill it."""
    return f"""
CREATE TABLE {schema}.typed (
  id int, name text, code varchar(20), big bigint, n int, tag varchar(8), city text,
  phone varchar(7), qty int, price numeric(10,2), note text, day date, flag boolean,
  ratio double precision
);
INSERT INTO {schema}.typed VALUES
  (1, 'Zoë 東京', 'abc', 42, 7, 'x', 'Zoë 東京', '55-0100', 15, 12.35, 'secret',
   '2024-05-01', true, 1.25),
  (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (3, '', 'É', -42, -7, 'y', 'ab', '12', -15, -12.35, '', '1999-12-31', false, -1.25),
  (4, 'a', 'b', 9223372036854775807, -2147483648, 'z', 'abc', '123456', 2147483647,
   99999999.99, 'x', '2000-01-01', true, 0)
"""
