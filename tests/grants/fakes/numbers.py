"""Number functions the fakes (and the Trino side of the equivalence tests) run in SQLite, whose
own `round` rounds binary floats and takes no negative places."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal


def round_half_away(value: int | float | str | None, places: int | None) -> int | float | None:
    """Rounding in decimal, half away from zero: Trino's round of a decimal, Snowflake's ROUND
    of a NUMBER, Spark's round (HALF_UP) of a decimal. Whole results come back as int."""
    if value is None or places is None:
        return None
    exact = Decimal(str(value)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    return int(exact) if places <= 0 else float(exact)


def conv(number: str | None, base: int, to: int) -> str | None:
    """Spark's conv from base 16 to base 10: unsigned 64 bits, or signed when `to` is negative
    (the only uses grant sync makes of it)."""
    if number is None:
        return None
    assert (base, abs(to)) == (16, 10), (base, to)
    value = int(number, 16) % 2**64
    if to < 0 and value >= 2**63:
        value -= 2**64
    return str(value)
