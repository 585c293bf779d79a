"""`make trino`'s helpers as a new user meets them: Trino is cached once per user
(`${XDG_CACHE_HOME:-~/.cache}/pdp/trino`, or `PDP_TRINO_CACHE`), shared by every clone, a
download (scripts/fetch-trino.sh, scripts/trino-cli) says what it fetches and how far it is, and
the demo PostgreSQL's connection details are kept in a file.

Maven Central stays out of the test: a stand-in `mvn` on PATH answers the one goal the scripts
use (`dependency:copy`), writing into `-Dmaven.repo.local` in pieces, as mvn does, and then the
artifact into `-DoutputDirectory`."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

from devstack.demo import write_pg_details
from devstack.postgres import Postgres

ROOT = Path(__file__).resolve().parents[1]
FAKE_MVN = """#!{python}
import io, sys, tarfile, time, zipfile
from pathlib import Path

options = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("-D"))
group, artifact, version, kind, *classifier = options["artifact"].split(":")
repo, out = Path(options["maven.repo.local"]), Path(options["outputDirectory"])
repo.mkdir(parents=True, exist_ok=True)
with (repo / (artifact + ".part")).open("wb") as part:  # arrives in pieces
    for _ in range({pieces} if kind != "zip" else 1):
        part.write(bytes(1024 * 1024))
        part.flush()
        time.sleep(0.5)
out.mkdir(parents=True, exist_ok=True)
name = out / f"{{artifact}}-{{version}}{{'-' + classifier[0] if classifier else ''}}.{{kind}}"
if kind == "tar.gz":
    with tarfile.open(name, "w:gz") as tar:
        info = tarfile.TarInfo(f"{{artifact}}-{{version}}/plugin")
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
elif kind == "zip":
    with zipfile.ZipFile(name, "w") as z:
        z.writestr(f"{{artifact}}-{{version}}/{{artifact}}.jar", b"jar")
else:
    name.write_bytes(b"cli")
"""


def stand_in_tools(tmp_path: Path, pieces: int) -> dict[str, str]:
    """PATH with the stand-in mvn first, and a HOME with no cache yet."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    mvn = bin_dir / "mvn"
    mvn.write_text(FAKE_MVN.format(python=sys.executable, pieces=pieces))
    mvn.chmod(0o755)
    java_home = tmp_path / "java"
    (java_home / "bin").mkdir(parents=True)
    java = java_home / "bin" / "java"
    java.write_text('#!/bin/sh\necho "java $*"\n')
    java.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("PDP_TRINO_CACHE", "XDG_CACHE_HOME")}
    env.update(
        PATH=f"{bin_dir}:{env['PATH']}",
        HOME=str(tmp_path / "home"),
        PDP_TRINO_JAVA_HOME=str(java_home),
    )
    return env


def run_on_a_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """Run with stderr a terminal (progress is drawn there); exit status, stdout, stderr."""
    main, terminal = pty.openpty()
    process = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=terminal, env=env, cwd=ROOT, text=True
    )
    os.close(terminal)
    shown = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # the terminal closed: the process ended
                break
            if not chunk:
                break
            shown += chunk
        elif process.poll() is not None:
            break
    os.close(main)
    stdout = process.communicate(timeout=60)[0]
    return process.returncode, stdout, shown.decode(errors="replace")


def test_fetch_trino_caches_per_user_and_shows_the_bytes_arriving(tmp_path):
    env = stand_in_tools(tmp_path, pieces=4)
    code, stdout, shown = run_on_a_terminal(["bash", "scripts/fetch-trino.sh"], env)
    cache = tmp_path / "home" / ".cache" / "pdp" / "trino"
    assert code == 0, shown
    assert stdout.strip() == str(cache / "trino-server-core-476")
    assert (cache / "trino-server-core-476" / ".complete-v2").exists()
    assert (cache / "trino-server-core-476" / "plugin" / "opa" / "trino-opa.jar").exists()
    assert f"downloading io.trino:trino-server-core:476:tar.gz into {cache}" in shown
    assert re.search(
        r"\rfetch-trino: trino-server-core-476.tar.gz: [1-9][.\d]* MB downloaded", shown
    )

    # XDG_CACHE_HOME moves it; PDP_TRINO_CACHE overrides both
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg")
    env["PDP_TRINO_CACHE"] = str(cache)  # already there: no download
    done = subprocess.run(
        ["bash", "scripts/fetch-trino.sh"], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert done.stdout.strip() == str(cache / "trino-server-core-476") and done.stderr == ""


def test_the_first_trino_cli_call_says_what_it_is_doing(tmp_path):
    env = stand_in_tools(tmp_path, pieces=3)
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg")
    args = ["bash", "scripts/trino-cli", "--version"]
    code, stdout, shown = run_on_a_terminal(args, env)
    cache = tmp_path / "xdg" / "pdp" / "trino"
    assert code == 0, shown
    assert (
        f"trino-cli: first use: fetching io.trino:trino-cli:476 from Maven Central into {cache}"
        in shown
    )
    assert re.search(r"\rtrino-cli: trino-cli-476: [1-9][.\d]* MB downloaded", shown), shown
    assert "trino-cli: fetched; starting it" in shown
    assert stdout.startswith("java ") and stdout.rstrip().endswith("--version")
    assert (cache / "trino-cli-476-executable.jar").exists()
    code, stdout, shown = run_on_a_terminal(args, env)  # from the cache: nothing to say
    assert code == 0 and shown == "" and stdout.startswith("java ")


def test_make_trino_keeps_the_demo_postgresql_details_in_a_file(tmp_path):
    """Printed in the banner and kept in .cache/demo/postgresql.env, in libpq's variables."""
    pg = Postgres("127.0.0.1", 54329, "postgres")
    path = tmp_path / "postgresql.env"
    line = write_pg_details(pg, path)
    assert line == (
        "PostgreSQL: host=127.0.0.1 port=54329 user=postgres dbname=demo, no password "
        f"(also in {path})"
    )
    shell = f"set -a; . {path}; echo $PGHOST:$PGPORT:$PGUSER:$PGDATABASE"
    done = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, check=True)
    assert done.stdout == "127.0.0.1:54329:postgres:demo\n"
