"""Databricks Unity Catalog through the real SDK against the in-process fake workspace."""

from __future__ import annotations

import orjson
import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.core import Config

from pdp.core import Access
from pdp.grants import apply, plan
from pdp.grants.databricks import DatabricksDialect
from pdp.grants.dialect import Naming
from pdp.grants.retry import Backoff
from pdp.grants.targets import DatabricksTarget
from pdp.policy import ObjectType, PolicySnapshot, Technology
from tests.grants.fakes.uc_server import Fault, Workspace
from tests.grants.fakes.world import policy, snapshot, source

D = Technology.DATABRICKS
ORDERS, FILES, FOREIGN, ODD = (
    "uc.main.sales.orders",
    "uc.main.sales.files",
    "uc.main.sales.remote",
    "uc.main.ops.a#b",
)
SOURCES = [
    source(ORDERS, technology=D),
    source(FILES, ObjectType.VOLUME, D),
    source(FOREIGN, ObjectType.FOREIGN_TABLE, D),
    source(ODD, ObjectType.VIEW, D),
]
USERS = ("alice@example.com", "bob@example.com", "carol@example.com")
ALICE, BOB, CAROL = USERS


def world(*policies: object, retired: tuple = (), rev: str = "r1") -> PolicySnapshot:
    return snapshot(SOURCES, policies, USERS, rev, retired=retired)  # type: ignore[arg-type]


BASE = world(
    policy("writers", Access.WRITE, [ALICE], [ORDERS, FILES, FOREIGN]),
    policy("readers", Access.READ, [BOB], [FOREIGN, ODD]),
)


@pytest.fixture
def uc_workspace() -> Workspace:
    workspace = Workspace()
    workspace.principals |= {*USERS, "admins", "analysts"}
    workspace.add("table", "main.sales.orders")
    workspace.add("volume", "main.sales.files")
    workspace.add("table", "main.sales.remote")
    workspace.add("table", "main.ops.a#b")
    return workspace


def target(client: WorkspaceClient, settle: float = 0.0) -> DatabricksTarget:
    backoff = Backoff(sleep=lambda _: None)
    return DatabricksTarget(
        "uc", frozenset({"uc"}), client, DatabricksDialect(), backoff, 2, settle
    )


def sync(client: WorkspaceClient, snap: PolicySnapshot, settle: float = 0.0):
    t = target(client, settle)
    return apply(t, plan(t, snap), sleep=lambda _: None)


def _patch(text: str) -> tuple[str, object]:
    method, path, body = text.split(" ", 2)
    assert method == "PATCH"
    return path.removeprefix("/api/2.1/unity-catalog/permissions/"), orjson.loads(body)


def _adds(*pairs: tuple[str, list[str]]) -> dict[str, object]:
    return {"changes": [{"principal": p, "add": privileges} for p, privileges in pairs]}


def test_golden_patch_bodies(uc: tuple[Workspace, WorkspaceClient]) -> None:
    _, client = uc
    steps = plan(target(client), BASE).plan.steps
    assert [_patch(s.text) for s in steps] == [
        ("catalog/main", _adds((ALICE, ["USE_CATALOG"]), (BOB, ["USE_CATALOG"]))),
        ("schema/main.ops", _adds((BOB, ["USE_SCHEMA"]))),
        ("schema/main.sales", _adds((ALICE, ["USE_SCHEMA"]), (BOB, ["USE_SCHEMA"]))),
        ("table/main.ops.a%23b", _adds((BOB, ["SELECT"]))),
        ("volume/main.sales.files", _adds((ALICE, ["READ_VOLUME", "WRITE_VOLUME"]))),
        ("table/main.sales.orders", _adds((ALICE, ["SELECT", "MODIFY"]))),
        # The foreign table: bob's read policy grants SELECT, alice's write policy nothing.
        ("table/main.sales.remote", _adds((BOB, ["SELECT"]))),
    ]


