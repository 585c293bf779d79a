"""`request_of` (and `resource_names`) make of an `/allow` body's fast key (`single_key`) the
request `decode_document` makes of the body, or say nothing: over generated bodies, well and
badly formed (unknown operations, renames, resources under another kind than the operation's,
empty or non-string names, users and groups), never a different request, and never one for a
body the decoder refuses."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pdp.wire.trino import (
    RESOURCE_KIND,
    BadRequest,
    decode_document,
    request_of,
    resource_names,
    single_key,
)

GOOD = st.sampled_from(["hive", "HIVE", "s0", "t0", "ß"])
NAME = st.one_of(GOOD, GOOD, GOOD, GOOD, GOOD, st.sampled_from(["", 7, None]))
TABLE = st.fixed_dictionaries(
    {"catalogName": NAME, "schemaName": NAME, "tableName": NAME},
    optional={"columns": st.sampled_from([["a", "b"], [], ["a", "b"], ["a", 1], "a"])},
)
SCHEMA = st.fixed_dictionaries({"catalogName": NAME, "schemaName": NAME})
CATALOG = st.fixed_dictionaries({"name": NAME})
RESOURCE = st.one_of(
    st.none(),
    *[
        st.fixed_dictionaries({kind: parts})
        for kind, parts in [("table", TABLE), ("schema", SCHEMA), ("catalog", CATALOG)]
    ]
    * 2,
    st.fixed_dictionaries(
        {},
        optional={
            "table": TABLE,
            "schema": SCHEMA,
            "catalog": CATALOG,
            "function": st.just({"functionName": "f"}),
            "user": st.just({"user": "u1"}),
        },
    ),
    st.sampled_from([[], "hive", 3]),
)
PARTS = {"table": TABLE, "schema": SCHEMA, "catalog": CATALOG}
OPERATION = st.sampled_from(
    [
        "ExecuteQuery",
        "AccessCatalog",
        "ShowSchemas",
        "ShowTables",
        "SelectFromColumns",
        "FilterTables",
        "CreateTable",
        "RenameTable",
        "DropSchema",
        "ExecuteFunction",
        "ImpersonateUser",
        "SomethingNewer",
        "",
    ]
)


@st.composite
def bodies(draw: st.DrawFn) -> dict[str, Any]:
    identity: dict[str, Any] = {"user": draw(st.sampled_from(["u0", "u1", "u0", "", 5]))}
    groups = draw(
        st.one_of(
            st.none(),
            st.lists(st.sampled_from(["g0", "g1", ""])),
            st.lists(st.sampled_from(["g0", "g1", "", 2])),
        )
    )
    if groups is not None:
        identity["groups"] = groups
    operation = draw(OPERATION)
    action: dict[str, Any] = {"operation": operation}
    kind = RESOURCE_KIND.get(operation)
    own = RESOURCE if kind not in PARTS else st.fixed_dictionaries({kind: PARTS[kind]})
    resource = draw(st.one_of(own, own, RESOURCE))
    if resource is not None:
        action["resource"] = resource
    return {"input": {"context": {"identity": identity}, "action": action}}


@settings(max_examples=800, deadline=None)
@given(bodies())
def test_the_request_of_a_key_is_the_decoders(document):
    key = single_key(document)
    request = None if key is None else request_of(key)
    if request is None:
        return  # the full decoder decides, or refuses
    assert key is not None and resource_names(key) is not None
    try:
        decoded = decode_document(document).request()
    except BadRequest as exc:
        raise AssertionError(f"{document}: a request of its key, the decoder says {exc}") from None
    assert request == decoded


def test_what_the_key_cannot_say_is_left_to_the_decoder():
    def key(operation: str, resource: dict[str, Any] | None, user: Any = "u0") -> Any:
        action = {"operation": operation} | ({} if resource is None else {"resource": resource})
        document = {"input": {"context": {"identity": {"user": user}}, "action": action}}
        return single_key(document)

    table = {"table": {"catalogName": "hive", "schemaName": "s0", "tableName": "t0"}}
    assert resource_names(key("SelectFromColumns", table)) == ("hive", "s0", "t0")
    assert resource_names(key("ExecuteQuery", None)) == ()
    assert resource_names(key("AccessCatalog", {"catalog": {"name": "hive"}})) == ("hive",)
    assert resource_names(key("SomethingNewer", table)) is None  # decoded leniently
    assert resource_names(key("RenameTable", table)) is None  # needs its target
    assert resource_names(key("AccessCatalog", table)) is None  # a table, not a catalog
    assert resource_names(key("ExecuteQuery", table)) is None  # refused by the decoder
    assert resource_names(key("SelectFromColumns", table, user="")) is None
