"""The seam between object sync and the platforms: one crawler per technology.

A crawler lists one container at a time (`list(parent)`): `()` lists the databases (Trino and
Databricks: catalogs), `(db,)` its schemas, `(db, schema)` its tables with their columns, all of
one schema in one paged listing. A platform failure (timeout, permission, error) never raises:
it comes back as `Listing.failed(parent, reason)`, so that object sync marks that container
unknown and never its children missing. Only a bad configuration raises (`CrawlError`, from
`open_crawler`), before anything is sent.

`check()` validates the credentials: one named `Check` per step, each failed one with why.
"""

from __future__ import annotations

import fnmatch
import os
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

from pdp.config.errors import Collector, ConfigError
from pdp.config.fields import Fields
from pdp.crawl.network import NetworkRefused
from pdp.objects.syncplan import Listing, Names, RemoteObject
from pdp.policy.model import Technology

DEFAULT_TIMEOUT = 60.0  # seconds, per remote call
DEFAULT_PAGE_SIZE = 1000  # rows or objects per page
MAX_PAGES = 10_000  # a listing that needs more pages than this fails instead of looping on
# Keys every endpoint may carry besides its technology's own.
# `maxConcurrentListings` and `maxConcurrentListingsPerDatabase` are object sync's
# (pdp.control.objectsync.listing_bound, database_bound), checked here.
COMMON_ENDPOINT_KEYS = (
    "exclude",
    "timeout",
    "pageSize",
    "maxConcurrentListings",
    "maxConcurrentListingsPerDatabase",
)


class CrawlError(Exception):
    """A crawler cannot be built from this endpoint and credentials (the message names the
    field at fault). Never raised for a platform failure: those are failed listings/checks."""


@dataclass(frozen=True, slots=True)
class Check:
    """One step of credential validation; `detail` says what was found or why it failed."""

    name: str
    ok: bool
    detail: str = ""


Checks = list[Check]  # `list` is a method name in the classes below


@runtime_checkable
class Crawler(Protocol):
    @property
    def technology(self) -> str: ...  # a Technology

    def list(self, parent: Names) -> Listing: ...

    def check(self) -> Checks: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Exclusions:
    """Names of databases and schemas to skip: the platform's own (always) and the
    connection's `exclude` patterns. A pattern is a case-insensitive glob (`*`, `?`, `[...]`)
    matched against a database or a schema name; `db/schema` matches that schema of that
    database only."""

    builtin_databases: tuple[str, ...] = ()
    builtin_schemas: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()

    def skip(self, names: Names) -> bool:
        """Whether the database `(db,)` or the schema `(db, schema)` is excluded."""
        name = names[-1].casefold()
        builtin = self.builtin_databases if len(names) == 1 else self.builtin_schemas
        if any(fnmatch.fnmatchcase(name, p.casefold()) for p in builtin):
            return True
        for pattern in self.patterns:
            db, slash, schema = pattern.casefold().partition("/")
            if slash:
                if (
                    len(names) == 2
                    and fnmatch.fnmatchcase(names[0].casefold(), db)
                    and fnmatch.fnmatchcase(name, schema)
                ):
                    return True
            elif fnmatch.fnmatchcase(name, db):
                return True
        return False

    def keep(self, parent: Names, children: Iterable[RemoteObject]) -> tuple[RemoteObject, ...]:
        if len(parent) >= 2:  # tables are never excluded by name
            return tuple(children)
        return tuple(c for c in children if not self.skip((*parent, c.name)))


@dataclass(frozen=True)
class Common:
    """What every endpoint may carry."""

    exclude: tuple[str, ...]
    timeout: float
    page_size: int


class Config:
    """Reads an endpoint or credentials mapping; collects every problem, then raises one
    `CrawlError` naming them all."""

    def __init__(self, technology: Technology, env: Mapping[str, str] | None = None) -> None:
        self.technology = technology
        self.found = Collector("")
        self.env: Mapping[str, str] = os.environ if env is None else env

    def fields(self, value: object, where: str, known: Iterable[str]) -> Fields:
        return Fields(value, f"{self.technology}.{where}", self.found, known, Path.cwd())

    def common(self, f: Fields) -> Common:
        f.number("maxConcurrentListings", 4, low=1, high=64, whole=True)
        f.number("maxConcurrentListingsPerDatabase", 2, low=1, high=64, whole=True)
        return Common(
            tuple(f.strings("exclude")),
            f.number("timeout", DEFAULT_TIMEOUT, positive=True, high=3600),
            int(f.number("pageSize", DEFAULT_PAGE_SIZE, low=1, high=100_000, whole=True)),
        )

    def done(self) -> None:
        if self.found.errors:
            raise CrawlError(str(ConfigError(self.found.errors)))


S = TypeVar("S", covariant=True)


