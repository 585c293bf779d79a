"""A real single-node Trino (476, from Maven Central; see scripts/fetch-trino.sh), configured in
a directory of its own and run as a child process: with its file group provider, and with the OPA
access control pointed at a sidecar, the product's own plugin (trino-plugin/) pointed at a
sidecar, Trino's file-based access control, or none at all."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import trino.dbapi
from trino.exceptions import TrinoQueryError

REPO = Path(__file__).resolve().parent.parent
FETCH = REPO / "scripts" / "fetch-trino.sh"
JAVA_HOME = Path(os.environ.get("PDP_TRINO_JAVA_HOME", "/usr/lib/jvm/temurin-25-jdk-amd64"))
VERSION = "476"
READY_TIMEOUT = 300.0  # first start on 2 cores: plugins load for tens of seconds

JVM_OPTIONS = """\
-server
-Xms1G
-Xmx{heap}
-XX:+UseG1GC
-XX:+ExplicitGCInvokesConcurrent
-XX:+ExitOnOutOfMemoryError
-XX:-OmitStackTraceInFastThrow
-XX:ReservedCodeCacheSize=256M
-XX:PerMethodRecompilationCutoff=10000
-XX:PerBytecodeRecompilationCutoff=10000
-Djdk.attach.allowAttachSelf=true
-Djdk.nio.maxCachedBufferSize=2000000
-Dfile.encoding=UTF-8
-XX:+EnableDynamicAgentLoading
--add-modules=jdk.incubator.vector
--enable-native-access=ALL-UNNAMED
--sun-misc-unsafe-memory-access=allow
"""

# The OPA plugin's endpoints on the sidecar (or on OPA itself: the paths are the same).
OPA_URIS = {
    "opa.policy.uri": "/v1/data/trino/allow",
    "opa.policy.batched-uri": "/v1/data/trino/batch",
}
# Asked once per table of every query when configured, whether or not a data policy exists.
DATA_POLICY_URIS = {
    "opa.policy.row-filters-uri": "/v1/data/trino/rowFilters",
    "opa.policy.batch-column-masking-uri": "/v1/data/trino/batchColumnMasks",
}
# Without batching: one request per filtered item, and one per column for masks.
SINGLE_URIS = {"opa.policy.uri": OPA_URIS["opa.policy.uri"]}
SINGLE_DATA_POLICY_URIS = {
    "opa.policy.row-filters-uri": "/v1/data/trino/rowFilters",
    "opa.policy.column-masking-uri": "/v1/data/trino/columnMask",
}


@dataclass(frozen=True)
class Opa:
    """Access control by Trino's OPA plugin, against `base_url` (the sidecar, or an OPA)."""

    base_url: str
    timeout: str = "5s"  # the plugin's default is 5 minutes: a down sidecar would hang queries
    data_policies: bool = True  # False: no row filter or mask calls (and none applied)
    batch: bool = True  # False: the plugin's non-batch endpoints only

    def properties(self) -> dict[str, str]:
        props = {"access-control.name": "opa"}
        if self.batch:
            uris = OPA_URIS | (DATA_POLICY_URIS if self.data_policies else {})
        else:
            uris = SINGLE_URIS | (SINGLE_DATA_POLICY_URIS if self.data_policies else {})
        props |= {key: self.base_url + path for key, path in uris.items()}
        props |= {
            "opa.http-client.request-timeout": self.timeout,
            "opa.http-client.connect-timeout": "1s",
            # FilterColumns goes out as one request per table, all at once: with the default
            # queue of 1,024 an information_schema.columns listing of a larger schema fails.
            # Above any schema's table count (Trino's own exchange client queues 65,536).
            "opa.http-client.max-requests-queued-per-destination": "65536",
        }
        return props


PLUGIN_JAR = REPO / "trino-plugin" / "target" / "pdp-trino-plugin.jar"  # `make plugin`


@dataclass(frozen=True)
class PdpPlugin:
    """Access control by the product's own plugin (`access-control.name=pdp`), asking the
    sidecar at `base_url` over its compact endpoints. Installed beside Trino's stock plugins
    in the server's own plugin directory (the fetched Trino is left as it is)."""

    base_url: str
    max_stale: float = 300.0  # the sidecar's default cache.maxStaleSeconds
    request_timeout: float = 5.0

    def properties(self) -> dict[str, str]:
        return {
            "access-control.name": "pdp",
            "pdp.sidecar-url": self.base_url,
            "pdp.max-stale-seconds": f"{self.max_stale:g}",
            "pdp.request-timeout-seconds": f"{self.request_timeout:g}",
        }


@dataclass(frozen=True)
class FileRules:
    """Trino's built-in file-based access control with the rules in `rules_file` (JSON)."""

    rules_file: Path
    refresh: str = "1s"

    def properties(self) -> dict[str, str]:
        return {
            "access-control.name": "file",
            "security.config-file": str(self.rules_file),
            "security.refresh-period": self.refresh,
        }


@dataclass
class TrinoSpec:
    """Everything that differs between one Trino and another in tests, benchmarks and demo."""

    root: Path  # configuration, data and logs go here
    port: int
    access: Opa | PdpPlugin | FileRules | None  # None: allow all (Trino's default)
    groups: Mapping[str, list[str]] = field(default_factory=dict)  # group -> users
    catalogs: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    heap: str = "2G"


def catalog_memory() -> dict[str, str]:
    return {"connector.name": "memory", "memory.max-data-per-node": "256MB"}


