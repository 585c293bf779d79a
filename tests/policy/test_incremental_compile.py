"""Loading the policy files again at the cost of what changed (`SnapshotLoader`: unchanged
files not parsed again, compiled parts reused where their inputs are equal) gives exactly the
snapshot, warnings and errors of loading them afresh, whatever the edits between loads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pdp.config.errors import ConfigError
from pdp.config.load import SnapshotLoader, load_snapshot
from pdp.policy.delta import revision_delta

SCHEMAS = ("s0", "s1", "s2")
NAMES = ("t0", "t1", "t2", "t3")
GROUPS = ("g0", "g1", "g2")
USERS = ("u0", "u1", "u2", "u3")
TAGS = st.lists(st.sampled_from(["eu", "eu.fr", "own"]), max_size=2, unique=True)
WHO = st.sampled_from(GROUPS)
WHAT = st.fixed_dictionaries(
    {
        "schemas": st.lists(st.sampled_from([f"c.hive.{s}" for s in SCHEMAS]), max_size=2),
        "tags": TAGS,
    }
)
CHANGES = st.one_of(
    st.tuples(st.just("policy"), st.integers(0, 4), WHO, WHAT, st.sampled_from(["READ", "WRITE"])),
    st.tuples(st.just("unpolicy"), st.integers(0, 4)),
    st.tuples(st.just("status"), st.integers(0, 4), st.sampled_from(["active", "staged"])),
    st.tuples(st.just("mask"), TAGS, st.sampled_from(["null", "hash"])),
    st.tuples(
        st.just("add"), st.sampled_from(SCHEMAS), st.sampled_from(NAMES), TAGS, st.booleans()
    ),
    st.tuples(st.just("drop"), st.integers(0, 20)),
    st.tuples(st.just("catalog"), st.sampled_from(["hive", "lake"])),
    st.tuples(st.just("groups"), st.sampled_from(USERS), st.lists(WHO, max_size=2, unique=True)),
    # a policy of the same name in the users' file: an error naming both definitions
    st.tuples(st.just("twice"), st.booleans()),
)


class Files:
    """Three policy files (registry, policies, users) and the state they are written from."""

    def __init__(self, directory: Path) -> None:
        self.paths = [directory / f"{n}.json" for n in ("registry", "policies", "users")]
        self.tables: dict[tuple[str, str], tuple[list[str], bool]] = {
            (s, n): ([], False) for s in SCHEMAS for n in NAMES[:2]
        }
        self.catalog = "hive"
        self.policies: dict[int, dict[str, Any]] = {
            i: {
                "name": f"p{i}",
                "access": "READ",
                "who": {"groups": [GROUPS[i % 3]]},
                "what": {"schemas": [f"c.hive.{SCHEMAS[i % 3]}"]},
            }
            for i in range(3)
        }
        self.mask: dict[str, Any] = {"name": "pii", "columns": {"tags": ["pii"]}, "mask": "null"}
        self.groups = {user: [GROUPS[i % 3]] for i, user in enumerate(USERS)}
        self.twice = False

    def edit(self, change: tuple[Any, ...]) -> None:
        match change:
            case ("policy", i, group, what, access):
                self.policies[i] = {
                    "name": f"p{i}",
                    "access": access,
                    "who": {"groups": [group]},
                    "what": what,
                }
            case ("unpolicy", i):
                self.policies.pop(i, None)
            case ("status", i, status):
                if i in self.policies:
                    self.policies[i] = {**self.policies[i], "status": status}
            case ("mask", tags, form):
                self.mask = {"name": "pii", "columns": {"tags": ["pii", *tags]}, "mask": form}
            case ("add", schema, name, tags, pii):
                self.tables[schema, name] = (tags, pii)
            case ("drop", index):
                if self.tables:
                    del self.tables[sorted(self.tables)[index % len(self.tables)]]
            case ("catalog", catalog):
                self.catalog = catalog
            case ("groups", user, groups):
                self.groups[user] = groups
            case ("twice", twice):
                self.twice = twice

    def write(self) -> None:
        schemas = [
            {
                "name": schema,
                "tables": [
                    {"name": n, "tags": tags, **({"columns": {"email": ["pii"]}} if pii else {})}
                    for (s, n), (tags, pii) in sorted(self.tables.items())
                    if s == schema
                ],
            }
            for schema in SCHEMAS
        ]
        database = {"name": "hive", "trinoCatalog": self.catalog, "schemas": schemas}
        registry = {
            "connections": [
                {
                    "name": "c",
                    "technology": "postgresql",
                    "status": "active",
                    "databases": [database],
                }
            ]
        }
        emails = {"name": "emails", "columns": {"names": ["email"]}, "mask": "hash"}
        by_site = {"name": "by-site", "what": {"schemas": ["c.hive.s0"]}, "where": "x = 1"}
        policies = {
            "policies": list(self.policies.values()),
            "masks": [self.mask, {**emails, "what": {"tags": ["eu"]}}],
            "rowFilters": [by_site],
        }
        users: dict[str, Any] = {"users": {u: {"groups": g} for u, g in self.groups.items()}}
        if self.twice:
            users["policies"] = [{"name": "p0", "access": "READ", "what": {"tags": ["eu"]}}]
        for path, document in zip(self.paths, (registry, policies, users), strict=True):
            text = json.dumps(document, indent=1)
            if not path.exists() or path.read_text() != text:
                path.write_text(text)


def loaded(load: Any, files: Files) -> Any:
    try:
        result = load(files.paths, None)
    except ConfigError as error:
        return "rejected", [str(p) for p in error.problems]
    return result.value, result.warnings


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(CHANGES, min_size=1, max_size=3), min_size=1, max_size=6))
def test_an_incremental_load_equals_a_fresh_load_after_any_edits(tmp_path_factory, steps):
    files = Files(tmp_path_factory.mktemp("policy"))
    files.write()
    loader = SnapshotLoader()
    last = loaded(loader.load, files)
    assert last[0] != "rejected"
    for changes in steps:
        for change in changes:
            files.edit(change)
        files.write()
        again, fresh = loaded(loader.load, files), loaded(load_snapshot, files)
        assert again == fresh
        if again[0] != "rejected":
            snapshot = again[0]
            assert snapshot.registry == fresh[0].registry  # (compared whole above, said here)
            if last[0] != "rejected":
                assert revision_delta(last[0], snapshot) == revision_delta(last[0], fresh[0])
            last = again


def test_an_unchanged_file_is_not_parsed_again_and_the_data_sources_are_reused(tmp_path):
    files = Files(tmp_path)
    files.write()
    loader = SnapshotLoader()
    first = loader.load(files.paths, None).value
    files.edit(("policy", 1, "g2", {"schemas": ["c.hive.s0"]}, "WRITE"))
    files.write()
    second = loader.load(files.paths, None).value
    assert second.objects is first.objects  # the registry's file was not parsed again
    assert second.targets["p0"] is first.targets["p0"]  # an unchanged policy: not resolved again
    assert second.targets["p1"] == frozenset({"c.hive.s0.t0", "c.hive.s0.t1"})
    assert second.registry.by_schema is first.registry.by_schema
    assert second == load_snapshot(files.paths, None).value


def test_a_name_defined_in_two_files_is_reported_with_both_lines_as_before(tmp_path):
    files = Files(tmp_path)
    files.write()
    loader = SnapshotLoader()
    loader.load(files.paths, None)
    files.edit(("twice", True))
    files.write()
    with pytest.raises(ConfigError) as error:
        loader.load(files.paths, None)
    assert [str(p) for p in error.value.problems] == loaded(load_snapshot, files)[1]
    assert any("defined twice" in str(p) for p in error.value.problems)


def test_a_table_added_patches_the_data_sources_and_re_resolves_only_what_it_enters(tmp_path):
    files = Files(tmp_path)
    files.write()
    loader = SnapshotLoader()
    first = loader.load(files.paths, None).value
    files.edit(("add", "s2", "t3", [], True))
    files.write()
    second = loader.load(files.paths, None).value
    assert second.objects is not None and second.objects.change is not None  # patched
    assert second.objects.change.paths == frozenset({"c.hive.s2.t3"})
    assert second.targets["p0"] is first.targets["p0"]  # s0: not entered, not resolved again
    assert "c.hive.s2.t3" in second.targets["p2"]
    assert second.data_targets["pii"] == first.data_targets["pii"] | {("hive", "s2", "t3")}
    assert second == load_snapshot(files.paths, None).value
