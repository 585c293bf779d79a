"""A non-Trino connection is governed in Trino only through the catalog that exposes each of its
databases (`trinoCatalogs`): settable at registration and changeable with PUT
/data/connection/{key}, proposed at registration from Trino's catalog files, and reported
where it is missing (the connection, the object, the sync job, /health)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from pdp.control.catalogs import propose
from pdp.policy.model import DataSource, Technology
from pdp.store import read_registry
from tests.control.adminkit import PG


def activate_sales(api) -> dict:
    """Activate hold/sales (its two tables become data sources) and sync the connection."""
    assert (
        api.call("PUT", "/data/settings/pg/hold/sales", json={"isActive": True}).status_code == 200
    )
    return api.wait(api.call("POST", "/data/crawl/pg").json()["jobId"])


def test_an_unmapped_active_data_source_is_reported_everywhere(api):
    answer = api.register(PG)
    assert answer["trinoCatalogs"] == {}
    assert "control.trinoCatalogFiles is not set" in answer["trinoCatalogsProposal"]
    job = activate_sales(api)
    assert job["stats"]["notGovernedInTrino"] == 2
    connection = api.call("GET", "/data/connection/pg").json()
    assert connection["notGovernedInTrino"] == {"count": 2, "databases": ["hold"]}
    table = api.call("GET", "/data/object/pg/hold/sales/orders").json()
    assert table["trinoCatalog"] is None
    assert table["notGovernedInTrino"]["count"] == 1
    lake = api.call("GET", "/data/object/pg/lake").json()
    assert lake["notGovernedInTrino"]["count"] == 0


def test_the_mapping_is_changed_with_put_and_the_report_follows(api):
    api.register(PG)
    activate_sales(api)
    answer = api.call("PUT", "/data/connection/pg", json={"trinoCatalogs": {"hold": "pgcat"}})
    assert answer.status_code == 200, answer.text
    assert answer.json()["settings"]["trinoCatalogs"] == {"hold": "pgcat"}
    assert answer.json()["notGovernedInTrino"] == {"count": 0, "databases": []}
    table = api.call("GET", "/data/object/pg/hold/sales/orders").json()
    assert table["trinoCatalog"] == "pgcat"
    job = api.wait(api.call("POST", "/data/crawl/pg").json()["jobId"])
    assert "notGovernedInTrino" not in job["stats"]
    cleared = api.call("PUT", "/data/connection/pg", json={"trinoCatalogs": {}}).json()
    assert "trinoCatalogs" not in cleared["settings"]
    assert cleared["notGovernedInTrino"]["count"] == 2


def test_a_mapping_given_at_registration_is_kept_and_a_bad_one_refused(api):
    body = {**PG, "connection": {**PG["connection"], "trinoCatalogs": {"hold": "pgcat"}}}
    answer = api.register(body)
    assert "trinoCatalogsProposal" not in answer
    assert api.call("GET", "/data/connection/pg").json()["settings"]["trinoCatalogs"] == {
        "hold": "pgcat"
    }
    refused = api.call("PUT", "/data/connection/pg", json={"trinoCatalogs": {"hold": ""}})
    assert refused.status_code == 400
    assert refused.json()["error"]["field"] == "trinoCatalogs"


def test_a_trino_connection_takes_no_mapping(api):
    api.register()
    refused = api.call("PUT", "/data/connection/hc", json={"trinoCatalogs": {"hold": "x"}})
    assert refused.status_code == 400
    assert "databases are its catalogs" in refused.json()["error"]["message"]


def test_registration_proposes_the_catalogs_of_trino_that_point_at_the_same_host(api, tmp_path):
    catalogs = tmp_path / "catalog"
    catalogs.mkdir()
    (catalogs / "shop.properties").write_text(
        "connector.name=postgresql\nconnection-url=jdbc:postgresql://127.0.0.1:54329/hold\n"
    )
    (catalogs / "other.properties").write_text(
        "connector.name=postgresql\nconnection-url=jdbc:postgresql://db.example:54329/lake\n"
    )
    (catalogs / "memory.properties").write_text("connector.name=memory\n")
    api.plane.trino_catalog_files = catalogs
    answer = api.register(PG)
    assert answer["trinoCatalogs"] == {"hold": "shop"}
    assert str(catalogs) in answer["trinoCatalogsProposal"]
    table = api.call("GET", "/data/object/pg/hold/sales/orders").json()
    assert table["trinoCatalog"] == "shop"


@pytest.mark.parametrize(
    ("url", "endpoint", "expected"),
    [
        ("jdbc:postgresql://localhost/demo", {"host": "127.0.0.1"}, {"demo": "c"}),
        ("jdbc:postgresql://db:5433/demo?ssl=true", {"host": "DB", "port": 5433}, {"demo": "c"}),
        ("jdbc:postgresql://db:5433/demo", {"host": "db"}, {}),  # another port
        ("jdbc:postgresql://db/", {"host": "db"}, {}),  # no database
        ("jdbc:mysql://db/demo", {"host": "db"}, {}),
    ],
)
def test_the_proposal_matches_host_port_and_database(tmp_path: Path, url, endpoint, expected):
    (tmp_path / "c.properties").write_text(f"connector.name=postgresql\nconnection-url={url}\n")
    assert propose(Technology.POSTGRESQL, endpoint, tmp_path).catalogs == expected


def test_no_proposal_for_other_technologies(tmp_path: Path):
    proposal = propose(Technology.SNOWFLAKE, {"account": "a"}, tmp_path)
    assert proposal.catalogs == {} and "give trinoCatalogs" in proposal.source


# --- who may map a catalog: a mapping decides who governs the catalog's tables in Trino -------

CREATOR_PG = {**PG, "connection": {**PG["connection"], "trinoCatalogs": {"hold": "hold"}}}


def test_a_creator_cannot_map_a_catalog_that_a_trino_connection_governs(api):
    """The attack: a CREATE_DATA_SOURCE user registers a database of their own onto the catalog
    the Trino connection governs, then would make themselves Data Owner of its tables."""
    api.register()  # hc, a Trino connection listing the catalogs hold and lake
    refused = api.call("POST", "/data/connection", "creator", json=CREATOR_PG)
    assert refused.status_code == 403, refused.text
    error = refused.json()["error"]
    assert error["permission"] == "GOVERNANCE"
    assert "'hold' is governed by the Trino connection 'hc'" in error["message"]
    assert api.call("GET", "/data/connection/pg").status_code == 404  # nothing registered


def test_an_infrastructure_admin_cannot_remap_onto_a_governed_catalog(api):
    api.register()
    assert api.call("POST", "/data/connection", "creator", json=PG).status_code == 201
    api.runner.join()
    for catalog in ("hold", "HOLD"):
        refused = api.call(
            "PUT", "/data/connection/pg", "creator", json={"trinoCatalogs": {"hold": catalog}}
        )
        assert refused.status_code == 403, refused.text
    assert "trinoCatalogs" not in api.call("GET", "/data/connection/pg").json()["settings"]
    free = api.call(
        "PUT", "/data/connection/pg", "creator", json={"trinoCatalogs": {"hold": "mine"}}
    )
    assert free.status_code == 200, free.text


def test_another_connections_catalog_and_the_policy_files_catalogs_are_governed(api):
    api.register(CREATOR_PG | {"connectionKey": "first"}, user="boss")  # GOVERNANCE may
    second = {**PG, "connectionKey": "second"}
    assert api.call("POST", "/data/connection", "creator", json=second).status_code == 201
    api.runner.join()
    onto_first = api.call(
        "PUT", "/data/connection/second", "creator", json={"trinoCatalogs": {"lake": "hold"}}
    )
    assert onto_first.status_code == 403
    assert "governed by the connection 'first'" in onto_first.json()["error"]["message"]
    files = SimpleNamespace(
        sources=[DataSource("finance", Technology.POSTGRESQL, "db", "s", "t", trino_catalog="fin")],
        retired=[],
    )
    api.plane.declared = lambda: files
    onto_files = api.call(
        "PUT", "/data/connection/second", "creator", json={"trinoCatalogs": {"lake": "fin"}}
    )
    assert onto_files.status_code == 403
    assert "governed by the policy files" in onto_files.json()["error"]["message"]


def test_the_catalog_files_showing_this_connection_allow_the_mapping(api, tmp_path):
    """Registering a PostgreSQL connection that Trino reads through a catalog the Trino
    connection also lists is the normal case: the operator's catalog files vouch for it."""
    api.register()
    catalogs = tmp_path / "catalog"
    catalogs.mkdir()
    (catalogs / "hold.properties").write_text(
        "connector.name=postgresql\nconnection-url=jdbc:postgresql://127.0.0.1:54329/hold\n"
    )
    api.plane.trino_catalog_files = catalogs
    answer = api.call("POST", "/data/connection", "creator", json=CREATOR_PG)
    assert answer.status_code == 201, answer.text


