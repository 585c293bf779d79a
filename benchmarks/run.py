"""End-to-end sidecar benchmark: generate a large configuration, start PDP + sidecar and the
constant-answer ceiling, check the answers, warm the caches, run wrk (and locust), stop
everything, and print markdown tables.

    .venv/bin/python benchmarks/run.py              # about 5 minutes
    .venv/bin/python benchmarks/run.py --runs 1 --duration 5 --no-locust   # a quick look

Method (spec/performance-anchors.md section 4): `wrk -t1 -c{32,1} -d10s --latency`, median of 3
runs, the cases of one run interleaved so that drift on the VM hits all of them alike. Only
127.0.0.1 is used; every process started here is stopped by its own id (its process group).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import http.client
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import generate  # noqa: E402  (benchmarks/ is not a package)

REPO = HERE.parent
PYTHON = sys.executable
ALLOW, BATCH = "/v1/data/trino/allow", "/v1/data/trino/batch"
TARGETS = {"single_rps": 25_000, "single_p99_ms": 5.0, "ratio": 0.8, "batch_rps": 3_000}


@dataclass(frozen=True)
class Case:
    name: str
    server: str  # "sidecar" or "const"
    path: str
    bodies: str  # file in the generated directory
    connections: int


CASES = (
    Case("const single c32", "const", ALLOW, "single.txt", 32),
    Case("const-bare single c32", "const_bare", ALLOW, "single.txt", 32),
    Case("sidecar single c32", "sidecar", ALLOW, "single.txt", 32),
    Case("const batch100 c32", "const", BATCH, "batch.txt", 32),
    Case("sidecar batch100 c32", "sidecar", BATCH, "batch.txt", 32),
    Case("const single c1", "const", ALLOW, "single.txt", 1),
    Case("sidecar single c1", "sidecar", ALLOW, "single.txt", 1),
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--warmup", type=int, default=3, help="seconds per untimed warm-up run")
    parser.add_argument(
        "--max-foreign",
        type=float,
        default=5.0,
        help="repeat a run if other processes used more than this %% of the CPU during it",
    )
    parser.add_argument("--retries", type=int, default=3, help="repeats allowed per run")
    parser.add_argument("--no-locust", action="store_true", help="skip the realistic-mix run")
    parser.add_argument("--locust-seconds", type=int, default=25)
    parser.add_argument("--locust-users", type=int, default=16)
    parser.add_argument("--keep", action="store_true", help="keep the generated directory")
    parser.add_argument("--json", type=Path, help="also write every measurement here")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install -y wrk")

    work = Path(tempfile.mkdtemp(prefix="pdp-bench-"))
    ports = {"sidecar": free_port(), "const": free_port(), "const_bare": free_port()}
    generate.generate(work, ports["sidecar"], free_port())
    report: dict[str, Any] = {"conditions": conditions(args), "runs": []}
    try:
        with started(
            [PYTHON, "-m", "pdp.cli", "up", "--config", str(work / "pdp.yaml"),
             "--sidecar-config", str(work / "sidecar.yaml")],
            work / "pdp-up.log",
        ), started(
            [PYTHON, "-m", "uvicorn", "const_app:app", "--app-dir", str(HERE), "--workers", "2",
             "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level",
             "warning", "--host", "127.0.0.1", "--port", str(ports["const"])],
            work / "const.log",
        ), started(  # the uvicorn options of the sidecar: no proxy-headers middleware
            [PYTHON, "-m", "uvicorn", "const_app:app", "--app-dir", str(HERE), "--workers", "2",
             "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level",
             "warning", "--no-proxy-headers", "--host", "127.0.0.1",
             "--port", str(ports["const_bare"])],
            work / "const-bare.log",
        ):  # fmt: skip
            wait_ready(ports["sidecar"], sidecar=True)
            wait_ready(ports["const"], sidecar=False)
            wait_ready(ports["const_bare"], sidecar=False)
            report["checked"] = check_answers(work, ports["sidecar"])
            report["warmup"] = {
                case.name: warm(work, ports, case, args.warmup)
                for case in CASES
                if case.connections > 1  # the 1-connection cases reuse the same bodies
            }
            for run in range(args.runs):
                for case in CASES:
                    result, repeats = wrk(work, ports, case, args.duration), 0
                    while result["foreign_pct"] > args.max_foreign and repeats < args.retries:
                        result, repeats = wrk(work, ports, case, args.duration), repeats + 1
                    result.update(case=case.name, run=run + 1, repeats=repeats)
                    report["runs"].append(result)
                    print(f"  run {run + 1} {case.name}: {result['rps']:,.0f} req/s, "
                          f"p99 {result['p99_ms']:.2f} ms, steal {result['steal_pct']:.1f} %, "
                          f"other jobs {result['foreign_pct']:.1f} %",
                          file=sys.stderr)  # fmt: skip
            if not args.no_locust:
                report["locust"] = locust(work, ports["sidecar"], args)
    finally:
        clean_up(work, args.keep)
    return publish(markdown(report), report, args.json)


# --- processes ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def started(command: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run `command` in a process group of its own and stop exactly that group afterwards:
    `pdp up` starts the sidecar, which starts uvicorn workers, and all of them must go."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(15)
        with contextlib.suppress(ProcessLookupError):  # stragglers of the same group
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def wait_ready(port: int, sidecar: bool, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            if sidecar:
                status, body = get(port, "/health")
                if status == 200 and json.loads(body)["pdp"] == "connected":
                    return
            else:
                status, _ = post(port, ALLOW, b"{}")
                if status == 200:
                    return
        time.sleep(0.2)
    raise SystemExit(f"server on port {port} not ready after {timeout:.0f} s")


def get(port: int, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def post(port: int, path: str, body: bytes) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("POST", path, body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


# --- correctness: the sidecar must agree with the decision core --------------------------


def check_answers(work: Path, port: int, sample: int = 300) -> dict[str, int]:
    """Send a sample of the bodies and compare with `decide()` on the same configuration (what
    `pdp explain` does), so a fast but wrong sidecar cannot pass."""
    from pdp.config.load import load_settings, load_snapshot
    from pdp.core import decide
    from pdp.service.config import load_pdp_config
    from pdp.wire.trino import decode

    config = load_pdp_config(work / "pdp.yaml")
    snapshot = load_snapshot(config.policy_files, config.mapping_file).value
    settings = load_settings(work / "cluster.properties", None, snapshot.mapping).value
    rnd = random.Random(7)
    counts = {"single": 0, "single_allowed": 0, "batch": 0, "batch_items_allowed": 0, "items": 0}
    for kind, path in (("single", ALLOW), ("batch", BATCH)):
        lines = (work / f"{kind}.txt").read_bytes().splitlines()
        for line in rnd.sample(lines, min(sample, len(lines))):
            raw = line.replace(generate.QID.encode(), b"20261122_000000_00001_check")
            call = decode(raw)
            view = snapshot.view(settings, call.identity)
            if call.items is None:
                expected: Any = decide(view, call.request()).allowed
            else:
                decisions = (decide(view, call.request(item)) for item in call.items)
                expected = [i for i, d in enumerate(decisions) if d.allowed]
            status, answer = post(port, path, raw)
            got = json.loads(answer).get("result") if status == 200 else answer
            if got != expected:
                raise SystemExit(f"wrong answer on {path}: {got!r} != {expected!r} for {raw!r}")
            counts[kind] += 1
            if kind == "single":
                counts["single_allowed"] += bool(expected)
            else:
                counts["items"] += len(call.items or ())
                counts["batch_items_allowed"] += len(expected)
    return counts


# --- wrk ----------------------------------------------------------------------------------


def warm(work: Path, ports: dict[str, int], case: Case, seconds: int, tries: int = 10) -> int:
    """Untimed runs until one has no cache-miss stall, or `tries` runs. Each worker has its own
    cache and the kernel spreads the connections of a run unevenly over the two, so one fixed
    warm-up can leave a worker cold: its misses (a PDP round trip per new user) would show up
    as a tail of several hundred milliseconds in the timed runs. Returns the runs needed."""
    for attempt in range(1, tries + 1):
        if wrk(work, ports, case, seconds)["max_ms"] < 50:
            return attempt
    return tries


def wrk(
    work: Path, ports: dict[str, int], case: Case, seconds: int, *script_args: str
) -> dict[str, Any]:
    """One wrk run of `case`; `script_args` follow the bodies file (see wrk/cycle.lua)."""
    url = f"http://127.0.0.1:{ports[case.server]}{case.path}"
    command = [
        # a slow answer (OPA's batches under load) is timed, not dropped after wrk's 2 s
        "wrk", "-t1", f"-c{case.connections}", f"-d{seconds}s", "--timeout", "10s", "--latency",
        "-s", str(HERE / "wrk" / "cycle.lua"), url, "--", str(work / case.bodies), *script_args,
    ]  # fmt: skip
    before = cpu_snapshot()
    output = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 15, check=True
    ).stdout
    load = cpu_load(before, cpu_snapshot())
    found = re.search(r"^BENCH_JSON (.*)$", output, re.MULTILINE)
    if found is None:
        raise SystemExit(f"unexpected wrk output:\n{output}")
    raw = json.loads(found.group(1))
    errors = sum(raw[k] for k in ("connect", "read", "write", "status", "timeout"))
    if errors:
        raise SystemExit(f"{case.name}: {errors} errors or non-2xx answers:\n{output}")
    return {
        "rps": raw["requests"] / (raw["duration_us"] / 1e6),
        "p50_ms": raw["p50_us"] / 1000,
        "p90_ms": raw["p90_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "p999_ms": raw["p999_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "requests": raw["requests"],
        **load,
        "command": " ".join([*command[: -1 - len(script_args)], case.bodies, *script_args]),
    }


def cpu_snapshot() -> tuple[list[int], int]:
    """System CPU ticks by kind, and the ticks used so far by this script's process tree
    (servers, workers, wrk; children that exited are in their parent's cutime/cstime)."""
    with open("/proc/stat") as stat:
        system = [int(v) for v in stat.readline().split()[1:]]
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        parents[int(entry)] = int(fields[1])
        ticks[int(entry)] = sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
    mine, todo = 0, [os.getpid()]
    while todo:
        pid = todo.pop()
        mine += ticks.get(pid, 0)
        todo += [child for child, parent in parents.items() if parent == pid]
    return system, mine


def cpu_load(before: tuple[list[int], int], after: tuple[list[int], int]) -> dict[str, float]:
    """Steal, and `foreign`: CPU used by processes outside this benchmark (other jobs on the
    machine), both in percent of all CPU time during the run."""
    delta = [b - a for a, b in zip(before[0], after[0], strict=True)]
    total = max(1, sum(delta[:8]))  # user nice system idle iowait irq softirq steal
    busy = total - delta[3] - delta[4]
    return {
        "steal_pct": 100.0 * delta[7] / total,
        "foreign_pct": max(0.0, 100.0 * (busy - delta[7] - (after[1] - before[1])) / total),
    }


# --- locust -------------------------------------------------------------------------------


def locust(work: Path, port: int, args: argparse.Namespace) -> dict[str, Any]:
    prefix = work / "locust"
    command = [
        PYTHON, "-m", "locust", "-f", str(HERE / "locustfile.py"), "--headless",
        "--host", f"http://127.0.0.1:{port}", "-u", str(args.locust_users),
        "-r", str(args.locust_users), "-t", f"{args.locust_seconds}s", "--csv", str(prefix),
        "--only-summary", "--loglevel", "WARNING",
    ]  # fmt: skip
    before = cpu_snapshot()
    subprocess.run(
        command,
        cwd=REPO,
        env={**os.environ, "BENCH_LOCUST_OUT": str(prefix) + ".json"},
        capture_output=True,
        timeout=args.locust_seconds + 60,
        check=False,
    )
    load = cpu_load(before, cpu_snapshot())
    summary = json.loads(Path(str(prefix) + ".json").read_bytes())
    return {
        "command": " ".join(command[3:]).replace(str(work), "$WORK"),
        "rows": summary["rows"],
        "seconds": summary["seconds"],
        **load,
    }


# --- report -------------------------------------------------------------------------------


def clean_up(work: Path, keep: bool = False) -> None:
    """Remove a benchmark's work directory, or keep it (`--keep`) and say where it is."""
    if keep:
        print(f"kept {work}", file=sys.stderr)
    else:
        shutil.rmtree(work, ignore_errors=True)


def publish(text: str, report: object = None, json_path: Path | None = None) -> int:
    """A benchmark's ending: its markdown on stdout and, when asked, every measurement as JSON."""
    print(text)
    if json_path is not None:
        json_path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    return 0


def conditions(args: argparse.Namespace) -> dict[str, str]:
    from importlib.metadata import version

    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if "model name" in line), "?")
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split()
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} CPUs, {cpu}, kernel {platform.release()}",
        "python": platform.python_version(),
        "versions": ", ".join(
            f"{p} {version(p)}"
            for p in ("uvicorn", "httptools", "uvloop", "orjson", "cachetools", "grpcio", "locust")
        )
        + f", wrk {wrk_version[1] if len(wrk_version) > 1 else '?'}",
        "method": f"wrk -t1, {args.runs} runs x {args.duration} s per case after warm-up runs "
        f"of {args.warmup} s; cases interleaved in each run",
    }


