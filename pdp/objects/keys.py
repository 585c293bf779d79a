"""Connection key rules: the key is the display name, the first path segment and a tag part."""

from __future__ import annotations

import re

from pdp.objects.errors import InvalidKey

MAX_KEY_LENGTH = 128
RESERVED_KEYS = frozenset(
    {
        "data",
        "connection",
        "object",
        "crawl",
        "search",
        "settings",
        "metadata",
        "permission",
        "sync",
        "bulk",
        "upgrade",
    }
)
_KEY = re.compile(r"[A-Za-z0-9_-]+")


def check_connection_key(key: object, field: str = "connectionKey") -> str:
    """The key if it keeps the rules; `InvalidKey` naming the rule it breaks otherwise.

    Reserved words are refused case-insensitively because the key sits in URL paths next to
    the `/data` family's own words, and uniqueness is case-insensitive too."""
    if not isinstance(key, str):
        raise InvalidKey(field, key, "a connection key must be a string")
    if not key:
        raise InvalidKey(field, key, "a connection key must not be empty")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidKey(
            field, key, f"a connection key has at most {MAX_KEY_LENGTH} characters, not {len(key)}"
        )
    if not _KEY.fullmatch(key):
        bad = sorted({c for c in key if not (c.isascii() and (c.isalnum() or c in "-_"))})
        raise InvalidKey(
            field,
            key,
            f"a connection key holds only letters, digits, '-' and '_' (found {''.join(bad)!r})",
        )
    if key.casefold() in RESERVED_KEYS:
        raise InvalidKey(field, key, f"{key.casefold()!r} is a reserved word")
    return key


def key_identity(key: str) -> str:
    """What uniqueness compares: keys differing only in case are the same key."""
    return key.casefold()
