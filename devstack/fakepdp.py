"""`python -m devstack.fakepdp --config pdp.yaml --world world.json`: the real PDP
(`start_pdp`, as `pdp serve` runs it) with the fake platform in place of the crawlers; the
world is a JSON file the test rewrites (database -> schema -> table -> [[column, type]]);
`--listing-delay` makes every listing that much slower."""

from __future__ import annotations

import argparse
import asyncio
import builtins
import logging
import signal
import time
from pathlib import Path

from devstack.fakes import FakeCrawler, FilePlatform
from pdp.crawl.base import Check, Crawler
from pdp.objects.syncplan import Listing
from pdp.service.config import load_pdp_config
from pdp.service.run import start_pdp
from pdp.store import ConnectionRecord


class _Slow:
    """A crawler whose every listing takes `delay` seconds more (a slow platform)."""

    def __init__(self, crawler: FakeCrawler, delay: float) -> None:
        self.crawler, self.delay = crawler, delay
        self.technology = crawler.technology

    def list(self, parent: tuple[str, ...]) -> Listing:
        time.sleep(self.delay)
        return self.crawler.list(parent)

    def check(self) -> builtins.list[Check]:
        return self.crawler.check()

    def close(self) -> None:
        self.crawler.close()


async def main(config_path: Path, world: Path, tick: float, delay: float = 0.0) -> None:
    config = load_pdp_config(config_path)
    platform = FilePlatform(world)

    def factory(record: ConnectionRecord) -> Crawler:
        crawler = platform.factory(record)
        return _Slow(crawler, delay) if delay > 0 else crawler

    running = await start_pdp(config, crawler_factory=factory, schedule_tick=tick)
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
    parser.add_argument("--listing-delay", type=float, default=0.0)
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(main(args.config, args.world, args.tick, args.listing_delay))
