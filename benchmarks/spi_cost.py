"""The access controls' own cost per query of `trino_bench`'s mix, in one JVM, without a Trino.

    .venv/bin/python -m benchmarks.spi_cost          # 3-5 minutes on the 2-core VM

`benchmarks/trino_bench.py --jvms 3` cannot decide issue 25's goals: fresh Trino JVMs of one
configuration differ by more than the access controls do. This measures what each access
control itself costs a query instead, in one JVM (`SpiCostTest` in trino-plugin/, run through
Maven), side by side in the same run: Trino's file-based rules (`FileBasedSystemAccessControl`
of trino-plugin-toolkit 476, the rules file `trino_bench` gives `file`), the product's plugin
against a real sidecar and PDP (`plugin`: as in `trino_bench`, its cache filled by the same
warm-up; `plugin-warm`: every answer cached; `plugin-cold`: a fresh cache each block; these two
against another sidecar and PDP), Trino's stock OPA plugin (`OpaAccessControl`, loaded from
Trino 476's own plugin directory) against a third sidecar and PDP (`sidecar`) and against OPA
(`opa`), and Trino's allow-all (`none`, the floor of the driver itself). Each makes the SPI
calls Trino 476 makes for each query
(trino-plugin/src/test/resources/io/pdp/trino/spi-sequences-476.txt, recorded by
`plugin_spi_order`), for `trino_bench`'s very queries (its warm-up: every user twice, then the
warm-up mix; then its measured mix, and `--kinds wide` listings of the 2,000-table schema), in
blocks run by every access control in turn, the order rotating. Per block it reads the calling
thread's CPU and wall time, the JVM's CPU (every thread: the HTTP clients' too) and the backend
processes' CPU (their threads' /proc schedstat, ns) less what they use at rest; every access
control must give the same answers (allowed, denied, the tables and columns listed) to every
query.

Each access control's cost over `none`, block by block, is then put in proportion to what a
query costs Trino with no access control (`trino_bench`'s `none` runs, REFERENCE below): its
CPU (the JVM's plus the backend's) against Trino's CPU per query, its wall time against the
query's latency. The bar is the blocks' min..max over the reference runs' max..min.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks import trino_world as tw
from benchmarks.trino_bench import Query, backend, mix, query_of
from devstack.processes import free_port
from devstack.trino import JAVA_HOME, trino_home

REPO = Path(__file__).resolve().parent.parent
PLUGIN = REPO / "trino-plugin"
CONTROLS = ("none", "file", "plugin", "plugin-warm", "plugin-cold", "sidecar", "opa")
# Each its own processes: the plugin as benchmarked has a sidecar and PDP that decide for it alone
# (plugin-warm's pass over the measured queries would have them decide its cold asks ahead).
BACKENDS = {"plugin": "sidecar", "plugin-others": "sidecar", "sidecar": "sidecar", "opa": "opa"}
# What a query costs Trino with no access control (`none`), from benchmarks/RESULTS.md: the mix
# in "Three fresh JVMs per configuration" (2026-12-07, 3 JVMs: median of each JVM's block means,
# Trino CPU per query); `--kinds wide` in runs B, B2 and C2 (one JVM each; B2's CPU not kept).
REFERENCE: dict[str, dict[str, tuple[float, ...]]] = {
    "mix": {"latency_ms": (648.0, 783.0, 875.0), "cpu_ms": (100.5, 112.7, 117.1)},
    "wide": {"latency_ms": (5124.0, 4897.0, 4416.0), "cpu_ms": (1209.0, 892.0)},
}
SEQUENCES_FILE = PLUGIN / "src/test/resources/io/pdp/trino/spi-sequences-476.txt"


def sequences() -> dict[str, list[str]]:
    """Each kind's SPI calls (spi-sequences-476.txt: a kind at the margin, its calls indented)."""
    out: dict[str, list[str]] = {}
    kind = ""
    for line in SEQUENCES_FILE.read_text().splitlines():
        if line.startswith("  "):
            out[kind].append(line.strip())
        elif line and not line.startswith("#"):
            kind = line.split(":")[0]
            out[kind] = []
    out["wide"] = out["columns"]
    return out


