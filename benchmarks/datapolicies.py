"""Data-policy benchmark: `batchColumnMasks` for 50-column tables and `rowFilters`, answered from
the sidecar's cache, beside the constant-answer ceiling in the same run (same stack, same wrk
script, same bodies).

    .venv/bin/python benchmarks/datapolicies.py              # about 3 minutes
    .venv/bin/python benchmarks/datapolicies.py --runs 1 --duration 5   # a quick look

The world is run.py's (generate.py: 2,000 tables, 500 users, 300 subscription policies) plus
data policies: masks by column name on every data source (hash, NULL, partial reveal, rounding,
constant; two of them overlap so precedence is exercised), masks by tag, and three row filters,
one substituting a user attribute. Bodies name registered tables with 50 typed columns.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import generate  # noqa: E402
import run  # noqa: E402

MASKS, ROW_FILTERS = "/v1/data/trino/batchColumnMasks", "/v1/data/trino/rowFilters"
TARGET_RATIO = 0.8
WIDE = 50
EXTRA_TYPES = ("varchar(20)", "integer", "date", "char(3)", "array(varchar)", "varchar(64)")

DATA_POLICIES = {
    "masks": [
        {"name": "contact-hash", "columns": {"names": ["email", "phone"]}, "mask": "hash",
         "exceptFor": {"groups": ["grp00", "grp01"]}},
        {"name": "ip-null", "columns": {"names": ["ip_address", "latitude", "longitude"]},
         "mask": None},
        {"name": "name-reveal", "columns": {"names": ["name", "notes"]},
         "mask": {"keepLast": 3}},
        {"name": "amount-round", "columns": {"names": ["amount", "price"]},
         "what": {"tags": ["Finance"]}, "mask": {"round": -1}},
        {"name": "email-null-for-sales", "columns": {"names": ["email"]}, "mask": None,
         "onlyFor": {"attributes": {"department": ["sales"]}}},
        {"name": "pii-constant", "columns": {"names": ["c30", "c31", "c32"]},
         "what": {"tags": ["PII"]}, "mask": {"constant": "redacted"}},
        {"name": "staged-null", "columns": {"names": ["status"]}, "mask": None,
         "status": "staged"},
    ],
    "rowFilters": [
        {"name": "own-department", "what": {"tags": ["Finance", "Sales"]},
         "where": "department IN @attribute(department)", "exceptFor": {"groups": ["grp02"]}},
        {"name": "not-deleted", "where": "status <> 'deleted'"},
        {"name": "own-rows", "what": {"tags": ["HR"]}, "where": "manager_id = @user"},
    ],
}  # fmt: skip


CASES = (
    run.Case("const masks50 c32", "const", MASKS, "masks50.txt", 32),
    run.Case("sidecar masks50 c32", "sidecar", MASKS, "masks50.txt", 32),
    run.Case("const rowFilters c32", "const", ROW_FILTERS, "rowfilters.txt", 32),
    run.Case("sidecar rowFilters c32", "sidecar", ROW_FILTERS, "rowfilters.txt", 32),
)


def wide(t: generate.Table) -> generate.Table:
    """The table with 50 columns: its own, then the usual names, then c30... of mixed types."""
    columns = list(t.columns)
    names = {c for c, _ in columns}
    for i, name in enumerate((*generate.COLUMN_NAMES, *(f"c{n}" for n in range(30, 80)))):
        if len(columns) == WIDE:
            break
        if name not in names:
            kind = (*generate.COLUMN_TYPES, *EXTRA_TYPES)[i % 12]
            columns.append((name, kind))
    return generate.Table(t.catalog, t.schema, t.name, tuple(columns), t.tags, t.active)


def write_bodies(work: Path, world: generate.World, count: int = 2000) -> None:
    rnd = random.Random(generate.SEED + 2)
    registered = [t for t in world.tables if t.catalog in generate.CATALOGS and t.active]
    masks, filters = [], []
    for _ in range(count):
        user, table = rnd.choice(world.users), generate.pick_table(rnd, world)
        if table.catalog not in generate.CATALOGS or not table.active:
            table = rnd.choice(registered)
        masks.append(generate.column_masks(user, wide(table)))
        filters.append(generate.row_filters(user, table))
    (work / "masks50.txt").write_bytes(b"\n".join(masks) + b"\n")
    (work / "rowfilters.txt").write_bytes(b"\n".join(filters) + b"\n")


def add_data_policies(work: Path) -> None:
    (work / "datapolicies.yaml").write_bytes(orjson.dumps(DATA_POLICIES))
    pdp = json.loads((work / "pdp.yaml").read_bytes())
    pdp["policyFiles"].append("datapolicies.yaml")
    (work / "pdp.yaml").write_bytes(orjson.dumps(pdp, option=orjson.OPT_INDENT_2))


def check_answers(work: Path, port: int, sample: int = 300) -> dict[str, int]:
    """Compare a sample of answers with the pure core on the same files."""
    from pdp.config.load import load_settings, load_snapshot
    from pdp.core.datapolicy import column_mask, row_filters
    from pdp.service.config import load_pdp_config
    from pdp.wire.datapolicy import mask_columns
    from pdp.wire.trino import decode

    config = load_pdp_config(work / "pdp.yaml")
    snapshot = load_snapshot(config.policy_files, config.mapping_file).value
    settings = load_settings(work / "cluster.properties", None, snapshot.mapping).value
    rnd = random.Random(7)
    counts = {"masks": 0, "masked_columns": 0, "rowFilters": 0, "filters": 0}
    for kind, path, file in (
        ("masks", MASKS, "masks50.txt"),
        ("rowFilters", ROW_FILTERS, "rowfilters.txt"),
    ):
        lines = (work / file).read_bytes().splitlines()
        for line in rnd.sample(lines, min(sample, len(lines))):
            raw = line.replace(generate.QID.encode(), b"20261122_000000_00001_check")
            call = decode(raw)
            view = snapshot.view(settings, call.identity)
            expected: Any
            if kind == "masks":
                columns = mask_columns(json.loads(raw), batch=True)
                expected = [
                    {"index": i, "viewExpression": {"expression": m.expression}}
                    for i, c in enumerate(columns)
                    if (m := column_mask(view, call.identity, c.table, c.column, c.type))
                ]
                counts["masked_columns"] += len(expected)
            else:
                assert call.resource is not None
                key = call.resource.key  # type: ignore[union-attr]
                expected = [
                    {"expression": f.expression} for f in row_filters(view, call.identity, key)
                ]
                counts["filters"] += len(expected)
            status, answer = run.post(port, path, raw)
            got = json.loads(answer).get("result") if status == 200 else answer
            if got != expected:
                raise SystemExit(f"wrong answer on {path}: {got!r} != {expected!r}")
            counts[kind] += 1
    return counts


def prewarm(work: Path, port: int, rounds: int = 6) -> float:
    """Send every body `rounds` times, each on a new connection, so that both sidecar workers
    have most users' views (a PDP round trip each) before wrk starts: under wrk, a cold start
    of 500 users on a loaded 2-core machine runs into wrk's 2 s timeout. Returns seconds."""
    from concurrent.futures import ThreadPoolExecutor

    start = time.monotonic()
    bodies = []
    for file, path in (("masks50.txt", MASKS), ("rowfilters.txt", ROW_FILTERS)):
        for line in (work / file).read_bytes().splitlines():
            bodies.append((path, line.replace(generate.QID.encode(), b"20261122_000000_warm")))
    with ThreadPoolExecutor(8) as pool:
        for _ in range(rounds):
            list(pool.map(lambda b: run.post(port, b[0], b[1]), bodies))
    return round(time.monotonic() - start, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--max-foreign", type=float, default=5.0)
    parser.add_argument("--retries", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install -y wrk")
    work = Path(tempfile.mkdtemp(prefix="pdp-bench-dp-"))
    ports = {"sidecar": run.free_port(), "const": run.free_port()}
    world = generate.generate(work, ports["sidecar"], run.free_port(), queries=10)
    add_data_policies(work)
    write_bodies(work, world)
    report: dict[str, Any] = {"conditions": run.conditions(args), "runs": []}
    try:
        with run.started(
            [run.PYTHON, "-m", "pdp.cli", "up", "--config", str(work / "pdp.yaml"),
             "--sidecar-config", str(work / "sidecar.yaml")],
            work / "pdp-up.log",
        ), run.started(
            [run.PYTHON, "-m", "uvicorn", "const_app:app", "--app-dir", str(HERE), "--workers",
             "2", "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level",
             "warning", "--host", "127.0.0.1", "--port", str(ports["const"])],
            work / "const.log",
        ):  # fmt: skip
            run.wait_ready(ports["sidecar"], sidecar=True)
            run.wait_ready(ports["const"], sidecar=False)
            report["checked"] = check_answers(work, ports["sidecar"])
            report["prewarm_s"] = prewarm(work, ports["sidecar"])
            report["warmup"] = {c.name: run.warm(work, ports, c, args.warmup) for c in CASES}
            for n in range(args.runs):
                for case in CASES:
                    result, repeats = run.wrk(work, ports, case, args.duration), 0
                    while result["foreign_pct"] > args.max_foreign and repeats < args.retries:
                        result, repeats = run.wrk(work, ports, case, args.duration), repeats + 1
                    result.update(case=case.name, run=n + 1, repeats=repeats)
                    report["runs"].append(result)
                    print(f"  run {n + 1} {case.name}: {result['rps']:,.0f} req/s, "
                          f"p99 {result['p99_ms']:.2f} ms, other jobs "
                          f"{result['foreign_pct']:.1f} %", file=sys.stderr)  # fmt: skip
    finally:
        run.clean_up(work)
    return run.publish(markdown(report), report, args.json)


def markdown(report: dict[str, Any]) -> str:
    c = report["conditions"]
    lines = [
        f"Date {c['date']}; {c['machine']}; Python {c['python']}; {c['versions']}.",
        f"Method: {c['method']}. Answers checked against the pure core: {report['checked']}. "
        f"Warm-up runs: {report['warmup']}.",
        "",
        "| case | req/s median (min-max) | p50 ms | p99 ms median (min-max) | p99.9 ms "
        "| steal % | other jobs % |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    medians: dict[str, dict[str, float]] = {}
    for case in CASES:
        runs = [r for r in report["runs"] if r["case"] == case.name]
        rps, p99 = [r["rps"] for r in runs], [r["p99_ms"] for r in runs]
        m = {
            k: statistics.median(r[k] for r in runs) for k in runs[0] if k.endswith(("_ms", "_pct"))
        }
        m["rps"] = statistics.median(rps)
        medians[case.name] = m
        lines.append(
            f"| {case.name} | {m['rps']:,.0f} ({min(rps):,.0f}-{max(rps):,.0f}) | "
            f"{m['p50_ms']:.2f} | {m['p99_ms']:.2f} ({min(p99):.2f}-{max(p99):.2f}) | "
            f"{m['p999_ms']:.2f} | {m['steal_pct']:.1f} | {m['foreign_pct']:.1f} |"
        )
    lines += ["", "| endpoint | sidecar / ceiling | target >= 0.8 |", "|---|---:|---|"]
    for what in ("masks50", "rowFilters"):
        ratio = medians[f"sidecar {what} c32"]["rps"] / medians[f"const {what} c32"]["rps"]
        lines.append(f"| {what} | {ratio:.2f} | {'yes' if ratio >= TARGET_RATIO else '**no**'} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
