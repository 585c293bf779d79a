"""Bounded exponential backoff for calls a platform answers with 429 or 5xx."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    attempts: int = 5
    first: float = 0.5  # seconds before the second attempt
    factor: float = 2.0
    cap: float = 20.0
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("Backoff needs at least one attempt")

    def call(self, fn: Callable[[], T], transient: Callable[[Exception], bool]) -> T:
        delay = self.first
        for attempt in range(1, self.attempts + 1):
            try:
                return fn()
            except Exception as exc:
                if attempt == self.attempts or not transient(exc):
                    raise
            self.sleep(min(delay, self.cap))
            delay *= self.factor
        raise AssertionError("unreachable: the last attempt returns or raises")  # for type checkers
