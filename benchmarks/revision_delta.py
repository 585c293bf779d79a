"""Revisions under load (issue 26, goals 1 and 2): what a sidecar keeps and what the checks pay
when a revision arrives, while 2,000 active users send checks at a steady rate.

    .venv/bin/python benchmarks/revision_delta.py --scale 0.1                 # this tree
    git archive main | tar -x -C /tmp/before                                  # today's code ...
    .venv/bin/python benchmarks/revision_delta.py --scale 0.1 --before /tmp/before  # ... beside it

The world is `scale_world.py`'s (`--scale 1`: 10,000 users, 100,000 tables; the policy files
and the registry split by schema, `registry/`, that `pdp up` loads, with a sidecar of 2
workers; `--one-registry-file`: the registry as one file, as a `--before` tree older than
directory entries needs). Per tree, `pdp up` is started
afresh, every active user's checks are asked until both workers hold their views, then the
load runs (`--rate` checks a second over 8 connections, each a SelectFromColumns of one of the
user's tables, a fresh queryId each) and three changes are made, one after another:

1. a policy granting one more schema to a group of about 1 % of the users (policies.yaml);
2. 100 tables added to one schema, as object sync finds them (that schema's file in registry/,
   the only file the PDP parses again; or the one registry file, rewritten whole);
3. up to 100 tables of one schema dropped (the same; a small world's schemas hold fewer).

For each: how many views the workers held before, the fewest they held while the change went
through (a full flush drops to zero, then refills), the PDP process's CPU seconds over the
change (from the file's write to the end of its window: reading and compiling the files, the
delta, then the entitlements asked again) beyond its steady rate, and the checks' p50/p99/max
in the change's window (from a second before both workers serve the new revision to
`--window` seconds after) beside the steady window just before the write, as long. With
`--rounds N` the three changes are made N times, each round ending with a fourth that puts
the world back, and each change's checks are pooled over its rounds: a window holds about
2,700 checks, so one window's p99 is its 27th slowest check, and it moves by a millisecond from
window to window on a quiet machine. The load is asked from a process of its own. Only
127.0.0.1 is used; every process started here is stopped by its own process group.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import multiprocessing
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as ProcessEvent
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import generate  # noqa: E402  (benchmarks/ is not a package)
import run  # noqa: E402
import scale_world  # noqa: E402

CONNECTIONS = 8
ACTIVE_USERS = 2_000
CHECKS_PER_USER = 3
TICK = os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="of scale_world's world")
    parser.add_argument("--rate", type=float, default=300.0, help="checks a second in all")
    parser.add_argument(
        "--steady", type=float, help="seconds of the steady window (default: the change's)"
    )
    parser.add_argument("--window", type=float, default=8.0, help="seconds after each change")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="the changes made this many times, each round ending with the world restored "
        "(a fourth change), and each change's checks pooled over its rounds",
    )
    parser.add_argument("--before", type=Path, help="a source tree to measure beside this one")
    parser.add_argument(
        "--pdp-apart",
        action="store_true",
        help="the PDP on a CPU of its own, the sidecar and the load on the others",
    )
    parser.add_argument(
        "--one-registry-file", action="store_true", help="the registry as one file, not split"
    )
    args = parser.parse_args()
    if args.steady is None:  # as long as the change's window: a second before, --window after
        args.steady = 1.0 + args.window
    trees = {"after": run.REPO, **({"before": args.before.resolve()} if args.before else {})}
    results = {}
    for name, tree in sorted(trees.items()):  # "after" first, then "before"
        print(f"{name}: {tree}", file=sys.stderr)
        results[name] = one_tree(tree, args)
    return run.publish(markdown(results, args))


def one_tree(tree: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    work = Path(tempfile.mkdtemp(prefix="pdp-delta-"))
    world = scale_world.build_world(scale=args.scale)
    port = run.free_port()
    files = scale_world.write_world(
        world, work, port, run.free_port(), one_registry_file=args.one_registry_file
    )
    rnd = random.Random(26)
    checks = active_checks(world, rnd)
    changes = scale_world.staged_changes(world, files, rnd, work / "staged", args.rounds > 1)
    try:
        with started(tree, files) as pdp:
            run.wait_ready(port, sidecar=True, timeout=600)
            warm(port, checks)
            load = Load(port, checks, args.rate)
            load.start()
            try:
                time.sleep(2)
                if args.pdp_apart:
                    apart(pdp.pid, load.pid)
                rounds: dict[str, list[dict[str, Any]]] = {}
                for number in range(1, args.rounds + 1):
                    for label, write in changes:
                        row = one_change(port, pdp.pid, load, write, args)
                        rounds.setdefault(label, []).append(row)
                        shown = {k: v for k, v in row.items() if not k.endswith("latencies")}
                        print(f"  round {number}, {label}: {shown}", file=sys.stderr)
            finally:
                load.stop()
    except BaseException:
        log = (files.directory / "pdp-up.log").read_text(errors="replace")
        print("pdp up's log ends:\n" + "\n".join(log.splitlines()[-30:]), file=sys.stderr)
        raise
    finally:
        run.clean_up(work)
    return [{"change": label, **pooled(rows)} for label, rows in rounds.items()]


def pooled(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One change's rounds as one row: the views and the time to the revision at their
    least and most, the PDP's CPU at its median, the checks' percentiles over all rounds."""
    cpu = sorted(r["pdp_cpu_s"] for r in rows)
    return {
        "views_before": min(r["views_before"] for r in rows),
        "fewest_views": min(r["fewest_views"] for r in rows),
        "revision_seen_s": max(r["revision_seen_s"] for r in rows),
        "pdp_cpu_s": cpu[len(cpu) // 2],
        "steady": percentiles(sorted(x for r in rows for x in r["steady_latencies"])),
        "during": percentiles(sorted(x for r in rows for x in r["during_latencies"])),
    }


def active_checks(world: scale_world.World, rnd: random.Random) -> list[bytes]:
    """A few checks of tables each active user reads."""
    users = rnd.sample(world.users, min(ACTIVE_USERS, len(world.users)))
    checks = []
    for user in users:
        seen = world.seen(user)
        indexes = [i for i, bit in enumerate(reversed(bin(seen)[2:])) if bit == "1"]
        for index in rnd.sample(indexes, min(CHECKS_PER_USER, len(indexes))) or [0]:
            table = world.tables[index]
            checks.append(generate.select(user, table, [table.columns[0][0]]))
    rnd.shuffle(checks)
    return checks


@contextlib.contextmanager
def started(tree: Path, files: scale_world.WorldFiles) -> Iterator[subprocess.Popen[bytes]]:
    """`pdp up` from `tree` (its directory first on the path of every process it starts); the
    PDP is that process itself, the sidecar and its workers its children."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    command = [run.PYTHON, "-m", "pdp.cli", "up", "--config", str(files.pdp)]
    command += ["--sidecar-config", str(files.sidecar)]
    with (files.directory / "pdp-up.log").open("ab") as out:
        process = subprocess.Popen(
            command, cwd=tree, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(15)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def warm(port: int, checks: list[bytes]) -> None:
    """Ask every check over several connections until both workers hold every active user."""
    users = len({generate_user(c) for c in checks})
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        threads = [
            threading.Thread(target=_ask_all, args=(port, checks[i::CONNECTIONS]))
            for i in range(CONNECTIONS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        time.sleep(1.2)  # the workers' metrics are up to a second old
        held = cached_users(port)
        if len(held) == 2 and min(held.values()) >= users:
            return
    raise SystemExit("the workers never held every active user's view")


def apart(pdp: int, load: int) -> None:
    """The PDP's threads on a CPU of their own, everything else (the sidecar's processes, the
    load, this one) on the others: a deployment's layout, the PDP pool on machines of its own,
    each sidecar beside its coordinator. Threads started later inherit their creator's CPUs."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise SystemExit("--pdp-apart needs two CPUs")
    others = set(cpus[:-1])
    for pid in (*_descendants(pdp), load, os.getpid()):
        for task in Path(f"/proc/{pid}/task").iterdir():
            os.sched_setaffinity(int(task.name), others)
    for task in Path(f"/proc/{pdp}/task").iterdir():
        os.sched_setaffinity(int(task.name), {cpus[-1]})


