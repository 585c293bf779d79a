"""TLS between the sidecar and the PDP: tokens must not cross the network in clear."""

from __future__ import annotations

import datetime
import ipaddress

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from devstack.configs import make_tree
from devstack.processes import free_port, start_pdp, start_sidecar
from tests.sidecar.test_revocation import BODY


def server_certificate(root) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pdp")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    (root / "pdp.crt").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (root / "pdp.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def test_sidecar_reaches_a_tls_pdp_and_a_plaintext_client_is_refused(tmp_path):
    tree = make_tree(tmp_path)
    server_certificate(tmp_path)
    pdp_port, port, plain_port = free_port(), free_port(), free_port()
    tree.pdp_yaml(pdp_port)
    with (tmp_path / "pdp.yaml").open("a") as f:
        f.write("tls: {certificateFile: pdp.crt, privateKeyFile: pdp.key}\n")
    pdp = start_pdp(tmp_path / "pdp.yaml", pdp_port)
    processes = [pdp]
    try:
        tree.write(
            "tls-sidecar.yaml",
            f"""
            listen: 127.0.0.1:{port}
            workers: 1
            pdp: {{target: 'localhost:{pdp_port}', auth: none, tls: {{caFile: pdp.crt}}}}
            """,
        )
        processes.append(start_sidecar(tmp_path / "tls-sidecar.yaml", port))
        assert httpx.post(f"http://127.0.0.1:{port}/v1/data/trino/allow", json=BODY).json() == {
            "result": True
        }

        tree.write(
            "plain-sidecar.yaml",
            f"""
            listen: 127.0.0.1:{plain_port}
            workers: 1
            pdp: {{target: 'localhost:{pdp_port}', auth: none, timeoutSeconds: 1}}
            """,
        )
        plain = start_sidecar(tmp_path / "plain-sidecar.yaml", plain_port, wait_connected=False)
        processes.append(plain)
        assert httpx.post(
            f"http://127.0.0.1:{plain_port}/v1/data/trino/allow", json=BODY
        ).json() == {"result": False}
    finally:
        for process in reversed(processes):
            process.stop()


def test_unreadable_tls_files_are_configuration_errors(tmp_path):
    from pdp.config.errors import ConfigError
    from pdp.service.config import load_pdp_config

    tree = make_tree(tmp_path)
    tree.pdp_yaml(1)
    with (tmp_path / "pdp.yaml").open("a") as f:
        f.write("tls: {certificateFile: missing.crt, privateKeyFile: missing.key}\n")
    with pytest.raises(ConfigError) as error:
        load_pdp_config(tmp_path / "pdp.yaml")
    assert "tls: cannot read" in str(error.value) and "missing.crt" in str(error.value)