def catalog_postgresql(jdbc_url: str, user: str, password: str | None = None) -> dict[str, str]:
    props = {"connector.name": "postgresql", "connection-url": jdbc_url, "connection-user": user}
    if password is not None:
        props["connection-password"] = password
    return props


def _properties(values: Mapping[str, str]) -> str:
    return "".join(f"{key}={value}\n" for key, value in values.items())


def trino_home() -> Path:
    """The unpacked server, fetched on first use (once per machine)."""
    out = subprocess.run(
        ["bash", str(FETCH)], check=True, capture_output=True, text=True, timeout=1800
    )
    return Path(out.stdout.strip().splitlines()[-1])


class Trino:
    """One running server; `stop()` ends it by the PID it was started with."""

    def __init__(self, spec: TrinoSpec) -> None:
        self.spec = spec
        self.home = trino_home()
        self.etc = spec.root / "etc"
        self.data = spec.root / "data"
        self.log = spec.root / "trino.log"
        self.write_config()
        self._log = self.log.open("ab")
        env = {**os.environ, "JAVA_HOME": str(JAVA_HOME)}
        self.popen = subprocess.Popen(
            [
                str(self.home / "bin" / "launcher"),
                "run",
                f"--etc-dir={self.etc}",
                f"--data-dir={self.data}",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            cwd=self.data,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.spec.port}"

    def write_config(self) -> None:
        spec = self.spec
        (self.etc / "catalog").mkdir(parents=True, exist_ok=True)
        self.data.mkdir(parents=True, exist_ok=True)
        (self.etc / "node.properties").write_text(
            _properties(
                {
                    "node.environment": "pdp_e2e",
                    "node.id": f"pdp-trino-{spec.port}",
                    "node.data-dir": str(self.data),
                }
            )
        )
        (self.etc / "jvm.config").write_text(JVM_OPTIONS.format(heap=spec.heap))
        config = {
            "coordinator": "true",
            "node-scheduler.include-coordinator": "true",
            "http-server.http.port": str(spec.port),
            "discovery.uri": self.url,
            "query.max-memory": "1GB",
            "query.max-memory-per-node": "512MB",
            "memory.heap-headroom-per-node": "512MB",
            "web-ui.enabled": "false",
            # one node on two cores: fewer threads start faster and contend less
            "task.concurrency": "2",
            "task.max-worker-threads": "4",
        }
        if isinstance(spec.access, PdpPlugin):
            config["plugin.dir"] = str(self._plugin_dir())
        (self.etc / "config.properties").write_text(_properties(config))
        (self.etc / "log.properties").write_text("io.trino=WARN\nio.trino.server.Server=INFO\n")
        group_file = self.etc / "groups.txt"
        group_file.write_text(
            "".join(f"{group}:{','.join(users)}\n" for group, users in spec.groups.items())
        )
        (self.etc / "group-provider.properties").write_text(
            _properties(
                {
                    "group-provider.name": "file",
                    "file.group-file": str(group_file),
                    "file.refresh-period": "1s",
                }
            )
        )
        access = self.etc / "access-control.properties"
        if spec.access is None:
            access.unlink(missing_ok=True)
        else:
            access.write_text(_properties(spec.access.properties()))
        for old in (self.etc / "catalog").glob("*.properties"):
            old.unlink()
        for name, props in spec.catalogs.items():
            (self.etc / "catalog" / f"{name}.properties").write_text(_properties(props))

    def _plugin_dir(self) -> Path:
        """Trino's stock plugins (linked) and the product's plugin, in a directory of this
        server's own: `plugin.dir` names one directory."""
        if not PLUGIN_JAR.is_file():
            raise FileNotFoundError(f"{PLUGIN_JAR} is missing: build it with `make plugin`")
        plugins = self.spec.root / "plugin"
        plugins.mkdir(parents=True, exist_ok=True)
        for stock in (self.home / "plugin").iterdir():
            link = plugins / stock.name
            if not link.exists():
                link.symlink_to(stock)
        ours = plugins / "pdp"
        ours.mkdir(exist_ok=True)
        shutil.copyfile(PLUGIN_JAR, ours / PLUGIN_JAR.name)
        return plugins

    def wait_ready(self, user: str, timeout: float = READY_TIMEOUT) -> None:
        """Until /v1/info says started and a query as `user` runs; stops the server on failure,
        so that no test leaves one behind."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                output = self.output()
                self.stop()
                raise RuntimeError(f"Trino exited with {self.popen.returncode}:\n{output[-6000:]}")
            if self._answers(user):
                return
            time.sleep(1)
        output = self.output()
        self.stop()
        raise TimeoutError(f"Trino not ready after {timeout:.0f}s:\n{output[-6000:]}")

    def _answers(self, user: str) -> bool:
        try:
            info = httpx.get(f"{self.url}/v1/info", timeout=2).json()
        except (httpx.HTTPError, ValueError):
            return False
        if info.get("starting", True):
            return False
        try:  # right after start a query can still meet SERVER_STARTING_UP or no workers
            return self.query(user, "SELECT count(*) FROM system.runtime.nodes") == [[1]]
        except TrinoQueryError:
            return False

    def connect(self, user: str, **kwargs: object) -> trino.dbapi.Connection:
        return trino.dbapi.connect(
            host="127.0.0.1", port=self.spec.port, user=user, http_scheme="http", **kwargs
        )

    def query(self, user: str, sql: str, **kwargs: object) -> list[list[object]]:
        with self.connect(user, **kwargs) as conn:
            cursor = conn.cursor()
            cursor.execute(sql)
            return cursor.fetchall()

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(10)
        self._log.close()
