"""The crawler seam object sync codes against (a minimal version; the crawlers replace it)."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pdp.objects.sync import Listing


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str


class Crawler(Protocol):
    technology: str

    def list(self, parent: tuple[str, ...]) -> Listing: ...

    def check(self) -> builtins.list[Check]: ...

    def close(self) -> None: ...


def open_crawler(
    technology: str, endpoint: Mapping[str, Any], credentials: Mapping[str, Any]
) -> Crawler:
    raise NotImplementedError(f"no crawler for {technology!r} yet")
