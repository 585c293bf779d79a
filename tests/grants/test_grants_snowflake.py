"""Snowflake: golden SQL, the statement grammar, and reconciliation against the grant ledger."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from snowflake.connector.errors import OperationalError

from pdp.core import Access
from pdp.grants import Phase, apply, plan
from pdp.grants.dialect import NameCase, Naming
from pdp.grants.retry import Backoff
from pdp.grants.snowflake import SnowflakeDialect, qualified, quote, split_name
from pdp.grants.targets import RetryingSession, SnowflakeTarget, snowflake_transient
from pdp.policy import ObjectType, PolicySnapshot
from tests.grants.fakes.ledger import Crash, Ledger, parse, show_name
from tests.grants.fakes.world import policy, snapshot, source

ORDERS, V, EVENTS = "sf.sales.public.orders", "sf.sales.public.v", "sf.sales.ops.events"
SOURCES = [
    source(ORDERS),
    source(V, ObjectType.VIEW),
    source(EVENTS, ObjectType.EVENT_TABLE),
]


def world(
    *policies: object, users: tuple[str, ...] = ("alice", "bob"), rev: str = "r1"
) -> PolicySnapshot:
    return snapshot(SOURCES, policies, users, rev)  # type: ignore[arg-type]


def ledger(layout: str = "legacy") -> Ledger:
    book = Ledger(layout=layout)
    book.users |= {"ALICE", "BOB", "MALLORY"}
    book.add_object("TABLE", "SALES", "PUBLIC", "ORDERS")
    book.add_object("VIEW", "SALES", "PUBLIC", "V")
    book.add_object("EVENT TABLE", "SALES", "OPS", "EVENTS")
    return book


def target(book: Ledger) -> SnowflakeTarget:
    return SnowflakeTarget("sf", frozenset({"sf"}), book, SnowflakeDialect())


def sync(book: Ledger, snap: PolicySnapshot):
    t = target(book)
    return apply(t, plan(t, snap))


BASE = world(
    policy("writers", Access.WRITE, ["alice"], [ORDERS, V]),
    policy("readers", Access.READ, ["bob"], [V, EVENTS]),
)


def test_golden_sql_from_an_empty_account() -> None:
    steps = plan(target(ledger()), BASE).plan.steps
    assert [s.text for s in steps] == [
        'CREATE ROLE IF NOT EXISTS "PDP_USER_ALICE"',
        'CREATE ROLE IF NOT EXISTS "PDP_USER_BOB"',
        'GRANT USAGE ON DATABASE "SALES" TO ROLE "PDP_USER_ALICE"',
        'GRANT USAGE ON SCHEMA "SALES"."PUBLIC" TO ROLE "PDP_USER_ALICE"',
        'GRANT USAGE ON DATABASE "SALES" TO ROLE "PDP_USER_BOB"',
        'GRANT USAGE ON SCHEMA "SALES"."OPS" TO ROLE "PDP_USER_BOB"',
        'GRANT USAGE ON SCHEMA "SALES"."PUBLIC" TO ROLE "PDP_USER_BOB"',
        'GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON TABLE "SALES"."PUBLIC"."ORDERS" '
        'TO ROLE "PDP_USER_ALICE"',
        'GRANT SELECT ON VIEW "SALES"."PUBLIC"."V" TO ROLE "PDP_USER_ALICE"',
        'GRANT SELECT ON EVENT TABLE "SALES"."OPS"."EVENTS" TO ROLE "PDP_USER_BOB"',
        'GRANT SELECT ON VIEW "SALES"."PUBLIC"."V" TO ROLE "PDP_USER_BOB"',
        'GRANT ROLE "PDP_USER_ALICE" TO USER "ALICE"',
        'GRANT ROLE "PDP_USER_BOB" TO USER "BOB"',
    ]
    assert [s.phase for s in steps] == sorted(s.phase for s in steps)


def test_quoting_is_exact_and_reversible() -> None:
    assert quote('we"ird') == '"we""ird"'
    assert qualified(("Mixed", "odd.schema", "t")) == '"Mixed"."odd.schema"."t"'
    assert split_name('SALES."odd.schema"."we""ird"') == ("SALES", "odd.schema", 'we"ird')


@given(st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=3))
def test_show_grants_names_parse_back(parts: list[str]) -> None:
    assert split_name(show_name(tuple(parts))) == tuple(parts)


def test_registry_names_fold_like_unquoted_identifiers_unless_exact() -> None:
    odd = source("sf.Sales.my schema.Orders")
    assert SnowflakeDialect().securable(odd).name == ("SALES", "my schema", "ORDERS")
    exact = SnowflakeDialect(naming=Naming(NameCase.EXACT))
    assert exact.securable(odd).name == ("Sales", "my schema", "Orders")
    assert SnowflakeDialect(naming=Naming(users={"alice": "A.SMITH"})).member("alice") == (
        "USER",
        "A.SMITH",
    )
    with pytest.raises(ValueError, match="plain identifier"):
        SnowflakeDialect(prefix='X"; DROP')


def test_every_statement_fits_the_strict_grammar() -> None:
    book = ledger()
    sync(book, BASE)
    changed = world(policy("readers", Access.READ, ["alice"], [ORDERS]), users=("alice",))
    steps = plan(target(book), changed).plan.steps
    assert steps, "the change must revoke and grant something"
    for step in [*plan(target(ledger()), BASE).plan.steps, *steps]:
        assert parse(step.text) is not None, step.text
    assert parse('GRANT SELECT ON TABEL "A"."B"."C" TO ROLE "R"') is None  # typo rejected


@pytest.mark.parametrize("layout", ["legacy", "2026_06"])
def test_second_run_changes_nothing(layout: str) -> None:
    book = ledger(layout)
    assert sync(book, BASE).clean
    count = book.changing
    again = sync(book, BASE)
    assert again.applied == () and again.clean and book.changing == count
    assert book.can("ALICE", "INSERT", "SALES", "PUBLIC", "ORDERS")
    assert book.can("BOB", "SELECT", "SALES", "OPS", "EVENTS")
    assert not book.can("BOB", "SELECT", "SALES", "PUBLIC", "ORDERS")


@pytest.mark.parametrize("layout", ["legacy", "2026_06"])
def test_revoking_a_view_names_it_a_view_in_either_layout(layout: str) -> None:
    book = ledger(layout)
    sync(book, BASE)
    narrower = world(
        policy("writers", Access.WRITE, ["alice"], [ORDERS, V]),
        policy("readers", Access.READ, ["bob"], [EVENTS]),
    )
    report = sync(book, narrower)
    assert [s.text for s in report.applied] == [
        'REVOKE SELECT ON VIEW "SALES"."PUBLIC"."V" FROM ROLE "PDP_USER_BOB"',
        'REVOKE USAGE ON SCHEMA "SALES"."PUBLIC" FROM ROLE "PDP_USER_BOB"',
    ]
    assert report.clean


def test_drift_made_by_hand_is_repaired_and_nothing_else_is_touched() -> None:
    book = ledger()
    sync(book, BASE)
    book.roles |= {"ANALYST", "SYSADMIN"}
    book.execute('GRANT INSERT ON TABLE "SALES"."PUBLIC"."ORDERS" TO ROLE "PDP_USER_BOB"')
    book.execute('REVOKE SELECT ON VIEW "SALES"."PUBLIC"."V" FROM ROLE "PDP_USER_ALICE"')
    book.execute('GRANT ROLE "PDP_USER_ALICE" TO USER "MALLORY"')
    # Not ours: the account's role hierarchy, another role's grant, a privilege outside the
    # vocabulary, OWNERSHIP.
    book.execute('GRANT ROLE "PDP_USER_ALICE" TO ROLE "SYSADMIN"')
    book.execute('GRANT SELECT ON TABLE "SALES"."PUBLIC"."ORDERS" TO ROLE "ANALYST"')
    book.execute('GRANT REFERENCES ON TABLE "SALES"."PUBLIC"."ORDERS" TO ROLE "PDP_USER_BOB"')
    book.grants.add(("OWNERSHIP", ("SALES", "PUBLIC", "V"), "PDP_USER_ALICE", "SYSADMIN"))
    before = book.changing

    report = sync(book, BASE)
    assert sorted(s.text for s in report.applied) == sorted(
        [
            'REVOKE INSERT ON TABLE "SALES"."PUBLIC"."ORDERS" FROM ROLE "PDP_USER_BOB"',
            'GRANT SELECT ON VIEW "SALES"."PUBLIC"."V" TO ROLE "PDP_USER_ALICE"',
            'REVOKE ROLE "PDP_USER_ALICE" FROM USER "MALLORY"',
        ]
    )
    assert book.changing == before + 3 and report.clean
    assert ("SELECT", ("SALES", "PUBLIC", "ORDERS")) in book.held("ANALYST")
    assert ("REFERENCES", ("SALES", "PUBLIC", "ORDERS")) in book.held("PDP_USER_BOB")
    assert ("OWNERSHIP", ("SALES", "PUBLIC", "V")) in book.held("PDP_USER_ALICE")
    assert 'REVOKE ROLE "PDP_USER_ALICE" FROM ROLE "SYSADMIN"' not in book.log


def test_parent_usage_goes_with_the_last_object_in_it() -> None:
    book = ledger()
    both = world(policy("w", Access.READ, ["alice"], [ORDERS, V]), users=("alice",))
    sync(book, both)
    one = world(policy("w", Access.READ, ["alice"], [ORDERS]), users=("alice",))
    assert [s.text for s in sync(book, one).applied] == [
        'REVOKE SELECT ON VIEW "SALES"."PUBLIC"."V" FROM ROLE "PDP_USER_ALICE"'
    ]
    none = world(users=("alice",))
    texts = [s.text for s in sync(book, none).applied]
    assert texts == [
        'REVOKE SELECT ON TABLE "SALES"."PUBLIC"."ORDERS" FROM ROLE "PDP_USER_ALICE"',
        'REVOKE ROLE "PDP_USER_ALICE" FROM USER "ALICE"',
        'REVOKE USAGE ON DATABASE "SALES" FROM ROLE "PDP_USER_ALICE"',
        'REVOKE USAGE ON SCHEMA "SALES"."PUBLIC" FROM ROLE "PDP_USER_ALICE"',
    ]
    assert book.held("PDP_USER_ALICE") == set()


def test_a_user_who_left_loses_everything() -> None:
    book = ledger()
    sync(book, BASE)
    gone = world(policy("readers", Access.READ, ["bob"], [V, EVENTS]), users=("bob",))
    assert sync(book, gone).clean
    assert book.held("PDP_USER_ALICE") == set()
    assert not any(h[0] == "PDP_USER_ALICE" for h in book.holders)
    assert book.can("BOB", "SELECT", "SALES", "PUBLIC", "V")


def test_one_failing_object_does_not_stop_the_others() -> None:
    book = ledger()
    del book.objects[("SALES", "OPS", "EVENTS")]  # dropped in Snowflake, still registered
    report = sync(book, BASE)
    assert [f.step.subject for f in report.failed] == [
        'EVENT TABLE "SALES"."OPS"."EVENTS" (PDP_USER_BOB)'
    ]
    assert "does not exist or not authorized" in report.failed[0].error
    assert book.can("BOB", "SELECT", "SALES", "PUBLIC", "V")
    assert report.drift is not None
    assert [s.text for s in report.drift.steps] == [report.failed[0].step.text]
    assert not report.clean


def _privileges(book: Ledger) -> set[tuple[str, str, tuple[str, ...]]]:
    return {(role, p, n) for p, n, role, _ in book.grants} | {
        (role, "MEMBER", (who,)) for role, _, who in book.holders
    }


CHANGED = world(  # alice and bob swap schemas; bob gains write
    policy("writers", Access.READ, ["alice"], [EVENTS]),
    policy("readers", Access.WRITE, ["bob"], [ORDERS]),
    rev="r2",
)


def test_crash_mid_apply_never_widens_access_and_a_rerun_converges() -> None:
    new_book = ledger()
    sync(new_book, CHANGED)
    new = _privileges(new_book)
    fresh = ledger()
    sync(fresh, BASE)
    steps = plan(target(fresh), CHANGED).plan.steps
    assert {s.phase for s in steps} >= {Phase.REVOKE, Phase.GRANT, Phase.REVOKE_PARENT}
    for crash_after in range(len(steps)):
        book = ledger()
        sync(book, BASE)
        old = _privileges(book)
        book.crash_after = book.changing + crash_after
        with pytest.raises(Crash):
            apply(target(book), plan(target(book), CHANGED))
        held = _privileges(book)
        assert held <= old | new, crash_after  # never more than either revision allowed
        # Fail closed: no moment mixes access only the old revision gave with access only the
        # new one gives (parent USAGE alone opens no data).
        old_only = {x for x in held - new if x[1] != "USAGE"}
        new_only = {x for x in held - old if x[1] != "USAGE"}
        assert not (old_only and new_only), (crash_after, old_only, new_only)

        book.crash_after = None
        assert sync(book, CHANGED).clean
        assert _privileges(book) == new
        assert plan(target(book), CHANGED).plan.empty


def test_users_mapping_to_one_role_get_nothing() -> None:
    snap = world(policy("r", Access.READ, ["ann", "ANN"], [ORDERS]), users=("ann", "ANN"))
    planned = plan(target(ledger()), snap).plan
    assert planned.empty
    assert any("map to 'PDP_USER_ANN'" in note for note in planned.notes)


def test_network_errors_are_retried_and_sql_errors_are_not() -> None:
    book = ledger()
    flaky = {"left": 2}

    def fail(sql: str) -> Exception | None:
        if sql.startswith("GRANT SELECT ON VIEW") and flaky["left"]:
            flaky["left"] -= 1
            return OperationalError(msg="HTTP 503: service unavailable", errno=250003)
        return None

    book.fail = fail
    sleeps: list[float] = []
    session = RetryingSession(book, Backoff(sleep=sleeps.append), snowflake_transient)
    t = SnowflakeTarget("sf", frozenset({"sf"}), session, SnowflakeDialect())
    report = apply(t, plan(t, BASE))
    assert report.clean and sleeps == [0.5, 1.0]
