"""What a new user meets on a first run: one line naming the problem, never a traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from devstack.configs import make_tree
from devstack.processes import free_port, start_pdp

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, module: str = "pdp.cli") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        text=True,
        capture_output=True,
        timeout=60,
        cwd=ROOT,
    )


@contextmanager
def held_port() -> Iterator[int]:
    """A loopback port another process listens on."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr.strip().splitlines()[-1]


def test_a_second_pdp_on_the_same_port_names_the_address_and_exits(tmp_path):
    tree = make_tree(tmp_path)
    port = free_port()
    first = start_pdp(tree.pdp_yaml(port), port)
    try:
        second = run("serve", "--config", str(tree.pdp_yaml(port)))
    finally:
        first.stop()
    assert second.returncode == 1
    assert one_line(second) == (
        f"pdp: address 127.0.0.1:{port} is in use (another pdp up running?)"
    )


def test_pdp_up_twice_names_the_development_issuers_address(tmp_path):
    tree = make_tree(tmp_path)
    with held_port() as issuer:
        auth = f"{{devIssuer: {{listen: '127.0.0.1:{issuer}'}}}}"
        result = run("serve", "--config", str(tree.pdp_yaml(free_port(), auth)))
    assert result.returncode == 1
    assert one_line(result) == (
        f"pdp: address 127.0.0.1:{issuer} is in use (another pdp up running?)"
    )


def test_a_taken_grpc_port_is_found_before_the_development_issuer_starts(tmp_path):
    tree = make_tree(tmp_path)
    auth = f"{{devIssuer: {{listen: '127.0.0.1:{free_port()}'}}}}"
    with held_port() as port:
        result = run("serve", "--config", str(tree.pdp_yaml(port, auth)))
    assert result.returncode == 1
    assert one_line(result) == f"pdp: address 127.0.0.1:{port} is in use (another pdp up running?)"
    assert "DEVELOPMENT token issuer" not in result.stderr


def test_pdp_up_checks_the_sidecars_port_before_starting_anything(tmp_path):
    tree = make_tree(tmp_path)
    # the client secret is one `pdp up` generates later: not needed to check the port
    auth = (
        "{tokenEndpoint: 'http://127.0.0.1:1/token', clientId: sidecar-dev, "
        "clientSecretEnv: PDP_TEST_SECRET_SET_LATER, scope: pdp.decide}"
    )
    with held_port() as port:
        sidecar = tree.sidecar_yaml(port, free_port(), auth=auth)
        pdp_yaml = tree.pdp_yaml(free_port())
        result = run("up", "--config", str(pdp_yaml), "--sidecar-config", str(sidecar))
    assert result.returncode == 1
    assert one_line(result) == f"pdp: address 127.0.0.1:{port} is in use (another pdp up running?)"
    assert "PDP serving" not in result.stderr


def test_a_sidecar_on_a_taken_port_names_the_address(tmp_path):
    tree = make_tree(tmp_path)
    with held_port() as port:
        result = run("--config", str(tree.sidecar_yaml(port, free_port())), module="sidecar")
    assert result.returncode == 1
    assert (
        one_line(result)
        == f"sidecar: address 127.0.0.1:{port} is in use (another sidecar running?)"
    )


def test_explain_on_a_missing_file_says_so(tmp_path):
    tree = make_tree(tmp_path)
    result = run("explain", "--config", str(tree.pdp_yaml(50051)), str(tmp_path / "nope.json"))
    assert result.returncode == 2
    assert (
        one_line(result)
        == f"pdp explain: cannot read {tmp_path / 'nope.json'}: No such file or directory"
    )


def test_a_file_missing_from_pdp_yaml_is_named_with_its_line(tmp_path):
    tree = make_tree(tmp_path)
    (tmp_path / "policies.yaml").unlink()
    pdp_yaml = tree.pdp_yaml(50051)
    lines = pdp_yaml.read_text().splitlines()
    assert lines[3] == "  - policies.yaml"  # line 4
    result = run("check", "--config", str(pdp_yaml))
    assert result.returncode == 2
    assert (
        f"{pdp_yaml}:4: policyFiles[1]: 'policies.yaml': no such file "
        f"({tmp_path / 'policies.yaml'})" in result.stderr
    ), result.stderr
    assert "Traceback" not in result.stderr


def test_a_file_missing_from_sidecar_yaml_is_named_with_its_line(tmp_path):
    tree = make_tree(tmp_path, properties="immuta.user.admin=nobody\n")
    sidecar_yaml = tree.sidecar_yaml(free_port(), free_port())
    tree.properties.unlink()
    result = run("--config", str(sidecar_yaml), module="sidecar")
    assert result.returncode == 2
    line = sidecar_yaml.read_text().splitlines().index("  properties: cluster.properties") + 1
    assert (
        f"{sidecar_yaml}:{line}: cluster.properties: 'cluster.properties': no such file"
        in result.stderr
    ), result.stderr


def test_grants_plan_defaults_to_the_demo_configuration_like_check_and_explain():
    result = run("grants", "plan")
    # the demo pdp.yaml has no grants section: the command got as far as reading it
    assert result.returncode == 2
    assert one_line(result) == "no grant sync targets configured: grant sync is off"


def make_dry_run(target: str) -> str:
    return subprocess.run(
        ["make", "-n", "-B", target], text=True, capture_output=True, cwd=ROOT, check=True
    ).stdout


def test_make_up_installs_the_package_without_test_or_benchmark_extras():
    installs = [line for line in make_dry_run("up").splitlines() if "pip install" in line]
    assert any(line.endswith("-e .") for line in installs), installs
    assert not any("test" in line or "bench" in line for line in installs), installs


def test_make_test_and_lint_install_the_extras():
    for target in ("test", "lint"):
        assert "-e '.[test,bench]'" in make_dry_run(target)


def test_every_install_of_the_dependencies_keeps_to_the_pinned_versions():
    for target in ("up", "test"):
        installs = [
            line
            for line in make_dry_run(target).splitlines()
            if "pip install" in line and "-e" in line
        ]
        assert installs and all("-c constraints.txt" in line for line in installs), installs
    pins = [
        line
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if not line.startswith("#")
    ]
    assert pins and all(line.count("==") == 1 for line in pins), pins
