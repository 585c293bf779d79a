"""`pdp connections ...` and `pdp token`: the admin API from the command line.

The admin API's address comes from `--url`, or from `admin.listen` in pdp.yaml. The caller is a
bearer token (`--token`, or `PDP_TOKEN`), or with `admin.trustUserHeader` a user name
(`--user`, sent as `X-Pdp-User`). `pdp token --user alice` mints a token from the demo's
development issuer (`auth.devIssuer.userTokens: true`).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import orjson
from pydantic import BaseModel, ValidationError

from pdp.admin.schema import (
    CascadeOut,
    ConnectionDetails,
    ConnectionOut,
    CrawlBody,
    DeletedOut,
    FinalizedOut,
    InitialSettings,
    IntegrationOut,
    IntegrationsOut,
    JobOut,
    JobsOut,
    JobStartedOut,
    ObjectOut,
    ObjectsOut,
    ObjectSummary,
    PermissionBody,
    PermissionsOut,
    RegisterBody,
    RegisteredOut,
    RegisterOptions,
    RequestOut,
    RequestsOut,
    ResolveBody,
    ResolvedOut,
    SearchBody,
    SettingsBody,
    SettingsOut,
    SourcesOut,
    StartBody,
    StatusOut,
    UngovernedOut,
    UpdateConnectionBody,
    UpgradeBody,
    ValidateBody,
    ValidatedOut,
)
from pdp.auth.devissuer import DEV_USER_CLIENT
from pdp.policy import Technology
from pdp.service.config import DevIssuerSettings, load_pdp_config
from pdp.store.secrets import is_reference, is_secret_name

DEMO = Path(__file__).resolve().parents[2] / "config"
FINISHED = ("completed", "failed", "cancelled")
PATH_HELP = "an object path: connection/database/schema/table, as `tree` shows it (hc/hold/sales)"
INTEGRATION_HELP = "the legacy integration's name, as `upgrade list` shows it"
PAGE = 1000  # the admin API's largest page
NO_WAIT_HELP = "print the job id and return; `connections jobs` shows how it went"
CREDENTIAL_HELP = (
    "NAME=VALUE, repeated; NAMEEnv=VAR and NAMEFile=PATH send NAME read from YOUR environment "
    "variable or file (never the PDP's), e.g. privateKeyFile=PATH sends your key's PEM text as "
    "privateKey; a secret NAME alone (password) prompts for it"
)


def add_connection_commands(commands: Any) -> None:
    _token_command(commands)
    top = commands.add_parser("connections", help="connections and object sync (admin API)")
    _client_options(top)
    sub = top.add_subparsers(dest="action", required=True)
    _register_command(sub)
    _object_commands(sub)
    _upgrade_commands(sub)
    top.set_defaults(connections_handler=_connections)
    _requests_command(commands)


def _token_command(commands: Any) -> None:
    token = commands.add_parser(
        "token", help="mint a development token for a user (the demo's dev issuer)"
    )
    token.add_argument("--user", required=True, help="the user the token names")
    config_option(token, "for its development issuer")
    token.set_defaults(connections_handler=_token)


def _register_command(sub: Any) -> None:
    register = sub.add_parser("register", help="register a connection and run its first sync")
    register.add_argument("key", help="the connection key: the first part of every object path")
    register.add_argument(
        "--technology",
        required=True,
        choices=[t.value for t in Technology],
        help="the platform: %(choices)s",
    )
    register.add_argument("--endpoint", action="append", default=[], metavar="NAME=VALUE")
    register.add_argument(
        "--credential", action="append", default=[], metavar="NAME=VALUE", help=CREDENTIAL_HELP
    )
    register.add_argument("--active", action="store_true", help="isActive on the connection")
    register.add_argument("--activate-new", action="store_true", help="activateNewChildren")
    register.add_argument("--schedule", help="cron expression, UTC (default 0 1 * * *)")
    register.add_argument("--no-wait", action="store_true", help=NO_WAIT_HELP)
    register.add_argument(
        "--trino-catalog",
        action="append",
        default=[],
        metavar="DATABASE=CATALOG",
        help="the Trino catalog that exposes a database (trinoCatalogs; default: proposed from "
        "control.trinoCatalogFiles)",
    )


def _object_commands(sub: Any) -> None:
    """update, tree, status, settings, sync, jobs, delete, grant."""
    update = sub.add_parser("update", help="change a connection: Trino catalogs, schedule")
    update.add_argument("key", help="the connection key")
    update.add_argument(
        "--trino-catalog",
        action="append",
        default=[],
        metavar="DATABASE=CATALOG",
        help="map a database to the Trino catalog that exposes it; DATABASE= removes it",
    )
    update.add_argument("--schedule", help="cron expression, UTC")

    tree = sub.add_parser("tree", help="the object tree below a path (connections without)")
    tree.add_argument("path", nargs="?", help=PATH_HELP + " (absent: the connections)")
    tree.add_argument("--depth", type=int, default=1)

    status = sub.add_parser("status", help="one object: settings, origins, data source")
    status.add_argument("path", help=PATH_HELP)

    settings = sub.add_parser("settings", help="set isActive / activateNewChildren on a node")
    settings.add_argument("path", help=PATH_HELP)
    settings.add_argument("--active", choices=("true", "false", "inherit"))
    settings.add_argument("--activate-new", choices=("true", "false", "inherit"))

    sync = sub.add_parser("sync", help="run object sync on a subtree, with progress")
    sync.add_argument("path", help=PATH_HELP)
    sync.add_argument("--force-recursive", action="store_true")
    sync.add_argument("--no-wait", action="store_true", help=NO_WAIT_HELP)

    jobs = sub.add_parser("jobs", help="sync jobs")
    jobs.add_argument("--connection")
    jobs.add_argument("--state")

    delete = sub.add_parser("delete", help="delete an object (a connection: deregister)")
    delete.add_argument("path", help=PATH_HELP)
    delete.add_argument("--yes", action="store_true", help="do not ask (needed without a terminal)")

    grant = sub.add_parser("grant", help="grant DataOwner / InfrastructureAdmin on a node")
    grant.add_argument("path", help=PATH_HELP)
    grant.add_argument("principal")
    grant.add_argument("role", choices=("DataOwner", "InfrastructureAdmin"))
    grant.add_argument("--group", action="store_true")
    grant.add_argument("--revoke", action="store_true")


def _upgrade_commands(sub: Any) -> None:
    upgrade = sub.add_parser(
        "upgrade", help="upgrade a legacy integration to a connection (the upgrade manager)"
    )
    steps = upgrade.add_subparsers(dest="step", required=True)
    steps.add_parser("list", help="integrations ready for upgrade, with their data source counts")
    start = steps.add_parser("start", help="start: choose the display name (the connection key)")
    start.add_argument("integration", help=INTEGRATION_HELP)
    start.add_argument("display_name")
    validate = steps.add_parser("validate", help="check the credentials on the platform")
    validate.add_argument("integration", help=INTEGRATION_HELP)
    validate.add_argument("--endpoint", action="append", default=[], metavar="NAME=VALUE")
    validate.add_argument(
        "--credential", action="append", default=[], metavar="NAME=VALUE", help=CREDENTIAL_HELP
    )
    run = steps.add_parser("run", help="crawl and match the legacy data sources (a job)")
    run.add_argument("integration", help=INTEGRATION_HELP)
    run.add_argument(
        "--yes",
        action="store_true",
        help="confirm: the legacy endpoints retire for this integration, object sync takes over",
    )
    run.add_argument("--no-wait", action="store_true", help=NO_WAIT_HELP)
    show = steps.add_parser("status", help="state, counts and the unresolved data sources")
    show.add_argument("integration", help=INTEGRATION_HELP)
    resolve = steps.add_parser("resolve", help="resolve one unmatched data source")
    resolve.add_argument("integration", help=INTEGRATION_HELP)
    resolve.add_argument(
        "data_source",
        help="the data source: its id or its database.schema.table (see `upgrade status`)",
    )
    how = resolve.add_mutually_exclusive_group(required=True)
    how.add_argument("--match", metavar="PATH", help="match it to this object path")
    how.add_argument("--retry", action="store_true", help="list its schema again and match")
    how.add_argument("--disable", action="store_true", help="keep it out, inactive")
    how.add_argument("--delete", action="store_true", help="drop it")
    finalize = steps.add_parser("finalize", help="finish: object sync on, legacy endpoints off")
    finalize.add_argument("integration", help=INTEGRATION_HELP)


def _requests_command(commands: Any) -> None:
    requests = commands.add_parser(
        "requests", help="data source requests: validate new columns, acknowledge deleted ones"
    )
    _client_options(requests)
    verbs = requests.add_subparsers(dest="verb", required=True)
    listing = verbs.add_parser("list", help="the requests on your objects (all: GOVERNANCE)")
    listing.add_argument("--state", choices=("pending", "validated", "acknowledged"))
    listing.add_argument("--connection")
    listing.add_argument("--path", help="only those at or below this object (hc/db/schema)")
    listing.add_argument("--all", action="store_true", help="resolved ones too (default: pending)")
    shown = verbs.add_parser("show", help="one request")
    shown.add_argument("id", type=int)
    check = verbs.add_parser(
        "validate", help="validate an added column (its New tag comes off) or acknowledge"
    )
    check.add_argument("id", type=int)
    requests.set_defaults(connections_handler=_connections, action="requests")


def config_option(parser: Any, why: str = "") -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=DEMO / "pdp.yaml",
        help=f"the PDP's pdp.yaml{' ' + why if why else ''} (default: config/pdp.yaml, the demo's)",
    )


def _client_options(parser: Any) -> None:
    config_option(parser, "for admin.listen when --url is absent")
    parser.add_argument("--url", help="the admin API (default: admin.listen of pdp.yaml)")
    parser.add_argument("--token", help="bearer token (default: $PDP_TOKEN)")
    parser.add_argument("--as-user", dest="as_user", help="X-Pdp-User (trustUserHeader setups)")
    parser.add_argument("--json", action="store_true", help="print the API's JSON answers")


class ApiError(Exception):
    pass


class Client:
    def __init__(self, url: str, token: str | None, user: str | None) -> None:
        headers = {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if user:
            headers["X-Pdp-User"] = user
        self.http = httpx.Client(base_url=url, headers=headers, timeout=30)

    def call(self, method: str, url: str, body: BaseModel | None = None) -> Any:
        """The answer's JSON; a body is sent as the admin schema's model, the fields given."""
        json = (
            None
            if body is None
            else body.model_dump(mode="json", by_alias=True, exclude_unset=True)
        )
        try:
            answer = self.http.request(method, url, json=json)
        except httpx.HTTPError as failure:
            raise ApiError(
                f"cannot reach the admin API at {self.http.base_url}: {failure}"
            ) from None
        data = answer.json() if answer.content else {}
        if answer.status_code >= 400:
            error = data.get("error", {}) if isinstance(data, dict) else {}
            message = error.get("message") or answer.text
            extra = f" (job {error['jobId']})" if error.get("jobId") else ""
            for check in error.get("checks", ()):
                mark = "ok  " if check["ok"] else "FAIL"
                extra += f"\n  {mark} {check['name']}: {check['detail']}"
            raise ApiError(f"HTTP {answer.status_code}: {message}{extra}")
        return data


def _path(text: str) -> str:
    """A path as typed (`hc/hold/sales`) to its URL form; `%2F` stays as typed."""
    return "/".join(quote(p, safe="%") for p in text.strip("/").split("/"))


def _pairs(items: list[str], what: str) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise ApiError(f"{what} {item!r}: expected NAME=VALUE")
        result[name] = int(value) if value.isdigit() else value
    return result


def credentials(
    items: list[str],
    env: Mapping[str, str] = os.environ,
    prompt: Callable[[str], str] = getpass.getpass,
) -> dict[str, Any]:
    """`--credential` flags as the admin API takes them: values, read here, on the user's side.

    `passwordEnv=VAR` sends `password` with the value of VAR in *your* environment (the shell
    running this command), `passwordFile=PATH` the content of *your* file; a secret name alone
    (`--credential password`) asks for it without echo. The PDP never reads its own
    environment or files for an API caller."""
    result: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep and is_secret_name(name):
            result[name] = _value(prompt(f"{name}: "), f"--credential {name}", "what you typed")
        elif sep and is_reference(name):
            key = name.removesuffix("Env") if name.endswith("Env") else name[: -len("File")]
            where = f"--credential {item}"
            if name.endswith("Env"):
                result[key] = _value(
                    env.get(value, ""),
                    where,
                    f"the environment variable {value} of your shell (where pdp runs, not the "
                    "PDP's): it is not set or empty",
                )
            else:
                try:
                    text = Path(value).expanduser().read_text(encoding="utf-8")
                except OSError as error:
                    message = f"{where}: cannot read your file {value}: {error.strerror}"
                    raise ApiError(message) from None
                result[key] = _value(text.rstrip("\r\n"), where, f"your file {value} is empty")
        else:
            result.update(_pairs([item], "--credential"))
    return result


def _value(text: str, where: str, problem: str) -> str:
    if not text:
        raise ApiError(f"{where}: {problem}")
    return text


def _token(args: argparse.Namespace) -> int:
    config = load_pdp_config(args.config)
    dev = config.auth
    if not isinstance(dev, DevIssuerSettings) or not dev.user_tokens:
        print(
            "pdp token needs the development issuer with user tokens "
            "(auth.devIssuer.userTokens: true); with your own IdP, ask it for a token",
            file=sys.stderr,
        )
        return 2
    try:
        answer = httpx.post(
            f"http://{dev.listen}/token",
            data={
                "grant_type": "client_credentials",
                "client_id": DEV_USER_CLIENT,
                "user": args.user,
            },
            timeout=10,
        )
    except httpx.HTTPError as error:
        print(
            f"cannot reach the development issuer at {dev.listen} (is `pdp up` running?): {error}",
            file=sys.stderr,
        )
        return 1
    if answer.status_code != 200:
        print(f"the development issuer refused: {answer.text}", file=sys.stderr)
        return 1
    print(answer.json()["access_token"])
    return 0


def _connections(args: argparse.Namespace) -> int:
    url = args.url
    if url is None:
        config = load_pdp_config(args.config)
        if config.admin is None:
            print(f"{args.config} enables no admin API (`admin:`); give --url", file=sys.stderr)
            return 2
        url = f"http://{config.admin.listen}"
    client = Client(url, args.token or os.environ.get("PDP_TOKEN"), args.as_user)
    try:
        return _run(client, args)
    except ApiError as error:
        print(error, file=sys.stderr)
        return 1
    except ValidationError as error:  # a body the admin API would refuse (400)
        first = error.errors()[0]
        print(f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}", file=sys.stderr)
        return 1


def _show(args: argparse.Namespace, data: Any) -> None:
    print(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())


def _requests(client: Client, args: argparse.Namespace) -> int:
    if args.verb == "list":
        query = {
            name: value
            for name, value in (
                ("state", args.state or (None if args.all else "pending")),
                ("connection", args.connection),
                ("path", args.path),
            )
            if value
        }
        data = client.call("GET", "/requests?" + urlencode(query) if query else "/requests")
        if args.json:
            _show(args, data)
            return 0
        found = RequestsOut.model_validate(data)
        if not found.hits:
            print("no requests")
        for r in found.hits:
            kind = "added  " if r.kind == "column_added" else "deleted"
            print(f"{r.id:>6}  {r.state:<12}  column {kind}  {r.path}  {r.column}")
        return 0
    if args.verb == "show":
        _show(args, client.call("GET", f"/requests/{args.id}"))
        return 0
    data = client.call("POST", f"/requests/{args.id}/validate")
    if args.json:
        _show(args, data)
        return 0
    done = RequestOut.model_validate(data)
    if done.kind == "column_added":
        print(f"request {done.id}: column {done.column} of {done.path} validated")
    else:
        print(f"request {done.id}: removal of {done.column} from {done.path} noted")
    return 0


def _run(client: Client, args: argparse.Namespace) -> int:
    action = ACTIONS.get(args.action)
    return action(client, args) if action else 2


def _register(client: Client, args: argparse.Namespace) -> int:
    details = ConnectionDetails(
        technology=args.technology,
        endpoint=_pairs(args.endpoint, "--endpoint"),
        credentials=credentials(args.credential),
    )
    if args.trino_catalog:
        details.trinoCatalogs = _catalogs(args.trino_catalog, {})
    settings = InitialSettings()
    if args.active:
        settings.isActive = True
    if args.activate_new:
        settings.activateNewChildren = True
    options = RegisterOptions()
    if args.schedule:
        options.schedule = args.schedule
    body = RegisterBody(
        connectionKey=args.key, connection=details, settings=settings, options=options
    )
    answer = RegisteredOut.model_validate(client.call("POST", "/data/connection", body))
    print(f"registered {answer.connectionKey}; first sync: job {answer.jobId}")
    if answer.trinoCatalogs is not None:  # proposed from the Trino catalog files
        _print_catalogs(answer.connectionKey, answer.trinoCatalogs)
        print(f"  ({answer.trinoCatalogsProposal})")
    if not args.no_wait and answer.jobId:
        return _follow(client, answer.jobId)
    return 0


def _update(client: Client, args: argparse.Namespace) -> int:
    key = quote(args.key, safe="")
    update = UpdateConnectionBody()
    if args.trino_catalog:
        current = client.call("GET", f"/data/connection/{key}")["settings"]
        mapping = _catalogs(args.trino_catalog, current.get("trinoCatalogs") or {})
        update.trinoCatalogs = mapping
    if args.schedule:
        update.schedule = args.schedule
    if not update.model_fields_set:
        raise ApiError("nothing to change: give --trino-catalog or --schedule")
    data = client.call("PUT", f"/data/connection/{key}", update)
    if args.json:
        _show(args, data)
        return 0
    updated = ConnectionOut.model_validate(data)
    print(f"{updated.connectionKey}: schedule {updated.schedule}")
    if updated.technology != "trino":
        _print_catalogs(updated.connectionKey, updated.settings.get("trinoCatalogs") or {})
        _print_ungoverned(updated.connectionKey, updated.notGovernedInTrino)
    return 0


def _show_tree(client: Client, args: argparse.Namespace) -> int:
    _tree(client, args.path, args.depth, 0)
    return 0


def _status(client: Client, args: argparse.Namespace) -> int:
    data = client.call("GET", f"/data/object/{_path(args.path)}")
    if args.json:
        _show(args, data)
        return 0
    found = ObjectOut.model_validate(data)
    print(f"{found.path}  ({found.kind}, {found.remoteState})")
    for line in _settings_lines(found.settings):
        print(f"  {line}")
    if found.dataSource:
        active = "active" if found.dataSource.active else "inactive"
        print(f"  data source {found.dataSource.id} ({active})")
    for column in found.columns or ():
        tags = f"  [{', '.join(column.tags)}]" if column.tags else ""
        print(f"    {column.name}: {column.type}{tags}")
    if "trinoCatalog" in found.model_fields_set:  # below a non-Trino connection
        print(f"  Trino catalog: {found.trinoCatalog or 'none'}")
    print(f"  children: {found.childCount}; last sync: {found.lastSync}")
    if found.kind == "connection":
        connection = ConnectionOut.model_validate(
            client.call("GET", f"/data/connection/{_path(args.path)}")
        )
        if connection.technology != "trino":
            catalogs = connection.settings.get("trinoCatalogs") or {}
            _print_catalogs(connection.connectionKey, catalogs)
    _print_ungoverned(args.path.split("/")[0], found.notGovernedInTrino)
    return 0


def _settings(client: Client, args: argparse.Namespace) -> int:
    change = SettingsBody()
    for flag, name in (
        (args.active, "isActive"),
        (args.activate_new, "activateNewChildren"),
    ):
        if flag is not None:
            setattr(change, name, None if flag == "inherit" else flag == "true")
    data = client.call("PUT", f"/data/settings/{_path(args.path)}", change)
    if "jobId" in data:  # a large cascade: a job applies it
        cascade = CascadeOut.model_validate(data)
        print(f"{cascade.descendants} objects below {cascade.path}: job {cascade.jobId}")
        return _follow(client, cascade.jobId)
    for line in _settings_lines(SettingsOut.model_validate(data).settings):
        print(line)
    return 0


def _sync(client: Client, args: argparse.Namespace) -> int:
    crawl = CrawlBody(forceRecursive=args.force_recursive)
    answer = JobStartedOut.model_validate(
        client.call("POST", f"/data/crawl/{_path(args.path)}", crawl)
    )
    print(f"sync of {args.path}: job {answer.jobId}")
    return 0 if args.no_wait or answer.jobId is None else _follow(client, answer.jobId)


def _jobs(client: Client, args: argparse.Namespace) -> int:
    query = {k: v for k, v in (("connection", args.connection), ("state", args.state)) if v}
    suffix = "?" + "&".join(f"{k}={quote(v)}" for k, v in query.items()) if query else ""
    data = client.call("GET", f"/jobs{suffix}")
    if args.json:
        _show(args, data)
        return 0
    for job in JobsOut.model_validate(data).hits:
        print(
            f"{job.id}  {job.state:<9} {job.trigger:<12} {job.path}  "
            f"{job.createdAt}  {_summary(job.stats)}"
        )
    return 0


def _delete(client: Client, args: argparse.Namespace) -> int:
    if not args.yes and not _confirm_delete(client, args.path):
        return 2
    gone = DeletedOut.model_validate(client.call("DELETE", f"/data/object/{_path(args.path)}"))
    print(f"deleted {gone.path} and {gone.childCount} objects below it")
    return 0


def _grant(client: Client, args: argparse.Namespace) -> int:
    grant = PermissionBody(
        principal=args.principal,
        role=args.role,
        principalKind="group" if args.group else "user",
        revoke=args.revoke,
    )
    found = PermissionsOut.model_validate(
        client.call("PUT", f"/data/permission/{_path(args.path)}", grant)
    )
    for p in found.permissions:
        print(f"{p.role:<20} {p.principalKind} {p.principal}  on {p.path}")
    return 0


def _upgrade(client: Client, args: argparse.Namespace) -> int:
    """The upgrade manager's steps, one command each; every answer shows where it stands."""
    base = f"/data/upgrade/{quote(getattr(args, 'integration', ''), safe='')}"
    step = STEPS.get(args.step)
    return step(client, args, base) if step else 2


