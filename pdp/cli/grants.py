"""`pdp grants plan|apply`: show the exact statements grant sync would run, or run them.

Hook into the `pdp` parser with `add_grants_commands(subparsers)`; the parsed namespace carries
`grants_handler`, which returns the exit code: 0 in sync, 1 steps failed or drift left (for
`plan`: steps known to fail, such as a grant to a PostgreSQL login role that does not exist), 2
configuration error (a target naming a connection the registry does not hold, too), 3 a target
could not be read."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

import orjson

from pdp.config.errors import ConfigError
from pdp.config.load import load_snapshot
from pdp.config.yamlsource import read_yaml
from pdp.grants.config import GrantsConfig, TargetSpec, load_grants_config, parse_grants
from pdp.grants.desired import check_connections
from pdp.grants.errors import GrantSyncError, UnknownConnection
from pdp.grants.model import Plan, Report
from pdp.grants.syncer import apply, plan
from pdp.policy import PolicySnapshot
from pdp.service.config import load_pdp_config

DEMO_PDP_YAML = Path(__file__).resolve().parents[2] / "config" / "pdp.yaml"  # as check/explain


def add_grants_commands(subparsers: Any) -> None:
    grants = subparsers.add_parser(
        "grants", help="native grants on Snowflake, Databricks and PostgreSQL"
    )
    actions = grants.add_subparsers(dest="grants_command", required=True)
    commands: tuple[tuple[str, str, Callable[[argparse.Namespace], int]], ...] = (
        ("plan", "print the statements and PATCH bodies a sync would run (dry run)", run_plan),
        ("apply", "run the plan, then report what changed and any drift left", run_apply),
    )
    for name, text, handler in commands:
        command = actions.add_parser(name, help=text)
        command.add_argument(
            "--config",
            type=Path,
            nargs="+",
            default=[DEMO_PDP_YAML],
            help="pdp.yaml, or the policy/registry YAML files themselves (default: the demo's)",
        )
        command.add_argument("--mapping", type=Path, help="accessGrantMapping (with policy files)")
        command.add_argument(
            "--target", type=Path, help="targets YAML (default: the grants section of pdp.yaml)"
        )
        command.add_argument("--only", action="append", metavar="NAME", help="limit to targets")
        command.add_argument("--json", action="store_true", help="print JSON lines")
        command.set_defaults(grants_handler=handler)


def run_plan(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    return _run(args, out, execute=False)


def run_apply(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    return _run(args, out, execute=True)


def _run(args: argparse.Namespace, out: TextIO, execute: bool) -> int:
    try:
        snapshot, config = _load(args.config, args.mapping, args.target)
    except (ConfigError, GrantSyncError) as exc:
        print(f"configuration error:\n{exc}", file=sys.stderr)
        return 2
    specs = [s for s in config.targets if not args.only or s.name in args.only]
    if not specs:
        print("no grant sync targets configured: grant sync is off", file=sys.stderr)
        return 2
    try:
        for spec in specs:
            check_connections(spec.name, spec.connections, snapshot, spec.where)
    except UnknownConnection as exc:
        print(f"configuration error:\n{exc}", file=sys.stderr)
        return 2
    status = 0
    for spec in specs:
        status = max(status, _one(spec, snapshot, out, execute, args.json))
    return status


def _one(spec: TargetSpec, snapshot: PolicySnapshot, out: TextIO, execute: bool, js: bool) -> int:
    try:
        with spec.open() as target:
            planned = plan(target, snapshot)
            print_plan(planned.plan, out, js)
            if not execute:
                return 1 if planned.plan.failing else 0
            report = apply(target, planned)
    except GrantSyncError as exc:  # its message names the target
        print(str(exc), file=sys.stderr)
        return 3
    except Exception as exc:  # login or network failure while connecting: report, go on
        print(f"{spec.name}: cannot connect: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 3
    print_report(report, out, js)
    return 0 if report.clean else 1


def _load(
    paths: Sequence[Path], mapping: Path | None, targets: Path | None
) -> tuple[PolicySnapshot, GrantsConfig]:
    if len(paths) == 1 and _is_pdp_yaml(paths[0]):
        pdp = load_pdp_config(paths[0])
        snapshot = load_snapshot(list(pdp.policy_files), pdp.mapping_file).value
        configured = pdp.grants
    else:
        snapshot = load_snapshot(list(paths), mapping).value
        configured = parse_grants({}, str(paths[0]))
    if targets is not None:
        return snapshot, load_grants_config(targets)
    return snapshot, configured


def _is_pdp_yaml(path: Path) -> bool:
    try:
        document = read_yaml(path)
    except ConfigError:
        return False  # load_snapshot reports the file's problem with its own message
    return isinstance(document, dict) and "policyFiles" in document


def print_plan(plan: Plan, out: TextIO, js: bool = False) -> None:
    if js:
        out.write(orjson.dumps(_plan_json(plan)).decode() + "\n")
        return
    out.write(f"-- target {plan.target} at revision {plan.revision}: {len(plan.steps)} step(s)\n")
    for note in plan.notes:
        out.write(f"-- note: {note}\n")
    for problem in plan.failing:
        out.write(f"-- WILL FAIL: {problem}\n")
    for withheld in plan.withheld:
        out.write(f"-- WITHHELD: {withheld}\n")
    for narrowed in plan.columns:
        out.write(f"-- COLUMNS: {narrowed}\n")
    where = ""
    for step in plan.steps:
        if step.where != where:
            where = step.where
            out.write(f'\\connect "{where}"\n' if where else "\\connect\n")
        out.write(step.text + ("" if step.text.startswith("PATCH ") else ";") + "\n")


def print_report(report: Report, out: TextIO, js: bool = False) -> None:
    if js:
        payload = {
            "target": report.target,
            "revision": report.revision,
            "applied": len(report.applied),
            "failed": [{"subject": f.step.subject, "error": f.error} for f in report.failed],
            "drift": None if report.drift is None else _plan_json(report.drift)["steps"],
        }
        out.write(orjson.dumps(payload).decode() + "\n")
        return
    out.write(f"-- {report.target}: {len(report.applied)} applied, {len(report.failed)} failed\n")
    for failure in report.failed:
        out.write(f"-- FAILED {failure.step.subject}: {failure.error}\n")
    if report.drift is None:
        out.write("-- drift unknown: the target could not be read again\n")
    elif report.drift.steps:
        out.write(f"-- drift left: {len(report.drift.steps)} step(s)\n")
        for step in report.drift.steps:
            out.write(f"--   {step.text}\n")
    else:
        out.write("-- in sync\n")


def _plan_json(plan: Plan) -> dict[str, Any]:
    return {
        "target": plan.target,
        "revision": plan.revision,
        "notes": list(plan.notes),
        "failing": list(plan.failing),
        "withheld": list(plan.withheld),
        "columns": list(plan.columns),
        "steps": [
            {"phase": s.phase.name, "subject": s.subject, "where": s.where, "text": s.text}
            for s in plan.steps
        ],
    }
