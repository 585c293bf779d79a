"""The targets file, and the sync loop that re-plans on a new revision and on a timer."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from pdp.config.errors import ConfigError
from pdp.config.yamlsource import load_yaml
from pdp.core import Access
from pdp.grants import GrantSyncer, parse_grants, syncer_from
from pdp.grants.config import parse_pg_schema, parse_policy_schema
from pdp.grants.dialect import NameCase
from pdp.grants.snowflake import SnowflakeDialect
from pdp.grants.targets import SnowflakeTarget, Target
from pdp.policy import Revisions
from tests.grants.fakes.ledger import Ledger
from tests.grants.fakes.world import policy, snapshot, source

GOOD = """
reconcileIntervalSeconds: 600
targets:
  - name: sf
    platform: snowflake
    connections: [snowflake-prod]
    rolePrefix: ACME
    names: exact
    users: {alice: A_SMITH}
    account: ${SF_ACCOUNT}
    user: PDP_SYNC
    auth: keypair
    privateKeyFile: /secrets/key.p8
    privateKeyPassphrase: ${SF_KEY_PASS}
    policySchema: governance."Policies"
  - name: uc
    platform: databricks
    connections: [unity]
    host: https://adb-1.example.net
    auth: oauth-m2m
    clientId: ${DATABRICKS_CLIENT_ID}
    clientSecret: ${DATABRICKS_CLIENT_SECRET}
"""
ENV = {
    "SF_ACCOUNT": "xy123",
    "SF_KEY_PASS": "pass",
    "DATABRICKS_CLIENT_ID": "cid",
    "DATABRICKS_CLIENT_SECRET": "secret",
}


def parse(text: str, env: dict[str, str]):
    return parse_grants(load_yaml(text, "targets.yaml"), "targets.yaml", env)


def test_a_valid_file_resolves_secrets_from_the_environment() -> None:
    config = parse(GOOD, ENV)
    assert config.interval == 600
    sf, uc = config.targets
    assert (sf.platform, sf.prefix, sf.naming.case) == ("snowflake", "ACME", NameCase.EXACT)
    assert sf.naming.users == {"alice": "A_SMITH"}
    assert parse_policy_schema(sf.settings["policySchema"]) == ("GOVERNANCE", "Policies")
    assert sf.settings["account"] == "xy123" and sf.settings["privateKeyPassphrase"] == "pass"
    assert uc.connections == {"unity"} and uc.settings["clientSecret"] == "secret"


@pytest.mark.parametrize(
    ("edit", "env", "message"),
    [
        (("${DATABRICKS_CLIENT_SECRET}", "hunter2"), ENV, "write secrets as ${ENV_VAR}"),
        (("", ""), {k: v for k, v in ENV.items() if k != "SF_KEY_PASS"}, "SF_KEY_PASS is not set"),
        (("auth: keypair", "auth: kerberos"), ENV, "auth: expected one of password, keypair"),
        (("platform: databricks", "platform: redshift"), ENV, "platform: expected one of"),
        (("rolePrefix: ACME", "rolePrefix: 'A-B'"), ENV, "rolePrefix: letters"),
        (("    privateKeyFile: /secrets/key.p8\n", ""), ENV, "auth keypair needs 'privateKeyFile'"),
        (("name: uc", "name: sf"), ENV, "name 'sf' is used twice"),
        (('governance."Policies"', "governance"), ENV, "policySchema: expected <database>.<sch"),
        (
            (
                "    clientSecret: ${DATABRICKS_CLIENT_SECRET}\n",
                "    clientSecret: ${DATABRICKS_CLIENT_SECRET}\n    policySchema: gov.policies\n",
            ),
            ENV,
            "policySchema needs warehouseId",
        ),
    ],
)
def test_problems_name_the_file_line_and_key(
    edit: tuple[str, str], env: dict[str, str], message: str
) -> None:
    text = GOOD.replace(*edit) if edit[0] else GOOD
    with pytest.raises(ConfigError) as caught:
        parse(text, env)
    assert message in str(caught.value)
    assert "targets.yaml:" in str(caught.value)


def test_no_targets_means_grant_sync_is_off(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    assert syncer_from(parse_grants({}, "pdp.yaml")) is None
    assert "grant sync is off" in caplog.text
    syncer = syncer_from(parse(GOOD, ENV))
    assert syncer is not None and syncer.interval == 600 and len(syncer.openers) == 2


ORDERS = "sf.sales.public.orders"


async def test_syncer_follows_revisions_and_repairs_drift_on_the_timer() -> None:
    book = Ledger()
    book.users |= {"ALICE", "BOB"}
    book.add_object("TABLE", "SALES", "PUBLIC", "ORDERS")
    opened: list[str] = []

    @contextmanager
    def opener() -> Iterator[Target]:
        opened.append("x")
        yield SnowflakeTarget("sf", frozenset({"sf"}), book, SnowflakeDialect())

    first = snapshot([source(ORDERS)], [policy("r", Access.READ, ["alice"], [ORDERS])], ["alice"])
    second = snapshot(
        [source(ORDERS)], [policy("r", Access.READ, ["bob"], [ORDERS])], ["alice", "bob"], "r2"
    )
    revisions = Revisions(first)
    outcomes: list[tuple[str, str]] = []

    @contextmanager
    def unreachable() -> Iterator[Target]:
        raise OSError("connection refused")
        yield

    syncer = GrantSyncer(
        [opener, unreachable], 3600, ["sf", "down"], lambda *told: outcomes.append(told)
    )
    task = asyncio.create_task(syncer.run(revisions))
    try:
        await _until(lambda: book.can("ALICE", "SELECT", "SALES", "PUBLIC", "ORDERS"))
        runs = len(opened)
        await asyncio.sleep(0.05)
        assert len(opened) == runs  # same revision, interval not due: nothing runs

        revisions.publish(second)
        await _until(lambda: book.can("BOB", "SELECT", "SALES", "PUBLIC", "ORDERS"))
        assert not book.can("ALICE", "SELECT", "SALES", "PUBLIC", "ORDERS")

        book.execute('GRANT INSERT ON TABLE "SALES"."PUBLIC"."ORDERS" TO ROLE "PDP_USER_BOB"')
        syncer.interval = 0.02  # the periodic reconcile comes due
        await _until(lambda: not book.can("BOB", "INSERT", "SALES", "PUBLIC", "ORDERS"))
        assert syncer.last_reports and syncer.last_reports[0].clean
        # the outcome of each run per target, as the PDP's metrics count them
        assert ("sf", "clean") in outcomes and ("down", "unreachable") in outcomes
        assert {o for t, o in outcomes if t == "down"} == {"unreachable"}
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def _until(condition, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached in time")


def test_secrets_use_the_env_and_file_keys_of_auth_blocks(tmp_path, caplog) -> None:
    (tmp_path / "pg-password").write_text("from-a-file\n")
    text = """