def _upgrade_list(client: Client, args: argparse.Namespace, base: str) -> int:
    data = client.call("GET", "/data/upgrade")
    if args.json:
        _show(args, data)
        return 0
    waiting = IntegrationsOut.model_validate(data)
    if not waiting.hits:
        print("no integration is waiting for an upgrade")
    for hit in waiting.hits:
        target = f" -> {hit.displayName}" if hit.displayName else ""
        print(
            f"{hit.name}{target}  ({hit.technology}, {hit.dataSourceCount} data "
            f"sources)  {hit.state}; next: {', '.join(hit.next)}"
        )
    return 0


def _upgrade_start(client: Client, args: argparse.Namespace, base: str) -> int:
    started = IntegrationOut.model_validate(
        client.call("POST", f"{base}/start", StartBody(displayName=args.display_name))
    )
    print(f"{started.name}: {started.state} as {started.displayName}; next: validate")
    return 0


def _upgrade_validate(client: Client, args: argparse.Namespace, base: str) -> int:
    given = ValidateBody()
    if args.endpoint:
        given.endpoint = _pairs(args.endpoint, "--endpoint")
    if args.credential:
        given.credentials = credentials(args.credential)
    validated = ValidatedOut.model_validate(client.call("POST", f"{base}/validate", given))
    for check in validated.checks:
        print(f"  {'ok  ' if check.ok else 'FAIL'} {check.name}: {check.detail}")
    print(f"{validated.name}: {validated.state}; next: upgrade run --yes")
    return 0


