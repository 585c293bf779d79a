"""PostgreSQL governed views, for real: with the target's `policySchema`, a masked table gets a
view there showing every column, the masked ones as Trino masks them; each user reads it
through their own login. Issue 21's walk-through, the mask renderings value by value (NULLs,
unicode, negative numbers), drift, idempotence, and what is withheld."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import psycopg
import pytest
import yaml

from devstack.postgres import Postgres
from pdp.config.load import load_snapshot
from pdp.grants import apply, parse_grants, plan
from pdp.grants.model import Plan, Report
from tests.grants.pgdb import Database, throwaway
from tests.support.typed import typed_table

SCHEMA = "gov"


class Db(Database):
    def rows(self, user: str, sql: str) -> list[tuple[Any, ...]] | None:
        """What `user` reads through their own login, sorted; None when refused."""
        with self.connect(user) as conn:
            try:
                return sorted(conn.execute(sql).fetchall(), key=repr)
            except psycopg.errors.InsufficientPrivilege:
                return None

    def sync(self, masks: list[dict], filters: list[dict] | None = None) -> tuple[Report, Plan]:
        """Both users READ sales.payments and sales.typed; `masks` and `filters` on top."""
        on = [f"pg.{self.database}.sales.{t}" for t in ("payments", "typed")]
        config = {
            "connections": [
                {
                    "name": "pg",
                    "technology": "postgresql",
                    "status": "active",
                    "databases": [
                        {
                            "name": self.database,
                            "schemas": [{"name": "sales", "tables": ["payments", "typed"]}],
                        }
                    ],
                }
            ],
            "policies": [
                {
                    "name": "readers",
                    "access": "READ",
                    "who": {"users": [self.alice, self.bob]},
                    "what": {"dataSources": on},
                }
            ],
            "users": {self.alice: {}, self.bob: {}},
            "masks": masks,
            "rowFilters": filters or [],
        }
        (path := self.tmp / "policies.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
        target = {
            "name": "local-pg",
            "platform": "postgresql",
            "connections": ["pg"],
            "rolePrefix": self.prefix,
            "dsn": self.server.conninfo(),
            "policySchema": SCHEMA,
        }
        spec = parse_grants({"targets": [target]}, "targets.yaml").targets[0]
        snapshot = load_snapshot([path], None).value
        with spec.open() as opened:
            report = apply(opened, plan(opened, snapshot))
            return report, plan(opened, snapshot).plan


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory, pg: Postgres) -> Iterator[Db]:
    setup = (
        f"CREATE SCHEMA sales; CREATE SCHEMA {SCHEMA}",
        "REVOKE ALL ON SCHEMA public FROM PUBLIC",
        "CREATE TABLE sales.payments (id int, region text, amount numeric);"
        "INSERT INTO sales.payments VALUES (1, 'emea', 120), (2, 'amer', 80)",
        TYPED,
    )
    with throwaway(Db, pg, "views", tmp_path_factory.mktemp("pgview"), setup) as d:
        yield d


def _mask(name: str, columns: list[str], mask: object, table: str, db: Db) -> dict:
    return {
        "name": name,
        "status": "active",
        "columns": {"names": columns},
        "what": {"dataSources": [f"pg.{db.database}.sales.{table}"]},
        "mask": mask,
        "exceptFor": {"users": [db.bob]},
    }


def _issue_21(db: Db) -> tuple[list[dict], list[dict]]:
    emea = {
        "name": "emea-only",
        "status": "active",
        "what": {"dataSources": [f"pg.{db.database}.sales.payments"]},
        "where": "region = 'emea'",
        "exceptFor": {"users": [db.bob]},
    }
    return [_mask("amount-hidden", ["amount"], "null", "payments", db)], [emea]


def test_issue_21_alice_reads_the_emea_row_with_amount_null_through_the_governed_view(
    db: Db,
) -> None:
    masks, filters = _issue_21(db)
    report, again = db.sync(masks, filters)
    assert report.clean and again.empty, report
    view = f"{SCHEMA}.sales_payments"
    assert db.rows(db.alice, f"SELECT * FROM {view}") == [(1, "emea", None)]
    assert db.rows(db.bob, f"SELECT * FROM {view}") == [(1, "emea", 120), (2, "amer", 80)]
    # the table itself: alice's SELECT leaves the masked column out, row security filters
    assert db.rows(db.alice, "SELECT * FROM sales.payments") is None
    assert db.rows(db.alice, "SELECT id, region FROM sales.payments") == [(1, "emea")]
    # a user's own predicate cannot see the masked value or the filtered rows
    assert db.rows(db.alice, f"SELECT id FROM {view} WHERE amount > 0") == []
    assert db.rows(db.alice, f"SELECT count(*) FROM {view}") == [(1,)]
    role = f"{db.prefix}_user_{db.alice}"
    assert again.columns == (
        f'{role} on TABLE "{db.database}"."sales"."payments": amount left out (mask '
        f'\'amount-hidden\' on amount); shown masked in VIEW "{db.database}"."{SCHEMA}".'
        '"sales_payments"',
    )

    # a role the product does not manage, granted the view by hand, reads it masked and
    # filtered (it is no exempt user's role)
    other = f"{db.prefix}_other"
    with db.connect() as conn:
        conn.execute(f'CREATE ROLE "{other}" LOGIN')
        conn.execute(f'GRANT USAGE ON SCHEMA {SCHEMA} TO "{other}"')
        conn.execute(f'GRANT SELECT ON {view} TO "{other}"')
    try:
        assert db.rows(other, f"SELECT * FROM {view}") == [(1, "emea", None)]
    finally:
        with db.connect() as conn:
            conn.execute(f'DROP OWNED BY "{other}"; DROP ROLE "{other}"')

    # drift: the view edited by hand shows amount; the next sync puts it back, alone
    with db.connect() as conn:
        conn.execute(
            f"CREATE OR REPLACE VIEW {view} AS SELECT id, region, amount FROM sales.payments"
        )
        conn.execute(f"CREATE VIEW {SCHEMA}.by_hand AS SELECT 1 AS x")  # not ours: left alone
    assert db.rows(db.alice, f"SELECT amount FROM {view}") == [(120,), (80,)]
    report, again = db.sync(masks, filters)
    assert [s.subject for s in report.applied] == [
        f'VIEW "{db.database}"."{SCHEMA}"."sales_payments"'
    ]
    assert report.clean and again.empty
    assert db.rows(db.alice, f"SELECT * FROM {view}") == [(1, "emea", None)]
    # a security_barrier taken off by hand is drift too
    with db.connect() as conn:
        conn.execute(f"ALTER VIEW {view} RESET (security_barrier)")
    report, again = db.sync(masks, filters)
    assert len(report.applied) == 1 and report.clean and again.empty

    # a hand-made SELECT on the view for a managed role is a grant like any other: revoked
    with db.connect() as conn:
        conn.execute(f"DROP VIEW {view}; CREATE VIEW {view} AS SELECT 1 AS id")
    report, again = db.sync(masks, filters)
    assert report.clean and again.empty
    assert db.rows(db.alice, f"SELECT * FROM {view}") == [(1, "emea", None)]

    # a column added to the table: the view is made again with it, and granted again
    with db.connect() as conn:
        conn.execute("ALTER TABLE sales.payments ADD COLUMN note text DEFAULT 'n'")
    report, again = db.sync(masks, filters)
    assert report.clean and again.empty
    assert report.applied[0].text.startswith(f'DROP VIEW "{SCHEMA}"."sales_payments"; CREATE')
    assert db.rows(db.alice, f"SELECT * FROM {view}") == [(1, "emea", None, "n")]
    assert db.rows(db.bob, f"SELECT note FROM {view}") == [("n",), ("n",)]
    with db.connect() as conn:  # PostgreSQL keeps a column a view uses: the view goes first
        conn.execute(f"DROP VIEW {view}; ALTER TABLE sales.payments DROP COLUMN note")
    report, again = db.sync(masks, filters)
    assert report.clean and again.empty
    assert db.rows(db.alice, f"SELECT * FROM {view}") == [(1, "emea", None)]

    # the mask goes: the view goes (after its grants), the filter stays, by_hand stays
    report, again = db.sync([], filters)
    assert report.clean and again.empty
    assert db.rows(db.alice, "SELECT * FROM sales.payments") == [(1, "emea", 120)]
    with db.connect() as conn:
        views = conn.execute(
            "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            f"WHERE n.nspname = '{SCHEMA}'"
        ).fetchall()
        assert views == [("by_hand",)]
        conn.execute(f"DROP VIEW {SCHEMA}.by_hand")
    report, again = db.sync([])
    assert report.clean and again.empty


def test_a_mask_change_tightens_before_any_grant_and_an_exemption_loosens_last(db: Db) -> None:
    masks, filters = _issue_21(db)
    report, again = db.sync(masks, filters)
    assert report.clean and again.empty
    # bob loses his exemption from the mask: the view masks him before anything else runs
    masks[0].pop("exceptFor")
    report, again = db.sync(masks, filters)
    assert report.clean and again.empty
    phases = [s.phase.name for s in report.applied]
    assert phases[0] == "TIGHTEN" and "VIEW" in report.applied[0].subject, phases
    assert db.rows(db.bob, f"SELECT amount FROM {SCHEMA}.sales_payments") == [(None,), (None,)]
    # and gets it back: the view shows him amount only once his table grant is back (LOOSEN)
    masks[0]["exceptFor"] = {"users": [db.bob]}
    report, again = db.sync(masks, filters)
    assert report.clean and again.empty
    subjects = [(s.phase.name, s.subject.split(" ")[0]) for s in report.applied]
    assert subjects[-1] == ("LOOSEN", "VIEW"), subjects
    assert ("TIGHTEN", "VIEW") not in subjects  # nobody is masked more than now
    assert db.rows(db.bob, f"SELECT amount FROM {SCHEMA}.sales_payments") == [(120,), (80,)]

    # the same for the row filter: bob filtered first, unfiltered last
    filters[0].pop("exceptFor")
    report, again = db.sync(masks, filters)
    assert report.clean and again.empty
    assert report.applied[0].phase.name == "TIGHTEN"
    assert db.rows(db.bob, f"SELECT id FROM {SCHEMA}.sales_payments") == [(1,)]
    filters[0]["exceptFor"] = {"users": [db.bob]}
    report, again = db.sync(masks, filters)
    assert report.clean and again.empty
    # the view as it is filters bob as tightly as row security does until then: it is only
    # replaced after every revoke, with row security's policy narrowed
    views = [s for s in report.applied if s.subject.startswith("VIEW")]
    assert [s.phase.name for s in views] == ["LOOSEN"]
    assert report.applied[-1] is views[0] or report.applied[-1].phase.name == "LOOSEN"
    assert db.rows(db.bob, f"SELECT id FROM {SCHEMA}.sales_payments") == [(1,), (2,)]
    report, again = db.sync([])
    assert report.clean and again.empty


TYPED = typed_table("sales")
MASKS = [
    ("hashed", ["name", "code", "big", "n", "tag"], "hash"),
    ("first-two", ["city"], {"keepFirst": 2}),
    ("last-four", ["phone"], {"keepLast": 4}),
    ("tens", ["qty"], {"round": -1}),
    ("one-place", ["price"], {"round": 1}),
    ("hidden-note", ["note"], {"constant": "n/a"}),
    ("a-day", ["day"], {"constant": "2020-01-01"}),
    ("hidden-flag", ["flag"], "null"),
]


def _sha(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


def _trino(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """What Trino's masks (pdp.core.datapolicy) give for one row of sales.typed."""
    id_, name, code, big, n, _tag, city, phone, qty, price, *_, ratio = row  # constants: any

    def keep(value: str | None, count: int, last: bool, bound: int | None) -> str | None:
        if value is None:
            return None
        shown = "****"
        if len(value) > count:
            shown = "****" + value[-count:] if last else value[:count] + "****"
        return shown[:bound] if bound else shown

    def tens(value: int | None) -> int | None:
        if value is None:
            return None
        rounded = int(Decimal(value).quantize(Decimal("1E1"), rounding="ROUND_HALF_UP"))
        return rounded if -(2**31) <= rounded < 2**31 else None

    def place(value: Decimal | None) -> Decimal | None:
        if value is None:
            return None
        rounded = value.quantize(Decimal("0.1"), rounding="ROUND_HALF_UP")
        return rounded if abs(rounded) < 10**8 else None

    return (
        id_,
        None if name is None else _sha(name).hex().upper(),
        None if code is None else _sha(code).hex().upper()[:20],
        None if big is None else int.from_bytes(_sha(str(big))[:8], "big", signed=True),
        None if n is None else int.from_bytes(_sha(str(n))[:4], "big", signed=True),
        None,  # varchar(8): too short for a hash
        keep(city, 2, False, None),
        keep(phone, 4, True, 7),
        tens(qty),
        place(price),
        "n/a",
        date(2020, 1, 1),
        None,
        ratio,
    )


