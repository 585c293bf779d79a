"""`pdp connections ...` against a running PDP (the fake platform behind it)."""

from __future__ import annotations

import os
import subprocess

import pytest

from devstack import replica
from devstack.replica import Replica, write_world


def test_the_cli_registers_syncs_shows_and_deregisters(tmp_path):
    world = tmp_path / "world.json"
    write_world(world, {"cat": {"sales": {"orders": [["id", "bigint"]]}}})
    # hc/cat has 2 objects below it (a direct answer), hc 3 (a cascade job)
    extra = "control: {cascadeJobThreshold: 2}\n"
    pdp = Replica(tmp_path, f"sqlite:///{tmp_path}/store.db", world, "cli", extra)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return pdp.cli("connections", *args)

    try:
        done = cli(
            "register", "hc", "--technology", "trino", "--endpoint", "host=fake", "--activate-new"
        )
        assert done.returncode == 0, done.stderr
        assert "registered hc" in done.stdout and "completed" in done.stdout
        tree = cli("tree", "--depth", "4")
        assert tree.returncode == 0, tree.stderr
        assert "orders  (table" in tree.stdout
        done = cli("settings", "hc/cat", "--active", "true")
        assert "isActive: true  (from hc/cat)" in done.stdout
        status = cli("status", "hc/cat/sales/orders")
        assert "isActive: true  (from hc/cat)" in status.stdout
        assert "id: bigint" in status.stdout
        sync = cli("sync", "hc")
        assert sync.returncode == 0 and "completed" in sync.stdout
        jobs = cli("jobs", "--connection", "hc")
        assert jobs.stdout.count("completed") == 2
        cascade = cli("settings", "hc", "--active", "false")
        assert cascade.returncode == 0, cascade.stderr
        assert "3 objects below hc: job" in cascade.stdout and "completed" in cascade.stdout
        refused = cli("settings", "nope", "--active", "true")
        assert refused.returncode == 1 and "HTTP 404" in refused.stderr
        gone = cli("delete", "hc", "--yes")
        assert "deleted hc and 3 objects below it" in gone.stdout
    finally:
        pdp.stop()


def test_the_cli_walks_an_upgrade_through(tmp_path, monkeypatch):
    monkeypatch.setattr(replica, "CLOSED", replica.CLOSED + "immuta.user.admin=pdp\n")
    world = tmp_path / "world.json"
    write_world(world, {"cat": {"sales": {"orders": [["id", "bigint"]]}}})
    pdp = Replica(tmp_path, f"sqlite:///{tmp_path}/store.db", world, "cli")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return pdp.cli("connections", "upgrade", *args)

    try:
        legacy = {
            "name": "legacyhc",
            "technology": "trino",
            "endpoint": {"host": "fake"},
            "credentials": {"username": "pdp", "password": "pw"},
        }
        ids = {}
        for table in ("orders", "ghost"):
            answer = pdp.api.post(
                "/dataSource",
                json={"connection": legacy, "database": "cat", "schema": "sales", "table": table},
            )
            ids[table] = answer.json()["id"]
        listed = cli("list")
        assert "legacyhc  (trino, 2 data sources)  not_started; next: start" in listed.stdout
        refused = cli("validate", "legacyhc")
        assert refused.returncode == 1 and "HTTP 409" in refused.stderr
        assert "allowed next: start" in refused.stderr
        assert "started as hc" in cli("start", "legacyhc", "hc").stdout
        validated = cli("validate", "legacyhc")
        assert "ok   authenticate" in validated.stdout and "validated" in validated.stdout
        unconfirmed = cli("run", "legacyhc")
        assert unconfirmed.returncode == 2 and "--yes" in unconfirmed.stderr
        run = cli("run", "legacyhc", "--yes")
        assert run.returncode == 0, run.stderr
        assert "legacyhc -> hc: partial (1 matched, 1 unresolved)" in run.stdout
        assert f"unresolved {ids['ghost']}  cat.sales.ghost: not_found" in run.stdout
        early = cli("finalize", "legacyhc")
        assert early.returncode == 1 and "unresolved" in early.stderr
        resolved = cli("resolve", "legacyhc", ids["ghost"], "--delete")
        assert "upgraded, 0 unresolved" in resolved.stdout
        done = cli("finalize", "legacyhc")
        assert "finalized as connection hc; object sync is on" in done.stdout
        left = cli("list").stdout
        assert "legacyhc" not in left
        assert "trino-prod  (trino, 2 data sources)  not_started" in left  # declared in YAML
    finally:
        pdp.stop()