def _upgrade_run(client: Client, args: argparse.Namespace, base: str) -> int:
    if not args.yes:
        print(
            "the upgrade retires the legacy data source endpoints for this integration "
            "and hands its tables to object sync once finalized: run again with --yes",
            file=sys.stderr,
        )
        return 2
    running = IntegrationOut.model_validate(
        client.call("POST", f"{base}/upgrade", UpgradeBody(confirm=True))
    )
    print(f"{running.name}: upgrading, job {running.jobId}")
    if args.no_wait or running.jobId is None:
        return 0
    code = _follow(client, running.jobId)
    _upgrade_status(client, base)
    return code


def _upgrade_show(client: Client, args: argparse.Namespace, base: str) -> int:
    if args.json:
        _show(args, client.call("GET", base))
        return 0
    _upgrade_status(client, base)
    return 0


def _upgrade_resolve(client: Client, args: argparse.Namespace, base: str) -> int:
    if args.match:
        how = ResolveBody(action="match", path=args.match)
    else:
        action = "retry" if args.retry else "disable" if args.disable else "delete"
        how = ResolveBody(action=action)
    source_id = _unresolved_id(client, base, args.data_source)
    resolved = ResolvedOut.model_validate(
        client.call("POST", f"{base}/resolve/{quote(source_id, safe='')}", how)
    )
    source = resolved.dataSource
    print(
        f"{source.database}.{source.schema_}.{source.table}: {source.matchState}"
        + (f" to {source.matchedPath}" if source.matchedPath else "")
        + (f" ({source.reason})" if source.matchState == "unresolved" else "")
    )
    print(f"{resolved.name}: {resolved.state}, {resolved.unresolved} unresolved")
    return 0


