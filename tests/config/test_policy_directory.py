"""A `policyFiles` entry naming a directory stands for the policy files in it (*.yaml, *.yml,
*.json, sorted by name), read again at every load: a large registry split into one file per
schema is configured by one line, and a file added to the directory is loaded."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from devstack.configs import make_tree
from pdp.config.errors import ConfigError
from pdp.config.load import load_snapshot
from pdp.config.watch import Watched
from pdp.policy import PolicySnapshot
from pdp.service.config import load_pdp_config
from pdp.service.reload import _policy_loader
from tests.config.test_watch_notify import SLOW_POLL, running, touch, until


def schema_file(schema: str, *tables: str) -> str:
    """One schema of the registry, the connection repeated as every split file does."""
    lines = "".join(f"              - {t}\n" for t in tables)
    return (
        "connections:\n  - name: trino-prod\n    technology: trino\n    status: active\n"
        "    databases:\n      - name: hive\n        schemas:\n"
        f"          - name: {schema}\n            tables:\n{lines}"
    )


def split_tree(root: Path) -> tuple[Path, list[Path]]:
    """registry/ holding two schema files, policies.yaml and users.yaml beside it."""
    tree = make_tree(root)
    tree.policy_files[0].unlink()
    registry = root / "registry"
    registry.mkdir()
    (registry / "hive.sales.yaml").write_text(schema_file("sales", "orders", "returns"))
    (registry / "hive.hr.yaml").write_text(schema_file("hr", "staff"))
    (registry / "notes.txt").write_text("not a policy file")
    return registry, tree.policy_files[1:]


def paths(snapshot: PolicySnapshot) -> list[str]:
    return sorted(s.path for s in snapshot.sources.values())


def pdp_yaml(root: Path, *entries: str) -> Path:
    listed = "".join(f"  - {e}\n" for e in entries)
    path = root / "pdp.yaml"
    path.write_text(f"listen: 127.0.0.1:50051\npolicyFiles:\n{listed}auth: none\n")
    return path


def test_a_directory_loads_the_same_as_listing_its_files_in_name_order(tmp_path):
    registry, rest = split_tree(tmp_path)
    listed = [registry / "hive.hr.yaml", registry / "hive.sales.yaml", *rest]
    by_directory = load_snapshot([registry, *rest], None).value
    by_files = load_snapshot(listed, None).value
    assert paths(by_directory) == [
        "trino-prod.hive.hr.staff",
        "trino-prod.hive.sales.orders",
        "trino-prod.hive.sales.returns",
    ]
    assert paths(by_directory) == paths(by_files)
    assert by_directory.revision == by_files.revision  # the same content, the same revision


def test_pdp_yaml_names_a_directory_and_the_pdp_loads_it(tmp_path):
    registry, _ = split_tree(tmp_path)
    config = load_pdp_config(pdp_yaml(tmp_path, "registry", "policies.yaml", "users.yaml"))
    assert config.policy_files[0] == registry
    snapshot = _policy_loader(config)().value
    assert "trino-prod.hive.hr.staff" in paths(snapshot)


def test_an_empty_directory_in_pdp_yaml_is_named_with_its_line(tmp_path):
    split_tree(tmp_path)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "README.txt").write_text("no policy file")
    path = pdp_yaml(tmp_path, "registry", "empty", "policies.yaml")
    with pytest.raises(ConfigError) as raised:
        load_pdp_config(path)
    assert str(raised.value) == (
        f"{path}:4: policyFiles[1]: 'empty': a directory with no policy file "
        "(*.yaml, *.yml or *.json) in it"
    )


def test_a_missing_directory_in_pdp_yaml_is_named_with_its_line(tmp_path):
    split_tree(tmp_path)
    path = pdp_yaml(tmp_path, "policies.yaml", "registry-gone")
    with pytest.raises(ConfigError) as raised:
        load_pdp_config(path)
    assert str(raised.value).startswith(f"{path}:4: policyFiles[1]: 'registry-gone': no such file")


def watched_split(root: Path) -> tuple[Watched[PolicySnapshot], list[PolicySnapshot], Path]:
    registry, rest = split_tree(root)
    entries = [registry, *rest]
    seen: list[PolicySnapshot] = []
    watched = Watched(
        "policy", entries, lambda: load_snapshot(entries, None), on_change=seen.append
    )
    return watched, seen, registry


def test_a_file_added_to_the_directory_or_removed_from_it_is_applied(tmp_path):
    watched, _, registry = watched_split(tmp_path)
    (registry / "hive.ops.yaml").write_text(schema_file("ops", "jobs"))
    assert watched.check()
    assert "trino-prod.hive.ops.jobs" in paths(watched.current)
    (registry / "hive.hr.yaml").unlink()
    assert watched.check()
    assert "trino-prod.hive.hr.staff" not in paths(watched.current)


def test_a_bad_file_in_the_directory_is_named_with_its_line_and_nothing_is_applied(tmp_path):
    watched, seen, registry = watched_split(tmp_path)
    good = watched.current
    (registry / "hive.ops.yaml").write_text(schema_file("ops", "jobs"))  # good, same edit
    bad = registry / "hive.sales.yaml"
    bad.write_text(schema_file("sales", "orders").replace("status: active", "status: maybe"))
    assert not watched.check()
    assert watched.current is good and seen == []
    [problem] = watched.rejected
    assert (problem.file, problem.line) == (str(bad), 4)
    assert "maybe" in problem.message


def test_a_directory_emptied_by_an_edit_is_rejected_and_the_last_good_one_kept(tmp_path):
    watched, _, registry = watched_split(tmp_path)
    good = watched.current
    for path in registry.glob("*.yaml"):
        path.unlink()
    assert not watched.check()
    assert watched.current is good
    assert [str(p) for p in watched.rejected] == [
        f"{registry}: a directory with no policy file (*.yaml, *.yml or *.json) in it"
    ]


async def test_the_watcher_sees_a_file_changed_in_the_directory(tmp_path):
    watched, _, registry = watched_split(tmp_path)
    changed = registry / "hive.hr.yaml"
    async with running(watched, SLOW_POLL):
        await asyncio.sleep(0)
        changed.write_text(schema_file("hr", "staff", "payroll"))
        await until(
            lambda: "trino-prod.hive.hr.payroll" in paths(watched.current),
            lambda: touch(changed),
        )


async def test_the_watcher_sees_a_file_added_to_the_directory(tmp_path):
    watched, _, registry = watched_split(tmp_path)
    added = registry / "hive.ops.yaml"
    async with running(watched, SLOW_POLL):
        await asyncio.sleep(0)
        added.write_text(schema_file("ops", "jobs"))
        await until(
            lambda: "trino-prod.hive.ops.jobs" in paths(watched.current), lambda: touch(added)
        )


def test_a_table_listed_in_two_files_of_the_directory_is_an_error_after_a_good_load(tmp_path):
    watched, _, registry = watched_split(tmp_path)
    good = watched.current
    (registry / "hive.sales2.yaml").write_text(schema_file("SALES", "Orders"))  # case folded
    assert not watched.check()
    assert watched.current is good
    assert [p.message for p in watched.rejected] == [
        "data source 'trino-prod.hive.SALES.Orders' is defined twice "
        "(names are compared case-insensitively)"
    ]
    (registry / "hive.sales2.yaml").write_text(schema_file("sales2", "orders"))
    assert watched.check()


def test_a_table_listed_twice_in_one_file_is_an_error(tmp_path):
    registry, rest = split_tree(tmp_path)
    (registry / "hive.hr.yaml").write_text(schema_file("hr", "staff", "Staff"))
    with pytest.raises(ConfigError, match=r"'trino-prod\.hive\.hr\.Staff' is defined twice"):
        load_snapshot([registry, *rest], None)
