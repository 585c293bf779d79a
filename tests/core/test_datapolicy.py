"""Masks and row filters in the pure core, as decision tables: precedence, exceptions, staged
policies, column types, and attribute substitution with hostile values."""

from __future__ import annotations

import dataclasses
import re

import pytest

from devstack.configs import make_tree
from pdp.core.datapolicy import (
    TemplateError,
    column_mask,
    mask_expression,
    parse_template,
    parse_type,
    render_filter,
    row_filters,
)
from pdp.core.decide import decide
from pdp.core.model import (
    Access,
    Identity,
    MaskKind,
    MaskRule,
    PolicyGrant,
    Registry,
    Request,
    Settings,
    TableRef,
    View,
    table_key,
)

T = table_key("hive", "crm", "customers")
ALICE = Identity("alice", frozenset({"analysts"}))
ADMIN = Identity("root")
COLUMNS = {T: {"email": frozenset({"pii", "pii.email"}), "ssn": frozenset({"pii"})}}
REGISTRY = Registry.of({T}, COLUMNS)
SETTINGS = Settings(admin=re.compile("root"))


def rule(policy: str, kind: MaskKind, columns=(), tags=(), value=None, count=0) -> MaskRule:
    return MaskRule(policy, kind, frozenset(columns), frozenset(tags), value, count)


def view(*rules: MaskRule, filters=None) -> View:
    """Every rule covers T and applies to the user; `filters`: policy -> rendered SQL."""
    filters = filters or {}
    registry = Registry.of({T}, COLUMNS, {T: rules}, {T: tuple(filters)})
    return View(SETTINGS, registry, {}, frozenset(r.policy for r in rules), filters)


# --- precedence: the most restrictive kind, then the policy name -----------------------------

PRECEDENCE = [
    # (rules on the column, winning policy)
    ([("a-round", MaskKind.ROUND), ("b-null", MaskKind.NULL)], "b-null"),
    ([("a-const", MaskKind.CONSTANT), ("z-hash", MaskKind.HASH)], "z-hash"),
    ([("a-reveal", MaskKind.KEEP_LAST), ("b-const", MaskKind.CONSTANT)], "b-const"),
    ([("b-hash", MaskKind.HASH), ("a-hash", MaskKind.HASH)], "a-hash"),
    ([("x-first", MaskKind.KEEP_FIRST), ("y-last", MaskKind.KEEP_LAST)], "y-last"),
    ([("only", MaskKind.ROUND)], "only"),
]


@pytest.mark.parametrize(("rules", "winner"), PRECEDENCE)
def test_precedence_most_restrictive_then_name(rules, winner):
    v = view(*(rule(name, kind, columns=["email"], value="x") for name, kind in rules))
    mask = column_mask(v, ALICE, T, "email", "varchar")
    assert mask is not None and mask.policy == winner
    assert set(mask.overridden) == {name for name, _ in rules} - {winner}


def test_tag_and_parent_tag_select_columns():
    v = view(rule("pii", MaskKind.NULL, tags=["pii"]))
    assert column_mask(v, ALICE, T, "email", "varchar") is not None
    assert column_mask(v, ALICE, T, "ssn", "varchar") is not None
    assert column_mask(v, ALICE, T, "name", "varchar") is None
    v = view(rule("email", MaskKind.NULL, tags=["pii.email"]))
    assert column_mask(v, ALICE, T, "ssn", "varchar") is None
    assert column_mask(v, ALICE, T, "EMAIL", "varchar") is not None  # names fold


def test_admins_get_no_masks_and_no_filters():
    v = view(rule("pii", MaskKind.NULL, tags=["pii"]), filters={"f": "(x = 1)"})
    assert column_mask(v, ADMIN, T, "email", "varchar") is None
    assert row_filters(v, ADMIN, T) == ()
    assert [f.expression for f in row_filters(v, ALICE, T)] == ["(x = 1)"]


def test_rules_of_policies_that_do_not_apply_to_the_user_are_ignored():
    v = view(rule("pii", MaskKind.NULL, tags=["pii"]))
    other = View(SETTINGS, v.registry, {}, frozenset({"another"}), {})
    assert column_mask(other, ALICE, T, "email", "varchar") is None
    registry = Registry.of({T}, COLUMNS, {}, {T: ("f", "g")})
    mine = View(SETTINGS, registry, {}, frozenset(), {"g": "(y = 2)"})
    assert [(f.policy, f.expression) for f in row_filters(mine, ALICE, T)] == [("g", "(y = 2)")]


