"""The PDP's garbage collections (issue 26, goals 2 and 5), counted in its own process: how many
full (generation-2) collections it runs, and how long the longest holds it, while it loads
`scale_world.py`'s world, answers GetEntitlements for many users, and follows revision
changes (`scale_world.staged_changes`: a group's policy, 100 tables added, 100 dropped); and its
memory after each revision.

    .venv/bin/python benchmarks/pdp_collections.py --scale 1                    # this tree, main
    .venv/bin/python benchmarks/pdp_collections.py --scale 1 --before /tmp/old  # another tree

Each tree's PDP is `start_pdp` from that tree (its directory first on the path) in a child
process serving the world's files on 127.0.0.1; a `gc.callbacks` hook in it times every
collection, by phase. This process is the client: `--requests` GetEntitlements (compact, as
today's sidecar asks), `--concurrency` at a time, users in turn (each one cold), then for each
change the file written and requests until the PDP answers from the new revision and
`--requests`/4 more (`--rounds`: the changes again and again, each round ending with the
world's files restored: is memory bounded over many revisions). Counts and pauses are the
PDP's own, so a busy machine changes them little (it is shared: no throughput is measured).
The child is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from subprocess import PIPE
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import cold_user  # noqa: E402  (benchmarks/ is not a package)
import scale_world  # noqa: E402

CHILD = """
import asyncio, gc, json, resource, sys, time, weakref
from pathlib import Path
from pdp.service.config import load_pdp_config
from pdp.service.run import start_pdp

phase, started, seen = ["load"], [0.0], {}

def collection(stage, info):
    if stage == "start":
        started[0] = time.perf_counter()
        return
    took = time.perf_counter() - started[0]
    seen.setdefault(phase[0], []).append((info["generation"], took))

gc.callbacks.append(collection)

def rss_mib():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20

async def main():
    running = await start_pdp(load_pdp_config(Path(sys.argv[1])), "127.0.0.1:0")
    print(json.dumps({"port": running.port}), flush=True)
    loop = asyncio.get_running_loop()
    snapshots = []  # each revision's snapshot, weakly: those left behind must be freed
    while (word := (await loop.run_in_executor(None, sys.stdin.readline)).strip()) != "stop":
        phase[0] = word
        if not any(s() is running.revisions.current for s in snapshots):
            snapshots.append(weakref.ref(running.revisions.current))
        print(json.dumps({"rss_mib": rss_mib(), "blocks": sys.getallocatedblocks(),
                          "frozen": gc.get_freeze_count(), "snapshots": len(snapshots),
                          "alive": sum(s() is not None for s in snapshots)}), flush=True)
    print(json.dumps(seen), flush=True)
    await running.stop(0)

asyncio.run(main())
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="of scale_world's world")
    parser.add_argument("--requests", type=int, default=4_000, help="GetEntitlements per run")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--before", type=Path, help="tree to compare with (default: main)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="of the changes; above 1 each ends with the "
        "world's files restored (memory over many revisions)",
    )
    parser.add_argument("--after-only", action="store_true", help="this tree alone")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pdp-gc-"))
    try:
        trees = [("after", REPO)]
        if not args.after_only:
            before = args.before or cold_user.archive("main", work / "main")
            trees.insert(0, ("before", before.resolve()))
        for name, tree in trees:
            world = scale_world.build_world(scale=args.scale)  # the same files for each tree
            files = scale_world.write_world(world, work / f"world-{name}")
            given = (args.requests, args.concurrency, args.rounds)
            result = asyncio.run(run(tree, world, files, *given))
            print(f"{name} ({tree}):\n{report(result)}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


async def run(
    tree: Path, world: Any, files: Any, requests: int, concurrency: int, rounds: int
) -> dict[str, Any]:
    """The child's collections by phase and its memory at the start of each phase."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    command = [sys.executable, "-c", CHILD, str(files.pdp)]
    with (files.directory / "pdp.log").open("a") as log:  # its warnings
        child = subprocess.Popen(
            command, cwd=tree, env=env, stdin=PIPE, stdout=PIPE, stderr=log, text=True
        )
    assert child.stdin is not None and child.stdout is not None
    memory: dict[str, Any] = {}

    def phase(word: str) -> None:
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write(word + "\n")
        child.stdin.flush()
        if word != "stop":
            memory[word] = json.loads(child.stdout.readline())

    try:
        port = json.loads(child.stdout.readline())["port"]
        users = iter(random.Random(26).sample(world.users, len(world.users)) * 10)
        async with Client(port) as client:
            phase("requests")
            await client.ask(users, requests, concurrency)
            changes = scale_world.staged_changes(
                world, files, random.Random(26), files.directory / "staged", rounds > 1
            )
            for round_, (label, write) in enumerate(changes * rounds):
                phase(f"{label} #{round_ // len(changes) + 1}" if rounds > 1 else label)
                revision = await client.revision()
                write()
                while await client.revision() == revision:
                    await client.ask(users, concurrency, concurrency)
                await client.ask(users, requests // 4, concurrency)
            phase("end")
        phase("stop")
        seen = json.loads(child.stdout.readline())
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
    return {"collections": seen, "memory": memory}


class Client:
    """GetEntitlements as a sidecar asks it, over loopback gRPC."""

    def __init__(self, port: int) -> None:
        self.target = f"127.0.0.1:{port}"

    async def __aenter__(self) -> Client:
        import grpc

        from pdp.api import rpc

        self.channel = grpc.aio.insecure_channel(self.target)
        self.stub = rpc.PolicyDecisionPointStub(self.channel)
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.channel.close()

    async def entitlements(self, user: Any) -> str:
        from pdp.api import pb

        identity = pb.Identity(user=user.name, groups=list(user.groups))
        answer = await self.stub.GetEntitlements(
            pb.EntitlementsRequest(identity=identity, compact=True), timeout=60
        )
        return str(answer.revision)

    async def revision(self) -> str:
        return await self.entitlements(scale_world.User(scale_world.ADMIN, ()))

    async def ask(self, users: Any, count: int, concurrency: int) -> None:
        async def worker(share: int) -> None:
            for _ in range(share):
                await self.entitlements(next(users))

        await asyncio.gather(*(worker(count // concurrency) for _ in range(concurrency)))


def report(result: dict[str, Any]) -> str:
    lines = []
    memory = result["memory"]
    for phase, seen in result["collections"].items():
        full = [took for generation, took in seen if generation == 2]
        young = [took for generation, took in seen if generation < 2]
        lines.append(
            f"  {phase}: gen 2 {len(full)}x, longest {1000 * max(full, default=0):.0f} ms, "
            f"total {1000 * sum(full):.0f} ms; gen 0-1 {len(young)}x, "
            f"longest {1000 * max(young, default=0):.1f} ms"
        )
    for phase, at in memory.items():
        lines.append(
            f"  at {phase}: RSS {at['rss_mib']:.0f} MiB, {at['blocks']:,} blocks, "
            f"{at['frozen']:,} frozen; snapshots alive {at['alive']} of {at['snapshots']}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
