"""The request bodies the replay runs on (tests/fixtures/trino-opa) are all there, and those
recorded from Trino 476 cover what it sends: every endpoint, with and without batching, and
every operation the e2e tests cause and more."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from devstack.record_corpus import FIXTURES
from tests.support import corpus

RECORDED = corpus.requests(corpus.RECORDED, corpus.RECORDED_REQUESTS)
# What the e2e tests make Trino ask: listing, reading, writing, DDL, row filters and masks.
E2E_OPERATIONS = {
    "AccessCatalog",
    "AddColumn",
    "AlterColumn",
    "CreateSchema",
    "CreateTable",
    "CreateView",
    "CreateViewWithSelectFromColumns",
    "DeleteFromTable",
    "DropSchema",
    "DropTable",
    "DropView",
    "ExecuteQuery",
    "FilterCatalogs",
    "FilterColumns",
    "FilterSchemas",
    "FilterTables",
    "GetColumnMask",
    "GetRowFilters",
    "InsertIntoTable",
    "RenameTable",
    "SelectFromColumns",
    "ShowSchemas",
    "ShowTables",
}
# Beyond them, what the recording's statements reach in Trino 476 with the memory connector.
MORE_OPERATIONS = {
    "CreateCatalog",
    "CreateFunction",
    "CreateMaterializedView",
    "CreateViewWithExecuteFunction",
    "DropCatalog",
    "DropColumn",
    "DropFunction",
    "ExecuteFunction",
    "ExecuteProcedure",
    "ExecuteTableProcedure",
    "FilterFunctions",
    "FilterViewQueryOwnedBy",
    "ImpersonateUser",
    "KillQueryOwnedBy",
    "ReadSystemInformation",
    "RenameColumn",
    "RenameSchema",
    "RenameView",
    "SetCatalogSessionProperty",
    "SetColumnComment",
    "SetSchemaAuthorization",
    "SetSystemSessionProperty",
    "SetTableAuthorization",
    "SetTableComment",
    "SetViewAuthorization",
    "SetViewComment",
    "ShowColumns",
    "ShowCreateFunction",
    "ShowCreateSchema",
    "ShowCreateTable",
    "ShowFunctions",
    "TruncateTable",
    "UpdateTableColumns",
    "ViewQueryOwnedBy",
}


def test_the_recorder_writes_where_the_replay_reads():
    assert FIXTURES == corpus.RECORDED


def test_recorded_bodies_reach_every_endpoint_in_both_modes():
    seen = Counter((corpus.endpoint(r), r["statement"]["mode"]) for _, r in RECORDED)
    assert {endpoint for endpoint, _ in seen} == {
        "allow",
        "batch",
        "rowFilters",
        "columnMask",
        "batchColumnMasks",
    }
    assert {mode for endpoint, mode in seen if endpoint == "batch"} == {"batch"}
    assert {mode for endpoint, mode in seen if endpoint == "columnMask"} == {"single"}


def test_recorded_bodies_cover_the_e2e_operations_and_more():
    recorded = corpus.operations(corpus.RECORDED, corpus.RECORDED_REQUESTS)
    assert recorded >= E2E_OPERATIONS
    assert recorded - E2E_OPERATIONS == MORE_OPERATIONS


def test_recorded_bodies_are_trino_476s_as_sent():
    for _, record in RECORDED:
        context = record["request"]["input"]["context"]
        assert context["softwareStack"] == {"trinoVersion": "476"}
        assert set(context) == {"identity", "softwareStack"}  # no queryId nor properties in 476
        assert record["operation"] == record["request"]["input"]["action"]["operation"]


def test_recorded_files_are_sorted_and_each_body_appears_once():
    for path in sorted(corpus.RECORDED.glob("*.jsonl")):
        if path.name == "statements.jsonl":
            continue
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        keys = [(r["operation"], json.dumps(r["request"], sort_keys=True)) for r in lines]
        assert keys == sorted(set(keys)), path.name
        assert {r["endpoint"] for r in lines} == {path.stem}


def test_a_missing_or_short_corpus_fails_rather_than_running_empty(tmp_path):
    with pytest.raises(AssertionError, match="fewer than the 1 it is known to hold"):
        corpus.requests(tmp_path, at_least=1)
    with pytest.raises(FileNotFoundError, match=r"response-handling\.jsonl is missing"):
        corpus.records("response-handling.jsonl", tmp_path)
    (tmp_path / "response-handling.jsonl").write_text("\n")
    with pytest.raises(AssertionError, match="holds no records"):
        corpus.records("response-handling.jsonl", tmp_path)
