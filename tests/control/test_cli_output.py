"""What `pdp connections ...` prints, as a user reads it: nothing but its own output (no
library's log lines), every child of a large node, each node's effective state in words,
settings in the API's words, and a delete that says what goes and asks first."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

from devstack.replica import Replica, write_world

ROOT = Path(__file__).resolve().parents[2]
TABLES = 1001  # one more than the admin API's largest page


def run(url: str, *args: str, stdin: int | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pdp.cli", "connections", "--url", url, "--as-user", "gov", *args],
        text=True,
        capture_output=stdin is None,
        stdin=stdin if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE if stdin is not None else None,
        stderr=subprocess.PIPE if stdin is not None else None,
        timeout=120,
        cwd=ROOT,
    )


def test_the_tree_settings_and_delete_as_a_user_reads_them(tmp_path):
    world = tmp_path / "world.json"
    big = {f"t{i:04d}": [["id", "bigint"]] for i in range(TABLES)}
    write_world(world, {"cat": {"big": big, "sales": {"orders": [["id", "bigint"]]}}})
    pdp = Replica(tmp_path, f"sqlite:///{tmp_path}/store.db", world, "out")
    url = f"http://127.0.0.1:{pdp.admin_port}"
    try:
        done = run(url, "register", "hc", "--technology", "trino", "--endpoint", "host=fake")
        assert done.returncode == 0, done.stderr
        pdp.sync("hc")  # the whole hierarchy
        done = run(url, "settings", "hc/cat/sales", "--active", "true")
        assert done.returncode == 0, done.stderr
        # the API's words, not Python's
        assert "isActive: true  (from hc/cat/sales)" in done.stdout
        assert "activateNewChildren: false  (from default)" in done.stdout, done.stdout
        assert done.stderr == ""  # no `INFO httpx: HTTP Request: ...` line

        tree = run(url, "tree", "hc", "--depth", "3")
        assert tree.returncode == 0 and tree.stderr == "", tree.stderr
        lines = tree.stdout.splitlines()
        assert "cat  (database, inactive, inherited)" in lines
        assert "  sales  (schema, active, set here)" in lines
        assert "    orders  (table, active, inherited)" in lines
        # every child of `big`, past the first page
        assert sum(line.startswith("    t") for line in lines) == TABLES
        assert f"    t{TABLES - 1:04d}  (table, inactive, inherited)" in lines

        # delete: says what goes; without a terminal it refuses unless --yes
        refused = run(url, "delete", "hc/cat/big")
        assert refused.returncode == 2
        assert (
            f"would delete schema hc/cat/big and the {TABLES} objects below it "
            f"({TABLES} tables): run again with --yes" in refused.stderr
        )
        assert pdp.api.get("/data/object/hc/cat/big").status_code == 200
        assert _delete_on_a_terminal(url, "hc/cat/big", "n\n").count("nothing deleted") == 1
        assert pdp.api.get("/data/object/hc/cat/big").status_code == 200
        shown = _delete_on_a_terminal(url, "hc", "y\n")
        assert "This deletes connection hc (deregistered" in shown
        assert "deleted hc and" in shown
        assert pdp.api.get("/data/object/hc").status_code == 404
    finally:
        pdp.stop()


def _delete_on_a_terminal(url: str, path: str, answer: str) -> str:
    """Run `connections delete` with a terminal as its stdin, type `answer`; all it printed."""
    main, terminal = pty.openpty()
    try:
        os.write(main, answer.encode())
        done = run(url, "delete", path, stdin=terminal)
    finally:
        os.close(terminal)
        os.close(main)
    return done.stdout + done.stderr


def test_help_names_every_argument_and_the_technologies():
    def help_of(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "pdp.cli", *args, "--help"],
            text=True,
            capture_output=True,
            timeout=60,
            cwd=ROOT,
        )
        assert done.returncode == 0, done.stderr
        return " ".join(done.stdout.split())

    assert "--config CONFIG the PDP's pdp.yaml" in help_of("check")
    assert "--config CONFIG the PDP's pdp.yaml for admin.listen" in help_of("connections")
    register = help_of("connections", "register")
    assert "the platform: trino, snowflake, databricks, postgresql" in register
    assert "key the connection key" in register
    assert "path an object path" in help_of("connections", "status")
    assert "integration the legacy integration's name" in help_of("connections", "upgrade", "start")
