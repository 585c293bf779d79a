"""Masks, row filters and column tags in the policy files: what they compile to, and every
problem reported with file and line."""

from __future__ import annotations

import pytest

from devstack.configs import make_tree
from pdp.config.errors import ConfigError
from pdp.core.model import MaskKind, table_key
from pdp.policy.builtin import is_builtin
from pdp.policy.model import PolicyStatus

REGISTRY = """
connections:
  - name: w
    technology: trino
    status: active
    databases:
      - name: hive
        schemas:
          - name: crm
            tables:
              - name: customers
                columns: {email: [PII.Email], ssn: PII, Name: [pii.name]}
              - orders
"""
CUSTOMERS = table_key("hive", "crm", "customers")


def tree(tmp_path, policies="policies: []\n", registry=REGISTRY):
    return make_tree(tmp_path, registry=registry, policies=policies, users="users: {}\n")


def test_column_tags_with_parents_on_the_registry(tmp_path):
    registry = tree(tmp_path).snapshot().registry
    assert registry.columns[CUSTOMERS] == {
        "email": frozenset({"pii", "pii.email"}),
        "ssn": frozenset({"pii"}),
        "name": frozenset({"pii", "pii.name"}),
    }


def test_every_mask_form(tmp_path):
    policies = """
masks:
  - {name: a, columns: {names: [x]}, mask: null}
  - {name: b, columns: {names: [x]}, mask: "NULL"}
  - {name: c, columns: {names: [x]}, mask: hash}
  - {name: d, columns: {names: [x]}, mask: {constant: "n/a"}}
  - {name: e, columns: {names: [x]}, mask: {keepLast: 4}}
  - {name: f, columns: {names: [x]}, mask: {keepFirst: 2}}
  - {name: g, columns: {names: [x]}, mask: {round: -2}, status: staged}
"""
    masking = {
        m.name: m for m in tree(tmp_path, policies).snapshot().masking if not is_builtin(m.name)
    }
    assert [(m.kind, m.value, m.count) for m in masking.values()] == [
        (MaskKind.NULL, None, 0),
        (MaskKind.NULL, None, 0),
        (MaskKind.HASH, None, 0),
        (MaskKind.CONSTANT, "n/a", 0),
        (MaskKind.KEEP_LAST, None, 4),
        (MaskKind.KEEP_FIRST, None, 2),
        (MaskKind.ROUND, None, -2),
    ]
    assert masking["g"].status is PolicyStatus.STAGED


def test_a_tag_only_mask_covers_only_tables_with_such_columns(tmp_path):
    policies = "masks:\n  - {name: m, columns: {tags: [PII.Email]}, mask: null}\n"
    snapshot = tree(tmp_path, policies).snapshot()
    assert snapshot.data_targets["m"] == {CUSTOMERS}


@pytest.mark.parametrize(
    ("policies", "line", "fragment"),
    [
        ("masks:\n  - {name: m, columns: {names: [x]}}\n", 2, "missing required key 'mask'"),
        ("masks:\n  - {name: m, columns: {names: [x]}, mask: blur}\n", 2, "unknown mask 'blur'"),
        (
            "masks:\n  - name: m\n    columns: {names: [x]}\n    mask: {keepLast: -1}\n",
            4,
            "keepLast: expected a whole number",
        ),
        ("masks:\n  - {name: m, mask: hash}\n", 2, "name columns or tags"),
        (
            "masks:\n  - {name: m, columns: {names: [x]}, mask: null}\n"
            "rowFilters:\n  - {name: m, where: 'x = 1'}\n",
            4,
            "defined twice",
        ),
        (
            "masks:\n  - name: m\n    columns: {names: [x]}\n    mask: null\n"
            "    exceptFor: {users: [a]}\n    onlyFor: {users: [b]}\n",
            6,
            "not both",
        ),
        (
            "masks:\n  - {name: m, columns: {names: [x]}, mask: null, exceptFor: {}}\n",
            2,
            "at least one",
        ),
        ("masks:\n  - {name: m, columns: {names: [x]}, mask: null, on: {}}\n", 2, "unknown key"),
        (
            "rowFilters:\n  - name: f\n    where: \"region = 'x'; DROP TABLE t\"\n",
            3,
            "';' is not allowed",
        ),
        (
            "rowFilters:\n  - name: f\n    where: region IN @attr(region)\n",
            3,
            "unknown placeholder",
        ),
        ('rowFilters:\n  - name: f\n    where: "x = \'a"\n', 3, "unterminated string"),
        ("rowFilters:\n  - {name: f}\n", 2, "missing required key 'where'"),
        (
            "rowFilters:\n  - name: f\n    where: x = 1\n    what: {dataSources: [a.b]}\n",
            4,
            "should look like",
        ),
    ],
)
def test_errors_name_file_and_line(tmp_path, policies, line, fragment):
    with pytest.raises(ConfigError) as error:
        tree(tmp_path, policies).snapshot()
    problem = error.value.problems[0]
    assert problem.file.endswith("policies.yaml") and problem.line == line, problem
    assert fragment in problem.message


@pytest.mark.parametrize("tags", ["[1]", "[[PII]]", "['']", "{a: b}"])
def test_bad_column_tags_name_the_line(tmp_path, tags):
    registry = REGISTRY.replace(
        "columns: {email: [PII.Email], ssn: PII, Name: [pii.name]}", f"columns: {{email: {tags}}}"
    )
    with pytest.raises(ConfigError) as error:
        tree(tmp_path, registry=registry).snapshot()
    problem = error.value.problems[0]
    assert problem.file.endswith("registry.yaml") and problem.line == 11
    assert "expected a list of tags" in problem.message
