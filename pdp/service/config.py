"""The PDP's own configuration file (pdp.yaml). Paths in it are relative to the file."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import grpc
from cryptography.fernet import Fernet

from pdp.admin import AdminSettings
from pdp.auth import server_auth_from_config
from pdp.auth.validator import ValidatorConfig
from pdp.config.errors import Collector, ConfigError
from pdp.config.fields import Fields
from pdp.config.load import NO_POLICY_FILES, files_in
from pdp.config.secret import Secret
from pdp.config.yamlsource import line_of, read_yaml
from pdp.console.oidc import OidcClient
from pdp.control.plane import CASCADE_JOB_THRESHOLD
from pdp.control.schedule import TICK_SECONDS
from pdp.crawl.network import DEFAULT_DENY, EVERYWHERE, NetworkPolicy
from pdp.grants.config import GrantsConfig, parse_grants
from pdp.store import References

KEYS = (
    "tls",
    "listen",
    "policyFiles",
    "accessGrantMapping",
    "clusterProperties",
    "reloadIntervalSeconds",
    "auth",
    "grants",
    "monitoring",
    "store",
    "storeSecretKeyEnv",
    "storeSecretKeyFile",
    "admin",
    "control",
    "console",
)


@dataclass(frozen=True)
class ControlSettings:
    """`control:` in pdp.yaml: how the control plane follows and changes the store.

    `store_poll_seconds`: the version poll (None: 0.25 s on SQLite; on PostgreSQL, where
    LISTEN/NOTIFY brings changes at once, a 5 s safety net). `cascade_job_threshold`: a
    settings change reaching more descendants than this runs as a `cascade` job (202).
    `snapshot_file`: the last good store snapshot (below). `schedule_tick_seconds`: how often
    the scheduler looks for connections whose cron has fired."""

    store_poll_seconds: float | None = None
    cascade_job_threshold: int = CASCADE_JOB_THRESHOLD
    schedule_tick_seconds: float = TICK_SECONDS
    # where the PDP keeps the last good store registry, to decide on it when it starts while
    # the store is down; `load` fills in the default (`default_snapshot_file`) under a store
    snapshot_file: Path | None = None
    # Trino's catalog files (its etc/catalog, or a copy): registration proposes a PostgreSQL
    # connection's trinoCatalogs from them (None: no proposal, the registrant gives them)
    trino_catalog_files: Path | None = None
    # secret references (`passwordEnv: NAME`, `passwordFile: PATH`) the operator allows in
    # connection details: globs of names and paths; none by default (pdp.store.secrets)
    secret_references: References = field(default_factory=References)
    # where connection checks and syncs may connect (pdp.crawl.network; docs/connections.md)
    network: NetworkPolicy = field(default_factory=NetworkPolicy.of)


@dataclass(frozen=True)
class DevIssuerSettings:
    """`auth: {devIssuer: ...}`: run the built-in development token endpoint and accept its
    tokens. Never for production: it signs with a key generated at start."""

    listen: str = "127.0.0.1:50052"
    client_id: str = "sidecar-dev"
    client_secret_env: str = "PDP_DEV_CLIENT_SECRET"  # generated at start when unset
    scope: str = "pdp.decide"
    # A public development client that mints tokens for a named user (`pdp token --user`),
    # for the admin API. Off unless the demo configuration turns it on.
    user_tokens: bool = False


@dataclass(frozen=True)
class PdpConfig:
    file: Path
    listen: str = "127.0.0.1:50051"
    policy_files: tuple[Path, ...] = ()
    mapping_file: Path | None = None  # absent: the seed defaults
    properties_file: Path | None = None  # absent: seed defaults for Decide and explain
    reload_interval: float = 1.0
    auth: ValidatorConfig | DevIssuerSettings | None = None  # None: `auth: none`, no validation
    tls: grpc.ServerCredentials | None = None  # absent: plaintext gRPC (loopback only!)
    grants: GrantsConfig = field(default_factory=GrantsConfig)  # no targets: grant sync is off
    monitoring: str | None = None  # host:port of /metrics and /health/*; None: not served
    store: str | None = None  # absent: the control plane (store, object sync, admin API) is off
    # the Fernet key encrypting connection secrets in the store (`storeSecretKeyEnv` or
    # `storeSecretKeyFile`); None: secret values are refused, references only
    store_secret_key: Secret | None = None
    admin: AdminSettings | None = None  # absent: no admin API
    console: OidcClient | None = None  # absent: the console signs in only in development
    control: ControlSettings = field(default_factory=ControlSettings)


def load_pdp_config(path: Path) -> PdpConfig:
    found = Collector(str(path))
    f = Fields(read_yaml(path) or {}, "", found, KEYS, base=path.parent)
    base = path.parent
    files = _policy_files(f, found, base)
    mapping_file = f.existing_file("accessGrantMapping")
    properties_file = f.existing_file("clusterProperties")
    interval = f.number("reloadIntervalSeconds", 1.0, positive=True)
    auth = _auth(f, found)
    try:
        grants = parse_grants(f.data.get("grants") or {}, str(path), base=base)
    except ConfigError as exc:
        found.errors += exc.problems
        grants = GrantsConfig()
    tls = _server_tls(f, found, base)
    monitoring = Fields(f.data.get("monitoring") or {}, "monitoring", found, ("listen",))
    store = _store_url(f.text("store") or None, base)
    store_key = _store_key(f)
    admin = _admin(f, found)
    console = _console(f, found, auth)
    control = _control(f, found)
    if store is not None and control.snapshot_file is None:
        control = replace(control, snapshot_file=default_snapshot_file(store, base))
    if admin is not None:
        _check_admin(f, found, admin, store, auth)
    found.raise_if_any()
    return PdpConfig(
        file=path,
        listen=f.text("listen", default="127.0.0.1:50051"),
        policy_files=files,
        mapping_file=mapping_file,
        properties_file=properties_file,
        reload_interval=interval,
        auth=auth,
        tls=tls,
        grants=grants,
        monitoring=monitoring.text("listen") or None,
        store=store,
        store_secret_key=store_key,
        admin=admin,
        console=console,
        control=control,
    )


def _policy_files(f: Fields, found: Collector, base: Path) -> tuple[Path, ...]:
    files = tuple(base / p for p in f.strings("policyFiles"))
    if not files:
        found.error(f.line(), "policyFiles: list at least one policy/registry file")
    listed = f.data.get("policyFiles")
    for index, name in enumerate(listed if isinstance(listed, list) else []):
        if not isinstance(name, str) or not name or (base / name).is_file():
            continue
        if not (base / name).is_dir():
            problem = _missing(base, name)
        elif not files_in(base / name):
            problem = f"{name!r}: {NO_POLICY_FILES}"
        else:
            continue
        found.error(line_of(listed, index), f"policyFiles[{index}]: {problem}")
    return files


def _store_key(f: Fields) -> Secret | None:
    store_key = f.secret("storeSecretKey", os.environ)
    if store_key is not None:
        try:
            Fernet(store_key.reveal())
        except ValueError:
            f.error(
                "storeSecretKeyFile" if f.has("storeSecretKeyFile") else "storeSecretKeyEnv",
                "not a Fernet key (generate one: python -c 'from cryptography.fernet import "
                "Fernet; print(Fernet.generate_key().decode())')",
            )
    return store_key


def _check_admin(
    f: Fields,
    found: Collector,
    admin: AdminSettings,
    store: str | None,
    auth: ValidatorConfig | DevIssuerSettings | None,
) -> None:
    """The admin API needs a store and a way to tell who calls."""
    if store is None:
        found.error(f.line("admin"), "admin: the admin API needs a store (`store:`)")
    if admin.trust_user_header and auth is not None:
        found.error(
            f.line("admin"),
            "admin.trustUserHeader: only with `auth: none` (tests and loopback); "
            "with `auth:` the admin API takes bearer tokens",
        )
    if auth is None and not admin.trust_user_header:
        found.error(
            f.line("admin"),
            "admin: with `auth: none` the admin API cannot tell who calls; configure `auth:` "
            "or, for tests on loopback only, `admin.trustUserHeader: true`",
        )


def _store_url(url: str | None, base: Path) -> str | None:
    """A relative SQLite path is relative to pdp.yaml (its directory is created)."""
    if url is None or not url.startswith("sqlite:///"):
        return url
    rest = url.removeprefix("sqlite:///")
    if rest.startswith("/") or rest.startswith(":memory:") or not rest:
        return url
    path = (base / rest).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


SNAPSHOT_NAME = "store-snapshot.json"


def default_snapshot_file(store: str, base: Path) -> Path:
    """Where a PDP with a store keeps its snapshot unless `control.snapshotFile` says: beside
    a SQLite file (`<file>.snapshot.json`), else in `.cache/` beside pdp.yaml."""
    if store.startswith("sqlite:///") and not store.startswith("sqlite:///:memory:"):
        database = store.removeprefix("sqlite:///").split("?", 1)[0]
        if database:
            return Path(f"{database}.snapshot.json")
    return base / ".cache" / SNAPSHOT_NAME


def _admin(f: Fields, found: Collector) -> AdminSettings | None:
    raw = f.data.get("admin")
    if raw is None:
        return None
    keys = ("listen", "trustUserHeader", "requiredScope", "userClaim", "maxBodyBytes")
    admin = Fields(raw, "admin", found, keys)
    defaults = AdminSettings()
    return AdminSettings(
        listen=admin.text("listen", default=defaults.listen),
        trust_user_header=admin.flag("trustUserHeader"),
        required_scopes=admin.words("requiredScope"),
        user_claim=admin.text("userClaim", default=defaults.user_claim),
        max_body_bytes=int(
            admin.number("maxBodyBytes", defaults.max_body_bytes, low=1024, high=2**30, whole=True)
        ),
    )


def _console(f: Fields, found: Collector, auth: object) -> OidcClient | None:
    """`console: {signIn: {clientId, clientSecretEnv/File?, scope?, resource?}}`: the console's
    client of the IdP that `auth:` names (docs/console.md)."""
    raw = f.data.get("console")
    if raw is None:
        return None
    keys = ("clientId", "clientSecretEnv", "clientSecretFile", "scope", "resource")
    block = Fields(raw, "console", found, ("signIn",))
    sign_in = Fields(block.data.get("signIn") or {}, "console.signIn", found, keys)
    if not isinstance(auth, ValidatorConfig):
        found.error(
            f.line("console"), "console.signIn: needs `auth:` naming your identity provider"
        )
        return None
    return OidcClient(
        issuer=auth.issuer,
        client_id=sign_in.text("clientId", required=True),
        client_secret=sign_in.secret("clientSecret", os.environ),
        scope=sign_in.text("scope", default="openid"),
        resource=sign_in.text("resource") or None,
    )


def _control(f: Fields, found: Collector) -> ControlSettings:
    control = Fields(
        f.data.get("control") or {},
        "control",
        found,
        (
            "storePollSeconds",
            "cascadeJobThreshold",
            "snapshotFile",
            "scheduleTickSeconds",
            "trinoCatalogFiles",
            "secretReferences",
            "network",
        ),
        base=f.base,
    )
    poll = (
        control.number("storePollSeconds", 0.0, positive=True)
        if control.has("storePollSeconds")
        else None
    )
    threshold = control.number(
        "cascadeJobThreshold", CASCADE_JOB_THRESHOLD, low=0, high=1e9, whole=True
    )
    tick = control.number("scheduleTickSeconds", TICK_SECONDS, positive=True, high=3600)
    net = Fields(control.data.get("network") or {}, "control.network", found, ("allow", "deny"))
    network = NetworkPolicy.of()
    lists = {
        key: net.strings(key) if net.has(key) else default
        for key, default in (("allow", EVERYWHERE), ("deny", DEFAULT_DENY))
    }
    try:
        network = NetworkPolicy.of(lists["allow"], lists["deny"])
    except ValueError as error:
        net.error("allow", str(error))
    return ControlSettings(
        secret_references=References(tuple(control.strings("secretReferences"))),
        network=network,
        store_poll_seconds=poll,
        cascade_job_threshold=int(threshold),
        snapshot_file=control.file_path("snapshotFile"),
        schedule_tick_seconds=tick,
        trino_catalog_files=_resolved(control.file_path("trinoCatalogFiles")),
    )


def _resolved(path: Path | None) -> Path | None:
    """`path` without `..` (it is shown to users, and may not exist yet)."""
    return path.resolve() if path is not None else None


def _missing(base: Path, name: str) -> str:
    """The message for a file the configuration names but that is not there."""
    path = base / name
    return f"{name!r}: {'not a file' if path.exists() else 'no such file'} ({path})"


def _auth(f: Fields, found: Collector) -> ValidatorConfig | DevIssuerSettings | None:
    raw = f.data.get("auth")
    if isinstance(raw, dict) and "devIssuer" in raw:
        dev = Fields(
            raw["devIssuer"] or {},
            "auth.devIssuer",
            found,
            ("listen", "clientId", "clientSecretEnv", "scope", "userTokens"),
        )
        defaults = DevIssuerSettings()
        return DevIssuerSettings(
            listen=dev.text("listen", default=defaults.listen),
            client_id=dev.text("clientId", default=defaults.client_id),
            client_secret_env=dev.text("clientSecretEnv", default=defaults.client_secret_env),
            scope=dev.text("scope", default=defaults.scope),
            user_tokens=dev.flag("userTokens"),
        )
    try:
        return server_auth_from_config(raw, "auth", found.file)
    except ConfigError as exc:
        found.errors += exc.problems
        return None


def _server_tls(f: Fields, found: Collector, base: Path) -> grpc.ServerCredentials | None:
    if f.data.get("tls") is None:
        return None
    tls = Fields(f.data["tls"], "tls", found, ("certificateFile", "privateKeyFile"))
    files = [base / tls.text(key, required=True) for key in ("certificateFile", "privateKeyFile")]
    try:
        certificate, key = (path.read_bytes() for path in files)
    except OSError as exc:
        found.error(tls.line(), f"tls: cannot read {exc.filename}: {exc.strerror}")
        return None
    return grpc.ssl_server_credentials([(key, certificate)])
