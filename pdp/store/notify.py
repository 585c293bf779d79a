"""Listening for store writes: PostgreSQL's LISTEN on the channel every write notifies.

`Store.write` sends `pg_notify(NOTIFY_CHANNEL, version)` inside its transaction, so the
notification leaves the server exactly when the write commits (never for a rollback). A
`VersionListener` holds one dedicated autocommit connection (outside the engine's pool) in a
daemon thread, LISTENs on the channel and calls `on_version(version)` for every notification.
When the connection breaks it reconnects with a growing pause; the caller keeps a slower poll
as the safety net for notifications lost while it was disconnected.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import psycopg
from sqlalchemy import Engine

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "pdp_store"
WAKE_SECONDS = 0.5  # how often the thread looks at its stop flag while nothing arrives
MAX_BACKOFF = 5.0


def connect_args(engine: Engine) -> dict[str, Any]:
    """psycopg.connect keyword arguments for the engine's database (password included)."""
    args, kwargs = engine.dialect.create_connect_args(engine.url)
    if args:  # psycopg's dialect passes everything as keywords; a conninfo string if not
        kwargs = {"conninfo": args[0], **kwargs}
    return dict(kwargs)


class VersionListener:
    """LISTEN in a thread; `on_version` runs in that thread. `start()`, then `stop()`."""

    def __init__(
        self,
        engine: Engine,
        on_version: Callable[[int], None],
        on_connected: Callable[[], None] | None = None,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError("LISTEN needs PostgreSQL")
        self.params = connect_args(engine)
        self.on_version = on_version
        self.on_connected = on_connected
        self.on_lost = on_lost
        self.connected = threading.Event()
        self.received = 0  # notifications seen (tests, /health)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="pdp-store-listen", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        backoff = 0.2
        while not self._stop.is_set():
            try:
                with psycopg.connect(**self.params, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    self.connected.set()
                    backoff = 0.2
                    log.info("listening for store writes (LISTEN %s)", NOTIFY_CHANNEL)
                    if self.on_connected is not None:
                        self.on_connected()  # catch up on what happened while disconnected
                    while not self._stop.is_set():
                        for notify in conn.notifies(timeout=WAKE_SECONDS):
                            self.received += 1
                            try:
                                version = int(notify.payload)
                            except ValueError:
                                version = -1
                            self.on_version(version)
            except Exception as error:
                lost = self.connected.is_set()
                self.connected.clear()
                if self._stop.is_set():
                    return
                if lost and self.on_lost is not None:
                    self.on_lost()  # the store may be down: let the caller find out now
                log.debug("store LISTEN connection failed, retrying: %s", error)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
        self.connected.clear()
