"""Hot reload with last-known-good: reload files on change, keep serving on error.

A change is noticed when the kernel reports one in the files' directories (`watchfiles`; a
directory named as a policy file entry is watched itself, so a file added to it is seen) and,
as the safety net, by comparing the files' signatures every `reloadIntervalSeconds`; without
`watchfiles`, or once its watcher fails, the poll alone remains."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from pdp.config.errors import ConfigError, Problem
from pdp.config.load import Loaded, files_in

try:
    import watchfiles
except ImportError:  # an install without it polls
    watchfiles = None  # type: ignore[assignment]

log = logging.getLogger(__name__)
# watchfiles logs every batch of changes at INFO; the reload's own lines say what matters
logging.getLogger("watchfiles").setLevel(logging.WARNING)

# A burst of writes (an editor saving, a ConfigMap swap) is reported once, when no new change
# came for STEP ms, or at the latest DEBOUNCE ms after the first one.
NOTIFY_STEP_MS = 25
NOTIFY_DEBOUNCE_MS = 500


@functools.cache
def _reload_thread() -> ThreadPoolExecutor:
    """The process's one thread for reloads: the files compared (a stat of each) and, when they
    moved, read and compiled, off the event loop. At the process's own priority: a revocation
    is such a compile, and it must not wait behind the checks a busy host answers."""
    return ThreadPoolExecutor(1, thread_name_prefix="config-reload")


T = TypeVar("T")
Signature = tuple[tuple[int, int, int], ...]


def _signature(paths: Sequence[Path]) -> Signature:
    """Each path's stat; a directory's (a file added or removed) then each of its files'."""
    result = []
    for path in _with_files(paths):
        try:
            st = os.stat(path)  # follows symlinks, so a Kubernetes ConfigMap swap is seen
            result.append((st.st_mtime_ns, st.st_size, st.st_ino))
        except OSError:
            result.append((-1, -1, -1))
    return tuple(result)


@dataclass(frozen=True)
class Initial(Generic[T]):
    """A first load, the files' signature taken before it, and the function that made it: a
    `Watched` built later from it still sees an edit made meanwhile, and loads again with the
    same function (which may keep what it loaded, to load again at the cost of what changed)."""

    loaded: Loaded[T]
    signature: Signature
    loader: Callable[[], Loaded[T]]

    @classmethod
    def load(cls, paths: Sequence[Path], load: Callable[[], Loaded[T]]) -> Initial[T]:
        signature = _signature(list(paths))
        return cls(load(), signature, load)


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
        self._notifier: _Notifier | None = None  # while `run` runs

    def _report(self, loaded: Loaded[T]) -> None:
        for warning in loaded.warnings:
            log.warning("%s: %s", self.name, warning)

    def check(self) -> bool:
        """Reload if any file changed; True if a new value was applied."""
        if not self._moved():
            return False
        return self._apply(self._attempt())

    async def check_off_loop(self) -> bool:
        """`check` in the reload thread (`_reload_thread`): the files' signatures compared (a
        stat of each: a thousand for a registry split by schema) and, when they moved, the
        files read and compiled (seconds for the PDP's 100,000 tables); meanwhile the event
        loop keeps serving (the PDP's decisions and its heartbeats)."""
        loop = asyncio.get_running_loop()
        loaded = await loop.run_in_executor(_reload_thread(), self._load_if_moved)
        return loaded is not None and self._apply(loaded)

    def _load_if_moved(self) -> Loaded[T] | ConfigError | None:
        return self._attempt() if self._moved() else None

    def _moved(self) -> bool:
        signature = _signature(self.paths)
        if signature == self._signature:
            return False
        self._signature = signature
        return True

    def _attempt(self) -> Loaded[T] | ConfigError:
        try:
            return self._load()
        except ConfigError as exc:
            return exc

    def _apply(self, loaded: Loaded[T] | ConfigError) -> bool:
        if isinstance(loaded, ConfigError):
            exc = loaded
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
        if self._notifier is not None:
            self._notifier.follow(self.paths)
        self._signature = ((-2, -2, -2),)  # matches no real signature: forces the reload
        return self.check()

    @property
    def rejected(self) -> tuple[Problem, ...]:
        """The problems of the last rejected edit, until a good one is applied."""
        return tuple(self.last_error.problems) if self.last_error else ()

    async def run(self, interval: float | Callable[[], float] = 1.0) -> None:
        """Reload on change until cancelled: at once when the kernel reports a change near the
        files, and every `interval` seconds anyway (a function is read before each wait)."""
        notifier = self._notifier = _Notifier(self.name)
        followed: tuple[list[Path], Signature] | None = None
        try:
            while True:
                if followed != (self.paths, self._signature):  # a file added, other paths
                    notifier.follow(self.paths)
                    followed = (list(self.paths), self._signature)
                seconds = interval() if callable(interval) else interval
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(seconds):
                        await notifier.changed.wait()
                notifier.changed.clear()
                await self.check_off_loop()
        finally:
            notifier.stop()
            self._notifier = None


