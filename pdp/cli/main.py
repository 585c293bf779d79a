"""The `pdp` command: run the services, explain decisions, check configuration."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path
from typing import Any

import orjson

from pdp.cli.connections import add_connection_commands, config_option
from pdp.cli.grants import add_grants_commands
from pdp.config.errors import ConfigError, Problem
from pdp.config.listen import AddressInUse, ensure_listen_free
from pdp.config.load import PolicyInputs, load_policy_inputs, load_settings
from pdp.config.yamlsource import line_of, read_yaml
from pdp.control import compose
from pdp.core import decide
from pdp.core.datapolicy import column_mask, row_filters
from pdp.core.model import DEFAULT_MAPPING, Decision, Identity, Request, TableRef, View, name_of
from pdp.policy import PolicySnapshot, PolicyStatus
from pdp.policy.model import MaskingPolicy
from pdp.service.config import PdpConfig, load_pdp_config
from pdp.service.run import start_pdp
from pdp.store import Store, StoreRegistry, migrate, read_registry
from pdp.store.engine import create_store_engine, safe_url
from pdp.wire.datapolicy import mask_columns
from pdp.wire.trino import (  # the same decoder the sidecar uses
    BadRequest,
    Call,
    decode_document,
    parse,
)

DEMO = Path(__file__).resolve().parents[2] / "config"
SERVERS = ("up", "serve")  # the long-running commands: they log what they do
log = logging.getLogger("pdp")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pdp", description="Policy decision point for Trino.")
    commands = parser.add_subparsers(dest="command", required=True)
    _service_commands(commands)
    add_grants_commands(commands)
    add_connection_commands(commands)

    args = parser.parse_args(argv)
    if args.command in SERVERS:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    else:  # a command's output is its own: no library's INFO lines (httpx, Alembic) on stderr
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        match args.command:
            case "up":
                return asyncio.run(_up(args.config, args.sidecar_config))
            case "serve":
                return asyncio.run(_up(args.config, None))
            case "explain":
                return _explain(args)
            case "check":
                return _check(args)
            case "grants":
                return args.grants_handler(args)
            case "token" | "connections" | "requests":
                return args.connections_handler(args)
    except ConfigError as exc:
        print(f"configuration error:\n{exc}", file=sys.stderr)
        return 2
    except AddressInUse as exc:
        print(f"pdp: {exc} (another pdp up running?)", file=sys.stderr)
        return 1
    return 2


def _service_commands(commands: Any) -> None:
    """up, serve, explain, check."""
    up = commands.add_parser("up", help="run the PDP and a Trino sidecar (demo config by default)")
    config_option(up)
    up.add_argument(
        "--sidecar-config",
        type=Path,
        default=DEMO / "sidecar.yaml",
        help="the sidecar's sidecar.yaml (default: the demo's, config/sidecar.yaml)",
    )

    serve = commands.add_parser("serve", help="run the PDP gRPC service only")
    config_option(serve)

    explain = commands.add_parser("explain", help="decide a Trino OPA request body and say why")
    explain.add_argument("body", nargs="?", default="-", help="file with the body, or - for stdin")
    config_option(explain)
    explain.add_argument("--properties", type=Path, help="the cluster's properties file")
    explain.add_argument("--cluster-mapping", type=Path, help="the cluster's accessGrantMapping")
    explain.add_argument("--json", action="store_true", help="print JSON lines")

    check = commands.add_parser(
        "check", help="validate the configuration and print what the PDP would serve"
    )
    config_option(check)
    check.add_argument("--properties", type=Path, help="the cluster's properties file")
    check.add_argument("--cluster-mapping", type=Path, help="the cluster's accessGrantMapping")


async def _up(config_path: Path, sidecar_config: Path | None) -> int:
    config = load_pdp_config(config_path)
    if sidecar_config is not None:  # before anything starts, so nothing is left half up
        _ensure_sidecar_port_free(sidecar_config)
    running = await start_pdp(config)
    if running.control is None:
        print("control plane off: pdp.yaml names no `store:` (no object sync, no admin API)")
    elif running.admin_port is not None:
        print(
            f"admin API: http://{config.admin.listen.rsplit(':', 1)[0] if config.admin else ''}"
            f":{running.admin_port} (OpenAPI at /openapi.json)"
        )
    sidecar = None
    if sidecar_config is not None:
        sidecar = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sidecar", "--config", str(sidecar_config)
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    waits: list[asyncio.Task[Any]] = [asyncio.create_task(stop.wait())]
    if sidecar is not None:
        waits.append(asyncio.create_task(sidecar.wait()))
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if sidecar is not None:
        if sidecar.returncode is None:
            sidecar.terminate()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):
                    await sidecar.wait()
        elif not stop.is_set():
            log.error("sidecar exited with status %s", sidecar.returncode)
            code = 1
    for task in waits:
        task.cancel()
    await running.stop()
    return code


def _ensure_sidecar_port_free(sidecar_config: Path) -> None:
    """Only its `listen`: the rest (a client secret `pdp up` generates, say) is not there yet;
    the sidecar reports its own configuration errors."""
    document = read_yaml(sidecar_config)
    listen = document.get("listen") if isinstance(document, dict) else None
    ensure_listen_free(str(listen or "127.0.0.1:8181"))


def _served(
    config: PdpConfig, inputs: PolicyInputs, registry: StoreRegistry | None
) -> PolicySnapshot:
    """What the PDP would serve, compiled as `pdp serve` compiles it: the files alone without
    `store:`, else composed with the store's registry (`registry` None: the store cannot be
    read as the PDP would, so the files alone)."""
    if config.store is None or registry is None:
        return inputs.compile()
    return compose(inputs, registry)


def _snapshot(config: PdpConfig) -> PolicySnapshot:
    inputs = load_policy_inputs(config.policy_files, config.mapping_file).value
    registry = _read_store(config)[0] if config.store is not None else None
    return _served(config, inputs, registry)


def _explain(args: argparse.Namespace) -> int:
    config = load_pdp_config(args.config)
    snapshot = _snapshot(config)
    settings = load_settings(
        args.properties or config.properties_file, args.cluster_mapping, snapshot.mapping
    ).value
    try:
        raw = sys.stdin.buffer.read() if args.body == "-" else Path(args.body).read_bytes()
    except OSError as exc:
        print(f"pdp explain: cannot read {args.body}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    try:
        document = parse(raw)
        call = decode_document(document)
        if call.operation == "GetColumnMask":
            columns = mask_columns(document, batch=call.items is not None)
    except BadRequest as exc:
        print(f"bad request body: {exc}", file=sys.stderr)
        return 2
    if call.operation in ("GetRowFilters", "GetColumnMask"):
        view = snapshot.view(settings, call.identity)
        if call.operation == "GetRowFilters":
            _explain_filters(snapshot, view, call, args.json)
        else:
            _explain_masks(snapshot, view, call.identity, columns, args.json)
        return 0
    requests = (
        [call.request(item) for item in call.items] if call.items is not None else [call.request()]
    )
    view = snapshot.view(settings, call.identity)
    for request in requests:
        _print_decision(request, decide(view, request), snapshot.revision, args.json)
    return 0


def _print_decision(request: Request, decision: Decision, revision: str, as_json: bool) -> None:
    target = request.resource
    name = name_of(target) if target else "-"
    if as_json:
        print(
            orjson.dumps(
                {
                    "operation": request.operation,
                    "object": name,
                    "user": request.identity.user,
                    "allowed": decision.allowed,
                    "rule": decision.rule,
                    "reason": decision.reason,
                    "policies": list(decision.policies),
                    "revision": revision,
                }
            ).decode()
        )
        return
    verdict = "ALLOW" if decision.allowed else "DENY"
    groups = ", ".join(sorted(request.identity.groups)) or "none"
    print(f"{verdict}  {request.operation} on {name} by {request.identity.user} (groups: {groups})")
    print(f"       rule: {decision.rule}; {decision.reason}")
    if decision.policies:
        print(f"       policies: {', '.join(decision.policies)}")
    print(f"       revision: {revision}")


def _explain_filters(snapshot: PolicySnapshot, view: View, call: Call, as_json: bool) -> None:
    table = call.resource
    if not isinstance(table, TableRef):
        print("bad request body: GetRowFilters needs a table", file=sys.stderr)
        return
    filters = row_filters(view, call.identity, table.key)
    staged = _staged(snapshot, call.identity, table.key, "rowFilters")
    admin = view.settings.is_admin(call.identity.user)
    if as_json:
        print(
            orjson.dumps(
                {
                    "operation": call.operation,
                    "object": name_of(table),
                    "user": call.identity.user,
                    "filters": [{"expression": f.expression, "policy": f.policy} for f in filters],
                    "admin": admin,
                    "staged": staged,
                    "revision": snapshot.revision,
                }
            ).decode()
        )
        return
    who = _who(call.identity)
    print(f"ROW FILTERS  on {name_of(table)} for {who}: {len(filters) or 'none'}")
    if admin:
        print("       rule: admin; the user matches immuta.user.admin: no filters")
    for f in filters:
        print(f"       {f.policy}: {f.expression}")
    if len(filters) > 1:
        print("       (Trino ANDs them)")
    if staged:
        print(f"       staged, not enforced: {', '.join(staged)}")
    print(f"       revision: {snapshot.revision}")


def _explain_masks(
    snapshot: PolicySnapshot, view: View, identity: Identity, columns: Any, as_json: bool
) -> None:
    admin = view.settings.is_admin(identity.user)
    if not as_json:
        print(f"COLUMN MASKS for {_who(identity)}" + (" (admin: never masked)" if admin else ""))
    for column in columns:
        mask = column_mask(view, identity, column.table, column.column, column.type)
        staged = _staged(snapshot, identity, column.table, "masks", column.column)
        exempt = _owner_exempt(view, column.table, column.column)
        name = ".".join((*column.table, column.column))
        if as_json:
            entry = {
                "operation": "GetColumnMask",
                "object": name,
                "type": column.type,
                "user": identity.user,
                "mask": mask.expression if mask else None,
                "policy": mask.policy if mask else None,
                "reason": mask.reason if mask else "no masking policy applies",
                "overridden": list(mask.overridden) if mask else [],
                "staged": staged,
                "ownerExempt": exempt,
                "revision": snapshot.revision,
            }
            print(orjson.dumps(entry).decode())
            continue
        if mask is None:
            print(f"  {name} ({column.type}): unmasked")
        else:
            print(f"  {name} ({column.type}): {mask.expression}")
            print(f"       {mask.reason}")
            if mask.overridden:
                print(f"       also masked by (lower precedence): {', '.join(mask.overridden)}")
        if exempt:
            print(f"       data owner of the table: exempt from {', '.join(exempt)}")
        if staged:
            print(f"       staged, not enforced: {', '.join(staged)}")
    if not as_json:
        print(f"       revision: {snapshot.revision}")


def _owner_exempt(view: View, table: tuple[str, str, str], column: str) -> list[str]:
    """Active masks that would cover the column but spare the table's owners, this user."""
    if table not in view.owned:
        return []
    tags = view.registry.columns.get(table, {}).get(column.casefold(), frozenset())
    return sorted(
        rule.policy
        for rule in view.registry.masks.get(table, ())
        if rule.except_owners
        and rule.policy in view.mask_policies
        and rule.covers(column.casefold(), tags)
    )


