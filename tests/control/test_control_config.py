"""pdp.yaml's `store:` and `admin:`, users.yaml's `permissions:`, the development issuer's user
tokens (`pdp token`), and the bearer-token path of the admin API."""

from __future__ import annotations

import httpx
import pytest
from fastapi.testclient import TestClient

from devstack.configs import WORKED_USERS, make_tree
from pdp.admin import create_app
from pdp.admin.auth import bearer
from pdp.auth import Secret, Validator
from pdp.auth.devissuer import DevIssuer
from pdp.config.errors import ConfigError
from pdp.control import ControlPlane, SyncRunner
from pdp.control.schedule import TICK_SECONDS
from pdp.policy import DirectoryUser, GlobalPermission
from pdp.service.config import load_pdp_config


def pdp_yaml(tmp_path, extra: str, auth: str = "none"):
    tree = make_tree(tmp_path)
    path = tree.pdp_yaml(50051, auth)
    path.write_text(path.read_text() + extra)
    return path


def test_store_and_admin(tmp_path):
    config = load_pdp_config(
        pdp_yaml(
            tmp_path,
            "store: sqlite:///.cache/store.db\n"
            "admin: {listen: '127.0.0.1:9999', trustUserHeader: true}\n",
        )
    )
    assert config.store == f"sqlite:///{tmp_path / '.cache' / 'store.db'}"
    assert (tmp_path / ".cache").is_dir()
    assert config.admin is not None and config.admin.listen == "127.0.0.1:9999"
    assert load_pdp_config(pdp_yaml(tmp_path, "")).store is None  # control plane off


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ("admin: {listen: '127.0.0.1:1'}\n", "needs a store"),
        ("store: sqlite:///s.db\nadmin: {listen: '127.0.0.1:1'}\n", "cannot tell who calls"),
    ],
)
def test_admin_problems(tmp_path, extra, fragment):
    with pytest.raises(ConfigError, match=fragment):
        load_pdp_config(pdp_yaml(tmp_path, extra))


def test_the_control_section(tmp_path):
    config = load_pdp_config(
        pdp_yaml(
            tmp_path,
            "store: sqlite:///s.db\n"
            "control: {storePollSeconds: 2, cascadeJobThreshold: 500, snapshotFile: st/s.json}\n",
        )
    )
    assert config.control.store_poll_seconds == 2.0
    assert config.control.cascade_job_threshold == 500
    assert config.control.snapshot_file == tmp_path / "st" / "s.json"
    defaults = load_pdp_config(pdp_yaml(tmp_path, "store: sqlite:///s.db\n")).control
    assert defaults.store_poll_seconds is None and defaults.cascade_job_threshold == 10_000
    assert load_pdp_config(pdp_yaml(tmp_path, "")).control.snapshot_file is None  # no store
    with pytest.raises(ConfigError, match=r"control\.cascadeJobThreshold: expected a whole"):
        load_pdp_config(pdp_yaml(tmp_path, "control: {cascadeJobThreshold: 1.5}\n"))
    with pytest.raises(ConfigError, match=r"control\.storePollSeconds: expected a positive"):
        load_pdp_config(pdp_yaml(tmp_path, "control: {storePollSeconds: 0}\n"))


@pytest.mark.parametrize(
    ("store", "where"),
    [
        ("sqlite:///.cache/store.db", ".cache/store.db.snapshot.json"),  # beside the file
        ("sqlite:///:memory:", ".cache/store-snapshot.json"),
        ("postgresql+psycopg://pdp:secret@db:5432/pdp", ".cache/store-snapshot.json"),
    ],
)
def test_a_pdp_with_a_store_keeps_its_snapshot_by_default(tmp_path, store, where):
    config = load_pdp_config(pdp_yaml(tmp_path, f"store: '{store}'\n"))
    assert config.control.snapshot_file == tmp_path / where


def test_the_schedule_tick(tmp_path):
    tick = "store: sqlite:///s.db\ncontrol: {scheduleTickSeconds: 2.5}\n"
    assert load_pdp_config(pdp_yaml(tmp_path, tick)).control.schedule_tick_seconds == 2.5
    defaults = load_pdp_config(pdp_yaml(tmp_path, "store: sqlite:///s.db\n")).control
    assert defaults.schedule_tick_seconds == TICK_SECONDS == 15.0
    for wrong, why in (("0", "expected a positive"), ("soon", "expected a number")):
        with pytest.raises(
            ConfigError, match=rf"pdp\.yaml:\d+.*control\.scheduleTickSeconds: {why}"
        ):
            load_pdp_config(pdp_yaml(tmp_path, f"control:\n  scheduleTickSeconds: {wrong}\n"))


async def test_pdp_serve_ticks_at_the_configured_interval(tmp_path):
    from pdp.service.run import start_pdp

    extra = "store: sqlite:///s.db\ncontrol: {scheduleTickSeconds: 0.5}\n"
    config = load_pdp_config(pdp_yaml(tmp_path, extra))
    running = await start_pdp(config, listen="127.0.0.1:0")
    try:
        assert running.scheduler is not None and running.scheduler.tick_seconds == 0.5
    finally:
        await running.stop()
    running = await start_pdp(config, listen="127.0.0.1:0", schedule_tick=0.2)  # tests' override
    try:
        assert running.scheduler is not None and running.scheduler.tick_seconds == 0.2
    finally:
        await running.stop()


