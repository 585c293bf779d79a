"""An attack on the admin API: make the PDP read its own secrets and send them to a server of the
caller's choice (issue 20, item 1), through the real PDP process and its real crawlers.

The PDP runs with a secret in its environment (`PDP_ATTACK_SECRET`) and one in a file. A fake
server on loopback, speaking just enough PostgreSQL (it asks for a clear-text password) and
HTTP (it answers with a banner), records every byte it receives. Every API path that takes
connection details is driven with references to that variable and that file: each answers 400
naming the field, and not one byte of either secret arrives, nor does the PDP log it.

Then the network policy: with pdp.yaml's default, a connection check to loopback never
connects at all; with loopback allowed it connects, and its failures say what failed without
repeating what the server answered."""

from __future__ import annotations

import base64
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from devstack.configs import WORKED_POLICIES, WORKED_REGISTRY, WORKED_USERS, make_tree
from devstack.processes import Process, free_port
from devstack.replica import STORE_KEY
from pdp.store import Store
from tests.crawl.fakes.snowflake_server import Account, serve

SECRET = "s3cr3t-0f-the-pdp-4c1d"
FILE_SECRET = "-----BEGIN PRIVATE KEY----- pdp-file-secret-9e2b"
BANNER = "BANNER-the-remote-answer-7f3a"
USERS = WORKED_USERS + "  gov: {permissions: [GOVERNANCE, APPLICATION_ADMIN]}\n"
SSL_REQUEST = (80877103).to_bytes(4, "big")
GSS_REQUEST = (80877104).to_bytes(4, "big")
PROTOCOL_3 = (196608).to_bytes(4, "big")


class Recorder:
    """A loopback server that records what it receives: PostgreSQL clients are asked for a
    clear-text password, HTTP clients get a 500 carrying `BANNER`."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.received = bytearray()
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            with conn:
                conn.settimeout(2)
                self._talk(conn)

    def _talk(self, conn: socket.socket) -> None:
        for _ in range(20):  # bounded: a few messages per connection
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            self.received += data
            if data[4:8] in (SSL_REQUEST, GSS_REQUEST):
                conn.sendall(b"N")
            elif data[4:8] == PROTOCOL_3:  # startup: ask for the password in clear
                conn.sendall(b"R" + (8).to_bytes(4, "big") + (3).to_bytes(4, "big"))
            elif data[:1] == b"p":  # the password: refuse, with a message of ours
                message = f"password authentication failed for user u {BANNER}"
                text = b"SFATAL\x00C28P01\x00M" + message.encode() + b"\x00\x00"
                conn.sendall(b"E" + (len(text) + 4).to_bytes(4, "big") + text)
                return
            elif data[:4] in (b"POST", b"GET ", b"PUT "):
                body = BANNER.encode()
                conn.sendall(
                    b"HTTP/1.1 500 Oops\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                return

    def leaked(self) -> list[str]:
        """Which of the PDP's secrets arrived, in any form a client would send them."""
        forms = {
            "env": [SECRET],
            "file": [FILE_SECRET, "pdp-file-secret-9e2b"],
        }
        found = []
        for name, values in forms.items():
            for value in values:
                encoded = [value.encode(), base64.b64encode(f"u:{value}".encode())]
                if any(form in self.received for form in encoded):
                    found.append(name)
        return found

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


