"""sidecar.yaml while the sidecar runs: the settings that can change safely are applied at
once, the others are named in a warning and keep their value until a restart.

Reloaded: cluster (properties, accessGrantMapping), cache (users, decisions, maxStaleSeconds),
reloadIntervalSeconds. Restart needed: listen, workers, pdp (target, timeout, auth, tls),
cache.stateFile."""

from __future__ import annotations

import logging
from collections.abc import Callable

from pdp.config.load import load_cluster
from pdp.config.reload import YamlReload
from pdp.config.watch import Watched
from pdp.core.model import ClusterSettings
from sidecar.answers import Answers
from sidecar.config import SidecarConfig, load_sidecar_config

# (key, sub-key or None): what a change of it takes
RESTART = (
    ("listen", None),
    ("workers", None),
    ("pdp", None),
    ("cache", "stateFile"),
    ("cache", "viewGrants"),
)
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


class SidecarYaml(YamlReload[SidecarConfig]):
    """Watches sidecar.yaml. `config` is the configuration in force."""

    name = "sidecar.yaml"
    who = "the sidecar"
    keys = (*RESTART, *RELOADED)
    restart = RESTART
    reloaded = RELOADED
    kept = (
        "host",
        "port",
        "workers",
        "pdp_target",
        "pdp_timeout",
        "pdp_tls",
        "pdp_auth",
        "state_file",
        "view_grants",
    )
    log = logging.getLogger(__name__)

    def __init__(
        self, config: SidecarConfig, cluster: Watched[ClusterSettings], answers: Answers
    ) -> None:
        self._cluster, self._answers = cluster, answers
        super().__init__(config, load_sidecar_config)

    def after(self, old: SidecarConfig, new: SidecarConfig) -> None:
        files = new.properties_file, new.mapping_file
        if files != (old.properties_file, old.mapping_file):
            self._cluster.retarget([p for p in files if p], lambda: load_cluster(*files))
        self._answers.configure(new.user_cache, new.decision_cache, new.max_stale)
