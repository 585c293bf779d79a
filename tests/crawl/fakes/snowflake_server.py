"""An in-process Snowflake account on 127.0.0.1 for snowflake-connector-python (5.x, whose Rust
core speaks the REST protocol): `POST /session/v1/login-request` (password login, or key-pair login
with a `SNOWFLAKE_JWT` token checked against the user's RSA public key as the service does; the
role in the `roleName` query parameter), `POST /queries/v1/query-request` answered in the JSON
result format (`rowtype` + `rowset`, every value a string as the service sends it),
`POST /session?delete` (logout) and `/telemetry/send`.

It understands the statements the crawler sends, over a small world the tests mutate:
`SHOW DATABASES`, `SHOW SCHEMAS IN DATABASE "<db>"`, and on `"<db>".INFORMATION_SCHEMA` the
`SCHEMATA`, `TABLES` and `COLUMNS` selects of one schema. Like the service, it shows a role only
the databases and schemas it holds privileges on (`hidden`), answering "does not exist or not
authorized" for the others. Any other statement is a syntax error, recorded in `violations`."""

from __future__ import annotations

import base64
import gzip
import hashlib
import itertools
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization


@dataclass
class Table:
    kind: str = "BASE TABLE"  # INFORMATION_SCHEMA.TABLES.TABLE_TYPE
    columns: list[tuple[str, str, bool]] = field(default_factory=list)  # name, type, nullable
    dynamic: bool = False
    iceberg: bool = False