class Pdp:
    """`pdp serve` with the control plane, the real crawlers, and secrets of its own."""

    def __init__(self, root: Path, control: str, recorder: Recorder) -> None:
        root.mkdir()
        self.root = root
        self.secret_file = root / "pdp-secret.pem"
        self.secret_file.write_text(FILE_SECRET + "\n")
        store = f"sqlite:///{root}/store.db"
        seeded = Store.open(store, secret_key=STORE_KEY)
        with seeded.write() as writer:  # as a store written before references were refused
            writer.register_connection(
                "stored",
                "postgresql",
                endpoint={"host": "127.0.0.1", "port": recorder.port, "timeout": 3},
                credentials={"user": "u", "passwordEnv": "PDP_ATTACK_SECRET"},
            )
            writer.register_connection(
                "victim",
                "postgresql",
                endpoint={"host": "127.0.0.1", "port": recorder.port, "timeout": 3},
                credentials={"user": "u"},
            )
        seeded.close()
        grpc_port, self.admin_port = free_port(), free_port()
        tree = make_tree(root, registry=WORKED_REGISTRY, policies=WORKED_POLICIES, users=USERS)
        yaml = tree.pdp_yaml(grpc_port)
        yaml.write_text(
            yaml.read_text()
            + f"store: {store}\n"
            + "storeSecretKeyEnv: PDP_TEST_STORE_KEY\n"
            + f"admin: {{listen: '127.0.0.1:{self.admin_port}', trustUserHeader: true}}\n"
            + control
        )
        self.process = Process(
            [sys.executable, "-m", "pdp.cli", "serve", "--config", str(yaml)],
            root / "pdp.log",
            env={"PDP_TEST_STORE_KEY": STORE_KEY, "PDP_ATTACK_SECRET": SECRET},
        )
        self.api = httpx.Client(
            base_url=f"http://127.0.0.1:{self.admin_port}",
            headers={"X-Pdp-User": "gov"},
            timeout=30,
        )
        self.process.wait_until(self._ready, timeout=30)

    def _ready(self) -> bool:
        try:
            return self.api.get("/health").status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        self.api.close()
        self.process.stop()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    yield server
    server.close()


@pytest.fixture
def open_pdp(tmp_path: Path, recorder: Recorder) -> Iterator[Pdp]:
    """A PDP whose operator allows loopback: only the refusal of references stands between
    the caller and the PDP's secrets."""
    pdp = Pdp(tmp_path / "open", "control: {network: {allow: [127.0.0.1/32]}}\n", recorder)
    yield pdp
    pdp.stop()


def refused(answer: httpx.Response, field: str) -> None:
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid_input" and error["field"] == field, error
    assert "never references to the PDP's own environment or files" in error["message"]


def test_no_api_path_makes_the_pdp_send_its_own_secrets(open_pdp: Pdp, recorder: Recorder):
    pdp, port = open_pdp, recorder.port
    pg = {"host": "127.0.0.1", "port": port, "timeout": 3}
    trino = {"host": "127.0.0.1", "port": port, "httpScheme": "http", "adminUsers": "u"}
    by_env = {"user": "u", "passwordEnv": "PDP_ATTACK_SECRET"}
    by_file = {"user": "u", "passwordFile": str(pdp.secret_file)}
    inline = {"user": "u", "password": "${PDP_ATTACK_SECRET}"}

    def validate(technology: str, endpoint: dict, credentials: dict) -> httpx.Response:
        body = {"technology": technology, "endpoint": endpoint, "credentials": credentials}
        return pdp.api.post("/data/connection/validate", json=body)

    refused(validate("postgresql", pg, by_env), "credentials.passwordEnv")
    refused(validate("postgresql", pg, by_file), "credentials.passwordFile")
    refused(validate("postgresql", pg, inline), "credentials.password")
    trino_env = {"username": "u", "passwordEnv": "PDP_ATTACK_SECRET"}
    refused(validate("trino", trino, trino_env), "credentials.passwordEnv")
    refused(
        validate("trino", {**trino, "propertiesFile": str(pdp.secret_file)}, {"user": "u"}),
        "endpoint.propertiesFile",
    )

    register = {
        "connectionKey": "evil",
        "connection": {"technology": "postgresql", "endpoint": pg, "credentials": by_file},
    }
    refused(pdp.api.post("/data/connection", json=register), "connection.credentials.passwordFile")
    refused(
        pdp.api.put("/data/connection/victim", json={"credentials": by_env}),
        "credentials.passwordEnv",
    )

    legacy = {"name": "legacy", "technology": "trino", "endpoint": trino}
    source = {"database": "cat", "schema": "s", "table": "t"}
    answer = pdp.api.post(
        "/dataSource", json={**source, "connection": {**legacy, "credentials": trino_env}}
    )
    refused(answer, "connection.credentials.passwordEnv")
    answer = pdp.api.post(
        "/dataSource", json={**source, "connection": {**legacy, "credentials": {"username": "u"}}}
    )
    assert answer.status_code == 201, answer.text
    refused(
        pdp.api.put(
            f"/dataSource/{answer.json()['id']}",
            json={"connection": {"credentials": {"username": "u", "passwordFile": "/etc/x"}}},
        ),
        "connection.credentials.passwordFile",
    )
    started = pdp.api.post("/data/upgrade/legacy/start", json={"displayName": "legacy2"})
    assert started.status_code == 200, started.text
    refused(
        pdp.api.post(
            "/data/upgrade/legacy/validate",
            json={"credentials": {"username": "u", "passwordFile": str(pdp.secret_file)}},
        ),
        "credentials.passwordFile",
    )
    oauth = {
        "tokenEndpoint": f"http://127.0.0.1:{port}/token",
        "clientId": "c",
        "clientSecretEnv": "PDP_ATTACK_SECRET",
    }
    refused(
        pdp.api.post("/data/upgrade/legacy/validate", json={"credentials": {"oauth": oauth}}),
        "credentials.oauth.clientSecretEnv",
    )

    # A reference already in the store (written before they were refused): its sync fails
    # naming it, and sends nothing.
    job = pdp.api.post("/data/crawl/stored", json={"forceRecursive": True}).json()["jobId"]
    for _ in range(200):
        state = pdp.api.get(f"/jobs/{job}").json()
        if state["state"] in ("completed", "failed"):
            break
        threading.Event().wait(0.05)
    assert state["state"] == "failed", state
    assert "credentials.passwordEnv" in state["errors"][0]["message"], state

    assert recorder.leaked() == []
    assert recorder.connections == 0  # refused before anything was sent
    log = pdp.process.output()
    assert SECRET not in log and "pdp-file-secret" not in log


