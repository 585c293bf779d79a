"""PDP CPU per change on the scale world (issue 26, goals 1 and 2), in-process: what the PDP
pays between a policy file's write and the revision's delta being ready for the watch, without
the sidecars and the load of `revision_delta.py` (whose PDP CPU also counts the entitlements
asked again afterwards).

    .venv/bin/python benchmarks/change_cost.py                        # this tree, scale 1, YAML
    git archive main | tar -x -C /tmp/before                          # today's code ...
    .venv/bin/python benchmarks/change_cost.py --before /tmp/before   # ... beside it
    .venv/bin/python benchmarks/change_cost.py --json --profile       # where the CPU goes
    .venv/bin/python benchmarks/change_cost.py --store --before /tmp/before
    .venv/bin/python benchmarks/change_cost.py --one-registry-file    # the registry unsplit

With `--store` the tables come from the store, as object sync writes them: the registry is
given to the PDP's composition (`pdp.control.snapshot`) as the store's part, and each table
change is a new store registry (its reading from the store, `read_registry`, not measured:
the registry is built from the changed file outside the measured time); the policy change is
still a policy file's.

Beside the PDP's CPU, each row gives what every sidecar worker then does with the revision's
delta event, outside the PDP's figure: the event's size, decoding it, and moving the registry
it holds to the new revision (`Registry.patched`).

Each tree runs in a fresh Python process (`--child`) with its own directory first on the path,
through the PDP's own files-only path (`pdp serve` without a store): the loader `Watched` calls
when a policy file changes (`pdp.service.reload._policy_loader`), then `Revisions.publish`
(the revision's delta) and the delta's encoding for the watch stream. The changes are
`revision_delta.py`'s, made one after another: a policy granting one more schema to a group of
about 1 % of the users (policies file); 100 tables added to one schema and then up to 100 of
one schema dropped, as object sync would find them: the world's registry is split by schema
(`registry/`, one `policyFiles` entry), so each rewrites that schema's one file, the only file
parsed again; with `--one-registry-file` (needed by a `--before` tree older than
directory entries) the registry is one file, rewritten and parsed again whole. CPU seconds
(`time.process_time`) are the figure: wall time grows with whatever else the machine runs.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import dataclasses
import io
import json
import os
import pstats
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import scale_world  # noqa: E402  (benchmarks/ is not a package)

REPO = HERE.parent


def child(args: argparse.Namespace) -> list[dict[str, Any]]:
    if args.store:
        return store_child(args)
    from pdp.policy import Revisions
    from pdp.service.config import load_pdp_config
    from pdp.service.reload import _policy_loader
    from pdp.wire.proto import delta_to_pb

    config = load_pdp_config(args.child)
    load = _policy_loader(config)
    cpu = time.process_time()
    revisions = Revisions(load().value)
    rows: list[dict[str, Any]] = [{"change": "start", "cpu": time.process_time() - cpu}]
    registry, policies, _ = config.policy_files
    for label, write in changes(registry, policies, args.scale, args.json):
        write()
        held = revisions.current.registry
        with measured(args.profile) as row:
            loaded = time.process_time()
            snapshot = load().value
            row["load_cpu"] = time.process_time() - loaded
            revisions.publish(snapshot)
            event = delta_to_pb(revisions.delta)
        rows.append({"change": label, **row, **said(revisions.delta), **followed(event, held)})
    return rows


def store_child(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The tables as the store's part of the snapshot (`--store`)."""
    from pdp.config.load import load_policy_inputs
    from pdp.control.snapshot import _compose_with_delta
    from pdp.service.config import load_pdp_config
    from pdp.service.reload import _inputs_loader
    from pdp.store import StoreRegistry
    from pdp.wire.proto import delta_to_pb

    config = load_pdp_config(args.child)
    registry_file, *files = config.policy_files
    config = dataclasses.replace(config, policy_files=tuple(files))
    load = _inputs_loader(config)

    def store(version: int) -> StoreRegistry:
        sources = load_policy_inputs([registry_file], None).value.documents.sources
        return StoreRegistry(version=version, sources=tuple(sources))

    cpu = time.process_time()
    registry = store(1)
    inputs = load().value
    current, _ = _compose_with_delta(inputs.compile(), inputs, registry)
    rows: list[dict[str, Any]] = [{"change": "start", "cpu": time.process_time() - cpu}]
    made = changes(registry_file, files[0], args.scale, args.json)
    for number, (label, write) in enumerate(made):
        write()
        if number:  # a table change: object sync wrote the store
            registry = store(number + 1)
        with measured(args.profile) as row:
            loaded = time.process_time()
            inputs = load().value if not number else inputs
            row["load_cpu"] = time.process_time() - loaded
            held = current.registry
            current, delta = _compose_with_delta(current, inputs, registry)
            assert delta is not None
            event = delta_to_pb(delta)
        rows.append({"change": label, **row, **said(delta), **followed(event, held)})
    return rows


