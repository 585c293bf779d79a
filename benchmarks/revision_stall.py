"""The longest event-loop blocks of a sidecar worker while it follows a revision (issue 26,
goal 2), in-process: `revision_delta.py`'s world and changes, one worker (`sidecar.app.Sidecar`
and its `Answers`) holding every active user's view and their checks' decisions, following a
PDP in a child process over loopback gRPC, the worker's own once-a-second step running
(`Sidecar._save_stats`: the collector's tick, and before 2026-12-07 a settle per revision).

A probe task sleeps 1 ms again and again: how late it wakes is how long the loop was held, and
the thread's CPU time meanwhile tells the worker's own work from the machine running something
else. Each step of the follow (the delta decoded, the registry moved, each chunk of the
switch's preparation, the switch), each garbage collection and each settle is timed, and each
block is printed with the steps it overlaps.

    .venv/bin/python benchmarks/revision_stall.py --scale 1
    git archive main | tar -x -C /tmp/before
    .venv/bin/python benchmarks/revision_stall.py --scale 1 --tree /tmp/before   # another tree

The PDP child's garbage collections over 50 ms are printed to stderr as they happen. Only
127.0.0.1 is used; both children are stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import importlib
import importlib.util
import multiprocessing
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import revision_delta  # noqa: E402  (benchmarks/ is not a package)
import scale_world  # noqa: E402

Steps = list[tuple[str, float, float]]  # (step, start, end) on perf_counter
Lags = list[tuple[float, float, float]]  # (start of a 1 ms sleep, its lateness, thread CPU)
CHECKS_AFTER = 2_000  # checks asked again right after each switch


def pdp_child(tree: str, config: str, pipe: Connection) -> None:
    """The PDP: serves the world's files on loopback, loading them again and publishing on
    each word from the pipe ("stop" ends it)."""
    sys.path.insert(0, tree)
    from pdp.core.model import ClusterSettings
    from pdp.policy import Revisions
    from pdp.service.config import load_pdp_config
    from pdp.service.reload import _policy_loader
    from pdp.service.server import PdpServicer, start_server

    started = [0.0]

    def collection(phase: str, info: dict[str, Any]) -> None:
        """The PDP's collections over 50 ms, as they happen (they hold its watch stream)."""
        took = time.perf_counter() - started[0]
        if phase == "start":
            started[0] = time.perf_counter()
        elif took > 0.05:
            print(f"PDP: gc gen {info['generation']} {1000 * took:.0f} ms", file=sys.stderr)

    gc.callbacks.append(collection)

    async def serve() -> None:
        load = _policy_loader(load_pdp_config(Path(config)))
        revisions = Revisions(load().value)
        server, port = await start_server(PdpServicer(revisions, ClusterSettings), "127.0.0.1:0")
        pipe.send(port)
        loop = asyncio.get_running_loop()
        while await loop.run_in_executor(None, pipe.recv) != "stop":
            revisions.publish(load().value)
            pipe.send(revisions.current.revision)
        await server.stop(None)

    asyncio.run(serve())


def sidecar_child(
    tree: str, config: str, port: int, checks: list[bytes], labels: list[str], pipe: Connection
) -> None:
    """The worker, in a process of its own (none of the world built by the parent), with the
    world's sidecar.yaml."""
    sys.path.insert(0, tree)
    pipe.send(asyncio.run(follow(Path(config), port, checks, labels, pipe)))


