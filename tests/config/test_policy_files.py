"""The registry / policy / directory YAML: inheritance, targets, subjects, and errors."""

from __future__ import annotations

import pytest

from devstack.configs import make_tree
from pdp.config.errors import ConfigError
from pdp.core.model import Access

REGISTRY = """
connections:
  - name: sf
    technology: snowflake
    status: active
    databases:
      - name: ANALYTICS
        trinoCatalog: snowflake_analytics
        schemas:
          - name: PUBLIC
            tables:
              - {name: ORDERS, tags: [Finance.Orders]}
              - {name: GONE, deleted: true}
          - name: ARCHIVE
            status: inactive
            tables:
              - OLD
              - {name: KEPT, status: active, type: VIEW}
  - name: quiet
    technology: trino
    databases:
      - name: lake
        schemas:
          - {name: s, tables: [t]}
"""


def tree(tmp_path, policies="policies: []\n", users="users: {}\n", registry=REGISTRY):
    return make_tree(tmp_path, registry=registry, policies=policies, users=users)


def test_status_is_inherited_and_can_be_overridden_below(tmp_path):
    sources = tree(tmp_path).snapshot().sources
    assert sorted(sources) == ["sf.analytics.archive.kept", "sf.analytics.public.orders"]
    assert sources["sf.analytics.archive.kept"].type == "VIEW"


def test_a_connection_without_status_registers_nothing(tmp_path):
    assert not any(p.startswith("quiet.") for p in tree(tmp_path).snapshot().sources)


def test_trino_catalog_alias_makes_a_platform_table_visible_to_trino(tmp_path):
    snapshot = tree(tmp_path).snapshot()
    assert ("snowflake_analytics", "public", "orders") in snapshot.registry.tables


POLICIES = """
policies:
  - name: by-tag
    access: READ
    who: {attributes: {dept: [finance]}}
    what: {tags: [finance]}
  - name: by-schema
    access: WRITE
    who: {groups: [etl], users: [zoe], match: all}
    what: {schemas: [sf.ANALYTICS.ARCHIVE]}
  - name: everyone-staged
    access: READ
    status: staged
    who: {anyone: true}
    what: {connections: [sf]}
"""
USERS = """
users:
  fin: {attributes: {dept: finance}}
  zoe: {groups: [etl]}
  yan: {groups: [etl]}
"""


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ("fin", {"sf.analytics.public.orders": [("by-tag", Access.READ)]}),
        ("zoe", {"sf.analytics.archive.kept": [("by-schema", Access.WRITE)]}),
        ("yan", {}),  # match: all needs both the group and the user name
        ("nobody", {}),  # staged policies grant nothing
    ],
)
def test_who_and_what(tmp_path, user, expected):
    snapshot = tree(tmp_path, POLICIES, USERS).snapshot()
    grants = snapshot.grants(snapshot.subject(user))
    assert {path: [(g.policy, g.access) for g in gs] for path, gs in grants.items()} == expected


@pytest.mark.parametrize(
    ("policies", "line", "fragment"),
    [
        (
            "policies:\n  - name: p\n    access: OWN\n    who: {anyone: true}\n",
            3,
            "unknown policy access type 'OWN'",
        ),
        (
            "policies:\n  - name: p\n    access: READ\n    who: {anyone: yes please}\n",
            4,
            "who.anyone: expected true or false",
        ),
        (
            "policies:\n  - name: p\n    access: READ\n    what: {schemas: [a.b]}\n",
            4,
            "'a.b' should look like 'connection.database.schema'",
        ),
        ("policies:\n  - name: p\n    access: READ\n    whom: {}\n", 4, "unknown key 'whom'"),
        (
            "policies:\n  - name: p\n    access: READ\n  - name: p\n    access: READ\n",
            4,
            "policy 'p' is defined twice",
        ),
        ("policies:\n  - access: READ\n", 2, "missing required key 'name'"),
        (
            "policies:\n  - name: p\n    access: READ\n    status: maybe\n",
            4,
            "unknown value 'maybe'",
        ),
    ],
)
def test_policy_errors(tmp_path, policies, line, fragment):
    with pytest.raises(ConfigError) as error:
        tree(tmp_path, policies).snapshot()
    problem = error.value.problems[0]
    assert problem.file.endswith("policies.yaml") and problem.line == line
    assert fragment in problem.message


