"""A throwaway PostgreSQL cluster on loopback, or the server that `PDP_TEST_POSTGRES` names.

The cluster trusts every local connection (it listens on 127.0.0.1 only and lives for one test
run), so tests connect as any role without a password. PostgreSQL refuses to run as root: under
root the server runs as the `postgres` system user that Debian's package creates."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from glob import glob
from pathlib import Path

import psycopg

ENV = "PDP_TEST_POSTGRES"  # libpq conninfo of an existing server, e.g. "host=db port=5432 user=x"


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    user: str
    password: str | None = None

    def conninfo(self, dbname: str = "postgres", user: str | None = None) -> str:
        info = f"host={self.host} port={self.port} user={user or self.user} dbname={dbname}"
        return info if self.password is None or user else f"{info} password={self.password}"

    def connect(self, dbname: str = "postgres", user: str | None = None) -> psycopg.Connection:
        return psycopg.connect(self.conninfo(dbname, user), autocommit=True)

    def jdbc_url(self, dbname: str) -> str:
        return f"jdbc:postgresql://{self.host}:{self.port}/{dbname}"

    def store_url(self, dbname: str) -> str:
        """The SQLAlchemy URL the product's store opens for `dbname`."""
        password = f":{self.password}" if self.password else ""
        return f"postgresql+psycopg://{self.user}{password}@{self.host}:{self.port}/{dbname}"

    @contextmanager
    def scratch_database(self) -> Iterator[str]:
        """A new empty database for one run, dropped afterwards: yields its store URL."""
        name = f"bench_{uuid.uuid4().hex[:8]}"
        with self.connect() as admin:
            admin.execute(f"CREATE DATABASE {name}")
        try:
            yield self.store_url(name)
        finally:
            with self.connect() as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@dataclass(frozen=True)
class Throwaway(Postgres):
    """A throwaway cluster this process started: tests stop and start it again (a store
    outage). `stop` signals this cluster's server alone (the PID in its data directory)."""

    datadir: Path = Path()

    def stop(self) -> None:
        _Cluster(self.datadir).stop()

    def start(self) -> None:
        _Cluster(self.datadir).start(self.port)

    @property
    def running(self) -> bool:
        return (self.datadir / "postmaster.pid").exists()


def from_env() -> Postgres | None:
    conninfo = os.environ.get(ENV)
    if not conninfo:
        return None
    params = psycopg.conninfo.conninfo_to_dict(conninfo)
    return Postgres(
        host=str(params.get("host", "127.0.0.1")),
        port=int(str(params.get("port", 5432))),
        user=str(params.get("user", "postgres")),
        password=None if params.get("password") is None else str(params["password"]),
    )


def _bindir() -> Path:
    found = sorted(glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).resolve().parent
    raise RuntimeError(
        "no PostgreSQL server found: run scripts/install-postgres.sh (Debian's postgresql "
        f"package), or set {ENV} to the conninfo of a server to use"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Cluster:
    """initdb, pg_ctl start and stop; as the `postgres` user when running as root."""

    def __init__(self, datadir: Path) -> None:
        self.bindir = _bindir()
        self.datadir = datadir
        self.owner = "postgres" if os.geteuid() == 0 else None

    def run(self, tool: str, *args: str) -> None:
        command = [str(self.bindir / tool), *args]
        if self.owner:
            command = ["runuser", "-u", self.owner, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            output = result.stdout + result.stderr
            raise RuntimeError(f"{tool} failed ({result.returncode}):\n{output}")

    def init(self) -> None:
        self.datadir.mkdir(parents=True, exist_ok=True)
        if self.owner:
            entry = pwd.getpwnam(self.owner)
            os.chown(self.datadir, entry.pw_uid, entry.pw_gid)
        self.run(
            "initdb",
            "-D",
            str(self.datadir),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-instructions",
        )

    def start(self, port: int) -> None:
        options = " ".join(
            f"-c {setting}"
            for setting in (
                "listen_addresses=127.0.0.1",
                f"port={port}",
                f"unix_socket_directories={self.datadir}",
                "max_connections=300",
                # a throwaway cluster: durability buys nothing and costs the tests time
                "fsync=off",
                "synchronous_commit=off",
                "full_page_writes=off",
            )
        )
        log = self.datadir / "server.log"
        self.run(
            "pg_ctl",
            "-D",
            str(self.datadir),
            "-l",
            str(log),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop(self) -> None:
        # pg_ctl signals the PID in postmaster.pid: this cluster's server and nothing else.
        self.run("pg_ctl", "-D", str(self.datadir), "-m", "fast", "-w", "-t", "60", "stop")


@contextmanager
def throwaway(datadir: Path | None = None, port: int | None = None) -> Iterator[Throwaway]:
    """A new cluster for the duration of the block; removed afterwards unless `datadir` was
    given (the demo keeps its data between runs)."""
    keep = datadir is not None
    root = datadir or Path(tempfile.mkdtemp(prefix="pdp-pg-"))
    if not keep:
        os.chmod(root, 0o755)  # the server's user must reach its data dir below /tmp
    cluster = _Cluster(root / "data")
    if not (cluster.datadir / "PG_VERSION").exists():
        cluster.init()
    port = port or _free_port()
    cluster.start(port)
    started = Throwaway("127.0.0.1", port, "postgres", datadir=cluster.datadir)
    try:
        yield started
    finally:
        if started.running:  # a test may have left it stopped
            cluster.stop()
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


@contextmanager
def server() -> Iterator[Postgres]:
    """The server named by PDP_TEST_POSTGRES, else a throwaway cluster."""
    configured = from_env()
    if configured is not None:
        yield configured
        return
    with throwaway() as started:
        yield started
