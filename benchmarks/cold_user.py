"""What a cold user costs (issue 26, goal 3): the PDP's CPU to answer GetEntitlements and a
sidecar's CPU to turn the answer into the user's view, for users who see about 1,100 and about
5,000 tables, with the bytes on the wire and the memory a sidecar holds per view.

    .venv/bin/python benchmarks/cold_user.py                   # this tree and `main`, scale 1
    .venv/bin/python benchmarks/cold_user.py --before /tmp/old # another tree to compare with

The world is `scale_world.py`'s (100,000 tables, 1,000 policies at scale 1). Each tree is
measured in a process of its own (its directory first on the path), rounds alternating between
the trees; by default the other tree is `git archive main`. In a tree's process:

* PDP: the real `PdpServicer.GetEntitlements` with its caches emptied before each call (a cold
  user), plus the answer's serialization, as the gRPC server does it;
* sidecar: the real `Answers.view` of a user it does not hold, on a `PdpClient` whose stub hands
  back the PDP's bytes (so parsing is counted, the network is not); the registry, fetched once
  per revision, is timed apart;
* memory: tracemalloc's growth while the sidecar holds the sampled users' views (the shared
  registry not included).

CPU is the calling thread's (`time.thread_time`); each user is measured `--repeat` times, the
median kept. No server, no network: nothing is left running.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TARGETS = (1_100, 5_000)  # tables a user sees


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="scale_world.py's --scale")
    parser.add_argument("--users", type=int, default=5, help="users per target")
    parser.add_argument("--repeat", type=int, default=20, help="cold fetches per user")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per tree")
    parser.add_argument("--before", type=Path, help="tree to compare with (default: main)")
    parser.add_argument("--json", type=Path, help="write every measurement here")
    parser.add_argument("--child", nargs=2, metavar=("WORLD", "USERS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(measure(Path(args.child[0]), args.child[1], args.repeat))))
        return 0
    sys.path.insert(0, str(HERE))
    import scale_world as sw  # benchmarks/ is not a package

    work = Path(tempfile.mkdtemp(prefix="pdp-cold-"))
    try:
        before = args.before.resolve() if args.before else archive("main", work / "main")
        world = sw.build_world(sw.SEED, args.scale)
        sw.write_world(world, work / "world")
        users = pick(world, args.users)
        seen = {u.name: world.visible(u) for u in world.users}
        print(f"world {sw.stats(world)}; users {users}", file=sys.stderr)
        results: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
        for number in range(args.rounds):
            for name, tree in (("before", before), ("after", REPO)):
                result = child(tree, work / "world", users, args.repeat)
                results[name].append(result)
                print(f"  {name} round {number + 1}: {result['summary']}", file=sys.stderr)
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))
        print(markdown(results, users, seen))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def archive(commit: str, into: Path) -> Path:
    into.mkdir(parents=True)
    tar = subprocess.run(["git", "archive", commit], cwd=REPO, check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=tar.stdout, check=True)
    return into


def pick(world: Any, per_target: int) -> dict[int, list[str]]:
    """For each target, the users whose count of visible tables is nearest to it."""
    counts = sorted((world.visible(u), u.name) for u in world.users)
    return {
        target: [name for _, name in sorted(counts, key=lambda c: abs(c[0] - target))[:per_target]]
        for target in TARGETS
    }


def child(tree: Path, world: Path, users: dict[int, list[str]], repeat: int) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--repeat", str(repeat)]
    command += ["--child", str(world), json.dumps(users)]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(command, cwd=tree, env=env, check=True, capture_output=True, text=True)
    return json.loads(done.stdout)


# --- in a tree's own process ------------------------------------------------------------------


async def measure(world: Path, users_json: str, repeat: int) -> dict[str, Any]:
    from pdp.api import pb
    from pdp.config.load import load_snapshot
    from pdp.core.model import ClusterSettings, Identity
    from pdp.policy import Revisions
    from pdp.service.config import load_pdp_config
    from pdp.service.server import PdpServicer
    from sidecar.answers import Answers
    from sidecar.pdp_client import PdpClient

    config = load_pdp_config(world / "pdp.yaml")
    started = time.process_time()
    snapshot = load_snapshot(config.policy_files, config.mapping_file).value
    compile_seconds = time.process_time() - started
    cluster = ClusterSettings()
    servicer = PdpServicer(Revisions(snapshot), lambda: cluster)
    users: dict[str, list[str]] = json.loads(users_json)

    start = time.thread_time()
    registry_message = await servicer.GetRegistry(pb.RegistryRequest(), None)  # type: ignore[arg-type]
    registry_bytes = registry_message.SerializeToString()
    registry_pdp = time.thread_time() - start
    answers: dict[Identity, bytes] = {}
    pdp: dict[str, list[float]] = {}
    for target, names in users.items():
        for name in names:
            identity = Identity(name)
            request = await asked(PdpClient, identity)  # as this tree's sidecar asks
            times = []
            for _ in range(repeat):
                servicer = PdpServicer(Revisions(snapshot), lambda: cluster)  # nothing cached
                start = time.thread_time()
                message = await servicer.GetEntitlements(request, None)  # type: ignore[arg-type]
                answers[identity] = message.SerializeToString()
                times.append(time.thread_time() - start)
            pdp.setdefault(target, []).append(statistics.median(times))

    class Stub:
        async def GetRegistry(self, request: Any, timeout: float) -> Any:
            return pb.Registry.FromString(registry_bytes)

        async def GetEntitlements(self, request: Any, timeout: float) -> Any:
            return pb.Entitlements.FromString(answers[Identity(request.identity.user)])

    client = PdpClient("127.0.0.1:9", timeout=5.0)  # never connects: the stub answers
    client._stub = Stub()  # type: ignore[assignment]
    sidecar = Answers(lambda: cluster, client)
    sidecar.reset(snapshot.revision)
    first = Identity(next(iter(users.values()))[0])
    start = time.thread_time()
    await sidecar.view(first)  # fetches the registry (once per revision and worker)
    registry_sidecar = time.thread_time() - start
    side: dict[str, list[float]] = {}
    for target, names in users.items():
        for name in names:
            identity = Identity(name)
            times = []
            for _ in range(repeat):
                sidecar._views.pop(identity, None)  # cold again
                start = time.thread_time()
                await sidecar.view(identity)
                times.append(time.thread_time() - start)
            side.setdefault(target, []).append(statistics.median(times))

    held = []
    tracemalloc.start()
    memory: dict[str, float] = {}
    for target, names in users.items():
        before = tracemalloc.get_traced_memory()[0]
        for name in names:
            sidecar._views.pop(Identity(name), None)
            held.append(await sidecar.view(Identity(name)))
        memory[target] = (tracemalloc.get_traced_memory()[0] - before) / len(names)
    tracemalloc.stop()

    wire = {
        target: statistics.median(len(answers[Identity(n)]) for n in names)
        for target, names in users.items()
    }
    result = {
        "compile_seconds": compile_seconds,
        "registry": {
            "bytes": len(registry_bytes),
            "pdp": registry_pdp,
            "sidecar": registry_sidecar,
        },
        "pdp": {t: statistics.median(v) for t, v in pdp.items()},
        "sidecar": {t: statistics.median(v) for t, v in side.items()},
        "bytes": wire,
        "memory": memory,
    }
    result["summary"] = ", ".join(
        f"{t}: pdp {result['pdp'][t] * 1e3:.2f} ms, sidecar {result['sidecar'][t] * 1e3:.2f} ms"
        for t in users
    )
    return result


# --- the report -------------------------------------------------------------------------------


class _Asked(Exception):
    pass


async def asked(client_class: Any, identity: Any) -> Any:
    """The EntitlementsRequest the tree's own PdpClient sends for `identity`."""

    class Capture:
        async def GetEntitlements(self, request: Any, timeout: float) -> Any:
            raise _Asked(request)

    client = client_class("127.0.0.1:9", timeout=5.0)
    client._stub = Capture()
    try:
        await client.entitlements(identity)
    except _Asked as exc:
        return exc.args[0]
    raise AssertionError("the client did not ask")


