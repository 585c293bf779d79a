"""The garbage collector of a long-running process (a sidecar worker, the PDP): long-lived
objects kept out of its full collections, and its pauses measured.

A full (generation-2) collection walks every container object alive, and nothing else runs in
the process meanwhile. Both hold many that are never garbage: their code and configuration, a
revision's registry and policy tables, caches; in a sidecar worker also a large batch's parsed
body while it is decided (100,000 items are 100,000 dicts), in the PDP the compiled snapshot of
100,000 tables and 10,000 users. With all of them in the old generation, a worker's full
collections behind large batches took 0.1-0.85 s each, the PDP's while it answered
entitlements 0.3-0.9 s every few seconds; they freed nothing, and every request waited.

So they are moved to the permanent generation (`gc.freeze`), which collections skip. A frozen
object is still freed as soon as nothing refers to it; only a reference cycle that turns to
garbage while frozen waits, for the next `settle` (unfreeze, one full collection, freeze
again). Hence what is built to be frozen must hold no reference cycle: the revision a process
leaves is then freed by reference counting (tests/sidecar/test_revision_collector.py,
tests/service/test_collector.py), with no settle of its own (one held a worker 0.2 s at
100,000 tables: benchmarks/revision_stall.py).

When: after start (`settle`), every second (`tick`: what requests added to caches meanwhile),
and right after something large and long-lived is built (`made_frozen`: the PDP's snapshot as
it is compiled and its delta, a worker's body as it is parsed and registry as it is moved); in
a worker also at the start of each slice of a batch's turn (sidecar/turns.py). A settle runs
when the process's allocated memory blocks have doubled since the last one, once it is quiet:
no work in progress that must not pause (a worker's batch) and no request answered since the
last tick (or after SETTLE_SECONDS regardless), so what waits there is bounded by the
process's live state.

Why quiet: a settle walks every container's references, in use or not: with a worker's caches
filled by bodies never seen, 55-70 ms in which it answers nothing, and the caches filling from
empty double the blocks two or three times. Settled as they grew, those pauses were the tail
of a flood of new bodies (measured in-process: benchmarks/unseen_bodies.py --stalls; p99 of
8-44 ms where the median was under 1 ms). Under traffic that never pauses, a settle waits
at most SETTLE_SECONDS: one such pause per 10 minutes is below any percentile that matters.

Not the frozen objects' count: counting them walks every one (CPython keeps no count), with a
full decision cache a million objects and 0.1 s in which nothing else runs; it was looked at
every second. The allocator's count of blocks is summed per memory pool instead, a thousand
times fewer steps; the frozen objects are counted once per settle, right after the full
collection that walked them anyway."""

from __future__ import annotations

import bisect
import gc
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

T = TypeVar("T")
P = ParamSpec("P")

GROWTH = 2  # allocated blocks, relative to the last settle, that call for another
SETTLE_SECONDS = 600.0  # past this since the last settle, a batch in progress does not delay it


class Frozen:
    """When to settle: the allocated blocks after the last settle, and its time; the frozen
    objects then (`count`); the requests answered at the last tick."""

    def __init__(self) -> None:
        self.blocks, self.at, self.count, self.answered = 0, 0.0, 0, 0

    def settle(self) -> None:
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        self.count = gc.get_freeze_count()
        self.blocks, self.at = sys.getallocatedblocks(), time.monotonic()

    def tick(self, in_progress: bool, answered: int) -> bool:
        """Once a second: freeze what is alive, and settle if the process has grown and is
        quiet (nothing `in_progress`, and `answered`, its count of requests answered, the same
        as at the last tick)."""
        gc.freeze()
        busy = in_progress or answered != self.answered
        self.answered = answered
        return self.settle_if_grown(busy)

    def settle_if_grown(self, busy: bool) -> bool:
        if sys.getallocatedblocks() <= GROWTH * self.blocks:
            return False
        if busy and time.monotonic() - self.at < SETTLE_SECONDS:
            return False
        self.settle()
        return True


class _Off:
    """The collector off while anything is being `made_frozen`, in any thread: the first to
    begin turns it off, the last to end turns it back on if it was on before the first. Each
    call saving and restoring `gc.isenabled()` itself would, with two overlapping (a worker's
    loop parsing a body while a thread moves the registry), let one restore "off" for good."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._making = 0
        self._was_enabled = False

    def __enter__(self) -> None:
        with self._lock:
            if not self._making:
                self._was_enabled = gc.isenabled()
                gc.disable()
            self._making += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._making -= 1
            if not self._making and self._was_enabled:
                gc.enable()


_OFF = _Off()


def made_frozen(make: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`make(*args, **kwargs)` with the collector off, then frozen: for what makes no reference
    cycles and is kept, whose new containers would otherwise start collections that walk them
    and promote them to the old generation (a large body parsed; a revision's registry moved
    and the delta that moved it, whose containers of 100,000 tables took collections 13-38 ms
    at scale 1; the PDP's snapshot compiled). The collector is off for the whole process, also
    when `make` runs in a thread: the event loop meanwhile starts no collection either."""
    with _OFF:
        made = make(*args, **kwargs)
        gc.freeze()
        return made


class Pauses:
    """Collections of this process by generation: how many, and their seconds per bucket."""

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        # generation -> collections per bucket (+inf last), then their seconds
        self.by_generation = [[0.0] * (len(buckets) + 2) for _ in range(3)]
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        seconds = time.perf_counter() - self._started
        row = self.by_generation[info["generation"]]
        row[bisect.bisect_left(self.buckets, seconds)] += 1
        row[-1] += seconds

    def start(self) -> None:
        gc.callbacks.append(self)

    def stop(self) -> None:
        if self in gc.callbacks:
            gc.callbacks.remove(self)

    def snapshot(self) -> dict[str, Any]:
        return {
            "counts": [[int(n) for n in row[:-1]] for row in self.by_generation],
            "seconds": [row[-1] for row in self.by_generation],
        }