def _staged(
    snapshot: PolicySnapshot,
    identity: Identity,
    table: tuple[str, str, str],
    kind: str,
    column: str | None = None,
) -> list[str]:
    """Staged data policies that would apply here once made active."""
    subject = snapshot.subject(identity.user, identity.groups)
    policies = snapshot.masking if kind == "masks" else snapshot.row_filters
    tags = (
        snapshot.registry.columns.get(table, {}).get(column.casefold(), frozenset())
        if column
        else frozenset()
    )
    found = []
    for policy in policies:
        if policy.status is not PolicyStatus.STAGED or not policy.audience.includes(subject):
            continue
        if table not in snapshot.data_targets.get(policy.name, ()):
            continue
        masking = isinstance(policy, MaskingPolicy) and column is not None
        if masking and not policy.rule().covers(column.casefold(), tags):  # type: ignore[union-attr]
            continue
        found.append(policy.name)
    return found


def _who(identity: Identity) -> str:
    return f"{identity.user} (groups: {', '.join(sorted(identity.groups)) or 'none'})"


def _check(args: argparse.Namespace) -> int:
    config = load_pdp_config(args.config)
    problems: list[Problem] = []
    loaded, settings = None, None
    try:
        loaded = load_policy_inputs(config.policy_files, config.mapping_file)
    except ConfigError as exc:
        problems += exc.problems
    try:
        mapping = (loaded.value.mapping if loaded else None) or DEFAULT_MAPPING
        settings = load_settings(
            args.properties or config.properties_file, args.cluster_mapping, mapping
        )
    except ConfigError as exc:
        problems += exc.problems
    if loaded is None or settings is None:
        raise ConfigError(problems)
    registry = None
    if config.store is not None:  # raises ConfigError naming `store` when it does not answer
        registry, where = _read_store(config)
        print(where)
    snapshot = _served(config, loaded.value, registry)
    for warning in (*loaded.warnings, *settings.warnings, *snapshot.warnings):
        print(f"warning: {warning}")
    files_only = (
        " (the policy files only: the store is read once `pdp serve` has migrated it)"
        if config.store is not None and registry is None
        else ""
    )
    print(
        f"ok: revision {snapshot.revision}, {_count(len(snapshot.sources), 'data source')}, "
        f"{_count(len(snapshot.policies), 'policy', 'policies')}, "
        f"{_count(len(snapshot.masking), 'mask')}, "
        f"{_count(len(snapshot.row_filters), 'row filter')}, "
        f"{_count(len(snapshot.directory), 'user')}{files_only}"
    )
    return 0