# --- a Trino connection claims every catalog its Trino lists -----------------------------------

TRINO = {
    "technology": "trino",
    "credentials": {"username": "pdp", "passwordEnv": "TRINO_PASSWORD"},
}


def trino(key: str, host: str, port: int = 8080) -> dict:
    return {"connectionKey": key, "connection": {**TRINO, "endpoint": {"host": host, "port": port}}}


def owners_of(api, table: tuple[str, str, str]) -> set[tuple[str, str]]:
    """Who owns the Trino table `table` in the snapshot the store compiles to."""
    return {o for s in read_registry(api.store).sources if s.trino_key == table for o in s.owners}


def test_a_creator_cannot_register_a_second_trino_connection_to_a_governed_trino(api):
    """The attack: a CREATE_DATA_SOURCE user registers their own connection to the Trino that
    `hc` governs (under its own name, another name for it, or a look-alike listing the same
    catalogs), then makes themselves Data Owner of its tables: OWN on the Trino tables and
    exempt from the masks that exempt owners."""
    api.register()  # hc, at trino.example:8080, listing the catalogs hold and lake
    for host in ("trino.example", "TRINO.example", "10.0.0.7", "look-alike.example"):
        refused = api.call("POST", "/data/connection", "creator", json=trino("mine", host))
        assert refused.status_code == 403, refused.text
        error = refused.json()["error"]
        assert error["permission"] == "GOVERNANCE"
        assert "governed already (by the Trino connection 'hc')" in error["message"]
        assert api.call("GET", "/data/connection/mine").status_code == 404  # nothing stored
    assert owners_of(api, ("hold", "sales", "orders")) == set()
    # GOVERNANCE may add a claimant (and then decides who owns what)
    api.register(trino("second", "trino.example"), user="boss")