def _upgrade_finalize(client: Client, args: argparse.Namespace, base: str) -> int:
    done = FinalizedOut.model_validate(client.call("POST", f"{base}/finalize"))
    print(
        f"{done.name}: finalized as connection {done.displayName}; "
        f"object sync is on, next scheduled sync {done.nextSync}"
    )
    return 0


STEPS: dict[str, Callable[[Client, argparse.Namespace, str], int]] = {
    "list": _upgrade_list,
    "start": _upgrade_start,
    "validate": _upgrade_validate,
    "run": _upgrade_run,
    "status": _upgrade_show,
    "resolve": _upgrade_resolve,
    "finalize": _upgrade_finalize,
}


ACTIONS: dict[str, Callable[[Client, argparse.Namespace], int]] = {
    "requests": _requests,
    "register": _register,
    "update": _update,
    "tree": _show_tree,
    "status": _status,
    "settings": _settings,
    "sync": _sync,
    "jobs": _jobs,
    "delete": _delete,
    "grant": _grant,
    "upgrade": _upgrade,
}


def _catalogs(items: list[str], current: dict[str, str]) -> dict[str, str]:
    """`--trino-catalog DATABASE=CATALOG` flags applied to `current`; `DATABASE=` removes."""
    mapping = dict(current)
    for item in items:
        database, sep, catalog = item.partition("=")
        if not sep or not database:
            raise ApiError(f"--trino-catalog {item!r}: expected DATABASE=CATALOG")
        if catalog:
            mapping[database] = catalog
        else:
            mapping.pop(database, None)
    return mapping


