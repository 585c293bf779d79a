"""The credential checks of an upgrade's `validate` step (spec §8.3): what each technology's
credentials must hold, OAuth 2.0 clients tried against their identity provider, Trino's system
user against the cluster's `immuta.user.admin`, Snowflake's USAGE on every registered schema,
then the platform itself (`ControlPlane.check`)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from pdp.auth.client import TokenSource
from pdp.auth.credentials import ClientCredentials
from pdp.auth.errors import TokenError
from pdp.config.errors import ConfigError
from pdp.control.objectsync import CrawlerFactory
from pdp.control.plane import ControlPlane
from pdp.core.model import NOBODY
from pdp.crawl.base import Check, connect_failure
from pdp.objects.errors import InvalidInput
from pdp.policy.model import Technology
from pdp.store import ConnectionRecord, References
from pdp.store.legacy import LegacySource, MatchState

ADMIN_USERS = "adminUsers"  # a Trino endpoint's key: the cluster's immuta.user.admin pattern


def credential_checks(
    plane: ControlPlane, record: ConnectionRecord, sources: Sequence[LegacySource]
) -> tuple[list[Check], ConnectionRecord]:
    """Every check, in order, each group only when the ones before it passed; and the record
    as checked (a Trino endpoint naming no `adminUsers` gets the cluster's, so that the crawler
    checks every listing against it too)."""
    revealed = plane.store.secrets.reveal(record.credentials)
    technology = record.technology
    checks = shape_checks(technology, record.endpoint, revealed)
    if all(c.ok for c in checks) and technology is Technology.TRINO and "oauth" in revealed:
        with plane.network.guard():
            oauth = oauth_checks(revealed, plane.references)
        checks = [c for c in checks if c.name != "credentials"] + oauth
    if (
        all(c.ok for c in checks)
        and technology is Technology.TRINO
        and not {ADMIN_USERS, "propertiesFile"} & set(record.endpoint)
        and plane.cluster is not None
    ):
        # The endpoint does not name the cluster's immuta.user.admin: take the PDP's
        # (clusterProperties), and keep it on the endpoint so that the crawler checks
        # every listing against it too.
        admin = cluster_admin(plane)
        checks.append(system_user_check(admin, revealed))
        if admin is not None:
            record = dataclasses.replace(
                record, endpoint={**record.endpoint, ADMIN_USERS: admin.pattern}
            )
    if all(c.ok for c in checks):
        checks += plane.check(record)
    if all(c.ok for c in checks) and technology is Technology.SNOWFLAKE:
        checks += usage_checks(plane.crawler_factory, record, sources)
    return checks, record


def cluster_admin(plane: ControlPlane) -> re.Pattern[str] | None:
    """The cluster's `immuta.user.admin` as the PDP knows it (`clusterProperties`), or None
    when the PDP was given none (the default matches nobody)."""
    assert plane.cluster is not None
    admin: re.Pattern[str] = plane.cluster().properties.admin
    return None if admin.pattern == NOBODY.pattern else admin


def usage_checks(
    factory: CrawlerFactory, record: ConnectionRecord, sources: Sequence[LegacySource]
) -> list[Check]:
    """Snowflake: the role sees (has USAGE on) every database and schema that holds a
    registered data source: each one's listing must succeed and show it."""
    wanted: dict[str, set[str]] = {}
    for source in sources:
        if source.match_state is not MatchState.DELETED:
            wanted.setdefault(source.database, set()).add(source.schema)
    checks: list[Check] = []
    crawler = factory(record)
    try:
        top = crawler.list(())
        databases = {c.name.casefold() for c in top.children or ()}
        for database, schemas in sorted(wanted.items()):
            if top.children is None or database.casefold() not in databases:
                checks.append(
                    Check(f"usage:{database}", False, "the role has no USAGE on the database")
                )
                continue
            listing = crawler.list((database,))
            seen = {c.name.casefold() for c in listing.children or ()}
            for schema in sorted(schemas):
                ok = listing.children is not None and schema.casefold() in seen
                checks.append(
                    Check(
                        f"usage:{database}.{schema}",
                        ok,
                        "the role can use the schema" if ok else "the role has no USAGE on it",
                    )
                )
    finally:
        crawler.close()
    return checks


