"""Reading whole configurations from disk: the PDP's policy snapshot and a cluster's settings."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Sequence
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
from pdp.policy.model import DataSource, Technology
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
        previous: PolicySnapshot | None = None,
    ) -> PolicySnapshot:
        """The snapshot; `sources`/`retired` replace the files' registry (merged with the
        store's by the control plane; `complete=False` while the store's part is unknown).
        `previous`: a snapshot whose compiled parts may be reused (`PolicySnapshot.compile`)."""
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
            previous=previous,
            **({"mapping": self.mapping} if self.mapping else {}),
        )
        return dataclasses.replace(snapshot, warnings=audit(snapshot))


def load_snapshot(files: Sequence[Path], mapping_file: Path | None) -> Loaded[PolicySnapshot]:
    """All policy files plus the PDP-level mapping, compiled. Raises ConfigError with every
    problem found, so a bad edit is reported whole and nothing of it is applied."""
    return SnapshotLoader().load(files, mapping_file)


class SnapshotLoader:
    """`load_snapshot` again and again: each load parses only the files that changed
    (`PolicyReader`) and compiles reusing what the last snapshot resolved from equal inputs."""

    def __init__(self) -> None:
        self.reader = PolicyReader()
        self.last: PolicySnapshot | None = None

    def load(self, files: Sequence[Path], mapping_file: Path | None) -> Loaded[PolicySnapshot]:
        loaded = self.reader.load(files, mapping_file)
        self.last = loaded.value.compile(previous=self.last)
        return Loaded(self.last, loaded.warnings)


# the files a `policyFiles` entry naming a directory stands for (hidden files are skipped:
# editors' lock files, a Kubernetes ConfigMap's `..data`)
POLICY_FILE_SUFFIXES = (".yaml", ".yml", ".json")


def files_in(directory: Path) -> list[Path]:
    """The policy files of `directory`, sorted by name (not its subdirectories')."""
    return sorted(
        p
        for p in directory.iterdir()
        if p.suffix in POLICY_FILE_SUFFIXES and not p.name.startswith(".") and p.is_file()
    )


def policy_paths(entries: Sequence[Path]) -> list[Path]:
    """The `policyFiles` entries with each directory replaced by its files, read at every load
    so a file added to the directory is loaded. A directory with none is an error."""
    paths: list[Path] = []
    for entry in entries:
        if not entry.is_dir():
            paths.append(entry)
        elif found := files_in(entry):
            paths += found
        else:
            raise ConfigError([Problem(str(entry), None, NO_POLICY_FILES)])
    return paths


NO_POLICY_FILES = "a directory with no policy file (*.yaml, *.yml or *.json) in it"


def load_policy_inputs(files: Sequence[Path], mapping_file: Path | None) -> Loaded[PolicyInputs]:
    """The policy files and the mapping, parsed and validated (see `load_snapshot`)."""
    return PolicyReader().load(files, mapping_file)


@dataclass(frozen=True)
class _Parsed:
    """One file's text (by its digest) parsed on its own, with its own problems."""

    digest: bytes
    documents: PolicyDocuments
    errors: tuple[Problem, ...]
    warnings: tuple[Problem, ...]
    folded: frozenset[str]  # the paths of its data sources, folded


class PolicyReader:
    """`load_policy_inputs` that parses again only the files whose content changed since its
    last load: a policy edit beside a registry of 100,000 tables re-reads the registry's text
    (to see that it is the same) but not its YAML. Each file is parsed alone and the results
    merged; when two files define the same name, the files are parsed together as one, so the
    error names each definition's line as before."""

    def __init__(self) -> None:
        self._parsed: dict[Path, _Parsed] = {}
        # the data sources checked for duplicates: the digests of the files defining them
        self._checked: tuple[tuple[object, ...], list[Problem]] = ((), [])

    def load(self, entries: Sequence[Path], mapping_file: Path | None) -> Loaded[PolicyInputs]:
        files = policy_paths(entries)
        digest = hashlib.sha256()
        texts = []
        for path in files:
            text = read_text(path)
            digest.update(f"{path.name}\0{text}\0".encode())
            texts.append(text)
        parsed = {path: self._parse(path, text) for path, text in zip(files, texts, strict=True)}
        self._parsed = parsed  # only the files of this load are kept
        errors = [e for p in parsed.values() for e in p.errors]
        warnings = [w for p in parsed.values() for w in p.warnings]
        docs = _merged([p.documents for p in parsed.values()])
        if docs is None:  # a name defined in two files: the one-pass parse reports where
            docs, errors, warnings = _parse_together(files, texts)
        errors += self._duplicate_sources(docs, files, parsed.values())
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

    def _duplicate_sources(
        self, docs: PolicyDocuments, files: Sequence[Path], parsed: Iterable[_Parsed]
    ) -> list[Problem]:
        key = (*files, *(p.digest for p in parsed if p.documents.sources))
        if key != self._checked[0]:
            parts = list(parsed)
            # the parts' folded paths, kept from each parse, tell in one union whether any
            # path repeats; only then are the 100,000 sources walked for the error's words
            held = frozenset[str]().union(*(p.folded for p in parts))
            repeated = len(held) != sum(len(p.documents.sources) for p in parts)
            self._checked = (key, _duplicate_sources(docs, files) if repeated else [])
        return self._checked[1]

    def _parse(self, path: Path, text: str) -> _Parsed:
        key = hashlib.sha256(text.encode()).digest()
        if (held := self._parsed.get(path)) is not None and held.digest == key:
            return held
        docs, errors, warnings = _parse_together([path], [text])
        folded = frozenset(fold(s.path) for s in docs.sources)
        return _Parsed(key, docs, tuple(errors), tuple(warnings), folded)


def _parse_together(
    files: Sequence[Path], texts: Sequence[str]
) -> tuple[PolicyDocuments, list[Problem], list[Problem]]:
    docs = PolicyDocuments()
    errors: list[Problem] = []
    warnings: list[Problem] = []
    for path, text in zip(files, texts, strict=True):
        try:
            found = parse_policy_file(text, str(path), docs)
        except ConfigError as exc:
            errors += exc.problems
            continue
        errors += found.errors
        warnings += found.warnings
    return docs, errors, warnings


def _merged(parts: Sequence[PolicyDocuments]) -> PolicyDocuments | None:
    """The files' documents as one, or None if two define the same name."""
    docs = PolicyDocuments()
    held: dict[str, Technology] = {}  # the connections so far, folded
    for part in parts:
        data_policies = part.masks.keys() | part.row_filters.keys()
        if (
            not part.policies.keys().isdisjoint(docs.policies)
            or not part.users.keys().isdisjoint(docs.users)
            or not data_policies.isdisjoint(docs.masks.keys() | docs.row_filters.keys())
            or not part.builtins.keys().isdisjoint(docs.builtins)
            # a connection continued in another file must keep its technology
            or any(held.get(fold(n), t) is not t for n, t in part.connections.items())
        ):
            return None
        docs.sources += part.sources
        docs.retired += part.retired
        for name, technology in part.connections.items():
            if fold(name) not in held:
                held[fold(name)] = docs.connections[name] = technology
        docs.policies.update(part.policies)
        docs.users.update(part.users)
        docs.masks.update(part.masks)
        docs.row_filters.update(part.row_filters)
        docs.builtins.update(part.builtins)
        for connection, schemas in part.schema_monitoring.items():
            docs.schema_monitoring.setdefault(connection, {}).update(schemas)
    return docs


def _duplicate_sources(docs: PolicyDocuments, files: Sequence[Path]) -> list[Problem]:
    errors = []
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
    return errors


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
