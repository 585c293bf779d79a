"""Large requests take turns at a worker's event loop, a slice of a few milliseconds at a time,
so that a check behind them waits for one slice rather than for whole batches.

Batches hold their worker's one turn while they compute (parse, decode, decide); after each
slice the holder lets the loop run once (every other check waiting gets in, while no other batch
does), then queues behind the other batches. Waiting for the PDP is done outside the turn.
Each slice starts by freezing what is alive (pdp/collector.py): the collections its
allocations start then walk only what the slice made, never the batches' documents nor the
decision cache."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

SLICE_SECONDS = 0.002  # computing between two yields to other checks

T = TypeVar("T")


class Turn:
    """One request's hold on its worker's turn."""

    def __init__(self, lock: asyncio.Lock) -> None:
        self._lock = lock
        self._held = False
        self._since = 0.0

    async def acquire(self) -> None:
        await self._lock.acquire()
        gc.freeze()
        self._held, self._since = True, time.perf_counter()

    def release(self) -> None:
        if self._held:
            self._held = False
            self._lock.release()

    async def pause(self) -> None:
        """Between two pieces of work: once the slice is used up, let the loop run once, then
        wait for the next turn."""
        if time.perf_counter() - self._since < SLICE_SECONDS:
            return
        await asyncio.sleep(0)
        self.release()
        await self.acquire()

    async def outside(self, waiting: Awaitable[T]) -> T:
        """Await something slow (an answer from the PDP) without holding the turn."""
        self.release()
        try:
            return await waiting
        finally:
            await self.acquire()


class Turns:
    """The turns of one worker."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self.in_progress = 0  # batches holding or waiting for a turn

    @contextlib.asynccontextmanager
    async def take(self) -> AsyncIterator[Turn]:
        turn = Turn(self._lock)
        self.in_progress += 1
        try:
            await turn.acquire()
            yield turn
        finally:
            turn.release()
            self.in_progress -= 1
