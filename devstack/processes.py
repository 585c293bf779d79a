"""Starting the real PDP and sidecar as processes on free loopback ports, and stopping them."""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Process:
    def __init__(
        self,
        args: list[str],
        log: Path,
        preexec_fn: Callable[[], None] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.log = log
        self._file = log.open("wb")
        self.popen = subprocess.Popen(
            args,
            stdout=self._file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            preexec_fn=preexec_fn,
        )

    def wait_until(self, ready: Callable[[], bool], timeout: float = 20.0) -> None:
        """Wait for `ready`; on failure stop the process, so no test leaves one behind."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                output = self.output()
                self.stop()
                raise RuntimeError(f"process exited early:\n{output}")
            if ready():
                return
            time.sleep(0.05)
        output = self.output()
        self.stop()
        raise TimeoutError(f"not ready after {timeout}s:\n{output}")

    def output(self) -> str:
        if not self._file.closed:
            self._file.flush()
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        self._file.close()


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def start_pdp(pdp_yaml: Path, port: int) -> Process:
    process = Process(
        [sys.executable, "-m", "pdp.cli", "serve", "--config", str(pdp_yaml)],
        pdp_yaml.parent / f"pdp-{port}.log",
    )
    process.wait_until(lambda: _port_open(port))
    return process


def start_sidecar(
    sidecar_yaml: Path,
    port: int,
    wait_connected: bool = True,
    open_files: tuple[int, int] | None = None,
) -> Process:
    """`open_files`: the (soft, hard) RLIMIT_NOFILE the sidecar starts with."""

    def limit_open_files() -> None:
        if open_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, open_files)

    process = Process(
        [sys.executable, "-m", "sidecar", "--config", str(sidecar_yaml)],
        sidecar_yaml.parent / f"sidecar-{port}.log",
        limit_open_files if open_files is not None else None,
    )

    def ready() -> bool:
        try:
            health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).json()
        except httpx.HTTPError:
            return False
        return health["pdp"] == "connected" or not wait_connected

    process.wait_until(ready)
    return process