def test_credential_references_are_read_from_the_users_own_environment(tmp_path):
    """`--credential passwordEnv=TRINO_PASSWORD` (the README's words) reads the user's shell and
    sends the value; the PDP stores it encrypted and never reads its own environment."""
    world = tmp_path / "world.json"
    write_world(world, {"cat": {"sales": {"orders": [["id", "bigint"]]}}})
    pdp = Replica(tmp_path, f"sqlite:///{tmp_path}/store.db", world, "cli")
    secret_file = tmp_path / "mine.txt"
    secret_file.write_text("from-my-file\n")

    def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
        clean = {k: v for k, v in os.environ.items() if k != "TRINO_PASSWORD"}
        return pdp.cli("connections", *args, env={**clean, **env})

    base = ("register", "hc", "--technology", "trino", "--endpoint", "host=fake")
    creds = ("--credential", "username=pdp", "--credential", "passwordEnv=TRINO_PASSWORD")
    try:
        unset = cli({}, *base, *creds)
        assert unset.returncode == 1
        assert "TRINO_PASSWORD of your shell" in unset.stderr and "not the PDP's" in unset.stderr
        done = cli({"TRINO_PASSWORD": "from-my-shell"}, *base, *creds)
        assert done.returncode == 0, done.stderr
        stored = pdp.api.get("/data/connection/hc").json()["credentials"]
        assert stored == {"username": "pdp", "password": "[REDACTED]"}  # a value, encrypted
        by_file = cli(
            {},
            *base[:1],
            "hc2",
            *base[2:],
            "--credential",
            "username=pdp",
            "--credential",
            f"passwordFile={secret_file}",
        )
        assert by_file.returncode == 0, by_file.stderr
        stored = pdp.api.get("/data/connection/hc2").json()["credentials"]
        assert stored == {"username": "pdp", "password": "[REDACTED]"}
    finally:
        pdp.stop()


def test_credentials_resolve_on_the_users_side():
    from pdp.cli.connections import ApiError, credentials

    env = {"MY_PW": "pw1"}
    assert credentials(["user=u", "passwordEnv=MY_PW"], env) == {"user": "u", "password": "pw1"}
    assert credentials(["password"], env, prompt=lambda label: "typed") == {"password": "typed"}
    with pytest.raises(ApiError, match="MY_OTHER of your shell"):
        credentials(["passwordEnv=MY_OTHER"], env)
    with pytest.raises(ApiError, match="cannot read your file /nonexistent"):
        credentials(["tokenFile=/nonexistent"], env)


def test_a_key_file_of_the_user_is_sent_as_its_pem_text(tmp_path):
    """`--credential privateKeyFile=PATH` (a Snowflake key pair, an OAuth client certificate's
    key) reads the user's file; the API gets `privateKey`, PEM text it checks and seals."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from pdp.cli.connections import credentials
    from pdp.config import pem

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    text = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"kp"),
    ).decode()
    path = tmp_path / "rsa_key.p8"
    path.write_text(text)
    sent = credentials(
        ["user=u", f"privateKeyFile={path}", "privateKeyPasswordEnv=KEY_PW"], {"KEY_PW": "kp"}
    )
    assert sent == {"user": "u", "privateKey": text.rstrip("\n"), "privateKeyPassword": "kp"}
    loaded = pem.rsa_private_key(sent["privateKey"], sent["privateKeyPassword"])
    assert loaded.public_key() == key.public_key()
