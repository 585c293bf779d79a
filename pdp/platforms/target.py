"""The shape of a pdp.yaml grants target's login, as each platform module declares it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class TargetShape:
    """A target's login keys; which of them are secrets (given as `<key>Env` / `<key>File`, or
    the deprecated `${VAR}`); with an `auth:` switch, each choice and the keys it needs."""

    keys: tuple[str, ...]
    secrets: frozenset[str]
    auth: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
