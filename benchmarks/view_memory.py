"""A sidecar worker's memory: the views of the scale world's active users in the compact form
the PDP sends (issue 26, item 5), the decision, batch-answer and body-key caches after a steady
load of checks, and what the worker's bounds hold when more users come than they admit.

    .venv/bin/python benchmarks/view_memory.py [--scale 1] [--users 2000] [--past 4000]
        [--view-grants N] [--traced]

The parent compiles the world's snapshot (the PDP's loading path) and encodes the registry and,
for each sampled user, the compact entitlements exactly as the PDP's GetEntitlements answers a
sidecar (policy positions, data policies, owned tables), with each user's checks: single
SelectFromColumns on tables the user reads, FilterTables batches of 100 tables, an
AccessCatalog and a FilterSchemas. Each run is a fresh child process holding one worker's
`Sidecar` (sidecar/app.py), built from a sidecar.yaml with the run's `cache:` settings; its
PDP client answers from the encoded messages through the same decoders as the real one. The
child asks every user's checks twice (the second time from memory, as a steady load does) and
reports, every `--step` users, what each cache holds, the worker's RSS and Python's allocated
blocks, or with `--traced` the bytes tracemalloc counts (its bookkeeping more than doubles the
RSS, so the two are measured apart).

Runs: `--users` users through a worker with the default bounds, then `--past` users through a
worker whose `cache.users` is `--users` (eviction: memory must plateau, not grow).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import generate  # noqa: E402  (benchmarks/ is not a package)
import run  # noqa: E402
import scale_world  # noqa: E402
from startup import rss_mb  # noqa: E402

SINGLES, BATCHES, BATCH_SIZE = 20, 2, 100  # each user's checks


def encode(scale: float, users: int, work: Path) -> dict[str, Any]:
    """The registry (registry.bin), each sampled user's compact entitlements (entitlements.bin,
    length-prefixed) and checks (users.json) in `work`; the world's figures."""
    from pdp.config.load import load_snapshot
    from pdp.service.config import load_pdp_config
    from pdp.wire import proto

    world = scale_world.build_world(scale=scale)
    files = scale_world.write_world(world, work / "world")
    config = load_pdp_config(files.pdp)
    snapshot = load_snapshot(config.policy_files, config.mapping_file).value
    registry = proto.registry_to_pb(snapshot.revision, snapshot.registry, snapshot.mapping)
    (work / "registry.bin").write_bytes(registry.SerializeToString())
    rnd = random.Random(26)
    sampled = rnd.sample(world.users, min(users, len(world.users)))
    checks, seen = [], []
    with (work / "entitlements.bin").open("wb") as out:
        for user in sampled:
            subject = snapshot.subject(user.name, user.groups)
            masks, filters = snapshot.data_policies(subject)
            message = proto.entitlements_to_pb(
                snapshot.revision,
                snapshot.trino_positions(subject),
                masks,
                filters,
                snapshot.owned(subject),
            ).SerializeToString()
            out.write(len(message).to_bytes(4, "big") + message)
            asked = [b.decode() for b in bodies(world, user, rnd)]
            checks.append({"user": user.name, "bodies": asked})
            seen.append(world.visible(user))
    (work / "users.json").write_bytes(orjson.dumps(checks))
    seen.sort()
    return {
        **scale_world.stats(world),
        "sampled": len(sampled),
        "sampled_visible_median": seen[len(seen) // 2],
        "sampled_visible_max": seen[-1],
        "registry_bytes": registry.ByteSize(),
    }


def bodies(world: scale_world.World, user: scale_world.User, rnd: random.Random) -> list[bytes]:
    """One user's checks: reads of tables the user sees, listings of whole stretches of tables
    (seen or not), the catalog and its schemas of the first table read."""
    bits = bin(world.seen(user))[:1:-1]  # bit i (table i) at position i
    indexes = [i for i, bit in enumerate(bits) if bit == "1"] or [0]
    out = []
    for index in rnd.sample(indexes, min(SINGLES, len(indexes))):
        table = world.tables[index]
        out.append(generate.select(user, table, [table.columns[0][0]]))
    for _ in range(BATCHES):
        start = rnd.randrange(max(1, len(world.tables) - BATCH_SIZE))
        out.append(generate.filter_tables(user, list(world.tables[start : start + BATCH_SIZE])))
    first = world.tables[indexes[0]]
    schemas = sorted({t.schema for t in world.tables if t.catalog == first.catalog})
    out.append(generate.access_catalog(user, first.catalog))
    out.append(generate.filter_schemas(user, first.catalog, schemas))
    return out


def child(work: Path, config_file: Path, users: int, step: int, traced: bool) -> dict[str, Any]:
    from pdp.api import pb
    from pdp.core.model import ClusterSettings, Identity
    from pdp.wire import proto
    from sidecar.answers import Answers
    from sidecar.app import METRICS_DIR_ENV, Sidecar
    from sidecar.config import load_sidecar_config

    registry_message = pb.Registry.FromString((work / "registry.bin").read_bytes())
    raw = (work / "entitlements.bin").read_bytes()
    checks = orjson.loads((work / "users.json").read_bytes())[:users]
    messages, offset = {}, 0
    for entry in checks:
        size = int.from_bytes(raw[offset : offset + 4], "big")
        messages[entry["user"]] = raw[offset + 4 : offset + 4 + size]
        offset += 4 + size

    class Pdp:  # the sidecar's PdpClient, answering from the encoded messages as the PDP does
        async def registry(self) -> Any:
            registry, mapping = proto.registry_from_pb(registry_message)
            return registry_message.revision, registry, mapping

        async def entitlements(self, identity: Identity) -> Any:
            message = pb.Entitlements.FromString(messages[identity.user])
            masks, filters = proto.data_policies_from_pb(message)
            owned = proto.owned_from_pb(message)
            return message.revision, message.policies, masks, filters, owned

    config = load_sidecar_config(config_file)
    answers = Answers(  # as Sidecar.start builds them
        ClusterSettings,
        Pdp(),  # type: ignore[arg-type]
        config.user_cache,
        config.decision_cache,
        config.max_stale,
        config.view_grants,
    )
    answers.reset(registry_message.revision)
    os.environ[METRICS_DIR_ENV] = str(work)
    sidecar = Sidecar(config, Pdp(), answers, (), None)  # type: ignore[arg-type]
    numbered = iter(range(10**9))

    async def ask(body: bytes) -> None:
        body = body.replace(generate.QID.encode(), b"q%d" % next(numbered))
        endpoint = "batch" if b'"filterResources"' in body else "allow"
        if sidecar.answer_from_memory(endpoint, body) is None:
            await (sidecar._batch(body) if endpoint == "batch" else sidecar._allow(body))

    def held(done: int) -> dict[str, Any]:
        views = list(answers._views.values())
        keys = (
            sidecar._allow_keys,
            sidecar._batch_keys,
            sidecar._row_filter_keys,
            sidecar._mask_keys,
            sidecar._batch_mask_keys,
        )
        return {
            "users_asked": done,
            "views": len(views),
            "view_entries": sum(view_entries(v) for v in views),
            "view_weight": answers._views.currsize,
            "decisions": len(answers._decisions),
            "batch_answers": len(answers._batch_answers),
            "batch_answer_bytes": getattr(answers._batch_answers, "bytes", None),
            "body_keys": sum(len(k) for k in keys),
            "body_bytes": sum(k._bytes for k in keys),
            "rss_mb": rss_mb(),
            "blocks": sys.getallocatedblocks(),
            "traced_mb": tracemalloc.get_traced_memory()[0] / 2**20 if traced else None,
        }

    async def load() -> list[dict[str, Any]]:
        points = [held(0)]
        if traced:
            tracemalloc.start()
        for number, entry in enumerate(checks, 1):
            for _ in range(2):  # the second time from memory, as a steady load asks
                for body in entry["bodies"]:
                    await ask(body.encode())
            if number % step == 0 or number == len(checks):
                points.append(held(number))
        return points

    return {"config": config_file.name, "points": asyncio.run(load())}


def view_entries(view: Any) -> int:
    """What a view holds now beyond the registry (`View.size` is the most it will hold)."""
    grants = view.grants
    held = grants.held if hasattr(grants, "held") else len(grants)
    return view.size - (grants.size if hasattr(grants, "held") else len(grants)) + held


def sidecar_yaml(work: Path, name: str, cache: dict[str, Any]) -> Path:
    path = work / name
    document: dict[str, Any] = {"pdp": {"target": "127.0.0.1:1", "auth": "none"}}
    document.update({"cache": cache} if cache else {})
    path.write_bytes(orjson.dumps(document))  # JSON is YAML
    return path


def measure(work: Path, config: Path, users: int, step: int, traced: bool) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", str(work), str(config), str(users), str(step)]
    command += ["--traced"] if traced else []
    env = {**os.environ, "PYTHONPATH": str(run.REPO)}
    out = subprocess.run(command, env=env, capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"the child failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def markdown(world: dict[str, Any], results: list[tuple[str, dict[str, Any]]], traced: bool) -> str:
    memory = "tracemalloc MB" if traced else "RSS MB"
    lines = [
        f"World: {world['users']:,} users, {world['tables']:,} tables, {world['policies']:,} "
        f"policies; the {world['sampled']:,} users sampled see a median of "
        f"{world['sampled_visible_median']:,} tables (at most {world['sampled_visible_max']:,}); "
        f"registry message {world['registry_bytes'] / 2**20:.1f} MB. Each user: {SINGLES} "
        f"single reads, {BATCHES} FilterTables of {BATCH_SIZE}, AccessCatalog, FilterSchemas; "
        "each asked twice.",
        "",
        f"| worker | users asked | views held | view entries held (weight) | decisions | batch "
        f"answers (MB) | body keys (MB) | {memory} | growth per user asked, KB | allocated "
        "blocks |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, result in results:
        points = result["points"]
        start = points[0]
        for p in points[1:]:
            grown = (p["traced_mb"] if traced else p["rss_mb"]) - (
                0.0 if traced else start["rss_mb"]
            )
            lines.append(
                f"| {label} | {p['users_asked']:,} | {p['views']:,} | {p['view_entries']:,} "
                f"({p['view_weight']:,}) | {p['decisions']:,} | {p['batch_answers']:,} "
                f"({(p.get('batch_answer_bytes') or 0) / 2**20:.1f}) | "
                f"{p['body_keys']:,} ({p['body_bytes'] / 2**20:.1f}) | "
                f"{p['traced_mb'] if traced else p['rss_mb']:,.0f} | "
                f"{grown * 1024 / p['users_asked']:,.0f} | {p['blocks']:,} |"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--users", type=int, default=2000, help="active users; the users bound")
    parser.add_argument("--past", type=int, default=4000, help="users driven past the bound")
    parser.add_argument("--step", type=int, default=500, help="users between measurements")
    parser.add_argument("--view-grants", type=int, help="cache.viewGrants of every run")
    parser.add_argument("--traced", action="store_true", help="tracemalloc's count, not RSS")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        work, config, users, step = args.child
        print(json.dumps(child(Path(work), Path(config), int(users), int(step), args.traced)))
        return 0
    print(f"load average at start: {os.getloadavg()}", file=sys.stderr)
    work = Path(tempfile.mkdtemp(prefix="pdp-views-"))
    try:
        world = encode(args.scale, max(args.users, args.past), work)
        print(f"world: {world}", file=sys.stderr)
        extra = {"viewGrants": args.view_grants} if args.view_grants else {}
        runs = [
            ("defaults", sidecar_yaml(work, "defaults.yaml", extra), args.users),
            (
                f"cache.users {args.users:,}",
                sidecar_yaml(work, "bounded.yaml", {"users": args.users, **extra}),
                args.past,
            ),
        ]
        results = []
        for label, config, users in runs:
            result = measure(work, config, users, args.step, args.traced)
            print(f"  {label}: {result['points'][-1]}", file=sys.stderr)
            results.append((label, result))
    finally:
        run.clean_up(work)
    print(f"load average at end: {os.getloadavg()}", file=sys.stderr)
    return run.publish(markdown(world, results, args.traced))


if __name__ == "__main__":
    sys.exit(main())
