"""The decision log: one JSON object per answered request, allows and denials, sampled, sent to
a file (JSON lines) or an HTTP collector (a JSON array per POST), in the shape of OPA's decision
logs so that tools built for those read it: `decision_id`, `timestamp`, `path`, `input`,
`result`, `labels`, `bundles.<name>.revision`, `metrics`, plus the basis of the decision
(`rule`, `reason`, `policies`) where the sidecar has one.

Entries are queued by the hot path and written once a second by a background task; a full queue
drops entries and counts them, so that a slow sink never slows or breaks decisions."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

from pdp.core.model import Decision

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DecisionLogConfig:
    """sidecar.yaml `decisionLog:`; absent: no decision log."""

    file: Path | None = None  # JSON lines, appended
    url: str | None = None  # POSTed a JSON array of entries
    sample_allow: float = 0.1  # share of allows logged
    sample_deny: float = 1.0  # share of denials logged
    max_queue: int = 10_000  # entries waiting for the sink; beyond: dropped and counted
    flush_seconds: float = 1.0


class DecisionLog:
    def __init__(self, config: DecisionLogConfig, revision: Any) -> None:
        self.config = config
        self._revision = revision  # () -> the revision served
        self._queue: deque[dict[str, Any]] = deque()
        self.dropped = 0
        self._labels = {"app": "pdp-sidecar", "id": f"{socket.gethostname()}:{os.getpid()}"}

    def record(
        self, path: str, document: Any, result: Any, allowed: bool, decision: Decision | None
    ) -> None:
        rate = self.config.sample_allow if allowed else self.config.sample_deny
        if rate < 1.0 and random.random() >= rate:
            return
        if len(self._queue) >= self.config.max_queue:
            self.dropped += 1
            return
        entry: dict[str, Any] = {
            "decision_id": str(uuid.uuid4()),
            "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "path": f"trino/{path}",
            "labels": self._labels,
            "bundles": {"pdp": {"revision": self._revision()}},
            "input": document.get("input") if isinstance(document, dict) else None,
            "result": result,
        }
        if decision is not None:
            entry |= {
                "rule": str(decision.rule),
                "reason": decision.reason,
                "policies": list(decision.policies),
            }
        self._queue.append(entry)

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=5) as client:
            while True:
                await asyncio.sleep(self.config.flush_seconds)
                await self.flush(client)

    async def flush(self, client: httpx.AsyncClient | None = None) -> None:
        entries = list(self._queue)
        self._queue.clear()
        if self.dropped:
            log.warning("decision log: %d entries dropped (queue full)", self.dropped)
            self.dropped = 0
        if not entries:
            return
        try:
            if self.config.file is not None:
                lines = b"".join(orjson.dumps(e) + b"\n" for e in entries)
                await asyncio.to_thread(_append, self.config.file, lines)
            if self.config.url is not None and client is not None:
                response = await client.post(
                    self.config.url,
                    content=orjson.dumps(entries),
                    headers={"content-type": "application/json"},
                )
                response.raise_for_status()
        except (OSError, httpx.HTTPError) as exc:
            log.warning("decision log: %d entries lost: %s", len(entries), exc)


def _append(path: Path, data: bytes) -> None:
    # One write of whole lines with O_APPEND: workers sharing the file never interleave lines.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
