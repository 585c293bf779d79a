"""An in-process Databricks workspace on 127.0.0.1 serving what grant sync uses: the OAuth M2M
discovery and token endpoints, and GET/PATCH /api/2.1/unity-catalog/permissions; and what the
crawler uses: GET /api/2.1/unity-catalog/{catalogs,schemas,tables} (paged like permissions, over
the `tree` world) and the SCIM `Me` of the token's user.

Behaviour follows the hosted service (see docs/grants.md): PATCH is
incremental per principal; add and remove of the same privilege for one principal is a 400;
unknown principals are a 400, unknown objects a 404 with <TYPE>_DOES_NOT_EXIST; privileges
written with spaces are stored with underscores; listing paginates (max_results=0 means the
server's page size; 1..149 is rejected; pages may be empty and still carry a token). Every
exchange is checked against the contract (contract.py); violations are answered with 400 and
collected in `violations`. Faults (429, 5xx, 403) and stale reads can be injected."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.grants.fakes.contract import schemas, validate

API = "/api/2.1/unity-catalog/permissions/"
LISTINGS = {  # path -> (response schema, required query parameters)
    "/api/2.1/unity-catalog/catalogs": ("ListCatalogsResponse", ()),
    "/api/2.1/unity-catalog/schemas": ("ListSchemasResponse", ("catalog_name",)),
    "/api/2.1/unity-catalog/tables": ("ListTablesResponse", ("catalog_name", "schema_name")),
}
ME = "/api/2.0/preview/scim/v2/Me"
ANY = frozenset({"ALL_PRIVILEGES", "MANAGE", "APPLY_TAG", "BROWSE"})
APPLICABLE = {
    "table": ANY | {"SELECT", "MODIFY", "REFRESH"},
    "volume": ANY | {"READ_VOLUME", "WRITE_VOLUME"},
    "function": ANY | {"EXECUTE"},
}
TOKEN = "m2m-token-1"


@dataclass
class Fault:
    method: str
    status: int
    error_code: str
    times: int = 1
    match: str = ""  # substring of the path


@dataclass
class Exchange:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any


@dataclass
class Workspace:
    client_id: str = "sync-client"
    client_secret: str = "sync-secret"
    pat: str = "dapi-test-token"
    objects: dict[str, set[str]] = field(default_factory=dict)  # securable type -> names
    principals: set[str] = field(default_factory=set)
    grants: dict[tuple[str, str], dict[str, set[str]]] = field(default_factory=dict)
    page_size: int = 2  # principals per page when the client paginates
    empty_first_page: bool = True
    stale_reads: int = 0
    faults: list[Fault] = field(default_factory=list)
    log: list[Exchange] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    token_requests: int = 0
    # The crawler's world: catalog -> schema -> table -> TableInfo (name, table_type, columns).
    tree: dict[str, dict[str, dict[str, dict[str, Any]]]] = field(default_factory=dict)
    listing_page_size: int = 2  # catalogs, schemas or tables per page
    denied_schemas: set[tuple[str, str]] = field(default_factory=set)  # 403 listing their tables
    user_name: str = "sync@example.com"
    _stale: dict[tuple[str, str], tuple[int, dict[str, set[str]]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, name: str) -> None:
        parts = name.split(".")
        self.objects.setdefault("catalog", set()).add(parts[0])
        if len(parts) > 1:
            self.objects.setdefault("schema", set()).add(".".join(parts[:2]))
        self.objects.setdefault(kind, set()).add(name)

    def held(self, kind: str, name: str) -> dict[str, set[str]]:
        return {p: set(v) for p, v in self.grants.get((kind, name), {}).items() if v}

    def patches(self) -> list[Exchange]:
        return [e for e in self.log if e.method == "PATCH"]

    # --- request handling (called under the lock) ---------------------------------------------

    def handle(self, method: str, raw_path: str, headers: Any, body: bytes) -> tuple[int, Any]:
        split = urlsplit(raw_path)
        query = parse_qs(split.query, keep_blank_values=True)
        parsed = json.loads(body) if body and method != "POST" else None
        self.log.append(Exchange(method, split.path, query, parsed))
        if split.path == "/.well-known/databricks-config":
            return 200, {"oidc_endpoint": f"http://{headers['Host']}/oidc", "workspace_id": "1234"}
        if split.path == "/oidc/.well-known/oauth-authorization-server":
            base = f"http://{headers['Host']}"
            return 200, {
                "issuer": f"{base}/oidc",
                "token_endpoint": f"{base}/oidc/v1/token",
                "authorization_endpoint": f"{base}/oidc/v1/authorize",
            }
        if split.path == "/oidc/v1/token" and method == "POST":
            return self._token(headers, body)
        if headers.get("Authorization") not in (f"Bearer {TOKEN}", f"Bearer {self.pat}"):
            return _error(401, "UNAUTHENTICATED", "invalid or missing token")
        if split.path == ME and method == "GET":
            return 200, {"id": "1", "userName": self.user_name, "active": True}
        if split.path in LISTINGS and method == "GET":
            return self._listing(split.path, query)
        if not split.path.startswith(API):
            return _error(404, "ENDPOINT_NOT_FOUND", f"no endpoint {split.path}")
        for fault in self.faults:
            if fault.times and fault.method == method and fault.match in split.path:
                fault.times -= 1
                return _error(fault.status, fault.error_code, "injected fault")
        kind, _, quoted = split.path[len(API) :].partition("/")
        name = unquote(quoted)
        problems = validate(kind, "SecurableType")
        if method == "PATCH":
            problems += validate(parsed, "UpdatePermissions")
        problems += self._check_query(method, query)
        if problems:
            self.violations += [f"{method} {split.path}: {p}" for p in problems]
            return _error(400, "CONTRACT_VIOLATION", "; ".join(problems))
        if name not in self.objects.get(kind, set()):
            return _error(404, f"{kind.upper()}_DOES_NOT_EXIST", f"{kind} '{name}' does not exist.")
        # Responses are not checked: the service may answer privileges newer than any client.
        if method == "GET":
            return self._get(kind, name, query)
        return self._patch(kind, name, parsed)

    def _token(self, headers: Any, body: bytes) -> tuple[int, Any]:
        self.token_requests += 1
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        form = parse_qs(body.decode())
        if headers.get("Authorization") != f"Basic {expected}":
            return 401, {"error": "invalid_client", "error_description": "bad client credentials"}
        if form.get("grant_type") != ["client_credentials"] or form.get("scope") != ["all-apis"]:
            return 400, {"error": "invalid_request"}
        return 200, {"access_token": TOKEN, "token_type": "Bearer", "expires_in": 3600}

    @staticmethod
    def _check_query(method: str, query: dict[str, list[str]]) -> list[str]:
        allowed = {"max_results", "page_token", "principal"} if method == "GET" else set()
        problems = [f"unknown query parameter {k!r}" for k in query if k not in allowed]
        if "max_results" in query:
            value = query["max_results"][0]
            if not value.isdigit() or 0 < int(value) < 150:
                problems.append(f"max_results={value}: use 0 or at least 150")
        return problems

    def _get(self, kind: str, name: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        state = self.grants.get((kind, name), {})
        stale = self._stale.get((kind, name))
        if stale and stale[0] > 0:
            self._stale[(kind, name)] = (stale[0] - 1, stale[1])
            state = stale[1]
        wanted = query.get("principal", [None])[0]
        rows = [
            {"principal": p, "privileges": sorted(v)}
            for p, v in sorted(state.items())
            if v and (wanted is None or p.casefold() == wanted.casefold())
        ]
        if "max_results" not in query:
            return 200, {"privilege_assignments": rows} if rows else {}
        token = query.get("page_token", [""])[0]
        if self.empty_first_page and not token:
            return 200, {"privilege_assignments": [], "next_page_token": "o0"}
        offset = int(token[1:]) if token else 0
        page = rows[offset : offset + self.page_size]
        answer: dict[str, Any] = {"privilege_assignments": page}
        if offset + self.page_size < len(rows):
            answer["next_page_token"] = f"o{offset + self.page_size}"
        return 200, answer

    def _listing(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        """One page of catalogs, schemas or tables (with columns). `max_results=0` means the
        server's page size; every listing starts with an empty page that carries a token."""
        schema_name, required = LISTINGS[path]
        allowed = {"max_results", "page_token", *required}
        problems = [f"unknown query parameter {k!r}" for k in query if k not in allowed]
        problems += [f"missing query parameter {k!r}" for k in required if k not in query]
        if "max_results" in query and not query["max_results"][0].isdigit():
            problems.append(f"max_results={query['max_results'][0]}: not a non-negative integer")
        if problems:
            self.violations += [f"GET {path}: {p}" for p in problems]
            return _error(400, "CONTRACT_VIOLATION", "; ".join(problems))
        for fault in self.faults:
            if fault.times and fault.method == "GET" and fault.match in path:
                fault.times -= 1
                return _error(fault.status, fault.error_code, "injected fault")
        field_name = path.rsplit("/", 1)[1]
        catalog = query.get("catalog_name", [""])[0]
        schema = query.get("schema_name", [""])[0]
        items: list[dict[str, Any]]
        if field_name == "catalogs":
            items = [{"name": name} for name in sorted(self.tree)]
        elif catalog not in self.tree:
            return _error(404, "CATALOG_DOES_NOT_EXIST", f"Catalog '{catalog}' does not exist.")
        elif field_name == "schemas":
            items = [
                {"name": name, "catalog_name": catalog, "full_name": f"{catalog}.{name}"}
                for name in sorted(self.tree[catalog])
            ]
        elif schema not in self.tree[catalog]:
            message = f"Schema '{catalog}.{schema}' does not exist."
            return _error(404, "SCHEMA_DOES_NOT_EXIST", message)
        elif (catalog, schema) in self.denied_schemas:
            message = f"User does not have USE SCHEMA on Schema '{catalog}.{schema}'."
            return _error(403, "PERMISSION_DENIED", message)
        else:
            items = [
                {"catalog_name": catalog, "schema_name": schema, **table}
                for _, table in sorted(self.tree[catalog][schema].items())
            ]
        token = query.get("page_token", [""])[0]
        size = int(query.get("max_results", ["0"])[0]) or self.listing_page_size
        if not token:
            answer: dict[str, Any] = {field_name: [], "next_page_token": "o0"}
        else:
            offset = int(token[1:])
            answer = {field_name: items[offset : offset + size]}
            if offset + size < len(items):
                answer["next_page_token"] = f"o{offset + size}"
        if problems := validate(answer, schema_name):
            self.violations += [f"GET {path} answer: {p}" for p in problems]
        return 200, answer

    def _patch(self, kind: str, name: str, body: dict[str, Any]) -> tuple[int, Any]:
        updated = {p: set(v) for p, v in self.grants.get((kind, name), {}).items()}
        for change in body["changes"]:
            principal = self._principal(change["principal"])
            if principal is None:
                message = f"Could not find principal with name {change['principal']}"
                return _error(400, "INVALID_PARAMETER_VALUE", message)
            add = {_normal(p) for p in change.get("add", [])}
            remove = {_normal(p) for p in change.get("remove", [])}
            if add & remove:
                message = f"Duplicate privileges to add and delete for principal {principal}"
                return _error(400, "INVALID_PARAMETER_VALUE", message)
            for privilege in add:
                if kind in APPLICABLE and privilege not in APPLICABLE[kind]:
                    message = f"Privilege {privilege} is not applicable to this entity"
                    return _error(400, "INVALID_PARAMETER_VALUE", message)
            held = updated.setdefault(principal, set())
            held |= add
            held -= remove
        if self.stale_reads:
            self._stale[(kind, name)] = (self.stale_reads, self.grants.get((kind, name), {}))
        self.grants[(kind, name)] = updated
        if body.get("omit_permissions_in_response"):
            return 200, {}
        rows = [{"principal": p, "privileges": sorted(v)} for p, v in sorted(updated.items()) if v]
        return 200, {"privilege_assignments": rows}

    def _principal(self, name: str) -> str | None:
        for known in self.principals:
            # Users (e-mail addresses) match case-insensitively; groups are exact.
            if known == name or ("@" in known and known.casefold() == name.casefold()):
                return known
        return None


def _normal(privilege: str) -> str:
    return privilege.upper().replace(" ", "_")


def _error(status: int, code: str, message: str) -> tuple[int, Any]:
    detail = {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": code,
        "domain": "unity-catalog.databricks.com",
        "metadata": {},
    }
    return status, {"error_code": code, "message": message, "details": [detail]}


@contextmanager
def serve(workspace: Workspace) -> Iterator[str]:
    """Run the fake on 127.0.0.1:<free port>; yields its base URL and stops it afterwards."""
    schemas()  # fail before serving if the contract cannot be loaded

    class Handler(BaseHTTPRequestHandler):
        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            with workspace._lock:
                status, answer = workspace.handle(self.command, self.path, self.headers, body)
            payload = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            if status == 429:
                self.send_header("Retry-After", "0")
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_PATCH = do_POST = _any

        def log_message(self, format: str, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