def system_user(credentials: Mapping[str, Any]) -> Any:
    """Who the platform sees: the user name, or the OAuth client id (the token's subject)."""
    oauth = credentials.get("oauth")
    if isinstance(oauth, Mapping):
        return oauth.get("clientId")
    return credentials.get("username") or credentials.get("user")


def oauth_checks(credentials: Mapping[str, Any], references: References) -> list[Check]:
    """Trino with OAuth 2.0: the `oauth` block (the `auth:` block format of docs/auth.md, a
    client secret or a client certificate) parsed by `pdp.auth`, then a token fetched from the
    identity provider with it. Run it under the network policy (the token endpoint is the
    caller's choice)."""
    try:
        references.check(credentials["oauth"], "credentials.oauth")
        client = ClientCredentials.from_mapping(
            credentials["oauth"], "credentials.oauth", inline=True
        )
    except ConfigError as error:
        return [Check("credentials", False, str(error))]
    except InvalidInput as error:
        return [Check("credentials", False, f"{error.field}: {error.message}")]
    checks = [Check("credentials", True, f"OAuth 2.0 client {client.auth_method}")]
    try:
        with TokenSource(client) as source:
            source.token()
    except (TokenError, httpx.HTTPError) as error:
        detail = f"the identity provider gave no token: {connect_failure(error)}"
        return [*checks, Check("token", False, detail)]
    return [
        *checks,
        Check("token", True, f"the identity provider issued a token to {client.client_id}"),
    ]


def system_user_check(admin: re.Pattern[str] | None, credentials: Mapping[str, Any]) -> Check:
    """The Trino system user must be one the cluster's `immuta.user.admin` names (a pattern,
    matched whole, as the decision core matches it); `admin` None: nothing names it."""
    user = system_user(credentials)
    if admin is None:
        return Check(
            "systemUser",
            False,
            "the cluster's immuta.user.admin is not known: give endpoint.adminUsers (that "
            "pattern) or endpoint.propertiesFile, or clusterProperties in pdp.yaml",
        )
    ok = bool(user) and admin.fullmatch(str(user)) is not None
    return Check(
        "systemUser",
        ok,
        f"the system user {user!r} matches the cluster's immuta.user.admin {admin.pattern!r}"
        if ok
        else f"the system user {user!r} does not match the cluster's immuta.user.admin "
        f"({admin.pattern!r}): set it there, or use that user",
    )


def shape_checks(
    technology: Technology, endpoint: Mapping[str, Any], credentials: Mapping[str, Any]
) -> list[Check]:
    """What each technology's credentials must hold before the platform is asked."""

    def has(*names: str) -> bool:
        return any(
            credentials.get(n) or credentials.get(f"{n}Env") or credentials.get(f"{n}File")
            for n in names
        )

    if technology is Technology.TRINO:
        insecure = endpoint.get("httpScheme") == "http"
        if "oauth" in credentials:  # checked by `oauth_checks`, with the project's clients
            ok, detail = True, "OAuth 2.0 client credentials"
        elif has("username", "user") and has("password"):
            ok, detail = True, "user and password"
        elif has("username", "user") and insecure:
            ok, detail = True, "a user name alone (a cluster without authentication, over http)"
        else:
            ok = False
            detail = (
                "user and password (or passwordEnv / passwordFile) are needed, or an oauth "
                "block (client secret or client certificate); a user name alone only with "
                "endpoint.httpScheme http (a cluster without authentication)"
            )
        checks = [Check("credentials", ok, detail)]
        if ok and ADMIN_USERS in endpoint:  # the cluster's immuta.user.admin, a pattern
            try:
                admin = re.compile(str(endpoint[ADMIN_USERS]))
            except re.error as error:
                return [*checks, Check("systemUser", False, f"endpoint.{ADMIN_USERS}: {error}")]
            checks.append(system_user_check(admin, credentials))
        return checks
    if technology is Technology.SNOWFLAKE:
        ok = bool(credentials.get("role") or endpoint.get("role"))
        return [
            Check("role", ok, "a role is named" if ok else "name the role the system user takes")
        ]
    if technology is Technology.DATABRICKS:
        ok = has("token")
        return [
            Check(
                "token",
                ok,
                "a token is given"
                if ok
                else "an access token (token, tokenEnv or tokenFile) is needed",
            )
        ]
    return [Check("credentials", True, "checked by the platform")]