def _print_catalogs(key: str, mapping: dict[str, str]) -> None:
    if not mapping:
        print(
            f"  Trino catalogs: none (map them: pdp connections update {key} "
            "--trino-catalog DATABASE=CATALOG)"
        )
        return
    pairs = ", ".join(f"{database} -> {catalog}" for database, catalog in sorted(mapping.items()))
    print(f"  Trino catalogs: {pairs}")


def _print_ungoverned(key: str, ungoverned: UngovernedOut) -> None:
    """The warning for active data sources no Trino catalog exposes."""
    if not ungoverned.count:
        return
    print(
        f"  WARNING: {ungoverned.count} active data sources are not governed in Trino: no "
        f"Trino catalog is mapped to {', '.join(ungoverned.databases)} "
        f"(pdp connections update {key} --trino-catalog DATABASE=CATALOG)"
    )


def _unresolved_id(client: Client, base: str, given: str) -> str:
    """The id of the unresolved data source `given` names: its id, or its
    database.schema.table (as `upgrade status` lists it, case-insensitively)."""
    hits = SourcesOut.model_validate(client.call("GET", f"{base}/unresolved")).hits
    named = [
        hit
        for hit in hits
        if f"{hit.database}.{hit.schema_}.{hit.table}".casefold() == given.casefold()
    ]
    if len(named) == 1:
        return named[0].id
    if len(named) > 1:
        raise ApiError(f"{given!r} names {len(named)} unresolved data sources: give the id")
    return given


