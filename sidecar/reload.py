"""sidecar.yaml while the sidecar runs: the settings that can change safely are applied at
once, the others are named in a warning and keep their value until a restart.

Reloaded: cluster (properties, accessGrantMapping), cache (users, decisions, maxStaleSeconds),
reloadIntervalSeconds. Restart needed: listen, workers, pdp (target, timeout, auth, tls),
cache.stateFile."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pdp.config.errors import ConfigError
from pdp.config.load import Loaded, load_cluster
from pdp.config.watch import Watched
from pdp.config.yamlsource import read_yaml
from pdp.core.model import ClusterSettings
from sidecar.answers import Answers
from sidecar.config import SidecarConfig, load_sidecar_config

log = logging.getLogger(__name__)

# (key, sub-key or None): what a change of it takes
RESTART = (("listen", None), ("workers", None), ("pdp", None), ("cache", "stateFile"))
RELOADED = (
    ("cluster", None),
    ("cache", "users"),
    ("cache", "decisions"),
    ("cache", "maxStaleSeconds"),
    ("reloadIntervalSeconds", None),
)


def watch_cluster(
    config: SidecarConfig, on_change: Callable[[ClusterSettings], None] | None = None
) -> Watched[ClusterSettings]:
    files = config.properties_file, config.mapping_file
    paths = [p for p in files if p]
    return Watched("cluster settings", paths, lambda: load_cluster(*files), on_change)


class SidecarYaml:
    """Watches sidecar.yaml. `config` is the configuration in force."""

    def __init__(
        self, config: SidecarConfig, cluster: Watched[ClusterSettings], answers: Answers
    ) -> None:
        self.config, self._cluster, self._answers = config, cluster, answers
        self._raw = _raw(config.file)
        self.watched: Watched[SidecarConfig] = Watched(
            "sidecar.yaml", [config.file], self._load, on_change=self._apply
        )

    def _load(self) -> Loaded[SidecarConfig]:
        return Loaded(load_sidecar_config(self.config.file), ())

    def _apply(self, new: SidecarConfig) -> None:
        old, raw = self.config, _raw(new.file)
        changed = [key for key in (*RESTART, *RELOADED) if _get(self._raw, key) != _get(raw, key)]
        self._raw = raw
        restart = [_name(key) for key in changed if key in RESTART]
        if restart:
            log.warning(
                "sidecar.yaml: %s changed: restart the sidecar to apply (until then the values "
                "it started with stay in force)",
                ", ".join(restart),
            )
        self.config = dataclasses.replace(
            new,
            host=old.host,
            port=old.port,
            workers=old.workers,
            pdp_target=old.pdp_target,
            pdp_timeout=old.pdp_timeout,
            pdp_tls=old.pdp_tls,
            pdp_auth=old.pdp_auth,
            state_file=old.state_file,
        )
        applied = [_name(key) for key in changed if key in RELOADED]
        if applied:
            log.info("sidecar.yaml reloaded: %s applied", ", ".join(applied))
        files = new.properties_file, new.mapping_file
        if files != (old.properties_file, old.mapping_file):
            self._cluster.retarget([p for p in files if p], lambda: load_cluster(*files))
        self._answers.configure(new.user_cache, new.decision_cache, new.max_stale)

    def interval(self) -> float:
        return self.config.reload_interval


def _raw(path: Path) -> dict[str, Any]:
    try:
        document = read_yaml(path)
    except ConfigError:
        return {}
    return document if isinstance(document, dict) else {}


def _get(raw: dict[str, Any], key: tuple[str, str | None]) -> Any:
    value = raw.get(key[0])
    if key[1] is None:
        return value
    return value.get(key[1]) if isinstance(value, dict) else None


def _name(key: tuple[str, str | None]) -> str:
    return key[0] if key[1] is None else f"{key[0]}.{key[1]}"
