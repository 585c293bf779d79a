"""Hot reload with last-known-good: poll files, reload on change, keep serving on error."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from pdp.config.errors import ConfigError, Problem
from pdp.config.load import Loaded

log = logging.getLogger(__name__)

T = TypeVar("T")
Signature = tuple[tuple[int, int, int], ...]


def _signature(paths: Sequence[Path]) -> Signature:
    result = []
    for path in paths:
        try:
            st = os.stat(path)  # follows symlinks, so a Kubernetes ConfigMap swap is seen
            result.append((st.st_mtime_ns, st.st_size, st.st_ino))
        except OSError:
            result.append((-1, -1, -1))
    return tuple(result)


@dataclass(frozen=True)
class Initial(Generic[T]):
    """A first load, and the files' signature taken before it: a `Watched` built later from it
    still sees an edit made meanwhile."""

    loaded: Loaded[T]
    signature: Signature

    @classmethod
    def load(cls, paths: Sequence[Path], load: Callable[[], Loaded[T]]) -> Initial[T]:
        signature = _signature(list(paths))
        return cls(load(), signature)


class Watched(Generic[T]):
    """A configuration value loaded from files. `current` is always the last good value.

    The first load raises (refuse to start without a good configuration); later failed loads are
    logged with every problem and leave `current` untouched. `initial` is a first load the
    caller made already (to build from its value what `on_change` feeds)."""

    def __init__(
        self,
        name: str,
        paths: Sequence[Path],
        load: Callable[[], Loaded[T]],
        on_change: Callable[[T], None] | None = None,
        initial: Initial[T] | None = None,
    ) -> None:
        self.name, self.paths, self._load, self.on_change = name, list(paths), load, on_change
        if initial is None:
            initial = Initial.load(self.paths, load)
        self._signature = initial.signature
        loaded = initial.loaded
        self._report(loaded)
        self.current: T = loaded.value
        self.last_error: ConfigError | None = None

    def _report(self, loaded: Loaded[T]) -> None:
        for warning in loaded.warnings:
            log.warning("%s: %s", self.name, warning)

    def check(self) -> bool:
        """Reload if any file changed; True if a new value was applied."""
        signature = _signature(self.paths)
        if signature == self._signature:
            return False
        self._signature = signature
        try:
            loaded = self._load()
        except ConfigError as exc:
            self.last_error = exc
            log.error(
                "%s: configuration rejected, still serving the last good one:\n%s", self.name, exc
            )
            return False
        self.last_error = None
        self._report(loaded)
        self.current = loaded.value
        log.info("%s: configuration reloaded", self.name)
        if self.on_change is not None:
            self.on_change(loaded.value)
        return True

    def retarget(self, paths: Sequence[Path], load: Callable[[], Loaded[T]]) -> bool:
        """Watch other files from now on (a reloaded pdp.yaml or sidecar.yaml names them) and
        load them at once; on failure the last good value stays, as for any rejected edit."""
        self.paths, self._load = list(paths), load
        self._signature = ((-2, -2, -2),)  # matches no real signature: forces the reload
        return self.check()

    @property
    def rejected(self) -> tuple[Problem, ...]:
        """The problems of the last rejected edit, until a good one is applied."""
        return tuple(self.last_error.problems) if self.last_error else ()

    async def run(self, interval: float | Callable[[], float] = 1.0) -> None:
        """Poll until cancelled; `interval` may be a function, read before each sleep."""
        while True:
            await asyncio.sleep(interval() if callable(interval) else interval)
            self.check()
