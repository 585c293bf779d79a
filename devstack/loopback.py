"""A client connection for driving the sidecar's HTTP protocol class (`GuardedHttpTools`) in
process, without sockets: subclasses say what a write does."""

from __future__ import annotations

import asyncio
from typing import Any


class LoopbackTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.closed = False

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8181)}.get(
            name, default
        )

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass
