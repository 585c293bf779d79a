"""`python -m sidecar --config sidecar.yaml`: serve the OPA contract with uvicorn workers."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import uvicorn

from pdp.config.errors import ConfigError
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
