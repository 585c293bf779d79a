"""The sidecar's last-known-good state on disk (`cache.stateFile` in sidecar.yaml).

While the PDP is heard, the registry and every user's entitlements fetched at the current
revision are written to the file (atomically: a temporary file renamed over it), with the
revision and the time the PDP last confirmed it. Several workers share the file: each merges
what the others wrote at the same revision, under an advisory lock.

A sidecar that starts while the PDP is unreachable loads the file and serves from it within the
staleness bound (`cache.maxStaleSeconds`), which counts from when the PDP last confirmed that
revision, not from the restart; past the bound everything is dropped and checks fail closed, as
without the file. Users absent from the file are denied until the PDP answers."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pdp.api import pb
from pdp.core.model import AccessGrantMapping, Identity, Registry, View
from pdp.wire import proto
from sidecar.answers import Answers

log = logging.getLogger(__name__)

CHECK_SECONDS = 1.0  # how often the file is brought up to date
REFRESH_SECONDS = 5.0  # written at least this often while the PDP is heard (its timestamp)
START_WAIT_SECONDS = 1.0  # at start, how long the PDP may take to be heard before the file


@dataclass(frozen=True)
class Restored:
    revision: str
    confirmed_at: float  # Unix time the PDP last confirmed the revision
    users: int

    def age(self) -> float:
        return max(0.0, time.time() - self.confirmed_at)


class StateFile:
    def __init__(self, path: Path, answers: Answers) -> None:
        self.path, self._answers = path, answers
        self.restored: Restored | None = None
        self._written: tuple[object, ...] | None = None
        self._written_at = 0.0

    async def start(self) -> None:
        """Give the PDP a moment to be heard; if it is not, serve from the file."""
        deadline = time.monotonic() + START_WAIT_SECONDS
        while self._answers.lost_since is not None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self._answers.lost_since is not None:
            self.restore()

    def restore(self) -> Restored | None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            log.warning("PDP unreachable and no saved state in %s yet: failing closed", self.path)
            return None
        except OSError as exc:
            log.error("cannot read the saved state %s: %s", self.path, exc)
            return None
        saved = pb.SavedState()
        try:
            saved.ParseFromString(data)
        except Exception as exc:  # a truncated or foreign file: start without it
            log.error("saved state %s is unreadable, ignored: %s", self.path, exc)
            return None
        if not saved.revision:
            return None
        try:
            registry = (
                proto.registry_from_pb(saved.registry) if saved.HasField("registry") else None
            )
        except ValueError as exc:
            log.error("saved state %s is inconsistent, ignored: %s", self.path, exc)
            return None
        views = {
            proto.identity_from_pb(view.identity): functools.partial(
                proto.view_from_pb, view.entitlements
            )
            for view in saved.views
        }
        restored = Restored(saved.revision, saved.confirmed_at, len(views) if registry else 0)
        heard = time.monotonic() - restored.age()
        try:
            self._answers.restore(saved.revision, registry, views, heard)
        except ValueError as exc:
            self._answers.reset(None)
            log.error("saved state %s is inconsistent, ignored: %s", self.path, exc)
            return None
        self.restored = restored
        log.warning(
            "PDP unreachable: serving from the saved state %s (revision %s, confirmed %.0f s "
            "ago, %d users); the staleness bound counts from then",
            self.path,
            restored.revision,
            restored.age(),
            restored.users,
        )
        return restored

    def serving_saved(self) -> Restored | None:
        """The saved state while it is what this sidecar serves: until the PDP is heard (or the
        state is dropped as too old)."""
        restored = self.restored
        answers = self._answers
        if restored is not None and (
            answers.lost_since is None or answers.revision != restored.revision
        ):
            self.restored = restored = None
        return restored

    async def run(self) -> None:
        while True:
            await asyncio.sleep(CHECK_SECONDS)
            self.serving_saved()
            try:
                await self.save()
            except OSError as exc:
                log.error("cannot write the saved state %s: %s", self.path, exc)

    async def save(self, force: bool = False) -> bool:
        """Write what is known now, if the PDP is heard and something changed (or the
        timestamp is due for a refresh)."""
        answers = self._answers
        revision, registry, views = answers.known()
        if revision is None or answers.lost_since is not None:
            return False  # nothing confirmed by the PDP right now: keep the file as it is
        marker = (revision, registry is not None, frozenset(views))
        due = time.monotonic() - self._written_at >= REFRESH_SECONDS
        if not force and marker == self._written and not due:
            return False
        confirmed_at = time.time() - (time.monotonic() - answers.heard)
        await asyncio.to_thread(self._write, revision, registry, views, confirmed_at)
        self._written, self._written_at = marker, time.monotonic()
        return True

    def _write(
        self,
        revision: str,
        registry: tuple[Registry, AccessGrantMapping] | None,
        views: dict[Identity, View],
        confirmed_at: float,
    ) -> None:
        with self._locked():
            saved = pb.SavedState(revision=revision, confirmed_at=confirmed_at)
            mine: dict[Identity, pb.Entitlements] = {}
            if registry is not None:
                saved.registry.CopyFrom(proto.registry_to_pb(revision, *registry))
                # positions in the registry saved (of a view kept from the one before too)
                position = registry[0].positions()
                mine = {
                    identity: proto.view_to_pb(revision, view, position)
                    for identity, view in views.items()
                }
            saved_views = [
                pb.SavedView(identity=proto.identity_to_pb(identity), entitlements=message)
                for identity, message in mine.items()
            ]
            other = self._read()
            if other is not None and other.revision == revision:  # another worker's users
                if registry is None and other.HasField("registry"):
                    saved.registry.CopyFrom(other.registry)
                for view in other.views:
                    if proto.identity_from_pb(view.identity) not in mine:
                        saved_views.append(view)
            saved.views.extend(saved_views)
            self._replace(saved.SerializeToString())

    def _read(self) -> pb.SavedState | None:
        try:
            saved = pb.SavedState()
            saved.ParseFromString(self.path.read_bytes())
            return saved
        except Exception:
            return None

    def _replace(self, data: bytes) -> None:
        directory = self.path.parent
        fd, temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=directory)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        lock = self.path.with_name(self.path.name + ".lock")
        with lock.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