targets:
  - {name: sf, platform: snowflake, connections: [sf], account: xy, user: U, auth: password,
     passwordEnv: SF_PASSWORD}
  - {name: pg, platform: postgresql, connections: [pg], passwordFile: pg-password}
"""
    config = parse_grants(load_yaml(text, "t.yaml"), "t.yaml", {"SF_PASSWORD": "p"}, tmp_path)
    assert [t.settings["password"] for t in config.targets] == ["p", "from-a-file"]
    assert "deprecated" not in caplog.text


def test_env_references_are_deprecated_but_still_read(caplog) -> None:
    config = parse(GOOD, ENV)
    assert config.targets[1].settings["clientSecret"] == "secret"
    assert "targets[1].clientSecret: ${ENV_VAR} references are deprecated" in caplog.text


@pytest.mark.parametrize(
    ("written", "schema"),
    [("pdp_governed", "pdp_governed"), ("PDP_Governed", "pdp_governed"), ('"Gov"', "Gov")],
)
def test_a_postgresql_policy_schema_is_one_name_folded_as_postgresql_folds_it(
    written: str, schema: str
) -> None:
    assert parse_pg_schema(written) == schema


@pytest.mark.parametrize("written", ["shop.pdp_governed", '"open', ""])
def test_a_postgresql_policy_schema_that_is_not_one_name_is_an_error(written: str) -> None:
    text = (
        "targets:\n  - name: pg\n    platform: postgresql\n    connections: [pg-prod]\n"
        f"    dsn: host=127.0.0.1\n    policySchema: '{written}'\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse(text, {})
    assert "targets.yaml:6: " in str(caught.value)
    assert "policySchema: expected one schema name" in str(caught.value)
