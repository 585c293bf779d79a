"""Hot reload keeps the last good configuration when an edit is bad."""

from __future__ import annotations

import os

import pytest

from devstack.configs import make_tree
from pdp.config.errors import ConfigError
from pdp.config.load import load_snapshot
from pdp.config.watch import Watched


def touch_later(path) -> None:
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10_000_000))


def test_bad_edit_is_rejected_and_the_last_good_snapshot_keeps_serving(tmp_path):
    tree = make_tree(tmp_path)
    seen = []
    watched = Watched(
        "policy",
        tree.policy_files,
        lambda: load_snapshot(tree.policy_files, None),
        on_change=seen.append,
    )
    good = watched.current
    tree.write("policies.yaml", "policies:\n  - name: x\n    access: SOMETIMES\n")
    touch_later(tree.policy_files[1])
    assert watched.check() is False
    assert watched.current is good and seen == []
    assert "SOMETIMES" in str(watched.last_error)

    tree.write("policies.yaml", "policies: []\n")
    touch_later(tree.policy_files[1])
    assert watched.check() is True
    assert watched.current.revision != good.revision and seen == [watched.current]
    assert watched.last_error is None


def test_no_good_configuration_at_start_refuses_to_start(tmp_path):
    tree = make_tree(tmp_path, policies="policies: {}\n")
    with pytest.raises(ConfigError):
        Watched("policy", tree.policy_files, lambda: load_snapshot(tree.policy_files, None))


def test_missing_file_is_an_error_naming_it(tmp_path):
    with pytest.raises(ConfigError) as error:
        load_snapshot([tmp_path / "nope.yaml"], None)
    assert "nope.yaml: cannot read" in str(error.value)