def _upgrade_status(client: Client, base: str) -> None:
    status = StatusOut.model_validate(client.call("GET", base))
    counts = ", ".join(f"{n} {k}" for k, n in status.counts.items() if n)
    target = f" -> {status.displayName}" if status.displayName else ""
    print(f"{status.name}{target}: {status.state} ({counts or 'no data sources'})")
    print(f"  next: {', '.join(status.next) or 'nothing, the upgrade is finalized'}")
    unresolved = SourcesOut.model_validate(client.call("GET", f"{base}/unresolved"))
    for hit in unresolved.hits:
        print(f"  unresolved {hit.id}  {hit.database}.{hit.schema_}.{hit.table}: {hit.reason}")


def _settings_lines(settings: dict[str, Any]) -> list[str]:
    """Each effective setting in the API's words (true/false) and the node it comes from."""
    return [
        f"{name}: {orjson.dumps(value['value']).decode()}  (from {value['inheritedFrom']})"
        for name, value in settings.items()
    ]


def _confirm_delete(client: Client, path: str) -> bool:
    """Say what goes (the object, how many below it, how many tables) and ask; without a
    terminal to ask on, refuse: a script says --yes."""
    target = ObjectOut.model_validate(client.call("GET", f"/data/object/{_path(path)}"))
    url = f"/data/object/search/{_path(path)}"
    below = client.call("POST", url, SearchBody(recursive=True, size=0))["count"]
    tables = client.call("POST", url, SearchBody(recursive=True, kind="table", size=0))["count"]
    if target.kind == "table":
        tables = 1
    what = f"{target.kind} {target.path}"
    if target.kind == "connection":
        what += " (deregistered: object sync stops, its data sources leave every policy)"
    loss = f"{what} and the {_plural(below, 'object')} below it ({_plural(tables, 'table')})"
    if not sys.stdin.isatty():
        print(f"pdp connections delete would delete {loss}: run again with --yes", file=sys.stderr)
        return False
    print(f"This deletes {loss}.", file=sys.stderr)
    try:
        answer = input("Delete? [y/N] ")
    except EOFError:
        answer = ""
    if answer.strip().lower() in ("y", "yes"):
        return True
    print("nothing deleted", file=sys.stderr)
    return False


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _pages(client: Client, url: str, query: SearchBody) -> Iterator[ObjectSummary]:
    """Every hit of a listing, page after page."""
    offset = 0
    while True:
        page = query.model_copy(update={"offset": offset, "size": PAGE})
        found = ObjectsOut.model_validate(client.call("POST", url, page))
        yield from found.hits
        offset += len(found.hits)
        if not found.hits or offset >= found.count:
            return