def test_oauth_m2m_apply_then_a_second_run_makes_no_changing_call(
    uc: tuple[Workspace, WorkspaceClient],
) -> None:
    workspace, client = uc
    assert sync(client, BASE).clean
    assert workspace.held("table", "main.sales.orders") == {ALICE: {"SELECT", "MODIFY"}}
    assert workspace.held("table", "main.sales.remote") == {BOB: {"SELECT"}}
    assert workspace.held("volume", "main.sales.files") == {ALICE: {"READ_VOLUME", "WRITE_VOLUME"}}
    assert workspace.held("table", "main.ops.a#b") == {BOB: {"SELECT"}}
    assert workspace.held("catalog", "main") == {ALICE: {"USE_CATALOG"}, BOB: {"USE_CATALOG"}}

    paths = [e.path for e in workspace.log[:3]]
    assert paths == [
        "/.well-known/databricks-config",
        "/oidc/.well-known/oauth-authorization-server",
        "/oidc/v1/token",
    ]
    patches = len(workspace.patches())
    report = sync(client, BASE)
    assert report.applied == () and report.clean
    assert len(workspace.patches()) == patches
    gets = [e for e in workspace.log if e.method == "GET" and "permissions" in e.path]
    assert all(e.query["max_results"] == ["0"] for e in gets)


def test_personal_access_token_works_too(uc: tuple[Workspace, WorkspaceClient]) -> None:
    workspace, client = uc
    pat = WorkspaceClient(
        config=Config(host=client.config.host, token=workspace.pat, auth_type="pat")
    )
    assert sync(pat, BASE).clean
    assert workspace.token_requests == 0


def test_reads_follow_every_page_and_keep_what_is_not_ours(
    uc: tuple[Workspace, WorkspaceClient],
) -> None:
    workspace, client = uc
    workspace.page_size = 1
    orders = ("table", "main.sales.orders")
    workspace.grants[orders] = {
        "admins": {"ALL_PRIVILEGES"},
        "analysts": {"SELECT"},
        ALICE: {"MANAGE", "SOME_FUTURE_PRIVILEGE"},  # not ours / unknown to the SDK
        "zed@example.com": {"SELECT"},
        BOB: {"MODIFY"},  # ours, and on the last page: must be seen to be revoked
    }
    workspace.grants[("schema", "main.ops")] = {CAROL: {"USE_SCHEMA"}}  # granted by an admin
    report = sync(client, BASE)
    assert report.clean
    assert workspace.held(*orders) == {
        "admins": {"ALL_PRIVILEGES"},
        "analysts": {"SELECT"},
        ALICE: {"MANAGE", "SOME_FUTURE_PRIVILEGE", "SELECT", "MODIFY"},
        "zed@example.com": {"SELECT"},
    }
    assert workspace.held("schema", "main.ops")[CAROL] == {"USE_SCHEMA"}
    pages = [e for e in workspace.log if e.method == "GET" and e.path.endswith("main.sales.orders")]
    assert len(pages) >= 6  # an empty first page with a token, then one principal per page


def test_drift_is_repaired_removals_first_in_separate_patches(
    uc: tuple[Workspace, WorkspaceClient],
) -> None:
    workspace, client = uc
    sync(client, BASE)
    workspace.grants[("table", "main.sales.remote")][BOB] = {"MODIFY"}  # hand-made swap
    before = len(workspace.patches())
    report = sync(client, BASE)
    assert report.clean
    bodies = [e.body for e in workspace.patches()[before:]]
    assert bodies == [
        {"changes": [{"principal": BOB, "remove": ["MODIFY"]}]},
        {"changes": [{"principal": BOB, "add": ["SELECT"]}]},
    ]


def test_parent_privileges_are_reference_counted(uc: tuple[Workspace, WorkspaceClient]) -> None:
    workspace, client = uc
    sync(client, BASE)
    workspace.grants[("schema", "main.sales")][CAROL] = {"USE_SCHEMA"}  # an admin's, not ours
    only_bob = world(policy("readers", Access.READ, [BOB], [FOREIGN]))
    assert sync(client, only_bob).clean
    assert workspace.held("schema", "main.sales") == {BOB: {"USE_SCHEMA"}, CAROL: {"USE_SCHEMA"}}
    assert workspace.held("schema", "main.ops") == {}  # bob's last object there went away
    assert workspace.held("catalog", "main") == {BOB: {"USE_CATALOG"}}
    assert workspace.held("volume", "main.sales.files") == {}


