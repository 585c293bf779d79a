"""accessGrantMapping in the seed format, and what makes it invalid."""

from __future__ import annotations

import pytest

from pdp.config.errors import ConfigError
from pdp.config.mapping import parse_mapping
from pdp.core.model import Access

R, W, OWN = Access.READ, Access.WRITE, Access.OWN


def test_seed_custom_configuration():
    mapping, _ = parse_mapping(
        "accessGrantMapping:\n  WRITE: ['READ', 'WRITE', 'OWN']\n  READ: ['READ']\n", "m.yaml"
    )
    assert mapping.write == {R, W, OWN} and mapping.read == {R}


def test_a_missing_key_keeps_its_default():
    mapping, _ = parse_mapping("accessGrantMapping:\n  READ: [READ, OWN]\n", "m.yaml")
    assert mapping.read == {R, OWN} and mapping.write == {R, W}


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("accessGrantMapping:\n  WRITE: [READ, CREATE]\n", 2, "CREATE can never be granted"),
        ("accessGrantMapping:\n  READ: [READ]\n  WRITE: [WRITE]\n", 3, "must contain READ"),
        ("accessGrantMapping:\n  OWN: [READ]\n", 2, "unknown policy access type 'OWN'"),
        (
            "accessGrantMapping:\n  READ:\n    - READ\n    - SELECT\n",
            4,
            "unknown access value 'SELECT'",
        ),
        ("accessGrantMapping:\n  READ: READ\n", 2, "expected a list"),
        ("accessGrantMapping: [READ]\n", 1, "must be a mapping"),
        ("mapping:\n  READ: [READ]\n", 1, "expected a top-level 'accessGrantMapping:'"),
        ("accessGrantMapping:\n  READ: [READ\n", 3, "invalid YAML"),
        ("accessGrantMapping:\n  READ: [READ]\n  READ: [READ]\n", 3, "duplicate key 'READ'"),
    ],
)
def test_errors_name_file_line_and_value(text, line, fragment):
    with pytest.raises(ConfigError) as error:
        parse_mapping(text, "m.yaml")
    problem = error.value.problems[0]
    assert (problem.file, problem.line) == ("m.yaml", line)
    assert fragment in problem.message