def markdown(
    results: dict[str, list[dict[str, Any]]], users: dict[int, list[str]], seen: dict[str, int]
) -> str:
    def median(name: str, *path: str) -> float:
        values = []
        for result in results[name]:
            value: Any = result
            for step in path:
                value = value[step]
            values.append(value)
        return statistics.median(values)

    lines = [
        "| per cold user | tables seen (median of the users) | before | after | after / before |",
        "|---|---:|---:|---:|---:|",
    ]
    rows = (
        ("PDP CPU, ms", "pdp", 1e3),
        ("sidecar CPU, ms", "sidecar", 1e3),
        ("entitlements on the wire, bytes", "bytes", 1),
        ("sidecar memory per view, KiB", "memory", 1 / 1024),
    )
    for label, key, factor in rows:
        for target in users:
            before = median("before", key, str(target)) * factor
            after = median("after", key, str(target)) * factor
            tables = statistics.median(seen[name] for name in users[target])
            lines.append(
                f"| {label} | {tables:,.0f} | {before:,.2f} | {after:,.2f} | "
                f"{after / before if before else float('nan'):.3f} |"
            )
    lines += [
        "",
        "| per revision (once per sidecar worker) | before | after |",
        "|---|---:|---:|",
    ]
    for label, key, factor in (
        ("registry on the wire, bytes", "bytes", 1),
        ("PDP CPU for GetRegistry, ms", "pdp", 1e3),
        ("sidecar CPU to fetch and decode it, ms", "sidecar", 1e3),
    ):
        before = median("before", "registry", key) * factor
        after = median("after", "registry", key) * factor
        lines.append(f"| {label} | {before:,.1f} | {after:,.1f} |")
    before = median("before", "compile_seconds")
    after = median("after", "compile_seconds")
    lines.append(f"| PDP CPU compiling the snapshot, s | {before:.1f} | {after:.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