SEQUENCES = sequences()
TABLE = re.compile(rf"{tw.CATALOG}\.(\w+)\.(\w+)")
LISTED = re.compile(r"(?:FROM \w+\.(\w+)$|table_schema = '(\w+)')")


def row(world: tw.World, query: Query) -> dict[str, Any]:
    """A query as SpiCostTest reads it: who, and its tables or the schema it lists."""
    listed = LISTED.search(query.sql) if query.kind not in ("point", "join") else None
    return {
        "kind": query.kind,
        "user": query.user,
        "groups": world.user_groups.get(query.user, []),
        "tables": [] if listed else [list(m) for m in TABLE.findall(query.sql)],
        "schema": (listed.group(1) or listed.group(2)) if listed else None,
    }


def queries(world: tw.World, args: argparse.Namespace) -> dict[str, list[dict[str, Any]]]:
    """`trino_bench`'s own: its warm-up (every user twice, the warm-up mix), its measured mix."""
    rng = random.Random(tw.SEED + 11)
    warm = [query_of("point", world, rng, u) for u in tw.USERS for _ in range(2)]
    warm += mix(world, args.warmup, tw.SEED + 10)
    return {
        "warm": [row(world, q) for q in warm],
        "mix": [row(world, q) for q in mix(world, args.queries, tw.SEED + 20)],
        "wide": [row(world, q) for q in mix(world, args.wide, tw.SEED + 20, ("wide",))],
    }


def run_maven(spec: Path, out: Path) -> None:
    command = [
        "mvn", "-B", "-q", "-ntp", "test", "-Dtest=SpiCostTest", "-Dgroups=spicost",
        "-DexcludedTestGroups=none", "-Dsurefire.failIfNoSpecifiedTests=false",
        f"-Dspicost.input={spec}", f"-Dspicost.out={out}",
    ]  # fmt: skip
    env = {**os.environ, "JAVA_HOME": os.environ.get("PLUGIN_JAVA_HOME", str(JAVA_HOME))}
    subprocess.run(command, cwd=PLUGIN, env=env, check=True, timeout=1800)


# --- what the blocks say ---------------------------------------------------------------------


def per_query(blocks: list[dict[str, Any]], idle_ms_per_s: float) -> list[dict[str, float]]:
    """Each block's cost per query, ms: the JVM's CPU plus the backend's (less at rest), the
    calling thread's CPU, the wall time; and requests per query (the plugins')."""
    out = []
    for b in blocks:
        n = b["queries"]
        backend_ms = max(0.0, b["backendCpuMs"] - idle_ms_per_s * b["elapsedNs"] / 1e9)
        out.append(
            {
                "cpu": (b["jvmCpuNs"] / 1e6 + backend_ms) / n,
                "jvm": b["jvmCpuNs"] / 1e6 / n,
                "process": b["processCpuNs"] / 1e6 / n,
                "backend": backend_ms / n,
                "thread": b["threadCpuNs"] / 1e6 / n,
                "wall": b["wallNs"] / 1e6 / n,
                "requests": b["requests"] / n,
            }
        )
    return out


def paired(
    costs: dict[str, list[dict[str, float]]], config: str, other: str, key: str
) -> list[float]:
    return [a[key] - b[key] for a, b in zip(costs[config], costs[other], strict=True)]


def share(diffs: list[float], reference: tuple[float, ...]) -> dict[str, float]:
    """Per-block differences (ms per query) in % of a query: median over the reference's
    median, and the bar min over the reference's max .. max over its min."""
    ref = statistics.median(reference)
    return {
        "median": 100 * statistics.median(diffs) / ref,
        "low": 100 * min(min(diffs) / max(reference), min(diffs) / min(reference)),
        "high": 100 * max(max(diffs) / min(reference), max(diffs) / max(reference)),
    }


