"""PDP startup and memory on the scale world (issue 26, items 5 and 6): how long the PDP takes
to read the world's files and compile its snapshot, and what the process holds afterwards.

    .venv/bin/python benchmarks/startup.py                          # this tree, scale 1
    git archive main | tar -x -C /tmp/before                        # an earlier tree ...
    .venv/bin/python benchmarks/startup.py --before /tmp/before     # ... alternating with it
    .venv/bin/python benchmarks/startup.py --json                   # the big files as JSON

Each measurement is a fresh Python process (`--child`) running the PDP's own loading path
(`load_pdp_config`, `load_policy_inputs`, `PolicyInputs.compile`: what `pdp serve` does before
it listens) from the tree under test, first on the path. It reports CPU and wall seconds of
reading + validating and of compiling, and the process's RSS before and after (the snapshot
and everything the loading left alive). CPU seconds are the figure to compare on a shared
machine: wall time grows with everything else running.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run  # noqa: E402  (benchmarks/ is not a package)
import scale_world  # noqa: E402

REPO = HERE.parent


def rss_mb() -> float:
    """The current resident set size, from /proc (Linux)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def child(pdp_yaml: Path) -> dict[str, Any]:
    from pdp.config.load import load_policy_inputs
    from pdp.service.config import load_pdp_config

    before = rss_mb()
    cpu, wall = time.process_time(), time.perf_counter()
    config = load_pdp_config(pdp_yaml)
    inputs = load_policy_inputs(config.policy_files, config.mapping_file).value
    read_cpu, read_wall = time.process_time() - cpu, time.perf_counter() - wall
    cpu, wall = time.process_time(), time.perf_counter()
    snapshot = inputs.compile()
    compile_cpu, compile_wall = time.process_time() - cpu, time.perf_counter() - wall
    return {
        "tables": len(snapshot.trino_paths),
        "read_cpu": read_cpu,
        "read_wall": read_wall,
        "compile_cpu": compile_cpu,
        "compile_wall": compile_wall,
        "rss_before_mb": before,
        "rss_after_mb": rss_mb(),
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def measure(tree: Path, pdp_yaml: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{HERE}"}
    out = subprocess.run(
        [sys.executable, str(HERE / "startup.py"), "--child", str(pdp_yaml)],
        cwd=tree,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def markdown(results: dict[str, list[dict[str, Any]]]) -> str:
    lines = [
        "| tree | read CPU s | compile CPU s | total CPU s | total wall s | RSS after MB |",
        "|---|---|---|---|---|---|",
    ]
    for name, runs in results.items():

        def med(key: str, runs: list[dict[str, Any]] = runs) -> float:
            return statistics.median(r[key] for r in runs)

        total_cpu = statistics.median(r["read_cpu"] + r["compile_cpu"] for r in runs)
        total_wall = statistics.median(r["read_wall"] + r["compile_wall"] for r in runs)
        lines.append(
            f"| {name} | {med('read_cpu'):.2f} | {med('compile_cpu'):.2f} | {total_cpu:.2f} "
            f"| {total_wall:.1f} | {med('rss_after_mb'):.0f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=1, help="measurements per tree")
    parser.add_argument("--before", type=Path, help="a source tree to measure alternately")
    parser.add_argument("--json", action="store_true", help="registry, policies, users as JSON")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return 0
    trees = {"after": REPO, **({"before": args.before.resolve()} if args.before else {})}
    work = Path(tempfile.mkdtemp(prefix="pdp-startup-"))
    try:
        world = scale_world.build_world(scale=args.scale)
        files = scale_world.write_world(world, work, as_json=args.json)
        results: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
        for number in range(args.rounds):
            for name, tree in trees.items():
                result = measure(tree, files.pdp)
                results[name].append(result)
                print(f"  {name} round {number + 1}: {json.dumps(result)}", file=sys.stderr)
    finally:
        run.clean_up(work)
    return run.publish(markdown(results))


if __name__ == "__main__":
    sys.exit(main())
