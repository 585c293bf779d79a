"""Object paths: a connection key followed by remote names.

Two spellings exist. In URLs each segment is percent-encoded, so a `/` inside a name is `%2F`
(`hc/hold/sales%2Feu/orders`). In the dotted names that policies and `pdp explain` use, a
literal `.` inside a name is `\\.` and a literal `\\` is `\\\\` (`hc.hold.sales\\.eu.orders`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import quote, unquote

from pdp.objects.errors import InvalidPath


class Kind(StrEnum):
    """The level of an object in the tree; the depth of its path decides it."""

    CONNECTION = "connection"
    DATABASE = "database"
    SCHEMA = "schema"
    TABLE = "table"


KINDS = (Kind.CONNECTION, Kind.DATABASE, Kind.SCHEMA, Kind.TABLE)


@dataclass(frozen=True, slots=True)
class ObjectPath:
    """`key` is the connection key, `names` the remote names below it (at most three)."""

    key: str
    names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.key:
            raise InvalidPath("path", self.url, "a path starts with a connection key")
        if len(self.names) > len(KINDS) - 1:
            raise InvalidPath("path", self.url, "a path names at most a table below a connection")
        if any(name == "" for name in self.names):
            raise InvalidPath("path", self.url, "a path segment must not be empty")

    @classmethod
    def of(cls, *segments: str) -> ObjectPath:
        if not segments:
            raise InvalidPath("path", "", "a path starts with a connection key")
        return cls(segments[0], tuple(segments[1:]))

    @property
    def segments(self) -> tuple[str, ...]:
        return (self.key, *self.names)

    @property
    def kind(self) -> Kind:
        return KINDS[len(self.names)]

    @property
    def parent(self) -> ObjectPath | None:
        return ObjectPath(self.key, self.names[:-1]) if self.names else None

    @property
    def name(self) -> str:
        return self.names[-1] if self.names else self.key

    def child(self, name: str) -> ObjectPath:
        return ObjectPath(self.key, (*self.names, name))

    def ancestors(self) -> tuple[ObjectPath, ...]:
        """From the connection down to this path, this path included."""
        return tuple(ObjectPath(self.key, self.names[:n]) for n in range(len(self.names) + 1))

    @property
    def url(self) -> str:
        return format_url_path(self.segments)

    @property
    def dotted(self) -> str:
        return format_dotted(self.segments)

    def __str__(self) -> str:
        return self.url

    @classmethod
    def parse_url(cls, text: str) -> ObjectPath:
        return cls.of(*parse_url_path(text))

    @classmethod
    def parse_dotted(cls, text: str) -> ObjectPath:
        return cls.of(*parse_dotted(text))


def format_url_path(segments: tuple[str, ...] | list[str]) -> str:
    return "/".join(quote(segment, safe="") for segment in segments)


def parse_url_path(text: str) -> tuple[str, ...]:
    """Split on `/` first, then decode each segment: `%2F` stays inside its name."""
    if not text.strip("/"):
        raise InvalidPath("path", text, "a path starts with a connection key")
    segments = text.strip("/").split("/")
    if any(segment == "" for segment in segments):
        raise InvalidPath("path", text, "a path segment must not be empty ('//')")
    return tuple(unquote(segment, errors="strict") for segment in segments)


def escape_name(name: str) -> str:
    return name.replace("\\", "\\\\").replace(".", "\\.")


def format_dotted(segments: tuple[str, ...] | list[str]) -> str:
    return ".".join(escape_name(segment) for segment in segments)


def parse_dotted(text: str) -> tuple[str, ...]:
    r"""Split on unescaped dots; `\.` and `\\` are the only escapes."""
    segments: list[str] = []
    current: list[str] = []
    chars = iter(enumerate(text))
    for index, char in chars:
        if char == "\\":
            following = next(chars, None)
            if following is None or following[1] not in ".\\":
                raise InvalidPath(
                    "path",
                    text,
                    f"'\\' at position {index} must be followed by '.' or '\\'",
                )
            current.append(following[1])
        elif char == ".":
            segments.append("".join(current))
            current = []
        else:
            current.append(char)
    segments.append("".join(current))
    if any(segment == "" for segment in segments):
        raise InvalidPath("path", text, "a dotted name must not have an empty part")
    return tuple(segments)
