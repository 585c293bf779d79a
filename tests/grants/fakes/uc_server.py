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
import hashlib
import json
import re
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.grants.fakes.contract import schemas, validate
from tests.grants.fakes.numbers import conv, round_half_away

API = "/api/2.1/unity-catalog/permissions/"
LISTINGS = {  # path -> (response schema, required query parameters)
    "/api/2.1/unity-catalog/catalogs": ("ListCatalogsResponse", ()),
    "/api/2.1/unity-catalog/schemas": ("ListSchemasResponse", ("catalog_name",)),
    "/api/2.1/unity-catalog/tables": ("ListTablesResponse", ("catalog_name", "schema_name")),
}
ME = "/api/2.0/preview/scim/v2/Me"
STATEMENTS = "/api/2.0/sql/statements"  # the SQL statement execution API (a warehouse runs it)
FUNCTIONS = "/api/2.1/unity-catalog/functions"
TABLE_INFO = "/api/2.1/unity-catalog/tables/"
_Q = r"`(?:[^`]|``)+`"
_QN = rf"{_Q}\.{_Q}\.{_Q}"
SQL = {  # the statement shapes grant sync may run; anything else fails like a parse error
    "create_function": re.compile(
        rf"CREATE OR REPLACE FUNCTION (?P<name>{_QN})\((?P<params>.*?)\) RETURNS "
        r"(?P<returns>\S+) COMMENT '(?P<comment>[^']*)' RETURN (?P<body>.+)"
    ),
    "set_mask": re.compile(
        rf"ALTER TABLE (?P<table>{_QN}) ALTER COLUMN (?P<column>{_Q}) SET MASK (?P<function>{_QN})"
    ),
    "drop_mask": re.compile(
        rf"ALTER TABLE (?P<table>{_QN}) ALTER COLUMN (?P<column>{_Q}) DROP MASK"
    ),
    "set_filter": re.compile(
        rf"ALTER TABLE (?P<table>{_QN}) SET ROW FILTER (?P<function>{_QN}) "
        rf"ON \((?P<columns>{_Q}(?:, {_Q})*)\)"
    ),
    "drop_filter": re.compile(rf"ALTER TABLE (?P<table>{_QN}) DROP ROW FILTER"),
    "drop_function": re.compile(rf"DROP FUNCTION IF EXISTS (?P<name>{_QN})"),
}
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
    warehouse: str = "wh-1"
    # SQL UDFs: full name -> (parameters [(name, type)], returns, body, comment)
    functions: dict[str, tuple[list[tuple[str, str]], str, str, str]] = field(default_factory=dict)
    data: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # table -> rows
    statements: list[str] = field(default_factory=list)  # every statement that succeeded
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
        if split.path == STATEMENTS and method == "POST":
            return self._statement(json.loads(body))
        if split.path == FUNCTIONS and method == "GET":
            return self._functions(query)
        if split.path.startswith(TABLE_INFO) and method == "GET":
            return self._table_info(unquote(split.path[len(TABLE_INFO) :]))
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

    # --- data policies: SQL statements, functions, table info, reads as a user -----------------

    def table(self, full_name: str) -> dict[str, Any] | None:
        catalog, schema, name = full_name.split(".")
        return self.tree.get(catalog, {}).get(schema, {}).get(name)

    def _table_info(self, full_name: str) -> tuple[int, Any]:
        info = self.table(full_name) if full_name.count(".") == 2 else None
        if info is None:
            return _error(404, "TABLE_DOES_NOT_EXIST", f"Table '{full_name}' does not exist.")
        catalog, schema, _ = full_name.split(".")
        return 200, {"catalog_name": catalog, "schema_name": schema, "full_name": full_name, **info}

    def _functions(self, query: dict[str, list[str]]) -> tuple[int, Any]:
        catalog, schema = query.get("catalog_name", [""])[0], query.get("schema_name", [""])[0]
        if schema not in self.tree.get(catalog, {}):
            return _error(404, "SCHEMA_DOES_NOT_EXIST", f"Schema '{catalog}.{schema}' not found.")
        found = []
        for full, (params, returns, body, comment) in sorted(self.functions.items()):
            if full.startswith(f"{catalog}.{schema}."):
                found.append(
                    {
                        "name": full.rsplit(".", 1)[1],
                        "catalog_name": catalog,
                        "schema_name": schema,
                        "full_name": full,
                        "data_type": returns.upper(),
                        "full_data_type": returns,
                        "routine_body": "SQL",
                        "routine_definition": body,
                        "comment": comment,
                        "input_params": {
                            "parameters": [{"name": n, "type_text": t} for n, t in params]
                        },
                    }
                )
        return 200, {"functions": found}

    def _statement(self, request: dict[str, Any]) -> tuple[int, Any]:
        if request.get("warehouse_id") != self.warehouse:
            return _error(404, "RESOURCE_DOES_NOT_EXIST", "No such SQL warehouse")
        sql = str(request.get("statement", ""))
        for shape, pattern in SQL.items():
            if match := pattern.fullmatch(sql):
                problem = getattr(self, "_sql_" + shape)(**match.groupdict())
                break
        else:
            problem = f"[PARSE_SYNTAX_ERROR] Syntax error in {sql!r}"
        self.statements += [] if problem else [sql]
        status: dict[str, Any] = {"state": "FAILED" if problem else "SUCCEEDED"}
        if problem:
            status["error"] = {"error_code": "BAD_REQUEST", "message": problem}
        return 200, {"statement_id": f"s-{len(self.log)}", "status": status}

    def _sql_create_function(
        self, name: str, params: str, returns: str, comment: str, body: str
    ) -> str:
        full = _name(name)
        catalog, schema, _ = full.split(".")
        if schema not in self.tree.get(catalog, {}):
            return f"[SCHEMA_NOT_FOUND] {catalog}.{schema}"
        parsed = re.findall(r"(\w+) (\w+(?:\(\d+(?:,\s*\d+)?\))?)", params)
        self.functions[full] = ([(n, t) for n, t in parsed], returns, body, comment)
        return ""

    def _sql_set_mask(self, table: str, column: str, function: str) -> str:
        info, col, fn = self.table(_name(table)), _name(column), _name(function)
        if info is None:
            return f"[TABLE_OR_VIEW_NOT_FOUND] {table}"
        columns = {c["name"]: c for c in info.get("columns", [])}
        if col not in columns or fn not in self.functions:
            return f"[UNRESOLVED_COLUMN_OR_ROUTINE] {column} / {function}"
        params, returns, _, _ = self.functions[fn]
        if not params or params[0][1] != columns[col]["type_text"] or returns != params[0][1]:
            return "[MASK_TYPE_MISMATCH] the mask function's type is not the column's"
        columns[col]["mask"] = {"function_name": fn, "using_column_names": []}
        return ""

    def _sql_drop_mask(self, table: str, column: str) -> str:
        info = self.table(_name(table))
        for c in (info or {}).get("columns", []):
            if c["name"] == _name(column):
                c.pop("mask", None)
                return ""
        return f"[UNRESOLVED_COLUMN] {column}"

    def _sql_set_filter(self, table: str, function: str, columns: str) -> str:
        info, fn = self.table(_name(table)), _name(function)
        if info is None or fn not in self.functions:
            return f"[TABLE_OR_ROUTINE_NOT_FOUND] {table} / {function}"
        types = {c["name"]: c["type_text"] for c in info.get("columns", [])}
        cols = [_name(c) for c in re.findall(_Q, columns)]
        params, returns, _, _ = self.functions[fn]
        if returns.upper() != "BOOLEAN" or [types.get(c) for c in cols] != [t for _, t in params]:
            return "[ROW_FILTER_TYPE_MISMATCH] the filter's parameters are not the columns'"
        info["row_filter"] = {"function_name": fn, "input_column_names": cols}
        return ""

    def _sql_drop_filter(self, table: str) -> str:
        info = self.table(_name(table))
        if info is None:
            return f"[TABLE_OR_VIEW_NOT_FOUND] {table}"
        info.pop("row_filter", None)
        return ""

    def _sql_drop_function(self, name: str) -> str:
        full = _name(name)
        for catalog in self.tree.values():
            for schema in catalog.values():
                for info in schema.values():
                    used = [c.get("mask", {}).get("function_name") for c in info["columns"]]
                    if full in (*used, info.get("row_filter", {}).get("function_name")):
                        return f"[ROUTINE_IN_USE] {full} masks or filters {info['name']}"
        self.functions.pop(full, None)
        return ""

    def select(self, user: str, full_name: str) -> list[dict[str, Any]]:
        """`SELECT * FROM <full_name>` as `user`: needs SELECT on the table and USE on its
        parents; the row filter and column masks run per row in SQLite, with Databricks'
        current_user(), sha2, concat, conv and round (HALF_UP, in decimal)."""
        catalog, schema, _ = full_name.split(".")
        needed = (("table", full_name, "SELECT"), ("schema", f"{catalog}.{schema}", "USE_SCHEMA"))
        needed += (("catalog", catalog, "USE_CATALOG"),)
        for kind, name, privilege in needed:
            if privilege not in self.held(kind, name).get(user, set()):
                raise PermissionError(f"{user} lacks {privilege} on {name}")
        info = self.table(full_name) or {}
        db = sqlite3.connect(":memory:")
        db.create_function("current_user", 0, lambda: user)
        db.create_function(
            "sha2",
            2,
            lambda v, _bits: None if v is None else hashlib.sha256(v.encode()).hexdigest(),
        )
        db.create_function("concat", -1, lambda *a: None if None in a else "".join(map(str, a)))
        db.create_function("conv", 3, conv)
        db.create_function("round", 2, round_half_away)

        def run(function: str, values: list[Any]) -> Any:
            params, _, body, _ = self.functions[function]
            names = ", ".join(f"? AS {n}" for n, _ in params)
            body = body.replace(" AS STRING)", " AS TEXT)")  # SQLite's STRING is numeric
            return db.execute(f"SELECT ({body}) FROM (SELECT {names})", values).fetchone()[0]

        shown = []
        for row in self.data.get(full_name, []):
            row_filter = info.get("row_filter")
            if row_filter and not run(
                row_filter["function_name"], [row[c] for c in row_filter["input_column_names"]]
            ):
                continue
            out = dict(row)
            for column in info.get("columns", []):
                if mask := column.get("mask"):
                    out[column["name"]] = run(mask["function_name"], [row[column["name"]]])
            shown.append(out)
        db.close()
        return shown

    def _principal(self, name: str) -> str | None:
        for known in self.principals:
            # Users (e-mail addresses) match case-insensitively; groups are exact.
            if known == name or ("@" in known and known.casefold() == name.casefold()):
                return known
        return None


def _name(quoted: str) -> str:
    """`a`.`b` -> a.b (the fake's names have no dots or backticks inside)."""
    return ".".join(p[1:-1].replace("``", "`") for p in re.findall(_Q, quoted))


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