def test_a_check_reports_what_failed_never_what_the_server_answered(
    open_pdp: Pdp, recorder: Recorder
):
    """With loopback allowed the check connects (the caller's own value is what it sends), and
    its failure is the PDP's words: the server's message is not repeated."""
    port = recorder.port
    cases = [
        ("postgresql", {"host": "127.0.0.1", "port": port}, {"user": "u", "password": "mine"}),
        (
            "trino",
            {"host": "127.0.0.1", "port": port, "httpScheme": "http", "adminUsers": "u"},
            {"user": "u"},
        ),
    ]
    for technology, endpoint, credentials in cases:
        body = {"technology": technology, "endpoint": endpoint, "credentials": credentials}
        answer = open_pdp.api.post("/data/connection/validate", json=body)
        assert answer.status_code == 200, answer.text
        checks = answer.json()["checks"]
        assert not checks[0]["ok"], checks
        assert BANNER not in answer.text
        assert checks[0]["detail"].endswith(
            "authentication failed"
            if technology == "postgresql"
            else "the connection failed (the server's answer is not shown)"
        ), checks
    assert recorder.connections >= 2  # it did connect: the operator allowed 127.0.0.1


def test_the_default_network_policy_keeps_checks_off_loopback(tmp_path, recorder: Recorder):
    pdp = Pdp(tmp_path / "default", "", recorder)
    try:
        for host in ("127.0.0.1", "localhost"):
            for technology, endpoint, credentials in (
                ("postgresql", {"host": host, "port": recorder.port}, {"user": "u"}),
                (
                    "trino",
                    {"host": host, "port": recorder.port, "httpScheme": "http"},
                    {"user": "u"},
                ),
            ):
                body = {"technology": technology, "endpoint": endpoint, "credentials": credentials}
                answer = pdp.api.post("/data/connection/validate", json=body)
                assert answer.status_code == 200, answer.text
                check = answer.json()["checks"][0]
                assert not check["ok"], check
                assert "not allowed by the PDP's network policy" in check["detail"], check
        assert recorder.connections == 0
    finally:
        pdp.stop()


def rsa_key_pem(password: str | None = None) -> tuple[rsa.RSAPrivateKey, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode())
        if password
        else serialization.NoEncryption()
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    return key, pem.decode()


