"""`python -m sidecar --config sidecar.yaml`: serve the OPA contract with uvicorn workers."""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import uvicorn

from pdp.config.errors import ConfigError
from pdp.config.listen import AddressInUse, ensure_free
from sidecar.app import METRICS_DIR_ENV
from sidecar.config import load_sidecar_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sidecar", description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="sidecar.yaml")
    args = parser.parse_args(argv)
    try:
        config = load_sidecar_config(args.config)
    except ConfigError as exc:
        print(f"sidecar: configuration error:\n{exc}", file=sys.stderr)
        return 2
    try:  # uvicorn's own failure is a traceback-like log line that does not name the address
        ensure_free(config.host, config.port)
    except AddressInUse as exc:
        print(f"sidecar: {exc} (another sidecar running?)", file=sys.stderr)
        return 1
    os.environ["SIDECAR_CONFIG"] = str(args.config.resolve())
    # The workers' metrics snapshots meet here (sidecar/metrics.py); one directory per run.
    metrics_dir = tempfile.mkdtemp(prefix="pdp-sidecar-metrics-")
    os.environ[METRICS_DIR_ENV] = metrics_dir
    _raise_open_files_limit()
    # uvicorn stops gracefully on SIGTERM, then raises it again against the handler it found:
    # with the default one the process would die here, leaving the directory behind.
    signal.signal(signal.SIGTERM, _terminated)
    terminated = False
    try:
        uvicorn.run(
            "sidecar.app:from_env",
            factory=True,
            host=config.host,
            port=config.port,
            workers=config.workers,
            loop="uvloop",
            http="sidecar.http:GuardedHttpTools",
            ws="none",  # the OPA contract is plain HTTP; an upgrade request gets a 4xx, quietly
            timeout_keep_alive=int(config.http.idle_timeout),
            proxy_headers=False,
            access_log=False,
            lifespan="on",
            log_level="info",
        )
    except _Terminated:
        terminated = True
    shutil.rmtree(metrics_dir, ignore_errors=True)
    if terminated:  # still a stop by SIGTERM to whoever sent it (systemd, a supervisor, a test)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.raise_signal(signal.SIGTERM)
    return 0


class _Terminated(Exception):
    pass


def _terminated(signum: int, frame: object) -> None:
    raise _Terminated


def _raise_open_files_limit() -> None:
    """Up to the hard limit: each open connection holds a file descriptor, and the soft limit
    (often 1,024) is what an idle-connection flood exhausts first."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


if __name__ == "__main__":
    sys.exit(main())
