"""A service's own YAML file (pdp.yaml, sidecar.yaml) while the service runs: the settings
that can change safely are applied at once, the others are named in a warning and keep the
value the service started with until it restarts.

`YamlReload` is the one way to do that; each service says, in a subclass, which keys take a
restart, which are reloaded, which configuration fields are held from start, and what else a
change retargets (`after`)."""

from __future__ import annotations

import dataclasses
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from pdp.config.errors import ConfigError
from pdp.config.load import Loaded
from pdp.config.watch import Watched
from pdp.config.yamlsource import read_yaml

# a key of the file and, for a setting inside a mapping, its sub-key
Key = tuple[str, str | None]


class ServiceConfig(Protocol):
    """What a reloadable configuration is: a dataclass read from `file`."""

    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]

    @property
    def file(self) -> Path: ...

    @property
    def reload_interval(self) -> float: ...


C = TypeVar("C", bound=ServiceConfig)


class YamlReload(ABC, Generic[C]):
    """Watches the file of `config`, the configuration in force: the reloaded settings from the
    file, the restart-only ones (`kept`) from start."""

    name: ClassVar[str]  # the file as the log names it
    who: ClassVar[str]  # what to restart
    keys: ClassVar[tuple[Key, ...]]  # compared between two versions of the file, in this order
    restart: ClassVar[tuple[Key, ...]]
    reloaded: ClassVar[tuple[Key, ...]]
    kept: ClassVar[tuple[str, ...]]  # the fields of the restart-only keys
    log: ClassVar[logging.Logger]

    def __init__(self, config: C, load: Callable[[Path], C]) -> None:
        self.config = config
        self._read = load
        self._raw = _raw(config.file)
        self.watched: Watched[C] = Watched(
            self.name, [config.file], self._load, on_change=self._apply
        )

    def _load(self) -> Loaded[C]:
        return Loaded(self._read(self.config.file), ())

    def _apply(self, new: C) -> None:
        old, raw = self.config, _raw(new.file)
        changed = [key for key in self.keys if _get(self._raw, key) != _get(raw, key)]
        self._raw = raw
        restart = [_name(key) for key in changed if key in self.restart]
        if restart:
            self.log.warning(
                "%s: %s changed: restart %s to apply (until then the values it started with "
                "stay in force)",
                self.name,
                ", ".join(restart),
                self.who,
            )
        self.config = dataclasses.replace(new, **{name: getattr(old, name) for name in self.kept})
        applied = [_name(key) for key in changed if key in self.reloaded]
        if applied:
            self.log.info("%s reloaded: %s applied", self.name, ", ".join(applied))
        self.after(old, new)

    @abstractmethod
    def after(self, old: C, new: C) -> None:
        """Follow a change of the reloaded settings (watch other files, resize caches)."""

    def interval(self) -> float:
        return self.config.reload_interval


def _raw(path: Path) -> dict[str, Any]:
    try:
        document = read_yaml(path)
    except ConfigError:
        return {}
    return document if isinstance(document, dict) else {}


def _get(raw: dict[str, Any], key: Key) -> Any:
    value = raw.get(key[0])
    if key[1] is None:
        return value
    return value.get(key[1]) if isinstance(value, dict) else None


def _name(key: Key) -> str:
    return key[0] if key[1] is None else f"{key[0]}.{key[1]}"