def verdict(bar: dict[str, float], limit: float) -> str:
    """At most `limit` % of a query: met if the whole bar is at or below it, missed if above."""
    if bar["high"] <= limit:
        return "met"
    if bar["low"] > limit:
        return "missed"
    return "undecided"


def analyse(result: dict[str, Any]) -> dict[str, Any]:
    idle = result["backendIdleMsPerSecond"]
    report: dict[str, Any] = {}
    for part in ("mix", "wide"):
        blocks = result[part]["blocks"]
        costs = {c: per_query(blocks[c], idle[c]) for c in CONTROLS}
        ref = REFERENCE[part]
        rows: dict[str, dict[str, dict[str, float]]] = {}
        for c in CONTROLS:
            rows[c] = {
                "absolute": {
                    k: statistics.median(b[k] for b in costs[c])
                    for k in ("cpu", "jvm", "process", "backend", "thread", "wall", "requests")
                },
                "cpu_pct": share(paired(costs, c, "none", "cpu"), ref["cpu_ms"]),
                "wall_pct": share(paired(costs, c, "none", "wall"), ref["latency_ms"]),
            }
        goals = {}
        for key, name in (("cpu", "cpu_pct"), ("wall", "wall_pct")):
            plugin = rows["plugin"][name]
            goals[f"at most +2 % over none ({key})"] = verdict(plugin, 2.0)
            for other in ("file", "sidecar", "opa"):
                ref_values = ref["cpu_ms" if key == "cpu" else "latency_ms"]
                diffs = paired(costs, "plugin", other, key)
                bar = share(diffs, ref_values)
                relation = "at most" if other == "file" else "below"
                below = f", below in {sum(d < 0 for d in diffs)} of {len(diffs)} blocks"
                goals[f"{relation} {other} ({key})"] = verdict(bar, 0.0) + _bar(bar, below)
        kinds = result["kinds"] if part == "mix" else ["wide"]
        calls = statistics.mean(len(SEQUENCES[k]) for k in kinds)
        report[part] = {"rows": rows, "goals": goals, "blocks": len(costs["none"]), "calls": calls}
    if "queries" in result["mix"]:
        report["kinds"] = by_kind(result["kinds"], result["mix"]["queries"])
    return report


def by_kind(kinds: list[str], each: dict[str, list[list[int]]]) -> dict[str, dict[str, str]]:
    """Per kind of the mix and access control: the calling thread's CPU and wall time per query
    over `none`'s, µs (the backend's CPU is per block, not per query, so not in it)."""
    out: dict[str, dict[str, str]] = {}
    for kind in dict.fromkeys(kinds):
        at = [i for i, k in enumerate(kinds) if k == kind]
        out[kind] = {}
        for c in CONTROLS[1:]:
            cpu = statistics.mean(each[c][i][0] - each["none"][i][0] for i in at) / 1e3
            wall = statistics.mean(each[c][i][1] - each["none"][i][1] for i in at) / 1e3
            out[kind][c] = f"{cpu:,.0f} / {wall:,.0f}"
    return out


def _bar(bar: dict[str, float], note: str = "") -> str:
    return f" ({bar['median']:+.2f} %, blocks {bar['low']:+.2f}..{bar['high']:+.2f}{note})"


