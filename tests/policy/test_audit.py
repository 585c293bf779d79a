"""The snapshot's warnings (pdp.policy.audit), as a table: a policy as written, and what the
compiled snapshot says about it. The directory is WORKED_USERS plus dana (attributes) and the
registry WORKED_REGISTRY (trino-prod.hive.sales.orders active)."""

from __future__ import annotations

import pytest

from devstack.configs import WORKED_REGISTRY, WORKED_USERS, make_tree
from pdp.config.load import load_policy_inputs
from pdp.control import compose
from pdp.policy import DataSource, Technology
from pdp.store import StoreRegistry

USERS = WORKED_USERS + "  dana: {attributes: {department: [finance]}}\n"
ORDERS = "what: {dataSources: [trino-prod.hive.sales.orders]}"
NOBODY = "(only a group Trino sends with a request can match it)"

CASES = [
    # a policy naming principals and objects that exist: nothing to say
    (f"policies: [{{name: p, access: READ, who: {{groups: [analysts]}}, {ORDERS}}}]", []),
    (f"policies: [{{name: p, access: READ, who: {{anyone: true}}, {ORDERS}}}]", []),
    (
        f"policies: [{{name: p, access: READ, who: {{groups: [finance-team]}}, {ORDERS}}}]",
        [f"policy 'p': group 'finance-team' has no member in the directory {NOBODY}"],
    ),
    (
        f"policies: [{{name: p, access: READ, who: {{users: [zed, bob]}}, {ORDERS}}}]",
        ["policy 'p': user 'zed' is not in the directory"],
    ),
    (
        "policies: [{name: p, access: READ, who: {attributes: {department: [finance, hr]}}, "
        f"{ORDERS}}}]",
        ["policy 'p': attribute department='hr': no user in the directory has it"],
    ),
    (
        "policies: [{name: p, access: READ, who: {users: [bob]}, "
        "what: {schemas: [trino-prod.hive.marketing]}}]",
        ["policy 'p' selects no data source (none of its `what` is registered)"],
    ),
    # staged policies too: they are meant to be made active
    (
        "policies: [{name: p, access: READ, status: staged, who: {groups: [auditors]}, "
        "what: {tags: [Nothing]}}]",
        [
            f"policy 'p': group 'auditors' has no member in the directory {NOBODY}",
            "policy 'p' selects no data source (none of its `what` is registered)",
        ],
    ),
    # data policies: their audience and their `what`
    (
        "masks: [{name: m, columns: {names: [amount]}, mask: null, "
        "exceptFor: {groups: [auditors]}}]",
        [f"mask 'm': group 'auditors' has no member in the directory {NOBODY}"],
    ),
    (
        "rowFilters: [{name: f, where: 'true', onlyFor: {users: [bob]}, "
        "what: {connections: [snowflake-prod]}}]",
        ["row filter 'f' selects no data source (none of its `what` is registered)"],
    ),
]


@pytest.mark.parametrize(("policies", "warnings"), CASES)
def test_the_snapshot_warns_of_what_matches_nothing(tmp_path, policies, warnings):
    tree = make_tree(tmp_path, registry=WORKED_REGISTRY, policies=policies + "\n", users=USERS)
    assert list(tree.snapshot().warnings) == warnings


def test_without_a_directory_principals_are_not_checked(tmp_path):
    policies = f"policies: [{{name: p, access: READ, who: {{groups: [trino-only]}}, {ORDERS}}}]\n"
    tree = make_tree(tmp_path, policies=policies, users="")
    assert tree.snapshot().warnings == ()


def test_a_store_data_source_is_a_selected_object(tmp_path):
    """Computed on the composed snapshot: a policy on a connection only the store holds
    selects nothing from the files alone, and something once the store's sources are in."""
    policies = "policies: [{name: p, access: READ, who: {users: [bob]}, what: {connections: [pg]}}]"
    tree = make_tree(tmp_path, policies=policies + "\n")
    nothing = "policy 'p' selects no data source (none of its `what` is registered)"
    assert tree.snapshot().warnings == (nothing,)
    inputs = load_policy_inputs(tree.policy_files, None).value
    invoices = DataSource("pg", Technology.POSTGRESQL, "demo", "public", "invoices")
    store = StoreRegistry(1, sources=(invoices,), connections={"pg": Technology.POSTGRESQL})
    assert compose(inputs, store).warnings == ()
