"""YAML whose mappings and sequences remember the line of each entry, for precise errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from pdp.config.errors import ConfigError, Problem


class LineDict(dict):
    line: int
    lines: dict[Any, int]


class LineList(list):
    line: int
    lines: list[int]


class _Loader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> LineDict:
        result = LineDict()
        result.line = node.start_mark.line + 1
        result.lines = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in result:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            result[key] = self.construct_object(value_node, deep=True)
            result.lines[key] = key_node.start_mark.line + 1
        return result

    def construct_sequence(self, node: yaml.SequenceNode, deep: bool = False) -> LineList:
        result = LineList(self.construct_object(child, deep=True) for child in node.value)
        result.line = node.start_mark.line + 1
        result.lines = [child.start_mark.line + 1 for child in node.value]
        return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _Loader.construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _Loader.construct_sequence)


def read_text(path: Path) -> str:
    """A configuration file's text; the only way configuration is read from disk."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        problem = Problem(str(path), None, f"cannot read: {exc.strerror or exc}")
        raise ConfigError([problem]) from exc


def read_yaml(path: Path) -> Any:
    """A YAML configuration file, its mappings and sequences knowing their lines."""
    return load_yaml(read_text(path), str(path))


def load_yaml(text: str, file: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise ConfigError([Problem(file, line, f"invalid YAML: {exc.problem or exc}")]) from exc
    except yaml.YAMLError as exc:
        raise ConfigError([Problem(file, None, f"invalid YAML: {exc}")]) from exc


def line_of(container: Any, key: Any = None) -> int | None:
    """Line of `key` inside `container` (or of the container itself)."""
    if key is None:
        return getattr(container, "line", None)
    lines = getattr(container, "lines", None)
    if isinstance(container, LineDict) and lines is not None:
        return lines.get(key, container.line)
    if isinstance(container, LineList) and lines is not None and isinstance(key, int):
        return lines[key] if key < len(lines) else container.line
    return getattr(container, "line", None)
