"""Rows to records, shared by the store (`pdp.store.store`) and the legacy model
(`pdp.store.legacy`): both keep their records as frozen dataclasses whose fields are named after
the columns they are read from, and both check a technology name the same way."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import fields
from typing import Any, TypeVar

from sqlalchemy import Row

from pdp.objects.errors import InvalidInput
from pdp.policy.model import Technology

R = TypeVar("R")
NO_CONVERSION: Mapping[str, Callable[[Any], Any]] = {}


_FIELDS: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in fields(cls))
    return names


def record(
    cls: type[R],
    row: Row[Any],
    convert: Mapping[str, Callable[[Any], Any]] = NO_CONVERSION,
    /,
    **given: Any,
) -> R:
    """A `cls` whose every field is the row's column of the same name, passed through
    `convert[field]` where there is one (enums, tuples), except the fields `given` here (what
    the row does not hold as such: a path, a name from another table)."""
    values: dict[str, Any] = {}
    for name in _field_names(cls):
        if name in given:
            values[name] = given[name]
            continue
        value = getattr(row, name)
        convert_it = convert.get(name)
        values[name] = value if convert_it is None else convert_it(value)
    return cls(**values)


def technology(value: Technology | str, field: str = "technology") -> Technology:
    """`value` as a technology, or 400 naming `field` and the known ones."""
    try:
        return Technology(value)
    except ValueError:
        known = ", ".join(t.value for t in Technology)
        raise InvalidInput(field, value, f"expected one of {known}") from None