def test_a_trino_connection_cannot_be_pointed_at_a_governed_trino(api):
    """The first claimant governs: a creator's Trino connection registered while nothing was
    governed keeps working, but once another connection governs, its Infrastructure Admin may
    not move it to another endpoint (its catalogs would change); GOVERNANCE may."""
    first = api.call("POST", "/data/connection", "creator", json=trino("mine", "mine.example"))
    assert first.status_code == 201, first.text
    api.runner.join()
    api.register(trino("hc", "trino.example"), user="boss")
    moved = api.call(
        "PUT", "/data/connection/mine", "creator", json={"endpoint": {"host": "trino.example"}}
    )
    assert moved.status_code == 403, moved.text
    assert "the Trino connection 'hc'" in moved.json()["error"]["message"]
    assert api.call("GET", "/data/connection/mine").json()["endpoint"]["host"] == "mine.example"
    credentials = {"credentials": {"username": "pdp2", "passwordEnv": "TRINO_PASSWORD"}}
    assert api.call("PUT", "/data/connection/mine", "creator", json=credentials).status_code == 200
    by_gov = api.call("PUT", "/data/connection/mine", json={"endpoint": {"host": "trino.example"}})
    assert by_gov.status_code == 200, by_gov.text


def test_the_policy_files_and_mappings_govern_for_a_trino_registration_too(api):
    files = SimpleNamespace(
        sources=[DataSource("finance", Technology.TRINO, "fin", "s", "t", trino_catalog="fin")],
        retired=[],
    )
    api.plane.declared = lambda: files
    refused = api.call("POST", "/data/connection", "creator", json=trino("mine", "trino.example"))
    assert refused.status_code == 403, refused.text
    assert "by the policy files" in refused.json()["error"]["message"]
    api.plane.declared = None
    api.register(CREATOR_PG, user="boss")
    refused = api.call("POST", "/data/connection", "creator", json=trino("mine", "trino.example"))
    assert refused.status_code == 403, refused.text
    assert "by the connection 'pg'" in refused.json()["error"]["message"]