def test_permissions_in_the_directory(tmp_path):
    users = WORKED_USERS + "  gwen: {permissions: [GOVERNANCE, application_admin]}\n"
    tree = make_tree(tmp_path, users=users)
    gwen = tree.snapshot().directory["gwen"]
    assert gwen.permissions == {GlobalPermission.GOVERNANCE, GlobalPermission.APPLICATION_ADMIN}
    (tmp_path / "bad").mkdir()
    bad = make_tree(tmp_path / "bad", users=WORKED_USERS + "  eve: {permissions: [ROOT]}\n")
    with pytest.raises(ConfigError, match="unknown permission 'ROOT'"):
        bad.snapshot()


def test_user_tokens_call_the_admin_api(store, platform):
    issuer = DevIssuer({"sidecar-dev": Secret("s3cret")}, user_client="pdp-dev-user")
    directory = {
        "gwen": DirectoryUser("gwen", permissions=frozenset({GlobalPermission.GOVERNANCE}))
    }
    with issuer.running() as url:
        token = httpx.post(
            f"{url}/token",
            data={"grant_type": "client_credentials", "client_id": "pdp-dev-user", "user": "gwen"},
        ).json()["access_token"]
        refused = httpx.post(
            f"{url}/token",
            data={"grant_type": "client_credentials", "client_id": "pdp-dev-user"},
        )
        assert refused.status_code == 400
        validator = Validator(issuer.validator_config())
        runner = SyncRunner(store, platform.factory)
        app = create_app(
            ControlPlane(store, runner, platform.factory), bearer(validator, lambda: directory)
        )
        with TestClient(app) as client:
            ok = client.post("/data/object/search", headers={"Authorization": f"Bearer {token}"})
            assert ok.status_code == 200, ok.text
            bad = client.post("/data/object/search", headers={"Authorization": "Bearer x.y.z"})
            assert bad.status_code == 401 and bad.json()["error"]["field"] == "Authorization"
            none = client.post("/data/object/search")
            assert none.status_code == 401
        # the user is named by admin.userClaim (default `sub`); a token without it is refused
        app = create_app(
            ControlPlane(store, runner, platform.factory),
            bearer(validator, lambda: directory, "oid"),
        )
        with TestClient(app) as client:
            refused = client.post(
                "/data/object/search", headers={"Authorization": f"Bearer {token}"}
            )
            assert refused.status_code == 401
            assert "no 'oid' claim (admin.userClaim)" in refused.json()["error"]["message"]
        validator.close()


def test_the_admin_user_claim_and_body_limit(tmp_path):
    admin = "admin: {listen: '127.0.0.1:9999', trustUserHeader: true"
    default = load_pdp_config(pdp_yaml(tmp_path, f"store: sqlite:///s.db\n{admin}}}\n")).admin
    assert default is not None
    assert (default.user_claim, default.max_body_bytes) == ("sub", 1024 * 1024)
    extra = f"store: sqlite:///s.db\n{admin}, userClaim: oid, maxBodyBytes: 4096}}\n"
    chosen = load_pdp_config(pdp_yaml(tmp_path, extra)).admin
    assert chosen is not None and (chosen.user_claim, chosen.max_body_bytes) == ("oid", 4096)


def test_the_user_client_is_off_by_default():
    issuer = DevIssuer({"sidecar-dev": Secret("s3cret")})
    with issuer.running() as url:
        answer = httpx.post(
            f"{url}/token",
            data={"grant_type": "client_credentials", "client_id": "pdp-dev-user", "user": "x"},
        )
        assert answer.status_code == 401


def test_the_network_policy_and_secret_references(tmp_path):
    control = load_pdp_config(pdp_yaml(tmp_path, "")).control
    assert control.secret_references.allowed == ()  # absent: no reference is taken
    network = control.network  # absent: everywhere but loopback, link-local, metadata
    assert [network.permits(a) for a in ("10.1.2.3", "127.0.0.1", "169.254.169.254")] == [
        True,
        False,
        False,
    ]
    extra = (
        "control:\n  secretReferences: [PDP_CONN_*]\n"
        "  network: {allow: [10.0.0.0/8, 127.0.0.1/32], deny: [10.9.0.0/16]}\n"
    )
    control = load_pdp_config(pdp_yaml(tmp_path, extra)).control
    assert control.secret_references.permits("PDP_CONN_PG")
    assert not control.secret_references.permits("PDP_STORE_KEY")
    assert [control.network.permits(a) for a in ("10.1.2.3", "10.9.0.1", "127.0.0.1")] == [
        True,
        False,
        True,
    ]
    assert not control.network.permits("8.8.8.8")  # an allow list replaces "everywhere"
    with pytest.raises(ConfigError, match=r"'10\.0\.0\.300/8' is not a network"):
        load_pdp_config(pdp_yaml(tmp_path, "control: {network: {allow: [10.0.0.300/8]}}\n"))


def test_the_store_key_comes_from_a_variable_or_a_file(tmp_path, monkeypatch):
    key = "GWfj5J3bCR3bqGxg5w2Xb0mHl2-eCJVPRCi3ypG1ZTM="
    (tmp_path / "store.key").write_text(key + "\n")
    config = load_pdp_config(pdp_yaml(tmp_path, "storeSecretKeyFile: store.key\n"))
    assert config.store_secret_key is not None and config.store_secret_key.reveal() == key
    monkeypatch.setenv("PDP_STORE_KEY", key)
    config = load_pdp_config(pdp_yaml(tmp_path, "storeSecretKeyEnv: PDP_STORE_KEY\n"))
    assert config.store_secret_key is not None and config.store_secret_key.reveal() == key
    assert load_pdp_config(pdp_yaml(tmp_path, "")).store_secret_key is None
    monkeypatch.setenv("PDP_STORE_KEY", "not-a-key")
    with pytest.raises(ConfigError, match="storeSecretKeyEnv: not a Fernet key"):
        load_pdp_config(pdp_yaml(tmp_path, "storeSecretKeyEnv: PDP_STORE_KEY\n"))
