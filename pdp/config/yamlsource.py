"""YAML whose mappings and sequences remember the line of each entry, for precise errors.

A file whose content is JSON (which is YAML) is parsed by orjson, 30 times faster than libyaml
on a registry of 100,000 tables; its lines are found only when a problem is reported, by
parsing the same text as YAML then (so errors name the same file:line either way)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import yaml

from pdp.config.errors import ConfigError, Problem

_STR = "tag:yaml.org,2002:str"


class _Lined:
    """A container read by the JSON fast path (`_at`: its text) finds its lines on first use:
    those of its twin in the YAML parse of the same text."""

    __slots__ = ()
    _at: _Json
    line: Any
    lines: Any

    def __getattr__(self, name: str) -> Any:
        if name not in ("line", "lines"):
            raise AttributeError(name)
        twin = self._at.twin(self)  # (no `_at`: an AttributeError, as for any missing line)
        self.line = getattr(twin, "line", None)
        self.lines = getattr(twin, "lines", None) or type(self)()
        return getattr(self, name)


class LineDict(_Lined, dict):
    __slots__ = ("_at", "line", "lines")  # (slots: the fast path builds 350,000 of them)
    line: int
    lines: dict[Any, int]


class LineList(_Lined, list):
    __slots__ = ("_at", "line", "lines")
    line: int
    lines: list[int]


class _Lines(yaml.constructor.SafeConstructor):
    """Mappings and sequences that know their lines (from the nodes' marks)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> LineDict:
        result = LineDict()
        result.line = node.start_mark.line + 1
        result.lines = {}
        value = self._value
        for key_node, value_node in node.value:
            key = value(key_node)
            if key in result:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            result[key] = value(value_node)
            result.lines[key] = key_node.start_mark.line + 1
        return result

    def construct_sequence(self, node: yaml.SequenceNode, deep: bool = False) -> LineList:
        value = self._value
        result = LineList(value(child) for child in node.value)
        result.line = node.start_mark.line + 1
        result.lines = [child.start_mark.line + 1 for child in node.value]
        return result

    def _value(self, node: yaml.Node) -> Any:
        # Most nodes are plain strings: taken as they are, without construct_object's
        # bookkeeping (a tenth of the time of a large registry).
        if node.tag == _STR and type(node) is yaml.ScalarNode:
            return node.value
        return self.construct_object(node, deep=True)


class _Loader(_Lines, yaml.SafeLoader):
    """The pure-Python parser, where PyYAML was built without libyaml."""


_MAPPING = yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG
_SEQUENCE = yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG
# (the stubs type constructors by loader class; the mixin's methods serve both loaders)
_construct_mapping: Any = _Lines.construct_mapping
_construct_sequence: Any = _Lines.construct_sequence
_Loader.add_constructor(_MAPPING, _construct_mapping)
_Loader.add_constructor(_SEQUENCE, _construct_sequence)
_LOADER: type[yaml.SafeLoader] | type[yaml.CSafeLoader] = _Loader
if yaml.__with_libyaml__:  # the constraints' PyYAML wheels include it

    class _CLoader(_Lines, yaml.CSafeLoader):
        """libyaml's parser (the pure one takes minutes on a registry of 100,000 tables); its
        nodes carry the same marks, so the lines of values and errors are the same."""

    _CLoader.add_constructor(_MAPPING, _construct_mapping)
    _CLoader.add_constructor(_SEQUENCE, _construct_sequence)
    _LOADER = _CLoader


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
    if text.lstrip()[:1] in ("{", "["):
        try:
            return _Json(text, file).load()
        except _NotJson:
            pass
    return _load_yaml(text, file)


def _load_yaml(text: str, file: str) -> Any:
    try:
        return yaml.load(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise ConfigError([Problem(file, line, f"invalid YAML: {exc.problem or exc}")]) from exc
    except yaml.YAMLError as exc:
        raise ConfigError([Problem(file, None, f"invalid YAML: {exc}")]) from exc


class _NotJson(Exception):
    """The text is not JSON, or not JSON that reads the same as YAML: read it as YAML."""


# Each key of a JSON object is a string then a colon: at least as many matches as keys (more
# when a string holds `":`), so as many as the parsed objects hold keys means none was repeated
# (orjson keeps the last of duplicate keys; YAML refuses them).
_KEY_END = re.compile(r'"\s*:')
# A surrogate pair escape: one character for orjson, two for PyYAML.
_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")


class _Json:
    """One text parsed by orjson into LineDict/LineList; their lines are looked up in the
    YAML parse of the text when first asked for."""

    def __init__(self, text: str, file: str) -> None:
        self.text, self.file = text, file
        self.keys = 0
        self.root: LineDict | LineList | None = None
        self.twins: dict[int, Any] | None = None

    def load(self) -> Any:
        try:
            document = orjson.loads(self.text)
        except orjson.JSONDecodeError as exc:
            raise _NotJson from exc
        self.root = self._wrap(document)
        if self.keys != len(_KEY_END.findall(self.text)) or _SURROGATE.search(self.text):
            raise _NotJson
        return self.root

    def _wrap(self, value: dict[Any, Any] | list[Any]) -> LineDict | LineList:
        result: LineDict | LineList
        if type(value) is dict:
            result = LineDict(value)
            self.keys += len(value)
            items: Any = value.items()
        else:
            result = LineList(value)
            items = enumerate(value)
        result._at = self
        for key, item in items:
            kind = type(item)
            if kind is dict or kind is list:
                result[key] = self._wrap(item)
            elif kind is float:  # YAML 1.1 reads 1e5 as a string: leave numbers to it
                raise _NotJson
        return result

    def twin(self, container: object) -> Any:
        """`container`'s twin in the YAML parse of the text (None where there is none)."""
        if self.twins is None:
            self.twins = {}
            self._pair(self.root, _load_yaml(self.text, self.file))
        return self.twins.get(id(container))

    def _pair(self, fast: Any, slow: Any) -> None:
        assert self.twins is not None
        self.twins[id(fast)] = slow
        for key, item in fast.items() if isinstance(fast, dict) else enumerate(fast):
            if isinstance(item, LineDict | LineList):
                try:
                    self._pair(item, slow[key])
                except (KeyError, IndexError, TypeError):
                    continue


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
