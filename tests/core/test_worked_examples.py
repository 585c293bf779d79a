"""decisions.md section 5, row by row, through the real configuration loaders."""

from __future__ import annotations

import pytest

from devstack.configs import make_tree
from pdp.core import Identity, Request, TableRef, decide

ORDERS = TableRef("hive", "sales", "orders")
SCRATCH = TableRef("hive", "sales", "scratch")


def check(tree, user: str, groups: list[str], operation: str, table: TableRef):
    identity = Identity(user, frozenset(groups))
    view = tree.snapshot().view(tree.settings(), identity)
    return decide(view, Request(identity, operation, table))


@pytest.mark.parametrize(
    ("user", "groups", "operation", "table", "allowed", "rule", "policies"),
    [
        (
            "alice",
            ["analysts"],
            "SelectFromColumns",
            ORDERS,
            True,
            "data-source",
            ("orders-readers",),
        ),
        ("alice", ["analysts"], "InsertIntoTable", ORDERS, False, "data-source", ()),
        ("bob", [], "InsertIntoTable", ORDERS, True, "data-source", ("orders-writers",)),
        ("bob", [], "DropTable", ORDERS, False, "data-source", ()),
        ("carol", [], "SelectFromColumns", ORDERS, False, "data-source", ()),
        ("carol", [], "SelectFromColumns", SCRATCH, True, "non-data-source", ()),
        (
            "carol",
            [],
            "CreateTable",
            TableRef("hive", "sales", "new_t"),
            True,
            "non-data-source",
            (),
        ),
    ],
)
def test_worked_example(tmp_path, user, groups, operation, table, allowed, rule, policies):
    decision = check(make_tree(tmp_path), user, groups, operation, table)
    assert (decision.allowed, decision.rule, decision.policies) == (allowed, rule, policies)


def test_filter_tables_keeps_only_what_carol_may_read(tmp_path):
    tree = make_tree(tmp_path)
    kept = [
        i
        for i, t in enumerate([ORDERS, SCRATCH])
        if check(tree, "carol", [], "FilterTables", t).allowed
    ]
    assert kept == [1]


def test_groups_from_trino_are_merged_with_the_directory(tmp_path):
    # carol is not in the directory's analysts group, but Trino says she is.
    assert check(make_tree(tmp_path), "carol", ["analysts"], "SelectFromColumns", ORDERS).allowed


def test_own_mapped_to_write_and_allowed_lets_bob_drop(tmp_path):
    tree = make_tree(
        tmp_path,
        mapping="accessGrantMapping:\n  WRITE: [READ, WRITE, OWN]\n  READ: [READ]\n",
        properties="immuta.allowed.immuta.datasource.operations=READ,WRITE,OWN\n",
    )
    decision = check(tree, "bob", [], "DropTable", ORDERS)
    assert decision.allowed and decision.policies == ("orders-writers",)


def test_own_mapped_but_not_allowed_on_the_cluster_is_denied_and_says_why(tmp_path):
    tree = make_tree(tmp_path, mapping="accessGrantMapping:\n  WRITE: [READ, WRITE, OWN]\n")
    decision = check(tree, "bob", [], "DropTable", ORDERS)
    assert not decision.allowed
    assert "immuta.allowed.immuta.datasource.operations" in decision.reason
    assert decision.policies == ("orders-writers",)


def test_cluster_mapping_overrides_the_pdp_mapping(tmp_path):
    tree = make_tree(
        tmp_path,
        mapping="accessGrantMapping:\n  WRITE: [READ, WRITE]\n",
        cluster_mapping="accessGrantMapping:\n  WRITE: [READ, WRITE, OWN]\n",
        properties="immuta.allowed.immuta.datasource.operations=READ,WRITE,OWN\n",
    )
    assert check(tree, "bob", [], "DropTable", ORDERS).allowed


def test_closed_non_datasource_operations(tmp_path):
    tree = make_tree(tmp_path, properties="immuta.allowed.non.immuta.datasource.operations=READ\n")
    assert not check(tree, "carol", [], "CreateTable", TableRef("hive", "sales", "new_t")).allowed
    assert check(tree, "carol", [], "SelectFromColumns", SCRATCH).allowed
