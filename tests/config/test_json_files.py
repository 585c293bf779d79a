"""Configuration files written as JSON (which is YAML) read as the same YAML would: the same
values, every error and warning at its file:line, duplicate keys refused."""

from __future__ import annotations

import json

import pytest
import yaml

from devstack.configs import make_tree
from pdp.config.errors import ConfigError
from tests.config.test_policy_files import REGISTRY


def as_json(text: str) -> str:
    """The YAML document `text`, written as indented JSON."""
    return json.dumps(yaml.safe_load(text), indent=2) + "\n"


def line_with(text: str, fragment: str, nth: int = 1) -> int:
    """The line number of the `nth` line of `text` holding `fragment`."""
    lines = [n for n, line in enumerate(text.splitlines(), 1) if fragment in line]
    return lines[nth - 1]


def problems(tmp_path, **files: str) -> list[str]:
    with pytest.raises(ConfigError) as error:
        make_tree(tmp_path, **files).snapshot()
    return [str(p) for p in error.value.problems]


def test_a_json_registry_compiles_to_the_same_snapshot_as_its_yaml(tmp_path):
    (tmp_path / "yaml").mkdir()
    (tmp_path / "json").mkdir()
    from_yaml = make_tree(tmp_path / "yaml", registry=REGISTRY).snapshot()
    from_json = make_tree(tmp_path / "json", registry=as_json(REGISTRY)).snapshot()
    assert from_json.sources == from_yaml.sources
    assert from_json.registry == from_yaml.registry
    assert from_json.policies == from_yaml.policies


@pytest.mark.parametrize(
    ("registry", "fragment", "nth", "message"),
    [
        (
            "connections:\n  - {name: c, technology: oracle}\n",
            '"technology"',
            1,
            "connections[0].technology: unknown value 'oracle' (expected one of",
        ),
        (
            "connections:\n  - {name: c, technology: trino}\n  - {name: C, technology: trino}\n",
            '"name"',
            2,
            "connections[1]: connection 'C' is defined twice",
        ),
        (
            "connections:\n  - name: c\n    technology: trino\n    databases:\n      - name: d\n"
            "        schemas:\n          - name: s\n            tables:\n              - {name: t, "
            "type: SYNONYM}\n",
            '"type"',
            1,
            "connections[0].databases[0].schemas[0].tables[0].type: unknown value 'SYNONYM'",
        ),
    ],
)
def test_an_error_in_a_json_registry_names_its_file_and_line(
    tmp_path, registry, fragment, nth, message
):
    text = as_json(registry)
    [problem] = problems(tmp_path, registry=text)
    where = f"{tmp_path / 'registry.yaml'}:{line_with(text, fragment, nth)}: "
    assert problem.startswith(where + message)


def test_a_warning_in_a_json_policy_file_names_its_line(tmp_path):
    from pdp.config.load import load_snapshot

    text = '{\n  "policies": [\n    {"name": "p", "access": "READ", "who": {"anyone": true}}\n'
    text += "  ]\n}\n"
    tree = make_tree(tmp_path, policies=text)
    [warning] = load_snapshot(tree.policy_files, None).warnings
    assert (warning.line, warning.message) == (3, "policies[0]: policy 'p' targets no data source")


def test_a_json_file_repeating_a_key_is_refused_as_yaml_refuses_it(tmp_path):
    text = '{\n  "connections": [\n    {"name": "c", "technology": "trino",\n     "name": "d"}\n'
    text += "  ]\n}\n"
    assert problems(tmp_path, registry=text) == [
        f"{tmp_path / 'registry.yaml'}:4: invalid YAML: duplicate key 'name'"
    ]


@pytest.mark.parametrize(
    "text",
    [
        # a float: YAML 1.1 reads 1e5 as a string, JSON as a number
        '{"users": {"u": {"attributes": {"level": [1e5]}}}}\n',
        # a string holding `":`, so keys cannot be counted from the text alone
        '{"users": {"u\\":": {"attributes": {"level": ["x\\":y"]}}}}\n',
    ],
)
def test_json_that_reads_otherwise_as_yaml_reads_as_yaml(tmp_path, text):
    from pdp.config.yamlsource import load_yaml

    assert load_yaml(text, "f") == yaml.safe_load(text)
