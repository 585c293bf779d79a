"""The sidecar's configuration file (sidecar.yaml). Paths in it are relative to the file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from pdp.auth import ClientCredentials, client_auth_from_config
from pdp.config.errors import Collector, ConfigError
from pdp.config.fields import Fields
from pdp.config.yamlsource import read_yaml
from sidecar.decisionlog import DecisionLogConfig
from sidecar.http import HttpLimits

# sidecar.yaml `http:` keys and the HttpLimits field each sets
HTTP_KEYS = {
    "maxConnections": "max_connections",
    "maxConnectionsPerClient": "max_connections_per_client",
    "maxInFlight": "max_in_flight",
    "headTimeoutSeconds": "head_timeout",
    "bodyTimeoutSeconds": "body_timeout",
    "idleTimeoutSeconds": "idle_timeout",
    "maxHeadBytes": "max_head_bytes",
    "maxBodyBytes": "max_body_bytes",
    "maxBatchItems": "max_batch_items",
}


VIEW_GRANTS = 8_000_000
"""`cache.viewGrants` when sidecar.yaml does not set it: what all the views of a worker may
hold together (`View.size`), a few hundred MB (benchmarks/RESULTS.md, "Memory")."""


@dataclass(frozen=True)
class SidecarConfig:
    file: Path
    host: str = "127.0.0.1"
    port: int = 8181
    workers: int = 2
    pdp_target: str = "127.0.0.1:50051"
    pdp_timeout: float = 2.0
    pdp_tls: grpc.ChannelCredentials | None = None  # absent: plaintext (loopback only!)
    pdp_auth: ClientCredentials | None = None  # None: `auth: none`, calls carry no token
    properties_file: Path | None = None  # absent: the seed defaults
    mapping_file: Path | None = None  # absent: the PDP-level accessGrantMapping applies
    user_cache: int = 10_000
    # the most entries all cached views hold together (`View.size`: 1 + grants, masks,
    # filters, owned tables), besides their number (`user_cache`)
    view_grants: int = VIEW_GRANTS
    decision_cache: int = 200_000
    max_stale: float | None = 300.0  # None: keep serving cached answers while the PDP is away
    reload_interval: float = 1.0
    http: HttpLimits = field(default_factory=HttpLimits)
    decision_log: DecisionLogConfig | None = None  # None: no decision log
    state_file: Path | None = None  # last-known-good state on disk; absent: not kept


def load_sidecar_config(path: Path) -> SidecarConfig:
    found = Collector(str(path))
    top = Fields(
        read_yaml(path) or {},
        "",
        found,
        (
            "listen",
            "workers",
            "pdp",
            "cluster",
            "cache",
            "reloadIntervalSeconds",
            "http",
            "decisionLog",
        ),
    )
    pdp = Fields(
        top.data.get("pdp") or {}, "pdp", found, ("target", "timeoutSeconds", "auth", "tls")
    )
    cluster = Fields(
        top.data.get("cluster") or {},
        "cluster",
        found,
        ("properties", "accessGrantMapping"),
        base=path.parent,
    )
    cache = Fields(
        top.data.get("cache") or {},
        "cache",
        found,
        ("users", "viewGrants", "decisions", "maxStaleSeconds", "stateFile"),
        base=path.parent,
    )
    http = Fields(top.data.get("http") or {}, "http", found, tuple(HTTP_KEYS))
    defaults = HttpLimits()
    limits: dict[str, float | None] = {}
    for key, name in HTTP_KEYS.items():
        default = getattr(defaults, name)
        if default is None and key not in http.data:  # absent: derived (see HttpLimits)
            limits[name] = None
            continue
        whole = default is None or isinstance(default, int)
        value = http.number(key, default or 1, positive=True, whole=whole)
        limits[name] = int(value) if whole else value
    decision_log = _decision_log(top.data.get("decisionLog"), found, path.parent)
    listen = top.text("listen", default="127.0.0.1:8181")
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        found.error(top.line("listen"), f"listen: expected host:port, got {listen!r}")
    base = path.parent
    values: dict[str, Any] = {
        "workers": int(top.number("workers", 2, positive=True, whole=True)),
        "pdp_timeout": pdp.number("timeoutSeconds", 2.0, positive=True),
        "user_cache": int(cache.number("users", 10_000, positive=True, whole=True)),
        "decision_cache": int(cache.number("decisions", 200_000, positive=True, whole=True)),
        "view_grants": int(cache.number("viewGrants", VIEW_GRANTS, positive=True, whole=True)),
        "reload_interval": top.number("reloadIntervalSeconds", 1.0, positive=True),
    }
    stale = cache.data.get("maxStaleSeconds", 300.0)
    if stale is not None:  # null: keep serving cached answers while the PDP is away
        stale = cache.number("maxStaleSeconds", 300.0, positive=True)
    properties_file = cluster.existing_file("properties")
    mapping_file = cluster.existing_file("accessGrantMapping")
    pdp_auth = None
    try:
        pdp_auth = client_auth_from_config(
            pdp.data.get("auth"), "pdp.auth", base=path.parent, file=found.file
        )
    except ConfigError as exc:
        found.errors += exc.problems
    found.raise_if_any()
    return SidecarConfig(
        file=path,
        host=host,
        port=int(port),
        pdp_target=pdp.text("target", default="127.0.0.1:50051"),
        pdp_auth=pdp_auth,
        pdp_tls=_channel_tls(pdp.data.get("tls"), found, base, pdp.line("tls")),
        properties_file=properties_file,
        mapping_file=mapping_file,
        max_stale=stale,
        http=HttpLimits(**limits),  # type: ignore[arg-type]  # each value has its field's type
        decision_log=decision_log,
        state_file=cache.file_path("stateFile"),
        **values,
    )


def _channel_tls(
    value: Any, found: Collector, base: Path, line: int | None
) -> grpc.ChannelCredentials | None:
    """`tls: true` trusts the system's roots; `tls: {caFile: ...}` a private CA."""
    if value is None or value is False:
        return None
    if value is True:
        return grpc.ssl_channel_credentials()
    tls = Fields(value, "pdp.tls", found, ("caFile",))
    ca = tls.text("caFile", required=True)
    try:
        return grpc.ssl_channel_credentials((base / ca).read_bytes())
    except OSError as exc:
        found.error(line, f"pdp.tls.caFile: cannot read {exc.filename}: {exc.strerror}")
        return None


def _decision_log(value: Any, found: Collector, base: Path) -> DecisionLogConfig | None:
    """`decisionLog: {file: decisions.jsonl | url: http://..., sample: {allow, deny}}`."""
    if value is None:
        return None
    section = Fields(value, "decisionLog", found, ("file", "url", "sample", "maxQueue"))
    sample = Fields(
        section.data.get("sample") or {}, "decisionLog.sample", found, ("allow", "deny")
    )
    file, url = section.text("file"), section.text("url")
    if not file and not url:
        section.error("file", "give a file or a url (or remove decisionLog)")
    if url and not url.startswith(("http://", "https://")):
        section.error("url", f"expected an http(s) URL, got {url!r}")
    return DecisionLogConfig(
        file=base / file if file else None,
        url=url or None,
        sample_allow=sample.number("allow", 0.1, low=0, high=1),
        sample_deny=sample.number("deny", 1.0, low=0, high=1),
        max_queue=int(section.number("maxQueue", 10_000, positive=True, whole=True)),
    )