@dataclass
class Account:
    user: str = "SVC_CRAWLER"
    password: str = "crawler-password"
    public_key: Any = None  # RSAPublicKey: the user's RSA_PUBLIC_KEY, for key-pair login
    roles: tuple[str, ...] = ("CRAWLER", "PUBLIC")  # granted to the user; the first is default
    # database -> schema -> table
    databases: dict[str, dict[str, dict[str, Table]]] = field(default_factory=dict)
    hidden: set[tuple[str, ...]] = field(default_factory=set)  # (db,) or (db, schema): no grants
    queries: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    logins: int = 0
    jwt_logins: int = 0  # key-pair attempts, good or bad
    _sessions: dict[str, str] = field(default_factory=dict)  # session token -> role
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # --- requests (under the lock) -------------------------------------------------------------

    def login(self, query: dict[str, list[str]], body: dict[str, Any]) -> dict[str, Any]:
        data = body.get("data") or {}
        for key in ("ACCOUNT_NAME", "LOGIN_NAME", "CLIENT_APP_ID"):
            if key not in data:
                self.violations.append(f"login-request without {key}")
        if data.get("AUTHENTICATOR", "").upper() == "SNOWFLAKE_JWT":
            if not self._key_pair(data):
                return _failure("390144", "JWT token is invalid.")
        elif (
            data.get("LOGIN_NAME", "").upper() != self.user or data.get("PASSWORD") != self.password
        ):
            return _failure("390100", "Incorrect username or password was specified.")
        role = (query.get("roleName", [""])[0] or self.roles[0]).upper()
        if role not in self.roles:
            message = f"Role '{role}' specified in the connect string is not granted to this user."
            return _failure("390189", message)
        self.logins += 1
        token = f"session-{next(self._ids)}"
        self._sessions[token] = role
        return _success(
            {
                "masterToken": f"master-{token}",
                "token": token,
                "validityInSeconds": 3600,
                "masterValidityInSeconds": 14400,
                "displayUserName": self.user,
                "serverVersion": "9.0.0",
                "firstLogin": False,
                "remMeToken": None,
                "remMeValidityInSeconds": 0,
                "healthCheckInterval": 45,
                "newClientForUpgrade": None,
                "sessionId": next(self._ids),
                "parameters": [],
                "sessionInfo": {
                    "databaseName": None,
                    "schemaName": None,
                    "warehouseName": None,
                    "roleName": role,
                },
                "idToken": None,
                "idTokenValidityInSeconds": 0,
            }
        )

    def _key_pair(self, data: dict[str, Any]) -> bool:
        """The JWT is signed by the user's key; `iss` names the key by its SHA-256 fingerprint,
        `sub` is ACCOUNT.USER (both upper case)."""
        self.jwt_logins += 1
        if self.public_key is None or data.get("LOGIN_NAME", "").upper() != self.user:
            return False
        subject = f"{data.get('ACCOUNT_NAME', '').upper()}.{self.user}"
        der = self.public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        fingerprint = base64.b64encode(hashlib.sha256(der).digest()).decode()
        try:
            claims = jwt.decode(
                str(data.get("TOKEN", "")),
                self.public_key,
                algorithms=["RS256"],
                options={"require": ["iss", "sub", "iat", "exp"]},
            )
        except jwt.InvalidTokenError:
            return False
        return bool(claims["sub"] == subject and claims["iss"] == f"{subject}.SHA256:{fingerprint}")

    def query(self, headers: Any, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        match = re.fullmatch(r'Snowflake Token="(.*)"', headers.get("Authorization") or "")
        role = self._sessions.get(match.group(1)) if match else None
        if role is None:
            return 401, _failure("390104", "Authentication token has expired.")
        sql = body.get("sqlText", "")
        self.queries.append(sql)
        try:
            names, types, rows = self._answer(sql, role)
        except _SqlError as error:
            return 200, _failure(error.code, error.message, {"sqlState": error.state})
        rowtype = [_rowtype(name, type_) for name, type_ in zip(names, types, strict=True)]
        rowset = [[None if v is None else str(v) for v in row] for row in rows]
        return 200, _success(
            {
                "parameters": [],
                "rowtype": rowtype,
                "rowset": rowset,
                "total": len(rowset),
                "returned": len(rowset),
                "queryId": f"01b0-{next(self._ids):04}",
                "finalRoleName": role,
                "numberOfBinds": 0,
                "arrayBindSupported": False,
                "statementTypeId": 4096,
                "version": 1,
                "queryResultFormat": "json",
                "queryContext": {"entries": []},
            }
        )

    def logout(self, headers: Any) -> dict[str, Any]:
        match = re.fullmatch(r'Snowflake Token="(.*)"', headers.get("Authorization") or "")
        if match:
            self._sessions.pop(match.group(1), None)
        return _success(None)

    # --- the statements ------------------------------------------------------------------------

    def _answer(self, sql: str, role: str) -> tuple[list[str], list[str], list[list[Any]]]:
        text = " ".join(sql.split())
        if text == "SELECT CURRENT_USER(), CURRENT_ROLE()":
            return ["CURRENT_USER()", "CURRENT_ROLE()"], ["text", "text"], [[self.user, role]]
        if text == "SHOW DATABASES":
            rows = [
                ["2024-01-01 00:00:00.000 -0800", db, "N", "SYSADMIN", "STANDARD"]
                for db in sorted(self.databases)
                if (db,) not in self.hidden
            ]
            return ["created_on", "name", "is_default", "owner", "kind"], ["text"] * 5, rows
        if m := re.fullmatch(r'SHOW SCHEMAS IN DATABASE "((?:[^"]|"")+)"', text):
            db = self._database(m.group(1))
            rows = [
                ["2024-01-01 00:00:00.000 -0800", schema, db, "SYSADMIN"]
                for schema in sorted([*self.databases[db], "INFORMATION_SCHEMA"])
                if (db, schema) not in self.hidden
            ]
            return ["created_on", "name", "database_name", "owner"], ["text"] * 4, rows
        from_schema = (
            r'"((?:[^"]|"")+)"\.INFORMATION_SCHEMA\.(\w+) WHERE \w+ = \'((?:[^\']|\'\')*)\''
        )
        if m := re.fullmatch(r"SELECT SCHEMA_NAME FROM " + from_schema, text):
            db, view, schema = self._database(m.group(1)), m.group(2), _unquote(m.group(3))
            visible = schema in self.databases[db] and (db, schema) not in self.hidden
            return ["SCHEMA_NAME"], ["text"], [[schema]] if view == "SCHEMATA" and visible else []
        tables = r"SELECT TABLE_NAME, TABLE_TYPE, IS_DYNAMIC, IS_ICEBERG FROM "
        if m := re.fullmatch(tables + from_schema + " ORDER BY TABLE_NAME", text):
            db, schema = self._database(m.group(1)), _unquote(m.group(3))
            rows = [
                [name, t.kind, _yes(t.dynamic), _yes(t.iceberg)]
                for name, t in sorted(self._visible(db, schema).items())
            ]
            names = ["TABLE_NAME", "TABLE_TYPE", "IS_DYNAMIC", "IS_ICEBERG"]
            return names, ["text"] * 4, rows
        columns = r"SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, IS_NULLABLE, ORDINAL_POSITION FROM "
        if m := re.fullmatch(
            columns + from_schema + " ORDER BY TABLE_NAME, ORDINAL_POSITION", text
        ):
            db, schema = self._database(m.group(1)), _unquote(m.group(3))
            rows = [
                [name, column, type_, _yes(nullable), position]
                for name, t in sorted(self._visible(db, schema).items())
                for position, (column, type_, nullable) in enumerate(t.columns, 1)
            ]
            names = ["TABLE_NAME", "COLUMN_NAME", "DATA_TYPE", "IS_NULLABLE", "ORDINAL_POSITION"]
            return names, ["text", "text", "text", "text", "fixed"], rows
        self.violations.append(f"unexpected statement: {text}")
        raise _SqlError("001003", "42000", f"SQL compilation error: unexpected '{text[:40]}'.")

    def _database(self, quoted: str) -> str:
        db = quoted.replace('""', '"')
        if db not in self.databases or (db,) in self.hidden:
            message = f"SQL compilation error:\nDatabase '{db}' does not exist or not authorized."
            raise _SqlError("002003", "02000", message)
        return db

    def _visible(self, db: str, schema: str) -> dict[str, Table]:
        """INFORMATION_SCHEMA shows only what the role may see: nothing of a hidden schema."""
        if (db, schema) in self.hidden:
            return {}
        return self.databases[db].get(schema, {})


class _SqlError(Exception):
    def __init__(self, code: str, state: str, message: str) -> None:
        super().__init__(message)
        self.code, self.state, self.message = code, state, message


def _unquote(value: str) -> str:
    return value.replace("''", "'").replace("\\\\", "\\")


def _yes(flag: bool) -> str:
    return "YES" if flag else "NO"


def _rowtype(name: str, type_: str) -> dict[str, Any]:
    numeric = type_ == "fixed"
    return {
        "name": name,
        "database": "",
        "schema": "",
        "table": "",
        "byteLength": None if numeric else 16777216,
        "type": type_,
        "scale": 0 if numeric else None,
        "precision": 9 if numeric else None,
        "nullable": True,
        "collation": None,
        "length": None if numeric else 16777216,
    }


def _success(data: Any) -> dict[str, Any]:
    return {"data": data, "code": None, "message": None, "success": True}


def _failure(code: str, message: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"data": data or {}, "code": code, "message": message, "success": False}


@contextmanager
def serve(account: Account) -> Iterator[int]:
    """Run the fake on 127.0.0.1:<free port>; yields the port and stops it afterwards."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if self.headers.get("Content-Encoding") == "gzip":
                raw = gzip.decompress(raw)
            split = urlsplit(self.path)
            query = parse_qs(split.query, keep_blank_values=True)
            body = json.loads(raw) if raw and split.path != "/telemetry/send" else {}
            status = 200
            with account._lock:
                if split.path == "/session/v1/login-request":
                    answer = account.login(query, body)
                elif split.path == "/queries/v1/query-request":
                    status, answer = account.query(self.headers, body)
                elif split.path == "/session" and "delete" in query:
                    answer = account.logout(self.headers)
                elif split.path == "/telemetry/send":
                    answer = _success(None)
                else:
                    account.violations.append(f"unexpected POST {split.path}")
                    status, answer = 404, _failure("404", "not found")
            payload = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