def _count(number: int, one: str, many: str | None = None) -> str:
    return f"{number} {one if number == 1 else many or one + 's'}"


def _read_store(config: PdpConfig) -> tuple[StoreRegistry | None, str]:
    """The registry the PDP would read from the store `pdp.yaml` names, read without changing
    the store, and a line saying where the store stands (its schema revision against the newest
    migration, its connections). The registry is empty for a store not created or migrated
    yet (what `pdp serve` starts from), None for one whose schema is behind (`pdp serve`
    migrates it before reading). Raises ConfigError naming `store` when it does not answer."""
    url = config.store
    assert url is not None
    shown = safe_url(url)
    where = f"store ({shown})"
    if url.startswith("sqlite:///") and ":memory:" not in url:
        path = Path(url.removeprefix("sqlite:///"))
        if not path.exists():  # connecting would create it: say what the first start does
            said = f"store: {where}: no database file yet; `pdp serve` creates and migrates it"
            return StoreRegistry(version=0), said
    engine = create_store_engine(url)
    try:
        found = migrate.status(engine)
        registry: StoreRegistry | None = StoreRegistry(version=0)
        if found.current is not None:
            registry = read_registry(Store(engine)) if found.up_to_date else None
    except Exception as error:
        reason = " ".join(str(getattr(error, "orig", None) or error).split())[:300]
        line = line_of(read_yaml(config.file) or {}, "store")
        message = f"store: cannot reach {shown}: {reason}"
        raise ConfigError([Problem(str(config.file), line, message)]) from None
    finally:
        engine.dispose()
    if found.current is None:
        schema = f"empty, {found.pending} migrations to run (`pdp serve` runs them at start)"
    elif found.up_to_date:
        schema = f"schema {found.current}, up to date"
    else:
        schema = (
            f"schema {found.current}, {found.pending} migrations behind {found.head} "
            "(`pdp serve` runs them at start)"
        )
    held = ""
    if found.connections is not None:
        held = f", {_count(found.connections, 'connection')}"
    if registry is not None and found.current is not None:
        held += f", {_count(len(registry.sources), 'active data source')}"
    return registry, f"store: {where}: reachable, {schema}{held}"


if __name__ == "__main__":
    sys.exit(main())