@contextmanager
def timed(steps: Steps, name: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        steps.append((name, start, time.perf_counter()))


def instrument(steps: Steps) -> None:
    """Time the steps of a follow, the delta's decoding, settles and garbage collections."""
    from sidecar import answers, pdp_client

    # pdp.collector, shared with the PDP since 2026-12-07; a tree from before: the sidecar's
    found = importlib.util.find_spec("pdp.collector") is not None
    collector = importlib.import_module("pdp.collector" if found else "sidecar.collector")

    def wrap(owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name)

        def timed_call(*args: Any, **kwargs: Any) -> Any:
            with timed(steps, label):
                return original(*args, **kwargs)

        setattr(owner, name, timed_call)

    wrap(answers.Answers, "_moved_registry", "registry moved")
    wrap(answers.Answers, "_switch", "switch")
    wrap(pdp_client.proto, "delta_from_pb", "delta decoded")
    wrap(collector.Frozen, "settle", "settle")
    original = answers.Answers._preparing

    def preparing(self: Any, *args: Any) -> Any:
        inner = original(self, *args)
        while True:
            with timed(steps, "preparation chunk"):
                try:
                    next(inner)
                except StopIteration as done:
                    return done.value
            yield

    answers.Answers._preparing = preparing  # type: ignore[method-assign]
    started = [0.0]

    def collection(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            steps.append((f"gc gen {info['generation']}", started[0], time.perf_counter()))

    gc.callbacks.append(collection)


async def probe(lags: Lags, stop: asyncio.Event) -> None:
    while not stop.is_set():
        start, cpu = time.perf_counter(), time.thread_time()
        await asyncio.sleep(0.001)
        lags.append((start, time.perf_counter() - start - 0.001, time.thread_time() - cpu))


async def follow(
    config_file: Path, port: int, checks: list[bytes], labels: list[str], pipe: Connection
) -> list[str]:
    """Warm the worker with `checks`, then for each change: ask the parent to make it, and
    probe the loop until a second after the worker serves it. The report's lines."""
    import orjson

    from pdp.wire.trino import decode_document, single_key
    from sidecar.app import Sidecar
    from sidecar.config import load_sidecar_config

    steps: Steps = []
    instrument(steps)
    config = dataclasses.replace(load_sidecar_config(config_file), pdp_target=f"127.0.0.1:{port}")
    sidecar = await Sidecar.start(config)  # its tasks: the watch, its once-a-second step
    answers = sidecar.answers
    while answers.revision is None:
        await asyncio.sleep(0.01)
    asked = []
    for body in checks:
        document = orjson.loads(body)
        asked.append((decode_document(document).request(), single_key(document)))
    for request, key in asked:
        await answers.decide(request, key)
    await asyncio.sleep(1.2)  # the worker's step has frozen what the checks brought
    report = [f"warm: {answers.sizes()}"]
    loop = asyncio.get_running_loop()
    for label in labels:
        steps.clear()
        lags: Lags = []
        stop = asyncio.Event()
        probing = asyncio.create_task(probe(lags, stop))
        await asyncio.sleep(0.2)
        pipe.send(label)
        revision = await loop.run_in_executor(None, pipe.recv)
        while answers.revision != revision:
            await asyncio.sleep(0.001)
        for request, key in asked[:CHECKS_AFTER]:  # the checks ask again meanwhile
            await answers.decide(request, key)
        await asyncio.sleep(1.2)  # the worker's step after the revision
        stop.set()
        await probing
        report += [f"{label}: {answers.sizes()}", *blocks(lags, steps)]
    await sidecar.stop()
    return report


def blocks(lags: Lags, steps: Steps, shown: int = 5) -> list[str]:
    """The longest blocks by the worker's own CPU, with the steps they overlap, then each
    step's count, longest and total."""
    lines = []
    for start, lag, cpu in sorted(lags, key=lambda lag: -lag[2])[:shown]:
        end = start + 0.001 + lag
        during = [
            f"{name} {1000 * (min(e, end) - max(s, start)):.1f}"
            for name, s, e in steps
            if min(e, end) - max(s, start) > 0.0005
        ]
        lines.append(f"  block {1000 * lag:6.1f} ms, CPU {1000 * cpu:6.1f} ms: {', '.join(during)}")
    for name in dict.fromkeys(n for n, _, _ in steps):
        spans = [e - s for n, s, e in steps if n == name]
        lines.append(
            f"  step {name}: {len(spans)}x, longest {1000 * max(spans):.1f} ms, "
            f"total {1000 * sum(spans):.1f} ms"
        )
    return lines


def received(pipe: Connection, seconds: float = 600.0) -> Any:
    """The next word from a child; a child that fails says nothing, and ends the run."""
    if not pipe.poll(seconds):
        raise SystemExit(f"no word from a child for {seconds:g} s (its error is above)")
    return pipe.recv()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="of scale_world's world")
    parser.add_argument("--tree", type=Path, default=HERE.parent, help="the source tree run")
    args = parser.parse_args()
    tree = str(args.tree.resolve())
    work = Path(tempfile.mkdtemp(prefix="pdp-stall-"))
    context = multiprocessing.get_context("spawn")
    children = []
    try:
        world = scale_world.build_world(scale=args.scale)
        files = scale_world.write_world(world, work)
        rnd = random.Random(26)  # revision_delta.py's checks and changes
        checks = revision_delta.active_checks(world, rnd)
        changes = scale_world.staged_changes(world, files, rnd, work / "staged")
        pdp, pdp_end = context.Pipe()
        side, side_end = context.Pipe()
        children.append(context.Process(target=pdp_child, args=(tree, str(files.pdp), pdp_end)))
        children[0].start()
        labels = [label for label, _ in changes]
        given = (tree, str(files.sidecar), received(pdp), checks, labels, side_end)
        children.append(context.Process(target=sidecar_child, args=given))
        children[1].start()
        for _, write in changes:  # each word of the worker: the next change, written
            received(side)
            write()
            pdp.send("go")
            side.send(received(pdp))
        print(f"{tree}, scale {args.scale}:")
        print("\n".join(received(side)))
        pdp.send("stop")
    finally:
        for child in children:
            child.join(30)
            if child.is_alive():
                child.kill()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
