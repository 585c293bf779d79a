"""An in-memory platform for object sync: a dict world the test mutates, listings that fail on
demand, and checks that refuse credentials on demand. Implements `pdp.crawl.base.Crawler`."""

from __future__ import annotations

import builtins
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pdp.crawl.base import Check
from pdp.objects.syncplan import Listing, RemoteColumn, RemoteObject
from pdp.store import ConnectionRecord

# database -> schema -> table -> [(column, type)]
World = dict[str, dict[str, dict[str, list[tuple[str, str]]]]]


@dataclass
class FakePlatform:
    world: World = field(default_factory=dict)
    failing: dict[tuple[str, ...], str] = field(default_factory=dict)  # parent -> reason
    unreachable: str | None = None  # every listing and check fails with this reason
    refuse_credentials: bool = False
    listed: list[tuple[str, ...]] = field(default_factory=list)
    gate: threading.Event | None = None  # when set, listings wait for it (a slow platform)
    opened: int = 0

    def add_table(self, db: str, schema: str, table: str, columns=(("id", "bigint"),)) -> None:
        self.world.setdefault(db, {}).setdefault(schema, {})[table] = list(columns)

    def drop_table(self, db: str, schema: str, table: str) -> None:
        del self.world[db][schema][table]

    def factory(self, record: ConnectionRecord) -> FakeCrawler:
        self.opened += 1
        return FakeCrawler(self, record.technology.value)


class FakeCrawler:
    def __init__(self, platform: FakePlatform, technology: str = "trino") -> None:
        self.platform = platform
        self.technology = technology
        self.closed = False

    def list(self, parent: tuple[str, ...]) -> Listing:
        p = self.platform
        if p.gate is not None:
            p.gate.wait(30)
        p.listed.append(parent)
        if p.unreachable:
            return Listing.failed(parent, p.unreachable)
        if parent in p.failing:
            return Listing.failed(parent, p.failing[parent])
        node: Any = p.world
        for name in parent:
            if name not in node:
                return Listing.failed(parent, f"{'.'.join(parent)} does not exist")
            node = node[name]
        if len(parent) == 2:
            children = tuple(
                RemoteObject(
                    name,
                    "BASE TABLE",
                    tuple(RemoteColumn(c, t, True, i + 1) for i, (c, t) in enumerate(columns)),
                )
                for name, columns in node.items()
            )
        else:
            children = tuple(RemoteObject(name) for name in node)
        return Listing(parent, children)

    def check(self) -> builtins.list[Check]:
        p = self.platform
        if p.unreachable:
            return [Check("reach", False, p.unreachable)]
        checks = [Check("reach", True, "the platform answers")]
        if p.refuse_credentials:
            checks.append(Check("authenticate", False, "the platform refused the credentials"))
        else:
            checks.append(Check("authenticate", True, "signed in"))
        return checks

    def close(self) -> None:
        self.closed = True


class FilePlatform:
    """A platform whose world is a JSON file (for a PDP running in another process)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, world: Mapping[str, Any]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(world))
        tmp.replace(self.path)

    def factory(self, record: ConnectionRecord) -> FakeCrawler:
        data = json.loads(self.path.read_text()) if self.path.exists() else {}
        world = {
            db: {s: {t: [tuple(c) for c in cols] for t, cols in ts.items()} for s, ts in ss.items()}
            for db, ss in data.items()
        }
        return FakeCrawler(FakePlatform(world), record.technology.value)