def test_other_tables_are_not_masked():
    v = view(rule("pii", MaskKind.NULL, tags=["pii"]))
    assert column_mask(v, ALICE, table_key("hive", "crm", "other"), "email", "varchar") is None


# --- types: every mask has the column's type, or is NULL of it -------------------------------

TYPES = [
    # kind, value/count, column type, expected expression (with "c" the column)
    (MaskKind.NULL, None, "varchar", "CAST(NULL AS varchar)"),
    (MaskKind.NULL, None, "array(varchar)", "NULL"),
    (MaskKind.NULL, None, 'row("a" integer)', "NULL"),
    (
        MaskKind.NULL,
        None,
        "timestamp(3) with time zone",
        "CAST(NULL AS timestamp(3) with time zone)",
    ),
    (MaskKind.HASH, None, "varchar", 'CAST(to_hex(sha256(to_utf8("c"))) AS varchar)'),
    (
        MaskKind.HASH,
        None,
        "varchar(20)",
        'CAST(substr(to_hex(sha256(to_utf8("c"))), 1, 20) AS varchar(20))',
    ),
    (MaskKind.HASH, None, "varchar(8)", "CAST(NULL AS varchar(8))"),
    (MaskKind.HASH, None, "char(3)", "CAST(NULL AS char(3))"),
    (
        MaskKind.HASH,
        None,
        "bigint",
        'from_big_endian_64(substr(sha256(to_utf8(CAST("c" AS varchar))), 1, 8))',
    ),
    (
        MaskKind.HASH,
        None,
        "integer",
        'from_big_endian_32(substr(sha256(to_utf8(CAST("c" AS varchar))), 1, 4))',
    ),
    (MaskKind.HASH, None, "double", "CAST(NULL AS double)"),
    (MaskKind.HASH, None, "date", "CAST(NULL AS date)"),
    (MaskKind.CONSTANT, "n/a", "varchar", "CAST('n/a' AS varchar)"),
    (MaskKind.CONSTANT, "o'hara", "varchar(10)", "CAST('o''hara' AS varchar(10))"),
    (MaskKind.CONSTANT, "too long", "varchar(3)", "CAST(NULL AS varchar(3))"),
    (MaskKind.CONSTANT, "n/a", "integer", "CAST(NULL AS integer)"),
    (MaskKind.CONSTANT, 0, "integer", "CAST(0 AS integer)"),
    (MaskKind.CONSTANT, 300, "tinyint", "CAST(NULL AS tinyint)"),
    (MaskKind.CONSTANT, 1.5, "decimal(10,2)", "CAST(DECIMAL '1.5' AS decimal(10,2))"),
    (MaskKind.CONSTANT, 12345.0, "decimal(5,2)", "CAST(NULL AS decimal(5,2))"),
    (MaskKind.CONSTANT, 1e-05, "double", "CAST('1e-05' AS double)"),
    (MaskKind.CONSTANT, True, "boolean", "CAST(TRUE AS boolean)"),
    (MaskKind.CONSTANT, 1, "boolean", "CAST(NULL AS boolean)"),
    (MaskKind.CONSTANT, "1970-01-01", "date", "CAST('1970-01-01' AS date)"),
    (MaskKind.CONSTANT, "not a date", "date", "CAST(NULL AS date)"),
    (
        MaskKind.ROUND,
        -2,
        "bigint",
        'CASE WHEN round(CAST("c" AS decimal(38, 0)), -2) BETWEEN '
        "DECIMAL '-9223372036854775808' AND DECIMAL '9223372036854775807' "
        'THEN CAST(round(CAST("c" AS decimal(38, 0)), -2) AS bigint) END',
    ),
    (MaskKind.ROUND, 0, "integer", '"c"'),
    (
        MaskKind.ROUND,
        1,
        "decimal(10,2)",
        "CASE WHEN abs(round(CAST(\"c\" AS decimal(38, 2)), 1)) < DECIMAL '100000000' "
        'THEN CAST(round(CAST("c" AS decimal(38, 2)), 1) AS decimal(10,2)) END',
    ),
    (MaskKind.ROUND, 2, "decimal(10,2)", '"c"'),
    (MaskKind.ROUND, 0, "decimal(38,0)", '"c"'),
    (MaskKind.ROUND, -1, "decimal(38,0)", "CAST(NULL AS decimal(38,0))"),
    (MaskKind.ROUND, 0, "double", 'CAST(round("c", 0) AS double)'),
    (MaskKind.ROUND, 0, "varchar", "CAST(NULL AS varchar)"),
    (MaskKind.KEEP_LAST, 4, "bigint", "CAST(NULL AS bigint)"),
]