@contextlib.contextmanager
def measured(profile: bool) -> Iterator[dict[str, Any]]:
    """The CPU seconds of the block, as `cpu` of the row it yields (and a profile if asked)."""
    row: dict[str, Any] = {}
    profiler = cProfile.Profile() if profile else None
    cpu = time.process_time()
    if profiler:
        profiler.enable()
    yield row
    if profiler:
        profiler.disable()
    row["cpu"] = time.process_time() - cpu
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
        print(out.getvalue(), file=sys.stderr)


def said(delta: Any) -> dict[str, Any]:
    return {
        "everything": delta.everything,
        "users": len(delta.users),
        "groups": len(delta.groups),
        "tables": len(delta.tables),
    }


def followed(event: Any, held: Any) -> dict[str, Any]:
    """What a sidecar worker does with the delta event: its size on the wire, and the CPU
    of decoding it and of moving the registry it holds (`held`) to the new revision."""
    from pdp.api import pb
    from pdp.wire.proto import delta_from_pb

    wire = event.SerializeToString()
    cpu = time.process_time()
    delta = delta_from_pb(pb.RevisionDelta.FromString(wire))
    decoded = time.process_time()
    held.patched(delta.tables, delta.entries, delta.policies, delta.order)
    return {
        "event_bytes": len(wire),
        "decode_ms": (decoded - cpu) * 1e3,
        "patch_ms": (time.process_time() - decoded) * 1e3,
    }


def changes(
    registry: Path, policies: Path, scale: float, as_json: bool
) -> list[tuple[str, Callable[[], None]]]:
    """The three changes of `revision_delta.py`, written over the world's files."""
    world = scale_world.build_world(scale=scale)
    c = scale_world.changes(world, random.Random(26))

    def write_policies(w: scale_world.World) -> None:
        if as_json:
            policies.write_text(json.dumps({"policies": w.policies}))
        else:
            scale_world.write_policies(w.policies, policies)

    def write_registry(w: scale_world.World, changed: list[scale_world.Table]) -> None:
        """The one schema file object sync would touch (or the one registry file, whole)."""
        only = (changed[0].catalog, changed[0].schema)
        scale_world.write_registry(w, registry, as_json=as_json, only=only)

    members = len(c.changed.members(c.group))
    return [
        (f"policy for a group of {members} users", lambda: write_policies(c.changed)),
        (f"{len(c.added)} tables added to one schema", lambda: write_registry(c.grown, c.added)),
        (
            f"{len(c.dropped)} tables of one schema dropped",
            lambda: write_registry(c.shrunk, c.dropped),
        ),
    ]


def measure(tree: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    work = Path(tempfile.mkdtemp(prefix="pdp-change-"))
    try:
        world = scale_world.build_world(scale=args.scale)
        files = scale_world.write_world(
            world, work, as_json=args.json, one_registry_file=args.one_registry_file
        )
        command = [sys.executable, str(HERE / "change_cost.py"), "--child", str(files.pdp)]
        command += ["--scale", str(args.scale), *(["--json"] if args.json else [])]
        command += ["--profile"] if args.profile else []
        command += ["--store"] if args.store else []
        env = {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{HERE}"}
        out = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
        if out.returncode:
            raise SystemExit(f"{tree}: the measurement failed:\n{out.stderr}")
        if args.profile:
            print(out.stderr, file=sys.stderr)
        result: list[dict[str, Any]] = json.loads(out.stdout.strip().splitlines()[-1])
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def markdown(results: dict[str, list[dict[str, Any]]]) -> str:
    lines = [
        "| tree | change | PDP CPU s (loading the files, s) | delta: users / groups / tables "
        "| event KB | a sidecar's decode + registry move, ms |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, rows in results.items():
        for row in rows:
            if row["change"] == "start":
                lines.append(f"| {name} | first load (start) | {row['cpu']:.2f} | |")
                continue
            said = (
                "everything"
                if row["everything"]
                else f"{row['users']} / {row['groups']} / {row['tables']}"
            )
            follow = (
                f"{row['event_bytes'] / 1e3:.1f} | {row['decode_ms']:.1f} + {row['patch_ms']:.1f}"
            )
            lines.append(
                f"| {name} | {row['change']} | {row['cpu']:.2f} ({row['load_cpu']:.2f}) | {said} "
                f"| {follow} |"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="of scale_world's world")
    parser.add_argument("--json", action="store_true", help="registry, policies, users as JSON")
    parser.add_argument(
        "--one-registry-file", action="store_true", help="the registry as one file, not split"
    )
    parser.add_argument("--before", type=Path, help="a source tree to measure beside this one")
    parser.add_argument("--profile", action="store_true", help="cProfile each change (stderr)")
    parser.add_argument("--store", action="store_true", help="the tables as the store's part")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return 0
    trees = {"after": REPO, **({"before": args.before.resolve()} if args.before else {})}
    results = {}
    for name, tree in trees.items():
        print(f"{name}: {tree}", file=sys.stderr)
        results[name] = measure(tree, args)
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