@pytest.mark.parametrize(
    ("registry", "line", "fragment"),
    [
        ("connections:\n  - name: c\n    status: active\n", 2, "missing required key 'technology'"),
        ("connections:\n  - name: c\n    technology: oracle\n", 3, "unknown value 'oracle'"),
        (
            "connections:\n  - {name: c, technology: trino}\n  - {name: C, technology: trino}\n",
            3,
            "defined twice",
        ),
        (
            "connections:\n  - name: c\n    technology: trino\n    databases:\n      - name: d\n"
            "        trinoCatalog: x\n",
            6,
            "databases are its catalogs already",
        ),
        (
            "connections:\n  - name: c\n    technology: trino\n    databases:\n      - name: d\n"
            "        schemas:\n          - name: s\n            tables:\n              - {name: t, "
            "type: SYNONYM}\n",
            9,
            "unknown value 'SYNONYM'",
        ),
    ],
)
def test_registry_errors(tmp_path, registry, line, fragment):
    with pytest.raises(ConfigError) as error:
        tree(tmp_path, registry=registry).snapshot()
    problem = error.value.problems[0]
    assert problem.file.endswith("registry.yaml") and problem.line == line
    assert fragment in problem.message


def test_a_policy_targeting_nothing_is_a_warning(tmp_path):
    from pdp.config.load import load_snapshot

    t = tree(tmp_path, "policies:\n  - {name: p, access: READ, who: {anyone: true}}\n")
    warnings = load_snapshot(t.policy_files, None).warnings
    assert [w.message for w in warnings] == ["policies[0]: policy 'p' targets no data source"]


def test_revision_changes_with_content_only(tmp_path):
    t = tree(tmp_path)
    first = t.snapshot().revision
    assert t.snapshot().revision == first
    t.write("users.yaml", "users: {new: {}}\n")
    assert t.snapshot().revision != first


def _catalog(name: str, tables: str, technology: str = "trino") -> str:
    return (
        f"connections:\n  - name: big\n    technology: {technology}\n    status: active\n"
        f"    databases:\n      - name: {name}\n        schemas:\n"
        f"          - {{name: s, tables: [{tables}]}}\n"
    )


def test_a_connection_split_over_files_loads_as_one_file_and_a_bad_edit_names_its_line(
    tmp_path,
):
    """A registry of many tables may be split over files by database (one connection in each),
    each parsed again only when it changes; what loads equals the one-file form, and a bad edit
    in one file is an error at its line, nothing applied."""
    from pdp.config.load import PolicyReader, load_policy_inputs

    one = tmp_path / "one.yaml"
    one.write_text(_catalog("a", "t1, t2") + _catalog("b", "t3").split("databases:\n", 1)[1])
    split = [tmp_path / "a.yaml", tmp_path / "b.yaml"]
    split[0].write_text(_catalog("a", "t1, t2"))
    split[1].write_text(_catalog("b", "t3"))
    reader = PolicyReader()
    whole = load_policy_inputs([one], None).value.compile()
    parts = reader.load(split, None).value.compile()
    assert set(parts.sources) == set(whole.sources) == {"big.a.s.t1", "big.a.s.t2", "big.b.s.t3"}
    assert parts.registry.tables == whole.registry.tables

    split[1].write_text(_catalog("b", "t3, t4"))  # a table added: one file parsed again
    assert "big.b.s.t4" in reader.load(split, None).value.compile().sources

    split[1].write_text(_catalog("b", "t3", technology="snowflake"))
    with pytest.raises(ConfigError) as error:
        reader.load(split, None)
    (problem,) = error.value.problems
    assert problem.file.endswith("b.yaml") and problem.line == 3
    assert "connection 'big' is trino in another file" in problem.message

    split[1].write_text(_catalog("b", "t3").replace("status: active", "status: [active"))
    with pytest.raises(ConfigError) as error:
        reader.load(split, None)
    assert error.value.problems[0].file.endswith("b.yaml")
    assert error.value.problems[0].line is not None