def _with_files(paths: Sequence[Path]) -> list[Path]:
    """`paths` with, after each directory, the policy files in it now."""
    result = []
    for path in paths:
        result.append(path)
        with contextlib.suppress(OSError):  # not a directory, or gone: its stat says so
            result += files_in(path) if path.is_dir() else []
    return result


def _directories(paths: Sequence[Path]) -> tuple[Path, ...]:
    """Where a change to `paths` shows: each file's directory (editors and ConfigMap swaps
    rename a new file into place), for a symbolic link its target's directory, and a
    directory itself (a file added to it) with the targets' directories of its links."""
    found: set[Path] = set()
    for path in paths:
        for candidate in (Path(os.path.abspath(path)), Path(os.path.realpath(path))):
            if candidate.is_dir():
                found.add(candidate)
            if candidate.parent.is_dir():
                found.add(candidate.parent)
        with contextlib.suppress(OSError):  # not a directory, or gone
            links = [f for f in files_in(path) if f.is_symlink()] if path.is_dir() else []
            found.update(Path(os.path.realpath(f)).parent for f in links)
    return tuple(sorted(found))


class _Notifier:
    """Sets `changed` when the kernel reports a change in the watched directories. The watcher
    runs in a thread of its own; if it fails, it says so once and `run` polls from then on."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.changed = asyncio.Event()
        self._directories: tuple[Path, ...] = ()
        self._stop = threading.Event()
        self._failed = watchfiles is None
        if watchfiles is None:
            log.info("%s: watchfiles is not installed: files are polled", name)

    def follow(self, paths: Sequence[Path]) -> None:
        """Watch the directories of `paths`, restarting the watcher if they changed."""
        directories = () if self._failed else _directories(paths)
        if directories == self._directories:
            return
        self.stop()
        self._directories, self._stop = directories, threading.Event()
        if directories:
            loop = asyncio.get_running_loop()
            threading.Thread(
                target=self._watch,
                args=(directories, self._stop, loop),
                name=f"pdp-watch-{self.name}",
                daemon=True,
            ).start()

    def _watch(
        self,
        directories: tuple[Path, ...],
        stop: threading.Event,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        try:
            for _changes in watchfiles.watch(
                *directories,
                watch_filter=None,  # whatever changed, `check` compares the files themselves
                recursive=False,
                step=NOTIFY_STEP_MS,
                debounce=NOTIFY_DEBOUNCE_MS,
                stop_event=stop,
                raise_interrupt=False,
            ):
                loop.call_soon_threadsafe(self.changed.set)
        except Exception as exc:  # inotify limits, a vanished directory: keep polling
            if stop.is_set():
                return
            self._failed = True
            log.warning(
                "%s: file change notification failed, polling every reloadIntervalSeconds "
                "from now on: %s",
                self.name,
                exc,
            )

    def stop(self) -> None:
        self._stop.set()  # the thread ends within a step