def markdown(report: dict[str, Any], result: dict[str, Any], meta: dict[str, str]) -> str:
    def warm_requests(part: str) -> int:
        return int(sum(b["requests"] for b in result[part]["blocks"]["plugin-warm"]))

    lines = [
        f"{meta['date']}; load average {meta['load_before']} before, {meta['load_after']} after; "
        f"{result['cpus']} CPUs; mismatches: {len(result['mismatches'])}; failed queries: "
        f"{ {c: n for c, n in result['errors'].items() if n} or 'none' }; requests of plugin-warm "
        f"(every answer cached) during the blocks: mix {warm_requests('mix')}, wide "
        f"{warm_requests('wide')}",
    ]
    for part, title in (("mix", "the mix"), ("wide", "`--kinds wide` (2,000 tables)")):
        r = report[part]
        lines += [
            "",
            f"**{title}** ({r['blocks']} blocks, {r['calls']:.1f} SPI calls per query; per query, "
            "median of the blocks; over `none` in % of a query's Trino CPU / latency with no "
            "access control, min..max of the blocks):",
            "",
            "| access control | CPU ms: Java threads | process | backend | wall ms | requests | "
            "CPU over none, % of Trino's | wall over none, % of latency |",
            "|---|---:|---:|---:|---:|---:|---|---|",
        ]
        for c in CONTROLS:
            a, cpu, wall = (
                r["rows"][c]["absolute"],
                r["rows"][c]["cpu_pct"],
                r["rows"][c]["wall_pct"],
            )
            requests = f"{a['requests']:.2f}" if c.startswith("plugin") else ""
            lines.append(
                f"| {c} | {a['jvm']:.3f} | {a['process']:.2f} | {a['backend']:.3f} | "
                f"{a['wall']:.3f} | {requests} | "
                f"{cpu['median']:+.3f} ({cpu['low']:+.3f}..{cpu['high']:+.3f}) | "
                f"{wall['median']:+.3f} ({wall['low']:+.3f}..{wall['high']:+.3f}) |"
            )
        lines += ["", "| the plugin's goal | verdict |", "|---|---|"]
        lines += [f"| {goal} | {v} |" for goal, v in r["goals"].items()]
    if "kinds" in report:
        lines += [
            "",
            "By kind of the mix: the calling thread's CPU / wall time per query over `none`, µs:",
            "",
            "| kind | " + " | ".join(CONTROLS[1:]) + " |",
            "|---|" + "---:|" * len(CONTROLS[1:]),
        ]
        for kind, values in report["kinds"].items():
            lines.append(f"| {kind} | " + " | ".join(values[c] for c in CONTROLS[1:]) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=300, help="measured mix queries")
    parser.add_argument("--block", type=int, default=25, help="mix queries per block")
    parser.add_argument("--warmup", type=int, default=600, help="warm-up mix queries")
    parser.add_argument("--wide", type=int, default=16, help="measured `wide` listings")
    parser.add_argument("--wide-block", type=int, default=2, help="`wide` listings per block")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "out" / "spi_cost.json")
    args = parser.parse_args()
    world = tw.build()
    load_before = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    with (
        tempfile.TemporaryDirectory(prefix="pdp-spi-cost-") as root,
        contextlib.ExitStack() as stack,
    ):
        work = Path(root)
        backends = {}
        for name, kind in BACKENDS.items():
            ports = {"pdp": free_port(), "sidecar": free_port(), "opa": free_port()}
            tw.write_all(world, work / name, ports["pdp"], ports["sidecar"])
            started = stack.enter_context(backend(kind, work / name, ports))
            backends[name] = {"url": started.url, "pids": list(started.pids)}
        spec = {
            **queries(world, args),
            "schemas": {s: list(tw.TABLES) for s in tw.SCHEMAS}
            | {tw.WIDE_SCHEMA: list(tw.WIDE_TABLES)},
            "block": args.block,
            "wideBlock": args.wide_block,
            "rules": str(work / "plugin" / "rules.json"),
            "opaPlugin": str(trino_home() / "plugin" / "opa"),
            "backends": backends,
        }
        (work / "spec.json").write_text(json.dumps(spec))
        print(f"backends up; running SpiCostTest (load average {load_before})", flush=True)
        run_maven(work / "spec.json", work / "out.json")
        result = json.loads((work / "out.json").read_text())
    meta = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load_before": load_before,
        "load_after": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
    }
    report = analyse(result)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"meta": meta, "report": report, "result": result}, indent=1))
    print(markdown(report, result, meta))
    return 1 if result["mismatches"] else 0


if __name__ == "__main__":
    sys.exit(main())