def test_key_material_is_a_value_sealed_at_rest_and_never_echoed(
    open_pdp: Pdp, recorder: Recorder, tmp_path: Path
):
    """Snowflake key pairs and OAuth client certificates exist as files on the PDP; through the
    API they are PEM text. A file reference is refused like any other, bad PEM is a 400 naming
    the field, and a good key signs in, is stored encrypted and shows as "[REDACTED]"."""
    pdp = open_pdp
    account = Account()
    key, key_pem = rsa_key_pem("the key's pass phrase")
    account.public_key = key.public_key()
    snowflake = {"account": "acme", "host": "127.0.0.1", "protocol": "http", "timeout": 5}
    trino = {"host": "127.0.0.1", "port": recorder.port, "httpScheme": "http", "adminUsers": "u"}
    oauth = {"user": "u", "tokenEndpoint": f"http://127.0.0.1:{recorder.port}/token"}
    oauth["clientId"] = "c"

    def validate(technology: str, endpoint: dict, credentials: dict) -> httpx.Response:
        body = {"technology": technology, "endpoint": endpoint, "credentials": credentials}
        return pdp.api.post("/data/connection/validate", json=body)

    def bad(answer: httpx.Response, field: str, message: str) -> None:
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert (error["field"], error["value"]) == (field, "[REDACTED]"), error
        assert message in error["message"], error
        assert "pass phrase" not in answer.text and key_pem.splitlines()[1] not in answer.text

    key_file = {"user": "u", "privateKeyFile": str(pdp.secret_file)}
    refused(validate("snowflake", snowflake, key_file), "credentials.privateKeyFile")
    refused(
        validate("trino", trino, {**oauth, "certificateFile": "/c.pem", "privateKey": key_pem}),
        "credentials.certificateFile",
    )
    bad(
        validate("snowflake", snowflake, {"user": "u", "privateKey": "-----BEGIN nothing"}),
        "credentials.privateKey",
        "not a PEM private key",
    )
    bad(
        validate("snowflake", snowflake, {"user": "u", "privateKey": key_pem}),
        "credentials.privateKey",
        "the private key is encrypted: give its password too",
    )
    wrong = {"user": "u", "privateKey": key_pem, "privateKeyPassword": "not the pass phrase"}
    bad(validate("snowflake", snowflake, wrong), "credentials.privateKey", "wrong password")
    ec_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    bad(
        validate("snowflake", snowflake, {"user": "u", "privateKey": ec_pem}),
        "credentials.privateKey",
        "an RSA private key is needed",
    )
    bad(
        validate("trino", trino, {**oauth, "certificate": "no", "privateKey": rsa_key_pem()[1]}),
        "credentials.certificate",
        "not a PEM certificate",
    )

    credentials = {"user": "svc_crawler", "privateKey": key_pem}
    credentials["privateKeyPassword"] = "the key's pass phrase"
    with serve(account) as port:
        register = {
            "connectionKey": "keypair",
            "connection": {
                "technology": "snowflake",
                "endpoint": {**snowflake, "port": port},
                "credentials": credentials,
            },
        }
        answer = pdp.api.post("/data/connection", json=register)
        assert answer.status_code in (200, 201, 202), answer.text
        assert account.jwt_logins >= 1 and account.logins >= 1  # signed in with the key
        shown = pdp.api.get("/data/connection/keypair")
        assert shown.status_code == 200, shown.text
        assert shown.json()["credentials"] == {
            "user": "svc_crawler",
            "privateKey": "[REDACTED]",
            "privateKeyPassword": "[REDACTED]",
        }
        job = answer.json().get("jobId")
        for _ in range(200):  # the first sync ends before the account goes away
            if job is None or pdp.api.get(f"/jobs/{job}").json()["state"] != "active":
                break
            threading.Event().wait(0.05)
    stored = b"".join(p.read_bytes() for p in pdp.root.glob("store.db*"))  # with the WAL
    log = pdp.process.output()
    for line in key_pem.splitlines()[1:-1]:
        assert line.encode() not in stored and line not in log
    assert b"pass phrase" not in stored and "pass phrase" not in log
