"""Typed reads from a YAML mapping that report problems with file, line and key path."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Any, TypeVar

from pdp.config.errors import Collector
from pdp.config.yamlsource import line_of

E = TypeVar("E", bound=StrEnum)


class Fields:
    def __init__(self, data: Any, where: str, found: Collector, known: Iterable[str]) -> None:
        self.where, self.found = where, found
        if not isinstance(data, dict):
            found.error(line_of(data), f"{where}: expected a mapping, got {type(data).__name__}")
            data = {}
        self.data = data
        for key in data:
            if key not in known:
                found.error(
                    line_of(data, key),
                    f"{where}: unknown key {key!r} (expected one of {', '.join(known)})",
                )

    def line(self, key: str | None = None) -> int | None:
        return line_of(self.data, key)

    def text(self, key: str, required: bool = False, default: str = "") -> str:
        value = self.data.get(key)
        if value is None:
            if required:
                self.found.error(self.line(), f"{self.where}: missing required key {key!r}")
            return default
        if not isinstance(value, str | int | float) or isinstance(value, bool) or value == "":
            self.found.error(self.line(key), f"{self.where}.{key}: expected a non-empty string")
            return default
        return str(value)

    def bool(self, key: str, default: bool = False) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            self.found.error(self.line(key), f"{self.where}.{key}: expected true or false")
            return default
        return value

    def enum(self, key: str, kind: type[E], default: E) -> E:
        raw = self.data.get(key)
        if raw is None:
            return default
        for member in kind:
            if str(raw).casefold() == member.value.casefold():
                return member
        choices = ", ".join(m.value for m in kind)
        self.found.error(
            self.line(key), f"{self.where}.{key}: unknown value {raw!r} (expected one of {choices})"
        )
        return default

    def strings(self, key: str) -> list[str]:
        value = self.data.get(key, [])
        if not isinstance(value, list):
            self.found.error(self.line(key), f"{self.where}.{key}: expected a list of strings")
            return []
        result = []
        for index, item in enumerate(value):
            if isinstance(item, str) and item:
                result.append(item)
            else:
                self.found.error(
                    line_of(value, index),
                    f"{self.where}.{key}[{index}]: expected a non-empty string, got {item!r}",
                )
        return result

    def list(self, key: str) -> list[Any]:
        value = self.data.get(key, [])
        if not isinstance(value, list):
            self.found.error(self.line(key), f"{self.where}.{key}: expected a list")
            return []
        return value

    def attributes(self, key: str) -> dict[str, frozenset[str]]:
        value = self.data.get(key, {})
        if not isinstance(value, dict):
            self.found.error(
                self.line(key),
                f"{self.where}.{key}: expected a mapping of attribute name to a list of values",
            )
            return {}
        result = {}
        for name, values in value.items():
            if isinstance(values, str):
                values = [values]
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                self.found.error(
                    line_of(value, name),
                    f"{self.where}.{key}.{name}: expected a string or a list of strings",
                )
                continue
            result[str(name)] = frozenset(values)
        return result
