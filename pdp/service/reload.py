"""pdp.yaml while the PDP runs: the settings that can change safely are applied at once, the
others are named in a warning and keep the value the PDP started with until it restarts.

Reloaded: policyFiles, accessGrantMapping, clusterProperties, reloadIntervalSeconds.
Restart needed: listen, auth, tls, grants, store, storeSecretKeyEnv/File, admin, monitoring."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pdp.collector import made_frozen
from pdp.config.load import Loaded, PolicyInputs, PolicyReader, SnapshotLoader, load_cluster
from pdp.config.reload import YamlReload
from pdp.config.watch import Initial, Watched
from pdp.core.model import ClusterSettings
from pdp.policy import PolicySnapshot, Revisions
from pdp.policy.delta import RevisionDelta, revision_delta
from pdp.service.config import KEYS, PdpConfig, load_pdp_config

# the restart-only keys and the PdpConfig field each one sets
RESTART = {
    "listen": "listen",
    "auth": "auth",
    "tls": "tls",
    "grants": "grants",
    "store": "store",
    "storeSecretKeyEnv": "store_secret_key",
    "storeSecretKeyFile": "store_secret_key",
    "admin": "admin",
    "monitoring": "monitoring",
}
RELOADED = ("policyFiles", "accessGrantMapping", "clusterProperties", "reloadIntervalSeconds")


def policy_files(config: PdpConfig) -> list[Path]:
    return [*config.policy_files, *([config.mapping_file] if config.mapping_file else [])]


def first_policy(config: PdpConfig) -> Initial[PolicySnapshot]:
    return Initial.load(policy_files(config), _policy_loader(config))


def watch_policy(
    config: PdpConfig, revisions: Revisions, initial: Initial[PolicySnapshot]
) -> Watched[PolicySnapshot]:
    """Publishes each new snapshot to `revisions`, with its delta computed in the thread that
    loaded it (beside 100,000 tables it can take a good part of a second) rather than on the
    event loop; `Revisions.publish` computes it again only if the revision moved meanwhile.
    Both are built frozen (pdp/collector.py), like everything a revision lives on."""
    held: list[tuple[PolicySnapshot, RevisionDelta]] = []
    loader = initial.loader  # not `initial`, which would keep the first snapshot for good

    def load() -> Loaded[PolicySnapshot]:
        loaded = loader()
        current = revisions.current
        if loaded.value.revision != current.revision:
            held[:] = [(loaded.value, made_frozen(revision_delta, current, loaded.value))]
        return loaded

    def publish(snapshot: PolicySnapshot) -> None:
        delta = next((d for s, d in held if s is snapshot), None)
        held.clear()
        revisions.publish(snapshot, delta)

    return Watched("policy", policy_files(config), load, publish, initial)


def first_inputs(config: PdpConfig) -> Initial[PolicyInputs]:
    return Initial.load(policy_files(config), _inputs_loader(config))


def watch_inputs(
    config: PdpConfig, on_change: Callable[[PolicyInputs], None], initial: Initial[PolicyInputs]
) -> Watched[PolicyInputs]:
    """With a store the files are not compiled alone: the control plane composes them."""
    return Watched("policy", policy_files(config), initial.loader, on_change, initial)


def watch_cluster(config: PdpConfig) -> Watched[ClusterSettings]:
    """The properties file `Decide` applies, if pdp.yaml names one (else the defaults)."""
    return Watched("cluster properties", _cluster_files(config), _cluster_loader(config))


def _policy_loader(config: PdpConfig) -> Callable[[], Loaded[PolicySnapshot]]:
    """Loads the files again and again, each time at the cost of what changed. A snapshot
    lives for its revision: it is compiled with the collector off and frozen, out of the full
    collections that walked its millions of objects while the PDP answered (pdp/collector.py)."""
    loader = SnapshotLoader()
    return lambda: made_frozen(loader.load, config.policy_files, config.mapping_file)


def _inputs_loader(config: PdpConfig) -> Callable[[], Loaded[PolicyInputs]]:
    reader = PolicyReader()
    return lambda: made_frozen(reader.load, config.policy_files, config.mapping_file)


def _cluster_files(config: PdpConfig) -> list[Path]:
    return [config.properties_file] if config.properties_file else []


def _cluster_loader(config: PdpConfig) -> Callable[[], Loaded[ClusterSettings]]:
    return lambda: load_cluster(config.properties_file, None)


class PdpYaml(YamlReload[PdpConfig]):
    """Watches pdp.yaml itself. `config` is the configuration in force: the reloaded settings
    from the file, the restart-only ones from start."""

    name = "pdp.yaml"
    who = "the PDP"
    keys = tuple((key, None) for key in KEYS)
    restart = tuple((key, None) for key in RESTART)
    reloaded = tuple((key, None) for key in RELOADED)
    kept = tuple(dict.fromkeys(RESTART.values()))
    log = logging.getLogger(__name__)

    def __init__(
        self,
        config: PdpConfig,
        policy: Watched[Any],
        cluster: Watched[ClusterSettings],
        inputs: bool = False,  # `policy` holds PolicyInputs (a store composes the snapshot)
    ) -> None:
        self._policy, self._cluster = policy, cluster
        self._loader = _inputs_loader if inputs else _policy_loader
        super().__init__(config, load_pdp_config)

    def after(self, old: PdpConfig, new: PdpConfig) -> None:
        if (new.policy_files, new.mapping_file) != (old.policy_files, old.mapping_file):
            self._policy.retarget(policy_files(new), self._loader(new))
        if new.properties_file != old.properties_file:
            self._cluster.retarget(_cluster_files(new), _cluster_loader(new))