def test_each_mask_reads_natively_as_trino_masks_it(db: Db) -> None:
    """One value per mask function, with NULLs, unicode, negative numbers and values at the
    edges of their types: alice reads through the view what Trino's masks give (as the core
    defines them), bob the raw rows."""
    masks = [_mask(name, cols, mask, "typed", db) for name, cols, mask in MASKS]
    report, again = db.sync(masks)
    assert report.clean and again.empty and not again.withheld, report
    with db.connect() as conn:
        raw = sorted(conn.execute("SELECT * FROM sales.typed").fetchall(), key=repr)
    view = f"SELECT * FROM {SCHEMA}.sales_typed"
    assert db.rows(db.alice, view) == sorted((_trino(r) for r in raw), key=repr)
    assert db.rows(db.bob, view) == raw

    # rounding a double is not rendered (Trino rounds the binary value): alice gets no view,
    # with a reason; her column grants stay; bob keeps the view
    masks.append(_mask("ratio-rounded", ["ratio"], {"round": 1}, "typed", db))
    report, again = db.sync(masks)
    assert report.clean and again.empty
    role = f"{db.prefix}_user_{db.alice}"
    assert again.withheld == (
        f'{role} on VIEW "{db.database}"."{SCHEMA}"."sales_typed": mask \'ratio-rounded\' on '
        "ratio: no exact rendering on PostgreSQL for ratio double precision (the masked "
        "columns stay refused on the table)",
    )
    assert db.rows(db.alice, view) is None
    assert db.rows(db.alice, "SELECT id FROM sales.typed") == [(1,), (2,), (3,), (4,)]
    assert db.rows(db.bob, view) == raw
    report, again = db.sync([])
    assert report.clean and again.empty


