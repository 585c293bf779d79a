"""A sidecar worker's memory holding the views of 2,000 active users of the scale world
(issue 26, item 5), without and with a `cache.viewGrants` bound.

    .venv/bin/python benchmarks/view_memory.py [--scale 1] [--users 2000] [--bound N ...]

The parent compiles the world's snapshot (the PDP's loading path) and encodes each sampled
user's entitlements in the per-table form (`table_grants_to_pb`, what the PDP sends a sidecar
before compact entitlements; the compact form is not measured here yet). For each bound a
fresh child process then decodes them as the sidecar's PDP client does, puts every view into the
sidecar's own cache (`sidecar.answers.Answers`), and reports the views held, their grants and
the RSS growth, or with `--traced` the bytes tracemalloc counts instead (its own bookkeeping
more than doubles the RSS, so the two are measured apart).
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
import tracemalloc
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import scale_world  # noqa: E402  (benchmarks/ is not a package)
from startup import rss_mb  # noqa: E402


def encode(scale: float, users: int, out: Path) -> int:
    """Every sampled user's entitlements message, length-prefixed, into `out`; their grants."""
    from pdp.api import pb
    from pdp.config.load import load_snapshot
    from pdp.service.config import load_pdp_config
    from pdp.wire.proto import table_grants_to_pb

    world = scale_world.build_world(scale=scale)
    files = scale_world.write_world(world, out.parent / "world")
    config = load_pdp_config(files.pdp)
    snapshot = load_snapshot(config.policy_files, config.mapping_file).value
    total = 0
    with out.open("wb") as f:
        for user in random.Random(1).sample(world.users, users):
            grants = snapshot.trino_grants(snapshot.subject(user.name))
            total += len(grants)
            message = pb.Entitlements(revision=snapshot.revision, tables=table_grants_to_pb(grants))
            data = message.SerializeToString()
            f.write(len(data).to_bytes(4, "big") + data)
    return total


def child(messages: Path, bound: int | None, traced: bool) -> dict[str, Any]:
    from pdp.api import pb
    from pdp.core.model import AccessGrantMapping, ClusterSettings, Identity, Registry
    from pdp.wire.proto import table_grants_from_pb
    from sidecar.answers import Answers

    raw = messages.read_bytes()
    chunks, offset = [], 0
    while offset < len(raw):
        size = int.from_bytes(raw[offset : offset + 4], "big")
        chunks.append(raw[offset + 4 : offset + 4 + size])
        offset += 4 + size

    class Pdp:  # the sidecar's PdpClient, answering from the encoded messages
        async def entitlements(self, identity: Identity) -> Any:
            grants = table_grants_from_pb(pb.Entitlements.FromString(chunks[int(identity.user)]))
            return "r", grants, frozenset(), {}, frozenset()

        async def registry(self) -> Any:
            return "r", Registry(), AccessGrantMapping()

    kwargs = {"view_grants": bound} if bound else {}
    answers = Answers(lambda: ClusterSettings(), Pdp(), **kwargs)  # type: ignore[arg-type]
    answers.reset("r")
    before = rss_mb()
    if traced:
        tracemalloc.start()

    async def fetch_all() -> None:
        for i in range(len(chunks)):
            await answers.view(Identity(str(i)))

    asyncio.run(fetch_all())
    counted = tracemalloc.get_traced_memory()[0] / 2**20 if traced else None
    held = [answers._views[k] for k in answers._views]
    return {
        "bound": bound,
        "views": len(held),
        "grants": sum(len(v.grants) for v in held),
        "rss_growth_mb": None if traced else rss_mb() - before,
        "traced_mb": counted,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--bound", type=int, action="append", help="cache.viewGrants values")
    parser.add_argument("--traced", action="store_true", help="tracemalloc's count, not RSS")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        bound = args.bound[0] if args.bound else None
        print(json.dumps(child(args.child, bound, args.traced)))
        return 0
    work = Path(tempfile.mkdtemp(prefix="pdp-views-"))
    try:
        messages = work / "entitlements.bin"
        total = encode(args.scale, args.users, messages)
        print(f"{args.users} users, {total} grants", file=sys.stderr)
        column = "tracemalloc MB" if args.traced else "RSS growth MB"
        print(f"| cache.viewGrants | views held | grants held | {column} |")
        print("|---|---|---|---|")
        for bound in [None, *(args.bound or [])]:
            command = [sys.executable, __file__, "--child", str(messages)]
            command += ["--bound", str(bound)] if bound else []
            command += ["--traced"] if args.traced else []
            env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
            out = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            memory = r["traced_mb"] if args.traced else r["rss_growth_mb"]
            print(f"| {r['bound'] or 'absent'} | {r['views']} | {r['grants']} | {memory:.0f} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