@pytest.mark.parametrize(("kind", "arg", "column_type", "expected"), TYPES)
def test_mask_expression_fits_the_type(kind, arg, column_type, expected):
    r = rule("p", kind, value=arg, count=arg if isinstance(arg, int) else 0)
    if kind is MaskKind.CONSTANT:
        r = rule("p", kind, value=arg)
    expression, note = mask_expression(r, "c", column_type)
    assert expression == expected
    fallback = expected.startswith("CAST(NULL") or expected == "NULL"
    assert bool(note) == (fallback and kind is not MaskKind.NULL)  # a fallback says why


def test_partial_reveal_keeps_last_characters_and_null():
    expression, _ = mask_expression(rule("p", MaskKind.KEEP_LAST, count=3), "user_name", "varchar")
    assert expression == (
        'CAST(CASE WHEN "user_name" IS NULL THEN NULL WHEN length("user_name") > 3 THEN '
        "concat('****', substr(\"user_name\", length(\"user_name\") - 3 + 1)) ELSE '****' END "
        "AS varchar)"
    )
    bounded, _ = mask_expression(rule("p", MaskKind.KEEP_FIRST, count=2), "c", "varchar(5)")
    assert bounded.startswith("CAST(substr(CASE") and bounded.endswith(", 1, 5) AS varchar(5))")


def test_identifiers_are_quoted():
    expression, _ = mask_expression(rule("p", MaskKind.HASH), 'we"ird col', "varchar")
    assert '"we""ird col"' in expression


@pytest.mark.parametrize(
    ("text", "base", "params"),
    [
        ("varchar", "varchar", ()),
        ("VARCHAR(20)", "varchar", (20,)),
        ("decimal(10, 2)", "decimal", (10, 2)),
        ("char(3)", "char", (3,)),
        ("timestamp(3)", "timestamp", (3,)),
        ("array(varchar)", "", ()),
        ("map(varchar, integer)", "", ()),
    ],
)
def test_parse_type(text, base, params):
    parsed = parse_type(text)
    assert (parsed.base, parsed.params) == (base, params)


# --- row filter templates ---------------------------------------------------------------------

HOSTILE = {"region": frozenset({"emea", "o'brien", "x'); DROP TABLE t; --", "a\\'b"})}


def test_attributes_become_quoted_literals():
    template = parse_template("region IN @attribute(region)")
    rendered = render_filter(template, "alice", frozenset(), HOSTILE)
    assert rendered == ("region IN ('a\\''b', 'emea', 'o''brien', 'x''); DROP TABLE t; --')")


def test_user_and_groups():
    template = parse_template("owner = @user OR team IN @groups")
    rendered = render_filter(template, "d'arcy", frozenset({"b", "a"}), {})
    assert rendered == "owner = 'd''arcy' OR team IN ('a', 'b')"


def test_no_values_match_no_row_instead_of_a_syntax_error():
    template = parse_template("region IN @attribute(region) AND team NOT IN @groups")
    assert render_filter(template, "u", frozenset(), {}) == (
        "region IN (NULL) AND team NOT IN (NULL)"
    )


def test_placeholders_inside_literals_and_quoted_identifiers_stay_text():
    template = parse_template("x = '@user' AND \"@groups\" = 'it''s @user'")
    assert render_filter(template, "alice", frozenset({"g"}), {}) == (
        "x = '@user' AND \"@groups\" = 'it''s @user'"
    )