def test_the_legacy_data_source_api_claims_as_a_registration_does(api):
    """`POST /dataSource` creates an integration (a legacy connection) that the upgrade
    manager later turns into a connection with its data sources' owners: the same claims."""
    api.register()
    source = {"database": "hold", "schema": "sales", "table": "orders", "owners": ["creator"]}
    as_trino = {"name": "legacy", **TRINO, "endpoint": {"host": "trino.example", "port": 8080}}
    refused = api.call("POST", "/dataSource", "creator", json={**source, "connection": as_trino})
    assert refused.status_code == 403, refused.text
    assert "the Trino connection 'hc'" in refused.json()["error"]["message"]
    onto_hold = {**PG["connection"], "name": "legacy", "trinoCatalogs": {"hold": "hold"}}
    refused = api.call("POST", "/dataSource", "creator", json={**source, "connection": onto_hold})
    assert refused.status_code == 403, refused.text
    assert "'hold' is governed by the Trino connection 'hc'" in refused.json()["error"]["message"]
    assert api.call("GET", "/data/upgrade/legacy", "boss").status_code == 404  # none made
    # an integration's claims count for the next claimant
    free = {**onto_hold, "trinoCatalogs": {"hold": "mine"}}
    made = api.call("POST", "/dataSource", "creator", json={**source, "connection": free})
    assert made.status_code == 201, made.text
    onto_legacy = {**PG["connection"], "trinoCatalogs": {"lake": "mine"}}
    refused = api.call(
        "POST", "/data/connection", "creator", json={**PG, "connection": onto_legacy}
    )
    assert refused.status_code == 403, refused.text
    assert "governed by the connection 'legacy'" in refused.json()["error"]["message"]


def test_a_legacy_trino_integration_cannot_be_pointed_at_a_governed_trino(api):
    mine = {"name": "legacy", **TRINO, "endpoint": {"host": "mine.example"}}
    source = {"database": "hold", "schema": "sales", "table": "orders", "connection": mine}
    made = api.call("POST", "/dataSource", "creator", json=source)
    assert made.status_code == 201, made.text  # nothing governed yet: the first claimant
    api.register(trino("hc", "trino.example"), user="boss")
    moved = api.call(
        "PUT",
        f"/dataSource/{made.json()['id']}",
        "creator",
        json={"tags": ["x"], "connection": {"endpoint": {"host": "trino.example"}}},
    )
    assert moved.status_code == 403, moved.text
    assert "the Trino connection 'hc'" in moved.json()["error"]["message"]
    with api.store.read() as reader:  # nothing applied
        legacy = reader.integration("legacy")
        assert legacy.endpoint["host"] == "mine.example"
        assert [s.tags for s in reader.sources_of(legacy)] == [()]