def _descendants(pid: int) -> list[int]:
    children = [
        int(child)
        for task in Path(f"/proc/{pid}/task").iterdir()
        for child in (task / "children").read_text().split()
    ]
    return [found for child in children for found in (child, *_descendants(child))]


def generate_user(check: bytes) -> bytes:
    return check.split(b'"user":"', 1)[1].split(b'"', 1)[0]


def _ask_all(port: int, checks: list[bytes]) -> None:
    for number in range(2):  # new connections: the kernel spreads them over the workers
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for check in checks[number::2]:
            connection.request("POST", run.ALLOW, check)
            connection.getresponse().read()
        connection.close()


class Load:
    """`rate` checks a second over CONNECTIONS keep-alive connections, each latency kept with
    the time it was sent, asked from a process of its own: what this one does meanwhile (making
    a change, reading the workers' metrics every quarter second) never holds the threads that
    time the checks, in the change's window and not in the steady one. The samples come back
    in batches; `between` waits for those up to its end."""

    def __init__(self, port: int, checks: list[bytes], rate: float) -> None:
        context = multiprocessing.get_context("fork")  # nothing runs here but this thread
        self.samples: list[tuple[float, float]] = []  # (sent, seconds)
        self._reported = 0.0  # the child's clock when it sent its last batch
        self._stop = context.Event()
        self._batches, sending = context.Pipe(duplex=False)
        self._process = context.Process(  # a daemon: it ends with this one, whatever happens
            target=_load, args=(port, checks, CONNECTIONS / rate, self._stop, sending), daemon=True
        )

    def start(self) -> None:
        self._process.start()

    @property
    def pid(self) -> int:
        assert self._process.pid is not None  # started
        return self._process.pid

    def stop(self) -> None:
        self._stop.set()
        deadline = time.monotonic() + 70  # a check in flight ends within its 60 s timeout
        while self._process.is_alive() and time.monotonic() < deadline:
            while self._batches.poll():  # a full pipe would hold its last send
                self._batches.recv()
            self._process.join(0.1)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        if self._process.exitcode != 0:
            raise SystemExit(f"the load's process ended with {self._process.exitcode}")

    def between(self, start: float, end: float) -> list[float]:
        deadline = time.monotonic() + 10
        while self._reported < end and time.monotonic() < deadline:
            if not self._process.is_alive():
                raise SystemExit(f"the load's process ended with {self._process.exitcode}")
            if self._batches.poll(0.05):
                self._reported, batch = self._batches.recv()
                self.samples += batch
        return sorted(s * 1000 for t, s in self.samples if start <= t < end)


