"""`pdp requests ...` against a running PDP (the fake platform behind it). While the built-in New
Column Added policy is staged a column added on the platform is tagged but opens no request;
once the policy files activate it (hot reload), the next added column comes back from object
sync as a pending request that its owner lists and validates."""

from __future__ import annotations

import time

from devstack import replica
from devstack.replica import Replica, write_world

ACTIVE = "builtins:\n  New Column Added: active\n"


def test_the_owner_lists_and_validates_a_new_column_from_the_cli(tmp_path):
    world = tmp_path / "world.json"
    write_world(world, {"cat": {"sales": {"orders": [["id", "bigint"]]}}})
    pdp = Replica(tmp_path, f"sqlite:///{tmp_path}/store.db", world, "cli")

    cli = pdp.cli

    try:
        done = cli("connections", "register", "hc", "--technology", "trino", "--endpoint",
                   "host=fake", "--active", "--activate-new")  # fmt: skip
        assert done.returncode == 0, done.stderr
        granted = cli("connections", "grant", "hc/cat/sales", "alice", "DataOwner")
        assert granted.returncode == 0, granted.stderr
        assert cli("requests", "list").stdout.strip() == "no requests"

        columns = [["id", "bigint"], ["memo", "varchar"]]
        write_world(world, {"cat": {"sales": {"orders": columns}}})
        assert pdp.sync("hc")["state"] == "completed"  # staged: memo tagged New, no request
        memo = pdp.api.get("/data/object/hc/cat/sales/orders").json()["columns"][1]
        assert (memo["name"], memo["tags"]) == ("memo", ["New"])
        assert cli("requests", "list", "--all").stdout.strip() == "no requests"

        before = pdp.revision()
        pdp.tree.write("policies.yaml", replica.POLICIES + ACTIVE)
        deadline = time.monotonic() + 20
        while pdp.revision() == before:
            assert time.monotonic() < deadline, "the policy edit was not picked up"
            time.sleep(0.1)
        write_world(world, {"cat": {"sales": {"orders": [*columns, ["note", "varchar"]]}}})
        assert pdp.sync("hc")["state"] == "completed"
        listed = cli("requests", "list", user="alice")
        assert listed.returncode == 0, listed.stderr
        (line,) = listed.stdout.splitlines()
        request_id = line.split()[0]
        assert line.split() == [
            request_id,
            "pending",
            "column",
            "added",
            "hc/cat/sales/orders",
            "note",
        ]

        refused = cli("requests", "validate", request_id, user="bob")
        assert refused.returncode == 1 and "HTTP 403" in refused.stderr
        validated = cli("requests", "validate", request_id, user="alice")
        assert validated.returncode == 0, validated.stderr
        assert validated.stdout.strip() == (
            f"request {request_id}: column note of hc/cat/sales/orders validated"
        )
        twice = cli("requests", "validate", request_id, user="alice")
        assert twice.returncode == 1 and "HTTP 409" in twice.stderr
        assert cli("requests", "list", user="alice").stdout.strip() == "no requests"
        everything = cli("requests", "list", "--all", user="alice").stdout
        assert "validated" in everything
    finally:
        pdp.stop()