@pytest.mark.parametrize(
    ("predicate", "problem"),
    [
        ("x = 1; DROP TABLE t", "';' is not allowed"),
        ("x = 1 -- comment", "comments"),
        ("x = 1 /* c */", "comments"),
        ("x = 'open", "unterminated string"),
        ('"open = 1', "unterminated identifier"),
        ("(x = 1", "unbalanced '('"),
        ("x = 1)", "unbalanced ')'"),
        ("x IN @attrs(region)", "unknown placeholder"),
        ("x = @username", "unknown placeholder"),
        ("   ", "empty"),
    ],
)
def test_bad_templates_are_rejected(predicate, problem):
    with pytest.raises(TemplateError, match=re.escape(problem)):
        parse_template(predicate)


def test_semicolon_inside_a_literal_is_allowed():
    assert parse_template("note <> 'a;b'") == ("note <> 'a;b'",)


# --- through the policy files: audience, staged, targets --------------------------------------

FILES = dict(
    registry="""
connections:
  - name: w
    technology: trino
    status: active
    databases:
      - name: hive
        schemas:
          - name: crm
            tables:
              - {name: customers, tags: [Customer], columns: {email: [PII.Email], ssn: [PII]}}
              - {name: orders}
""",
    policies="""
masks:
  - {name: pii-hash, columns: {tags: [PII]}, mask: hash, exceptFor: {groups: [privacy]}}
  - {name: ssn-null, columns: {names: [ssn]}, what: {tags: [Customer]}, mask: null,
     onlyFor: {attributes: {contractor: ["yes"]}}}
  - {name: email-staged, columns: {names: [email]}, mask: null, status: staged}
rowFilters:
  - {name: own-region, what: {dataSources: [w.hive.crm.orders]},
     where: "region IN @attribute(region)", exceptFor: {users: [boss]}}
  - {name: not-deleted, where: "deleted = false"}
""",
    users="""
users:
  carl: {attributes: {contractor: "yes", region: [emea]}}
  boss: {}
""",
)
ORDERS = table_key("hive", "crm", "orders")
CUSTOMERS = table_key("hive", "crm", "customers")

AUDIENCE = [
    # user, groups, column, expected policy (None: unmasked)
    ("alice", (), "email", "pii-hash"),
    ("alice", (), "ssn", "pii-hash"),
    ("alice", ("privacy",), "email", None),  # exceptFor by group (from Trino)
    ("alice", ("privacy",), "ssn", None),
    ("carl", (), "ssn", "ssn-null"),  # onlyFor by attribute, NULL beats hash
    ("carl", ("privacy",), "ssn", "ssn-null"),
    ("carl", (), "name", None),
]


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    return make_tree(tmp_path_factory.mktemp("dp"), **FILES).snapshot()


@pytest.mark.parametrize(("user", "groups", "column", "policy"), AUDIENCE)
def test_audience_of_masks(snapshot, user, groups, column, policy):
    identity = Identity(user, frozenset(groups))
    mask = column_mask(snapshot.view(Settings(), identity), identity, CUSTOMERS, column, "varchar")
    assert (mask.policy if mask else None) == policy


def test_staged_masks_apply_to_nobody(snapshot):
    assert "email-staged" in snapshot.data_targets
    for identity in (Identity("alice"), Identity("carl")):
        view_ = snapshot.view(Settings(), identity)
        assert "email-staged" not in view_.mask_policies
        assert all(r.policy != "email-staged" for rs in view_.registry.masks.values() for r in rs)


def test_row_filters_combine_and_are_rendered_per_user(snapshot):
    carl = Identity("carl")
    filters = row_filters(snapshot.view(Settings(), carl), carl, ORDERS)
    assert [(f.policy, f.expression) for f in filters] == [
        ("not-deleted", "(deleted = false)"),
        ("own-region", "(region IN ('emea'))"),
    ]
    stranger = Identity("stranger")
    filters = row_filters(snapshot.view(Settings(), stranger), stranger, ORDERS)
    assert [f.expression for f in filters] == ["(deleted = false)", "(region IN (NULL))"]
    boss = Identity("boss")
    assert [f.policy for f in row_filters(snapshot.view(Settings(), boss), boss, ORDERS)] == [
        "not-deleted"
    ]
    # `what` absent: every data source
    assert [f.policy for f in row_filters(snapshot.view(Settings(), boss), boss, CUSTOMERS)] == [
        "not-deleted"
    ]


