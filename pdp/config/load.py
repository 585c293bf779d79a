"""Reading whole configurations from disk: the PDP's policy snapshot and a cluster's settings."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from pdp.config.errors import ConfigError, Problem
from pdp.config.mapping import parse_mapping
from pdp.config.policyfiles import PolicyDocuments, parse_policy_file
from pdp.config.properties import parse_properties
from pdp.config.yamlsource import read_text
from pdp.core.model import AccessGrantMapping, ClusterSettings, Settings, fold
from pdp.policy.audit import audit
from pdp.policy.builtin import builtin_masks
from pdp.policy.model import DataSource
from pdp.policy.snapshot import PolicySnapshot

T = TypeVar("T")


@dataclass(frozen=True)
class Loaded(Generic[T]):
    value: T
    warnings: tuple[Problem, ...]


def load_mapping(path: Path | None) -> Loaded[AccessGrantMapping | None]:
    if path is None:
        return Loaded(None, ())
    mapping, found = parse_mapping(read_text(path), str(path))
    return Loaded(mapping, tuple(found.warnings))


@dataclass(frozen=True)
class PolicyInputs:
    """What the policy files and the PDP-level mapping define, validated, not yet compiled;
    `digest` names their content (the revision when the files are the only source)."""

    digest: str
    documents: PolicyDocuments
    mapping: AccessGrantMapping | None

    def compile(
        self,
        revision: str | None = None,
        sources: Sequence[DataSource] | None = None,
        retired: Sequence[DataSource] | None = None,
        *,
        complete: bool = True,
    ) -> PolicySnapshot:
        """The snapshot; `sources`/`retired` replace the files' registry (merged with the
        store's by the control plane; `complete=False` while the store's part is unknown)."""
        docs = self.documents
        snapshot = PolicySnapshot.compile(
            revision=revision or self.digest,
            sources=docs.sources if sources is None else sources,
            retired=docs.retired if retired is None else retired,
            policies=docs.policies.values(),
            directory=docs.users,
            masking=(*docs.masks.values(), *builtin_masks(docs.builtins)),
            row_filters=docs.row_filters.values(),
            complete=complete,
            **({"mapping": self.mapping} if self.mapping else {}),
        )
        return dataclasses.replace(snapshot, warnings=audit(snapshot))


def load_snapshot(files: Sequence[Path], mapping_file: Path | None) -> Loaded[PolicySnapshot]:
    """All policy files plus the PDP-level mapping, compiled. Raises ConfigError with every
    problem found, so a bad edit is reported whole and nothing of it is applied."""
    loaded = load_policy_inputs(files, mapping_file)
    return Loaded(loaded.value.compile(), loaded.warnings)


def load_policy_inputs(files: Sequence[Path], mapping_file: Path | None) -> Loaded[PolicyInputs]:
    """The policy files and the mapping, parsed and validated (see `load_snapshot`)."""
    digest = hashlib.sha256()
    docs = PolicyDocuments()
    errors: list[Problem] = []
    warnings: list[Problem] = []
    for path in files:
        text = read_text(path)
        digest.update(f"{path.name}\0{text}\0".encode())
        try:
            found = parse_policy_file(text, str(path), docs)
        except ConfigError as exc:
            errors += exc.problems
            continue
        errors += found.errors
        warnings += found.warnings
    seen: dict[str, str] = {}
    for source in docs.sources:
        if (key := fold(source.path)) in seen:
            errors.append(
                Problem(
                    str(files[0]) if files else "",
                    None,
                    f"data source {source.path!r} is defined twice "
                    "(names are compared case-insensitively)",
                )
            )
        seen[key] = source.path
    mapping = None
    if mapping_file is not None:
        try:
            loaded = load_mapping(mapping_file)
            mapping, warnings = loaded.value, warnings + list(loaded.warnings)
            digest.update(read_text(mapping_file).encode())
        except ConfigError as exc:
            errors += exc.problems
    if errors:
        raise ConfigError(errors)
    return Loaded(PolicyInputs(digest.hexdigest()[:16], docs, mapping), tuple(warnings))


def load_cluster(
    properties_file: Path | None, mapping_file: Path | None
) -> Loaded[ClusterSettings]:
    """A cluster's own files: its properties file and its accessGrantMapping, either optional."""
    warnings: list[Problem] = []
    errors: list[Problem] = []
    properties, mapping = Settings(), None
    if properties_file is not None:
        try:
            properties, found = parse_properties(read_text(properties_file), str(properties_file))
            warnings += found.warnings
        except ConfigError as exc:
            errors += exc.problems
    try:
        loaded = load_mapping(mapping_file)
        mapping = loaded.value
        warnings += loaded.warnings
    except ConfigError as exc:
        errors += exc.problems
    if errors:
        raise ConfigError(errors)
    return Loaded(ClusterSettings(properties, mapping), tuple(warnings))


def load_settings(
    properties_file: Path | None,
    mapping_file: Path | None,
    central_mapping: AccessGrantMapping,
) -> Loaded[Settings]:
    """The settings decisions use for a cluster, under the PDP-level `central_mapping`."""
    cluster = load_cluster(properties_file, mapping_file)
    return Loaded(cluster.value.effective(central_mapping), cluster.warnings)
