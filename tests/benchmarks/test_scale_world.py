"""The scale benchmarks' world (`benchmarks/scale_world.py`) must be what it claims: files the
PDP and the sidecar load as they are, users seeing at most 5 % of the tables (the widest exactly
that many) by the PDP's own compiled snapshot, byte-identical for one (seed, scale), and change
helpers that touch only what they say. A small scale keeps it quick; the shape is the same."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from benchmarks import scale_world as sw
from pdp.config.load import load_snapshot
from pdp.policy.snapshot import PolicySnapshot
from pdp.service.config import load_pdp_config
from sidecar.config import load_sidecar_config

SCALE = 0.05  # 500 users in 10 groups, 4,928 tables in 224 schemas, 50 policies
WORLD = sw.build_world(sw.SEED, SCALE)


def compiled(files: sw.WorldFiles) -> PolicySnapshot:
    config = load_pdp_config(files.pdp)
    loaded = load_snapshot(config.policy_files, config.mapping_file)
    return loaded.value


def tables_of(snapshot: PolicySnapshot, user: sw.User) -> int:
    return len(snapshot.trino_grants(snapshot.subject(user.name)))


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> sw.WorldFiles:
    return sw.write_world(WORLD, tmp_path_factory.mktemp("world"))


@pytest.fixture(scope="module")
def snapshot(files: sw.WorldFiles) -> PolicySnapshot:
    return compiled(files)


def test_sizes_scale_with_the_fraction() -> None:
    assert sw.stats(WORLD) | {"visible_min": 0, "visible_median": 0} == {
        "users": 500,
        "groups": 10,
        "tables": 4_928,
        "schemas": 224,
        "policies": 50,
        "visible_min": 0,
        "visible_median": 0,
        "visible_max": 246,
    }
    assert sw.sizes(1.0) == {
        "users": 10_000,
        "groups": 200,
        "schemas": 1_000,
        "tables_per_schema": 100,
        "policies": 1_000,
        "cap": 5_000,
    }


def test_the_pdp_and_the_sidecar_load_the_files(
    files: sw.WorldFiles, snapshot: PolicySnapshot
) -> None:
    assert len(snapshot.trino_paths) == len(WORLD.tables)
    assert len(snapshot.policies) == len(WORLD.policies)
    assert len(snapshot.directory) == 500
    sidecar = load_sidecar_config(files.sidecar)
    assert sidecar.workers == 2
    assert sidecar.properties_file == files.properties


def test_every_user_sees_what_the_world_says_and_at_most_the_cap(
    snapshot: PolicySnapshot,
) -> None:
    counts = {u.name: tables_of(snapshot, u) for u in WORLD.users}
    assert counts == {u.name: WORLD.visible(u) for u in WORLD.users}
    assert max(counts.values()) == WORLD.cap == 246
    assert sorted(counts.values())[len(counts) // 2] > 0  # the median user sees something


def test_the_same_seed_and_scale_write_the_same_bytes(tmp_path: Path, files: sw.WorldFiles) -> None:
    again = sw.write_world(sw.build_world(sw.SEED, SCALE), tmp_path)
    schemas = sorted(p.relative_to(tmp_path) for p in (tmp_path / "registry").iterdir())
    assert len(schemas) == len(WORLD.schemas())
    for name in (*schemas, "policies.yaml", "users.yaml", "pdp.yaml", "sidecar.yaml"):
        assert (tmp_path / name).read_bytes() == (files.directory / name).read_bytes(), name
    assert again.pdp == tmp_path / "pdp.yaml"
    other = sw.build_world(sw.SEED + 1, SCALE)
    assert other.policies != WORLD.policies


def test_the_world_written_as_json_is_the_same_world(
    tmp_path: Path, snapshot: PolicySnapshot
) -> None:
    files = sw.write_world(WORLD, tmp_path, as_json=True)
    assert [p.name for p in files.policy_files] == ["registry", "policies.json", "users.json"]
    assert all(p.read_text().startswith("{") for p in files.registry.iterdir())
    from_json = compiled(files)
    assert from_json.sources == snapshot.sources
    assert from_json.policies == snapshot.policies
    assert from_json.directory == snapshot.directory


def test_a_policy_for_one_group_changes_only_its_members(
    tmp_path: Path, snapshot: PolicySnapshot
) -> None:
    group = sw.group_of_share(WORLD, 0.01)
    members = {u.name for u in WORLD.members(group)}
    assert 0 < len(members) < len(WORLD.users) / 4  # 1 % at scale 1; 10 groups here
    changed = compiled(
        sw.write_world(sw.with_policy(WORLD, sw.policy_for_group(WORLD, group)), tmp_path)
    )
    for user in WORLD.users:
        before, after = tables_of(snapshot, user), tables_of(changed, user)
        if user.name in members:
            assert after > before, user.name
        else:
            assert after == before, user.name


def test_tables_added_to_and_dropped_from_one_schema(
    tmp_path: Path, snapshot: PolicySnapshot
) -> None:
    rnd = random.Random(1)
    dropped = sw.schema_tables(WORLD, rnd, 100)  # a whole schema of 22 tables at this scale
    added = sw.new_tables(WORLD, rnd, 100)
    assert (
        len({(t.catalog, t.schema) for t in dropped})
        == 1
        == len({(t.catalog, t.schema) for t in added})
    )
    changed = compiled(sw.write_world(sw.with_tables(WORLD, added, dropped), tmp_path))
    keys = {(t.catalog, t.schema, t.name) for t in (*added, *dropped)}
    assert len(changed.trino_paths) == len(WORLD.tables) - len(dropped) + 100
    paths = set(changed.trino_paths.values())
    assert {(t.catalog, t.schema, t.name) for t in added} <= paths
    assert not {(t.catalog, t.schema, t.name) for t in dropped} & paths
    for user in WORLD.users[:100]:  # nobody's other tables change
        before = set(snapshot.trino_grants(snapshot.subject(user.name)))
        after = set(changed.trino_grants(changed.subject(user.name)))
        assert before ^ after <= keys, user.name


def test_the_registry_as_one_file_is_the_same_world(
    tmp_path: Path, snapshot: PolicySnapshot
) -> None:
    files = sw.write_world(WORLD, tmp_path, one_registry_file=True)
    assert files.registry == tmp_path / "registry.yaml" and files.registry.is_file()
    assert compiled(files).sources == snapshot.sources


def test_a_change_to_one_schema_rewrites_its_file_only(tmp_path: Path) -> None:
    files = sw.write_world(WORLD, tmp_path / "split")
    before = {p.name: p.read_bytes() for p in files.registry.iterdir()}
    rnd = random.Random(2)
    dropped = sw.schema_tables(WORLD, rnd, 100)  # the whole schema here: its file goes
    added = sw.new_tables(WORLD, rnd, 100)
    changed = sw.with_tables(WORLD, added, dropped)
    for tables in (dropped, added):
        sw.write_registry(changed, files.registry, only=(tables[0].catalog, tables[0].schema))
    after = {p.name: p.read_bytes() for p in files.registry.iterdir()}
    touched = {f"{t.catalog}.{t.schema}.yaml" for t in (*dropped, *added)}
    assert {n for n in before.keys() | after.keys() if before.get(n) != after.get(n)} == touched
    assert f"{dropped[0].catalog}.{dropped[0].schema}.yaml" not in after
    whole = compiled(sw.write_world(changed, tmp_path / "whole"))
    assert compiled(files).sources == whole.sources


def snapshot_of(files: sw.WorldFiles) -> dict[str, bytes]:
    """Every file the PDP reads, hidden ones too (a rename left half done would show)."""
    found = {p.name: p.read_bytes() for p in files.directory.iterdir() if p.is_file()}
    found |= {f"registry/{p.name}": p.read_bytes() for p in files.registry.iterdir()}
    return found


def test_staged_changes_write_nothing_until_made_then_what_a_direct_write_would(
    tmp_path: Path,
) -> None:
    files = sw.write_world(WORLD, tmp_path / "staged")
    direct = sw.write_world(WORLD, tmp_path / "direct")
    original = snapshot_of(files)
    staged = sw.staged_changes(WORLD, files, random.Random(26), tmp_path / "stage", restore=True)
    assert snapshot_of(files) == original  # rendering alone touches no file the PDP reads
    c = sw.changes(WORLD, random.Random(26))
    directly = [
        lambda: sw.write_policies(c.changed.policies, direct.policies),
        lambda: sw.write_registry(
            c.grown, direct.registry, only=(c.added[0].catalog, c.added[0].schema)
        ),
        lambda: sw.write_registry(
            c.shrunk, direct.registry, only=(c.dropped[0].catalog, c.dropped[0].schema)
        ),
    ]
    assert [label.split(" (")[0] for label, _ in staged] == [
        f"policy for group {c.group}",
        "100 tables added to one schema",
        f"{len(c.dropped)} tables of one schema dropped",
        "restored",
    ]
    for (_, make), write in zip(staged[:3], directly, strict=True):
        make()
        write()
        assert snapshot_of(files) == snapshot_of(direct)
    staged[-1][1]()
    assert snapshot_of(files) == original
    for _, make in staged:  # made again (as pdp_collections' rounds do): the same files
        make()
    assert snapshot_of(files) == original


def test_a_staged_schema_left_without_tables_is_removed(tmp_path: Path) -> None:
    files = sw.write_world(WORLD, tmp_path / "world")
    catalog, schema = WORLD.schemas()[0]
    every = [t for t in WORLD.tables if (t.catalog, t.schema) == (catalog, schema)]
    emptied = sw.with_tables(WORLD, dropped=every)
    make = sw.staged_schemas(emptied, files, tmp_path / "stage", every)
    assert (files.registry / f"{catalog}.{schema}.yaml").exists()
    make()
    assert not (files.registry / f"{catalog}.{schema}.yaml").exists()