# --- a cluster whose Trino does not ask for data policies ------------------------------------
# (pdp.trino.data.policy.uris=absent): Trino would read the table unfiltered and unmasked, so
# reading it is denied wherever a data policy applies; writing it where a row filter applies.

T_REF = TableRef(*T)
GRANTED = {T: (PolicyGrant("crm-writers", Access.WRITE),)}
NULL_EMAIL = rule("null-email", MaskKind.NULL, columns=["email"])
NULL_PHONE = rule("null-phone", MaskKind.NULL, columns=["phone"])  # no such column in T
OWNERS_SEE = MaskRule("new-columns", MaskKind.NULL, tags=frozenset({"pii"}), except_owners=True)
EMEA = {"own-region": "region = 'emea'"}

UNASKED = [
    # (operation, masks, row filters, URIs configured, owner, identity) -> (allowed, rule)
    ("SelectFromColumns", [NULL_EMAIL], {}, False, False, ALICE, (False, "data-policy-unasked")),
    ("SelectFromColumns", [], EMEA, False, False, ALICE, (False, "data-policy-unasked")),
    ("SelectFromColumns", [NULL_EMAIL], EMEA, True, False, ALICE, (True, "data-source")),
    ("SelectFromColumns", [], {}, False, False, ALICE, (True, "data-source")),
    ("SelectFromColumns", [NULL_PHONE], {}, False, False, ALICE, (True, "data-source")),
    ("SelectFromColumns", [OWNERS_SEE], {}, False, True, ALICE, (True, "data-source")),
    ("SelectFromColumns", [OWNERS_SEE], {}, False, False, ALICE, (False, "data-policy-unasked")),
    ("SelectFromColumns", [NULL_EMAIL], EMEA, False, False, ADMIN, (True, "admin")),
    ("DeleteFromTable", [], EMEA, False, False, ALICE, (False, "data-policy-unasked")),
    ("UpdateTableColumns", [], EMEA, False, False, ALICE, (False, "data-policy-unasked")),
    ("DeleteFromTable", [NULL_EMAIL], {}, False, False, ALICE, (True, "data-source")),
    ("InsertIntoTable", [], EMEA, False, False, ALICE, (True, "data-source")),
    ("ShowColumns", [NULL_EMAIL], EMEA, False, False, ALICE, (True, "data-source")),
    ("FilterColumns", [NULL_EMAIL], EMEA, False, False, ALICE, (True, "data-source")),
]


@pytest.mark.parametrize(
    ("operation", "masks", "filters", "uris", "owner", "identity", "expected"), UNASKED
)
def test_data_policies_trino_does_not_ask_for_deny_rows(
    operation, masks, filters, uris, owner, identity, expected
):
    registry = Registry.of({T}, COLUMNS, {T: tuple(masks)}, {T: tuple(filters)})
    v = View(
        dataclasses.replace(SETTINGS, data_policy_uris=uris),
        registry,
        GRANTED,
        frozenset(r.policy for r in masks),
        filters,
        frozenset({T}) if owner else frozenset(),
    )
    decision = decide(v, Request(identity, operation, T_REF))
    assert (decision.allowed, decision.rule) == expected
    if decision.rule == "data-policy-unasked":
        assert "pdp.trino.data.policy.uris=absent" in decision.reason
        assert "hive.crm.customers" in decision.reason


def test_the_denial_names_every_policy_trino_would_have_applied():
    registry = Registry.of({T}, COLUMNS, {T: (NULL_EMAIL,)}, {T: ("own-region",)})
    v = View(
        dataclasses.replace(SETTINGS, data_policy_uris=False),
        registry,
        GRANTED,
        frozenset({"null-email"}),
        EMEA,
    )
    decision = decide(v, Request(ALICE, "SelectFromColumns", T_REF))
    assert decision.reason.startswith(
        "data policies apply to 'alice' on hive.crm.customers (null-email, own-region), "
    )
    assert decision.policies == ("crm-writers",)


def test_metadata_tables_are_read_whatever_the_data_policy_uris():
    v = View(dataclasses.replace(SETTINGS, data_policy_uris=False), REGISTRY, {})
    columns = TableRef("hive", "information_schema", "columns")
    decision = decide(v, Request(ALICE, "SelectFromColumns", columns))
    assert (decision.allowed, decision.rule) == (True, "metadata")
