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

PG = {
    "connectionKey": "pg",
    "connection": {
        "technology": "postgresql",
        "endpoint": {"host": "localhost", "port": 54329},
        "credentials": {"user": "crawler", "passwordEnv": "P"},  # a name adminkit allows
    },
}


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