def test_a_table_with_row_security_the_product_does_not_manage_gets_no_view(db: Db) -> None:
    """A view reads as its owner and would bypass those policies: alice keeps her column
    grants only, and the plan says why."""
    masks, _ = _issue_21(db)
    with db.connect() as conn:
        conn.execute("ALTER TABLE sales.payments ENABLE ROW LEVEL SECURITY")
        conn.execute("CREATE POLICY theirs ON sales.payments USING (id = 2)")
    try:
        report, again = db.sync(masks)
        assert report.clean and again.empty
        assert again.notes == (
            f'no governed view for TABLE "{db.database}"."sales"."payments": it has row '
            "security the product does not manage, which a view would bypass; masked columns "
            "stay refused",
        )
        assert db.rows(db.alice, "SELECT id, region FROM sales.payments") == [(2, "amer")]
        assert db.rows(db.alice, f"SELECT * FROM {SCHEMA}.sales_payments") is None
    finally:
        with db.connect() as conn:
            conn.execute("DROP POLICY theirs ON sales.payments")
            conn.execute("ALTER TABLE sales.payments DISABLE ROW LEVEL SECURITY")
    report, again = db.sync([])
    assert report.clean and again.empty


def test_one_change_that_tightens_and_loosens_runs_in_two_view_steps(db: Db) -> None:
    """A new mask for everyone and a new exemption for bob in one change: the view masks the
    new column before any grant, and shows bob the old one only after every revoke."""
    hidden = _mask("amount-hidden", ["amount"], "null", "payments", db)
    hidden.pop("exceptFor")
    report, again = db.sync([hidden])
    assert report.clean and again.empty
    hidden["exceptFor"] = {"users": [db.bob]}
    hashed = _mask("region-hashed", ["region"], "hash", "payments", db)
    hashed.pop("exceptFor")
    report, again = db.sync([hidden, hashed])
    assert report.clean and again.empty
    views = [s for s in report.applied if s.subject.startswith("VIEW")]
    assert [s.phase.name for s in views] == ["TIGHTEN", "LOOSEN"]
    bob = f"pg_has_role('{db.prefix}_user_{db.bob}', 'USAGE')"
    assert "upper(encode(sha256(" in views[0].text and bob not in views[0].text
    assert bob in views[1].text
    emea, amer = (hashlib.sha256(r).hexdigest().upper() for r in (b"emea", b"amer"))
    bob_reads = db.rows(db.bob, f"SELECT region, amount FROM {SCHEMA}.sales_payments")
    assert set(bob_reads or ()) == {(emea, 120), (amer, 80)}
    alice_reads = db.rows(db.alice, f"SELECT region, amount FROM {SCHEMA}.sales_payments")
    assert set(alice_reads or ()) == {(emea, None), (amer, None)}
    report, again = db.sync([])
    assert report.clean and again.empty