def _tree(client: Client, path: str | None, depth: int, indent: int) -> None:
    """The nodes below `path`, every page, each with its effective state in words: active or
    inactive (the store decides: the `isActive` filter), and whether set here or inherited."""
    url = f"/data/object/search/{_path(path)}" if path else "/data/object/search"
    active = {hit.path for hit in _pages(client, url, SearchBody(isActive=True))}
    for hit in _pages(client, url, SearchBody()):
        state = "active" if hit.path in active else "inactive"
        origin = "inherited" if hit.overrides.isActive is None else "set here"
        remote = "" if hit.remoteState == "present" else f" [{hit.remoteState}]"
        print(f"{'  ' * indent}{hit.name}  ({hit.kind}, {state}, {origin}){remote}")
        if depth > 1 and hit.kind != "table":
            _tree(client, hit.path, depth - 1, indent + 1)


def _summary(stats: dict[str, Any]) -> str:
    parts = [f"{k}={v}" for k, v in sorted(stats.items()) if v and k != "listings"]
    return " ".join(parts)


def _follow(client: Client, job_id: str, interval: float = 0.5) -> int:
    """Poll the job and show its progress until it ends; 0 if it completed."""
    spinner = "|/-\\"
    tick = 0
    interactive = sys.stdout.isatty()
    while True:
        job = JobOut.model_validate(client.call("GET", f"/jobs/{job_id}"))
        if job.state in FINISHED:
            break
        if interactive:
            print(f"\r{spinner[tick % 4]} job {job_id}: {job.state} ...", end="", flush=True)
        tick += 1
        time.sleep(interval)
    if interactive:
        print("\r", end="")
    print(f"job {job_id}: {job.state}  {_summary(job.stats)}")
    for error in job.errors:
        print(f"  {error.get('path', '')}: {error.get('message')}")
    if job.stats.get("notGovernedInTrino"):
        print(
            f"  WARNING: {job.stats['notGovernedInTrino']} active data sources of "
            f"{job.connection} are not governed in Trino (see pdp connections status "
            f"{job.connection})"
        )
    return 0 if job.state == "completed" else 1