def markdown(report: dict[str, Any]) -> str:
    c = report["conditions"]
    lines = [
        f"Date {c['date']}; {c['machine']}; Python {c['python']}; {c['versions']}.",
        f"Method: {c['method']}. Answers checked against the decision core: {report['checked']}. "
        f"Warm-up runs until no stall: {report['warmup']}.",
        "",
        "| case | req/s median (min-max) | p50 ms | p99 ms median (min-max) | p99.9 ms "
        "| steal % | other jobs % |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    medians: dict[str, dict[str, float]] = {}
    for case in CASES:
        runs = [r for r in report["runs"] if r["case"] == case.name]
        rps, p99 = [r["rps"] for r in runs], [r["p99_ms"] for r in runs]
        keys = [k for k in runs[0] if k.endswith(("_ms", "_pct"))]
        m = {k: statistics.median(r[k] for r in runs) for k in keys}
        m["rps"] = statistics.median(rps)
        medians[case.name] = m
        lines.append(
            f"| {case.name} | {m['rps']:,.0f} ({min(rps):,.0f}-{max(rps):,.0f}) | "
            f"{m['p50_ms']:.2f} | {m['p99_ms']:.2f} ({min(p99):.2f}-{max(p99):.2f}) | "
            f"{m['p999_ms']:.2f} | {m['steal_pct']:.1f} | {m['foreign_pct']:.1f} |"
        )
    single, const = medians["sidecar single c32"], medians["const single c32"]
    batch, c1 = medians["sidecar batch100 c32"], medians["sidecar single c1"]
    ratio = single["rps"] / const["rps"]
    by_run = {(r["case"], r["run"]): r["rps"] for r in report["runs"]}
    runs = sorted({r["run"] for r in report["runs"]})
    ratios = [by_run["sidecar single c32", n] / by_run["const single c32", n] for n in runs]
    t = TARGETS
    verdict = {
        f"single checks >= {t['single_rps']:,}/s": single["rps"] >= t["single_rps"],
        f"single p99 <= {t['single_p99_ms']} ms": single["p99_ms"] <= t["single_p99_ms"],
        f">= {t['ratio']} x ceiling ({ratio:.2f})": ratio >= t["ratio"],
        f"batch100 >= {t['batch_rps']:,}/s": batch["rps"] >= t["batch_rps"],
    }
    lines += [
        "",
        f"Sidecar / ceiling (single, c32): **{ratio:.2f}** (ratio of the medians; per run "
        f"{', '.join(f'{r:.2f}' for r in ratios)}); batch100 / ceiling on the same "
        f"bodies: {batch['rps'] / medians['const batch100 c32']['rps']:.2f}; "
        f"1 connection: p50 {c1['p50_ms']:.2f} ms, p99 {c1['p99_ms']:.2f} ms. Against the "
        f"ceiling with the sidecar's own uvicorn options (no proxy-headers middleware): "
        f"**{single['rps'] / medians['const-bare single c32']['rps']:.2f}**.",
        "",
        "| target | met |",
        "|---|---|",
        *(f"| {name} | {'yes' if ok else '**no**'} |" for name, ok in verdict.items()),
    ]
    if "locust" in report:
        loc = report["locust"]
        lines += [
            "",
            f"Realistic Trino mix (locust, {loc['seconds']:.0f} s, steal {loc['steal_pct']:.1f} %, "
            f"other jobs {loc['foreign_pct']:.1f} %): `{loc['command']}`",
            "",
            "| endpoint / call | requests | failures | req/s | p50 ms | p95 ms | p99 ms | max ms |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
            *(
                f"| {r['name']} | {r['requests']:,} | {r['failures']} | {r['rps']:,.0f} | "
                f"{r['p50_ms']:.2f} | {r['p95_ms']:.2f} | {r['p99_ms']:.2f} | {r['max_ms']:.1f} |"
                for r in loc["rows"]
            ),
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