REPORT_EVERY = 0.2  # seconds between two batches of samples from the load's process


def _load(
    port: int, checks: list[bytes], interval: float, stop: ProcessEvent, batches: Connection
) -> None:
    """The load's process: its threads ask, this one sends their samples on in batches; a
    check answered with anything but 200 ends it, and the benchmark with it."""
    samples: list[tuple[float, float]] = []
    threads = [
        threading.Thread(target=_ask, args=(port, checks, interval, number, stop, samples))
        for number in range(CONNECTIONS)
    ]
    for thread in threads:
        thread.start()
    while not stop.wait(REPORT_EVERY):
        if not all(thread.is_alive() for thread in threads):
            stop.set()
            sys.exit(1)  # the thread's error is above
        now, taken = time.monotonic(), samples[:]
        del samples[: len(taken)]  # appended meanwhile: left for the next batch
        batches.send((now, taken))
    for thread in threads:
        thread.join()


def _ask(
    port: int,
    checks: list[bytes],
    interval: float,
    number: int,
    stop: ProcessEvent,
    samples: list[tuple[float, float]],
) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    rnd = random.Random(number)
    sent = 0
    next_at = time.monotonic()
    while not stop.is_set():
        check = with_query_id(rnd.choice(checks), number, sent)
        start = time.perf_counter()
        connection.request("POST", run.ALLOW, check)
        response = connection.getresponse()
        response.read()
        seconds = time.perf_counter() - start
        if response.status != 200:
            raise RuntimeError(f"a check was answered {response.status}")
        samples.append((time.monotonic() - seconds, seconds))
        sent += 1
        next_at += interval
        time.sleep(max(0.0, next_at - time.monotonic()))


