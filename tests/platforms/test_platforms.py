"""The platform modules (pdp.platforms): one vocabulary of technologies, settings that never show
their secrets, and PostgreSQL sessions opened through the one `connect` for both callers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from devstack.postgres import Postgres
from pdp.config.errors import Collector, ConfigError
from pdp.config.fields import Fields
from pdp.crawl import CrawlError, open_crawler
from pdp.grants import parse_grants
from pdp.platforms import databricks, postgresql, snowflake, trino
from pdp.policy import Technology


def stored(
    module: Any, endpoint: dict[str, Any], credentials: dict[str, Any], env: dict[str, str]
) -> Any:
    """Settings read from the store's shape of a connection, as the crawlers read them."""
    found = Collector("")
    e = Fields(endpoint, "endpoint", found, module.ENDPOINT_KEYS, Path.cwd())
    if module is trino:
        settings = module.from_connection(e, credentials, env)
    else:
        c = Fields(credentials, "credentials", found, module.CREDENTIAL_KEYS, Path.cwd())
        settings = module.from_connection(e, c, env)
    found.raise_if_any()
    return settings


SECRET = "hunter2-secret"


@pytest.mark.parametrize(
    ("module", "endpoint", "credentials"),
    [
        (postgresql, {"host": "h"}, {"user": "u", "passwordEnv": "S"}),
        (snowflake, {"account": "a"}, {"user": "u", "passwordEnv": "S"}),
        (databricks, {"host": "https://w"}, {"clientId": "c", "clientSecretEnv": "S"}),
        (trino, {"host": "h"}, {"username": "u", "passwordEnv": "S"}),
    ],
)
def test_settings_never_show_their_secrets(module, endpoint, credentials):
    settings = stored(module, endpoint, credentials, {"S": SECRET})
    assert SECRET not in repr(settings) and SECRET not in str(settings)


def test_a_dsn_never_shows_either():
    settings = postgresql.from_target({"dsn": f"postgresql://u:{SECRET}@h/db"})
    assert SECRET not in repr(settings)


def test_every_technology_has_a_crawler_and_an_unknown_one_is_named():
    with pytest.raises(CrawlError) as caught:
        open_crawler("oracle", {}, {})
    assert str(caught.value) == (
        "technology: 'oracle' is not one of trino, snowflake, databricks, postgresql"
    )


def test_grant_targets_are_the_platforms_grant_sync_writes_to():
    """Trino is a Technology, yet no grants target: the sidecar decides there."""
    entry = {"name": "t", "platform": "trino", "connections": ["t"]}
    with pytest.raises(ConfigError, match=r"platform: expected one of snowflake, databricks, "):
        parse_grants({"targets": [entry]}, "pdp.yaml")
    spec = parse_grants(
        {"targets": [{**entry, "platform": "PostgreSQL", "dsn": "host=h"}]}, "pdp.yaml"
    ).targets[0]
    assert spec.platform is Technology.POSTGRESQL


def _application(connection: Any) -> str:
    with connection:
        return str(connection.execute("SHOW application_name").fetchone()[0])


def test_postgresql_sessions_are_named_by_their_caller(pg: Postgres):
    """A stored connection names its session itself; a target's dsn may name it otherwise."""
    env = {"P": pg.password} if pg.password else {}
    credentials = {"user": pg.user, **({"passwordEnv": "P"} if pg.password else {})}
    connection = stored(postgresql, {"host": pg.host, "port": pg.port}, credentials, env)
    assert _application(postgresql.connect(connection, application="pdp-crawler")) == (
        "pdp-crawler"
    )
    target = postgresql.from_target({"dsn": pg.conninfo()})
    assert _application(postgresql.connect(target, application="pdp-grant-sync")) == (
        "pdp-grant-sync"
    )
    named = postgresql.from_target({"dsn": f"{pg.conninfo()} application_name=ops"})
    assert _application(postgresql.connect(named, application="pdp-grant-sync")) == "ops"


def test_only_a_target_lets_libpq_fill_in_from_the_pdps_environment(pg: Postgres):
    """PGPASSWORD and ~/.pgpass are the PDP's own: never for a connection registered through
    the API; an operator's dsn in pdp.yaml is the PDP's own client, as libpq has it."""
    settings = stored(postgresql, {"host": pg.host, "port": pg.port}, {"user": pg.user}, {})
    assert settings.password is None and not settings.libpq_defaults
    target = postgresql.from_target({"dsn": pg.conninfo()})
    assert target.libpq_defaults  # an operator's dsn: libpq's environment applies
