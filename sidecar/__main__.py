"""`python -m sidecar --config sidecar.yaml`: serve the OPA contract with uvicorn workers."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import uvicorn

from pdp.config.errors import ConfigError
from pdp.config.listen import AddressInUse, ensure_free
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
    uvicorn.run(
        "sidecar.app:from_env",
        factory=True,
        host=config.host,
        port=config.port,
        workers=config.workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        lifespan="on",
        log_level="info",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