def with_query_id(body: bytes, connection: int, number: int) -> bytes:
    return body.replace(generate.QID.encode(), b"20261207_%02d_%07d_delta" % (connection, number))


def one_change(
    port: int, pdp_pid: int, load: Load, write: Callable[[], None], args: argparse.Namespace
) -> dict[str, Any]:
    held_before = sum(cached_users(port).values())
    revision_before = revisions(port)
    steady_start, steady_cpu = time.monotonic(), cpu_seconds(pdp_pid)
    time.sleep(args.steady)
    steady = load.between(steady_start, time.monotonic())
    steady_rate = (cpu_seconds(pdp_pid) - steady_cpu) / (time.monotonic() - steady_start)
    changed_at, cpu_at = time.monotonic(), cpu_seconds(pdp_pid)
    write()
    fewest, switched = held_before, None
    while switched is None or time.monotonic() - switched < args.window:
        time.sleep(0.25)
        fewest = min(fewest, sum(cached_users(port).values()))
        if switched is None and revisions(port).isdisjoint(revision_before):
            switched = time.monotonic()
        if switched is None and time.monotonic() - changed_at > 600:
            raise SystemExit("the workers did not move to the new revision within 600 s")
    assert switched is not None
    elapsed = time.monotonic() - changed_at
    cpu = cpu_seconds(pdp_pid) - cpu_at - steady_rate * elapsed
    # the workers' metrics are up to a second old: the window starts a second before
    during = load.between(switched - 1.0, switched + args.window)
    return {
        "views_before": held_before,
        "fewest_views": fewest,
        "revision_seen_s": round(switched - changed_at, 1),
        "pdp_cpu_s": round(max(cpu, 0.0), 2),
        "steady": percentiles(steady),
        "during": percentiles(during),
        "steady_latencies": steady,
        "during_latencies": during,
    }


def percentiles(latencies: list[float]) -> dict[str, float]:
    if not latencies:
        return {"checks": 0, "p50": 0.0, "p99": 0.0, "max": 0.0}
    return {
        "checks": len(latencies),
        "p50": round(latencies[len(latencies) // 2], 2),
        "p99": round(latencies[int(len(latencies) * 0.99)], 2),
        "max": round(latencies[-1], 1),
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU of the process itself (its threads; not its children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def metrics(port: int) -> str:
    status, body = run.get(port, "/metrics")
    if status != 200:
        raise SystemExit(f"/metrics answered {status}")
    return body.decode()


def cached_users(port: int) -> dict[str, int]:
    found = re.findall(r'^pdp_sidecar_cached_users\{worker="(\d+)"\} (\S+)$', metrics(port), re.M)
    return {worker: int(float(value)) for worker, value in found}


def revisions(port: int) -> set[str]:
    return set(re.findall(r'^pdp_sidecar_revision\{.*revision="([^"]*)"', metrics(port), re.M))


def markdown(results: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> str:
    rounds = f", {args.rounds} rounds pooled" if args.rounds > 1 else ""
    lines = [
        f"scale {args.scale}, {args.rate:.0f} checks/s, windows: steady {args.steady:.0f} s, "
        f"change {args.window:.0f} s{rounds}",
        "",
        "| tree | change | views held before → fewest during | revision seen after, s "
        "| PDP CPU for the change, s | p50 / p99 / max ms, steady | p50 / p99 / max ms, "
        "during | p99 during / steady |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, rows in sorted(results.items(), reverse=True):
        for r in rows:
            s, d = r["steady"], r["during"]
            ratio = d["p99"] / s["p99"] if s["p99"] else float("nan")
            lines.append(
                f"| {name} | {r['change']} | {r['views_before']} → {r['fewest_views']} | "
                f"{r['revision_seen_s']} | {r['pdp_cpu_s']} | {s['p50']} / {s['p99']} / "
                f"{s['max']} | {d['p50']} / {d['p99']} / {d['max']} | {ratio:.1f}x |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
