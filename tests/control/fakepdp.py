"""`python -m tests.control.fakepdp --config pdp.yaml --world world.json`: the real PDP
(`start_pdp`, as `pdp serve` runs it) with the fake platform in place of the crawlers; the
world is a JSON file the test rewrites (database -> schema -> table -> [[column, type]])."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path

from pdp.service.config import load_pdp_config
from pdp.service.run import start_pdp
from tests.control.fakes import FilePlatform


async def main(config_path: Path, world: Path, tick: float) -> None:
    config = load_pdp_config(config_path)
    running = await start_pdp(
        config, crawler_factory=FilePlatform(world).factory, schedule_tick=tick
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await running.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--world", type=Path, required=True)
    parser.add_argument("--tick", type=float, default=0.5)
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(main(args.config, args.world, args.tick))
