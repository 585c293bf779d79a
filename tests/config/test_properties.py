"""The cluster properties file: Java .properties syntax, the three immuta.* keys, exact errors."""

from __future__ import annotations

import pytest

from pdp.config.errors import ConfigError
from pdp.config.properties import parse_properties
from pdp.core.model import ALL_ACCESS, Access

R, W, OWN, C = Access.READ, Access.WRITE, Access.OWN, Access.CREATE


def parse(text: str):
    return parse_properties(text, "cluster.properties")


def test_absent_keys_take_the_seed_defaults():
    props, found = parse("")
    assert props.datasource_operations == {R, W}
    assert props.non_datasource_operations == ALL_ACCESS
    assert props.admin.fullmatch("anyone") is None
    assert not found.warnings


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("immuta.allowed.immuta.datasource.operations=READ,WRITE,OWN", {R, W, OWN}),
        ("immuta.allowed.immuta.datasource.operations = read , write", {R, W}),
        ("immuta.allowed.immuta.datasource.operations:READ", {R}),
        ("immuta.allowed.immuta.datasource.operations READ", {R}),
        ("immuta.allowed.immuta.datasource.operations=", set()),
        ("immuta.allowed.immuta.datasource.operations=READ,\\\n    WRITE", {R, W}),
    ],
)
def test_separators_continuations_and_empty_values(line, expected):
    props, _ = parse(line + "\n")
    assert props.datasource_operations == expected


def test_create_is_only_allowed_for_non_datasources():
    props, _ = parse("immuta.allowed.non.immuta.datasource.operations=CREATE\n")
    assert props.non_datasource_operations == {C}
    with pytest.raises(ConfigError) as error:
        parse("# header\n\nimmuta.allowed.immuta.datasource.operations=READ,CREATE\n")
    (problem,) = error.value.problems
    assert (problem.file, problem.line) == ("cluster.properties", 3)
    assert "'CREATE' is not allowed here" in problem.message


def test_unknown_access_value_names_file_line_and_value():
    with pytest.raises(ConfigError) as error:
        parse(
            "immuta.user.admin=root\nimmuta.allowed.non.immuta.datasource.operations=READ,DELETE\n"
        )
    assert str(error.value).startswith("cluster.properties:2: ")
    assert "'DELETE'" in str(error.value)


def test_bad_regex_is_an_error_with_its_line():
    with pytest.raises(ConfigError) as error:
        parse("! comment\nimmuta.user.admin=admin(\n")
    assert error.value.problems[0].line == 2
    assert "invalid regular expression 'admin('" in error.value.problems[0].message


def test_all_problems_are_reported_at_once():
    with pytest.raises(ConfigError) as error:
        parse("immuta.user.admin=[\nimmuta.allowed.immuta.datasource.operations=NOPE\n")
    assert [p.line for p in error.value.problems] == [1, 2]


def test_unknown_keys_of_an_immuta_plugin_file_are_only_warnings():
    props, found = parse(
        "access-control.name=immuta\nimmuta.endpoint=https://x\nimmuta.user.admin=a.*\n"
    )
    assert [w.line for w in found.warnings] == [1, 2]
    assert props.admin.fullmatch("admin")


def test_admin_regex_escapes_are_read_like_java():
    props, _ = parse("immuta.user.admin=svc_\\\\d+\n")  # file text: svc_\\d+  ->  svc_\d+
    assert props.admin.fullmatch("svc_42") and not props.admin.fullmatch("svc_x")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", True),  # absent: the cluster's Trino asks for row filters and masks
        ("pdp.trino.data.policy.uris=configured\n", True),
        ("pdp.trino.data.policy.uris = Absent\n", False),
    ],
)
def test_data_policy_uris_say_whether_trino_asks_for_data_policies(text, expected):
    props, found = parse(text)
    assert props.data_policy_uris is expected
    assert not found.warnings


def test_data_policy_uris_accept_only_their_two_values():
    with pytest.raises(ConfigError) as error:
        parse("immuta.user.admin=root\npdp.trino.data.policy.uris=no\n")
    assert str(error.value) == (
        "cluster.properties:2: pdp.trino.data.policy.uris: "
        "'no' is neither 'configured' nor 'absent'"
    )