class Platform(Protocol[S]):
    """What a crawler reads of its `pdp.platforms` module: the keys a connection's endpoint
    and credentials may hold, and the settings made of them."""

    @property
    def ENDPOINT_KEYS(self) -> tuple[str, ...]: ...
    @property
    def CREDENTIAL_KEYS(self) -> tuple[str, ...]: ...

    def from_connection(
        self, endpoint: Fields, credentials: Fields, env: Mapping[str, str]
    ) -> S: ...


def read_connection(
    technology: Technology,
    platform: Platform[S],
    endpoint: Mapping[str, Any],
    credentials: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
) -> tuple[S, Common]:
    """A stored connection's platform settings and the listing options common to every
    crawler, or one `CrawlError` naming every problem."""
    config = Config(technology, env)
    e = config.fields(endpoint, "endpoint", (*platform.ENDPOINT_KEYS, *COMMON_ENDPOINT_KEYS))
    c = config.fields(credentials, "credentials", platform.CREDENTIAL_KEYS)
    settings = platform.from_connection(e, c, config.env)
    common = config.common(e)
    config.done()
    return settings, common


def top_listing_check(what: str, listing: Listing, empty: str | None = None) -> Check:
    """The check that the connection's first level can be listed: `what` ("list catalogs"),
    failed with the listing's error, or with `empty` when nothing listed is a failure."""
    if listing.children is None:
        return Check(what, False, listing.error or "")
    if empty is not None and not listing.children:
        return Check(what, False, empty)
    names = ", ".join(c.name for c in listing.children[:10])
    return Check(what, True, f"{len(listing.children)}: {names}")


def reason(error: BaseException) -> str:
    """A short, one-line reason for a failed listing or check (never a secret: drivers do not
    put passwords in their messages, and none is formatted in here)."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 500 else text[:497] + "..."


def connect_failure(error: BaseException) -> str:
    """What failed when connecting or signing in, in the PDP's own words: never what the remote
    answered, so that a connection check is neither a banner grabber nor an oracle."""
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        current = current.__cause__ or current.__context__
    for item in seen:
        if isinstance(item, NetworkRefused):
            return str(item)
        if isinstance(item, ConnectionRefusedError):
            return "connection refused"
        if isinstance(item, TimeoutError):
            return "timed out"
        if isinstance(item, ssl.SSLError):
            return "TLS failed (handshake or certificate)"
        state = str(getattr(item, "sqlstate", None) or "")  # a code, not the server's text
        if state.startswith("28"):
            return "authentication failed"
        if state == "3D000":
            return "no such database"
    text = " ".join(str(item).lower() for item in seen)
    for words, what in _FAILURES:
        if any(word in text for word in words):
            return what
    return "the connection failed (the server's answer is not shown)"


_FAILURES = (  # in this order: a refused login often ends in a retry's timeout
    (("connection refused",), "connection refused"),
    (
        (
            "authentication",
            "password",
            'role "',
            "error 401",
            "unauthorized",
            "error 403",
            "forbidden",
            "login",
            "credential",
            "invalid or missing token",
        ),
        "authentication failed",
    ),
    (("timeout", "timed out"), "timed out"),
    (
        (
            "could not translate host",
            "name or service not known",
            "nodename nor servname",
            "failed to resolve",
            "name resolution",
        ),
        "cannot resolve the host name",
    ),
    (("ssl", "tls", "certificate"), "TLS failed (handshake or certificate)"),
)


def level_error(technology: str, parent: Names, levels: int = 2) -> str | None:
    if len(parent) > levels:
        return f"{technology}: nothing to list below a table ({'.'.join(parent)})"
    return None


def open_crawler(
    technology: str,
    endpoint: Mapping[str, Any],
    credentials: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
) -> Crawler:
    """The crawler for `technology`, built from the connection's endpoint and credentials
    (secrets are references: `passwordEnv`/`passwordFile`, ..., read from `env`, default the
    process environment). Nothing is sent until the first `list` or `check`. Raises
    `CrawlError` for an unknown technology or a bad endpoint/credentials."""
    # Imported on demand: each driver is heavy, and a service may use one technology only.
    match technology:
        case Technology.POSTGRESQL:
            from pdp.crawl.postgres import open_postgres

            return open_postgres(endpoint, credentials, env)
        case Technology.TRINO:
            from pdp.crawl.trino import open_trino

            return open_trino(endpoint, credentials, env)
        case Technology.SNOWFLAKE:
            from pdp.crawl.snowflake import open_snowflake

            return open_snowflake(endpoint, credentials, env)
        case Technology.DATABRICKS:
            from pdp.crawl.databricks import open_databricks

            return open_databricks(endpoint, credentials, env)
    raise CrawlError(f"technology: {technology!r} is not one of {', '.join(Technology)}")