def test_a_retired_data_source_loses_its_grants(uc: tuple[Workspace, WorkspaceClient]) -> None:
    workspace, client = uc
    sync(client, BASE)
    retired = source(ORDERS, technology=D)
    remaining = [s for s in SOURCES if s.path != ORDERS]
    snap = snapshot(
        remaining,
        [policy("writers", Access.WRITE, [ALICE], [ORDERS, FILES])],
        USERS,
        "r2",
        retired=[retired],
    )
    assert sync(client, snap).clean
    assert workspace.held("table", "main.sales.orders") == {}
    assert workspace.held("volume", "main.sales.files") == {ALICE: {"READ_VOLUME", "WRITE_VOLUME"}}


def test_rate_limits_and_server_errors_are_retried(uc: tuple[Workspace, WorkspaceClient]) -> None:
    workspace, client = uc
    workspace.faults += [
        Fault("GET", 429, "REQUEST_LIMIT_EXCEEDED", times=2, match="main.sales.orders"),
        Fault("PATCH", 503, "TEMPORARILY_UNAVAILABLE", match="/volume/"),
        Fault("PATCH", 500, "INTERNAL_ERROR", times=2, match="/table/main.sales.orders"),
    ]
    assert sync(client, BASE).clean
    assert all(f.times == 0 for f in workspace.faults)


def test_failures_are_isolated_per_object_and_per_principal(
    uc: tuple[Workspace, WorkspaceClient],
) -> None:
    workspace, client = uc
    workspace.principals.discard(BOB)  # unknown to the workspace
    workspace.faults.append(Fault("PATCH", 403, "PERMISSION_DENIED", match="/volume/"))
    workspace.objects["table"].discard("main.ops.a#b")  # registered but dropped
    report = sync(client, BASE)
    failed = {f.step.subject: f.error for f in report.failed}
    assert set(failed) == {
        "catalog main",
        "schema main.ops",
        "schema main.sales",
        "table main.ops.a#b",
        "volume main.sales.files",
        "table main.sales.remote",
    }
    assert "Could not find principal" in failed["catalog main"]
    assert "PermissionDenied" in failed["volume main.sales.files"]
    # Alice's grants went through despite bob's batch partner failing.
    assert workspace.held("catalog", "main") == {ALICE: {"USE_CATALOG"}}
    assert workspace.held("table", "main.sales.orders") == {ALICE: {"SELECT", "MODIFY"}}
    assert report.drift is not None and not report.drift.empty


def test_eventual_consistency_is_waited_out(uc: tuple[Workspace, WorkspaceClient]) -> None:
    workspace, client = uc
    workspace.stale_reads = 1
    report = sync(client, BASE, settle=5.0)
    assert report.clean


def test_principal_names_can_be_mapped_and_match_case_insensitively(
    uc: tuple[Workspace, WorkspaceClient],
) -> None:
    workspace, client = uc
    workspace.grants[("table", "main.sales.orders")] = {"Alice@Example.com": {"SELECT"}}
    dialect = DatabricksDialect(Naming(users={"alice": ALICE}))
    t = DatabricksTarget("uc", frozenset({"uc"}), client, dialect, Backoff(sleep=lambda _: None))
    snap = snapshot(SOURCES, [policy("w", Access.READ, ["alice"], [ORDERS])], ["alice"])
    planned = plan(t, snap).plan
    assert not any("main.sales.orders" in s.text for s in planned.steps)  # already held
    assert orjson.loads(planned.steps[0].text.split(" ", 2)[2]) == {
        "changes": [{"principal": ALICE, "add": ["USE_CATALOG"]}]
    }
