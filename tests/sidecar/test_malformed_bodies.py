"""Malformed request bodies through the real sidecar: each one is a 400 naming what is wrong,
never a 500 and never an answer. A body that names a key twice in one object is malformed too
(a parser would keep one of the two silently, so the sender's meaning is unknown), and it is
never answered from the body-key cache (sidecar/bodykeys.py), which answers repeated bodies
without parsing them."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import Stack, start_stack

TABLE = {"catalogName": "hive", "schemaName": "sales", "tableName": "orders"}
ENDPOINTS = ("allow", "batch", "rowFilters", "columnMask", "batchColumnMasks")


def single(user: str = "alice") -> dict[str, Any]:
    return {
        "input": {
            "context": {
                "identity": {"user": user, "groups": ["staff"]},
                "softwareStack": {"trinoVersion": "476"},
            },
            "action": {
                "operation": "SelectFromColumns",
                "resource": {"table": {**TABLE, "columns": ["id", "amount"]}},
            },
        }
    }


def batch(user: str = "alice") -> dict[str, Any]:
    document = single(user)
    action = document["input"]["action"]
    action.update(operation="FilterTables", filterResources=[{"table": TABLE}] * 2)
    del action["resource"]
    return document


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    started = start_stack(tmp_path_factory.mktemp("bodies"))
    yield started
    started.sidecar.stop()
    started.pdp.stop()


@pytest.fixture(scope="module")
def client(stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{stack.url}/v1/data/trino/", timeout=10) as open_client:
        yield open_client


def test_the_valid_bodies_used_below_are_answered(client):
    assert client.post("allow", json=single()).json() == {"result": True}
    assert client.post("batch", json=batch()).json() == {"result": [0, 1]}


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"input": []}', "input: expected an object, got list"),
        (b'{"input": {"action": []}}', "input.action: expected an object, got list"),
        (b'{"input": "x"}', "input: expected an object, got str"),
        (b"[]", "body: expected an object, got list"),
        (b'{"input": {"context": [], "action": {}}}', "input.context: expected an object"),
    ],
    ids=["input-list", "action-list", "input-string", "body-list", "context-list"],
)
def test_a_body_of_the_wrong_shape_is_a_400_that_names_the_field(client, endpoint, body, message):
    answer = client.post(endpoint, content=body)
    assert answer.status_code == 400, answer.text
    assert message in answer.json()["error"]


def with_key_twice(document: Any, path: tuple[str, ...], key: str, first: Any, sep: str) -> bytes:
    """`document` as JSON text where the object at `path` names `key` twice: first with
    `first`, then with its own value (which a parser keeping the last one would use)."""

    def write(value: Any, at: tuple[str, ...]) -> str:
        if isinstance(value, dict):
            members = [f"{json.dumps(k)}{sep}{write(v, (*at, k))}" for k, v in value.items()]
            if at == path:
                members.insert(0, f"{json.dumps(key)}{sep}{json.dumps(first)}")
            return "{" + ",".join(members) + "}"
        if isinstance(value, list):
            return "[" + ",".join(write(v, (*at, str(i))) for i, v in enumerate(value)) + "]"
        return json.dumps(value)

    return write(document, ()).encode()


DUPLICATES = [
    ("allow", single, ("input", "context", "identity"), "user", "mallory"),
    ("allow", single, ("input", "context", "identity"), "groups", []),
    ("allow", single, ("input", "action"), "operation", "ExecuteQuery"),
    ("allow", single, ("input", "action", "resource", "table"), "tableName", "other"),
    ("allow", single, (), "input", {}),
    ("allow", single, ("input", "context"), "softwareStack", {}),  # a field nobody reads
    ("batch", batch, ("input", "action", "filterResources", "1"), "table", TABLE),
    ("batch", batch, ("input", "context", "identity"), "user", "carol"),
]


@pytest.mark.parametrize("sep", [":", " : "], ids=["compact", "spaced"])
@pytest.mark.parametrize(
    ("endpoint", "make", "path", "key", "first"),
    DUPLICATES,
    ids=[f"{d[0]}-{'.'.join(d[2]) or 'top'}-{d[3]}" for d in DUPLICATES],
)
def test_a_key_named_twice_in_one_object_is_a_400(client, endpoint, make, path, key, first, sep):
    body = with_key_twice(make(), path, key, first, sep)
    assert orjson.loads(body) == make()  # a parser keeping the last value reads the valid body
    for _ in range(3):  # and it is not remembered as that body: the same answer every time
        answer = client.post(endpoint, content=body)
        assert answer.status_code == 400, answer.text
        assert f"key {key!r} appears twice in one object" in answer.json()["error"]


def test_a_body_known_to_the_cache_does_not_let_its_duplicate_key_twin_through(client):
    """The twin has exactly the JSON document of a body answered (and remembered) before."""
    known = orjson.dumps(single("alice"))
    for _ in range(3):  # parsed once, then answered from memory
        assert client.post("allow", content=known).json() == {"result": True}
    twin = known.replace(b'"user":"alice"', b'"user":"mallory","user":"alice"')
    assert orjson.loads(twin) == orjson.loads(known)
    assert client.post("allow", content=twin).status_code == 400
    assert client.post("allow", content=known).json() == {"result": True}


@pytest.mark.parametrize("endpoint", ["allow", "batch"])
def test_a_deeply_nested_body_is_a_400(client, endpoint):
    for body in (b"[" * 1000 + b" " + b"]" * 1000, b"[" * 2000 + b"]" * 2000):
        answer = client.post(endpoint, content=body)
        assert answer.status_code == 400, answer.text


def test_strings_that_look_like_keys_are_not_duplicates(client):
    """Values holding `":`, escaped quotes or leading spaces take the object-by-object check."""
    document = single("alice")
    document["input"]["context"]["queryId"] = ':"user":"mallory", '
    document["input"]["context"][" spaced"] = ' "user" : 1'
    assert client.post("allow", content=orjson.dumps(document)).json() == {"result": True}
    pretty = json.dumps(single("alice"), indent=2).encode()
    assert client.post("allow", content=pretty).json() == {"result": True}


# --- a little fuzzing: wrong types, missing fields, cut bodies --------------------------------

WRONG = [None, 0, 1.5, True, "", "x", [], ["x"], {}, {"x": 1}]
REQUIRED_STRINGS = {"user", "operation", "catalogName", "schemaName", "tableName"}


def mutations(document: Any) -> Iterator[tuple[str, Any]]:
    """Each field the decision depends on replaced by a value of the wrong type, or removed."""

    def paths(value: Any, at: tuple[Any, ...]) -> Iterator[tuple[Any, ...]]:
        if isinstance(value, dict):
            for k, v in value.items():
                if k != "softwareStack":  # ignored by design
                    yield (*at, k)
                    yield from paths(v, (*at, k))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                yield (*at, i)
                yield from paths(v, (*at, i))

    for path in paths(document, ()):
        original = _get(document, path)
        for wrong in WRONG:
            if _fits(path, original, wrong):
                continue
            mutated = copy.deepcopy(document)
            _set(mutated, path, wrong)
            yield f"{'.'.join(map(str, path))}={wrong!r}", mutated
        if path[-1] not in ("groups", "columns") and not isinstance(path[-1], int):
            mutated = copy.deepcopy(document)
            del _get(mutated, path[:-1])[path[-1]]
            yield f"{'.'.join(map(str, path))} removed", mutated


def _fits(path: tuple[Any, ...], original: Any, wrong: Any) -> bool:
    """Whether `wrong` is still a valid value there (so not a malformed body)."""
    if path[-1] in ("groups", "columns"):
        return isinstance(wrong, list) and all(isinstance(w, str) for w in wrong)
    if len(path) > 1 and path[-2] in ("groups", "columns"):
        return isinstance(wrong, str)
    if path[-1] == "filterResources":
        return wrong == []  # an empty batch: nothing to answer, an empty answer
    if path[-1] in REQUIRED_STRINGS:
        return isinstance(wrong, str) and wrong != ""
    return type(wrong) is type(original) and bool(wrong) == bool(original)


def _get(document: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        document = document[step]
    return document


def _set(document: Any, path: tuple[Any, ...], value: Any) -> None:
    _get(document, path[:-1])[path[-1]] = value


@pytest.mark.parametrize(("endpoint", "make"), [("allow", single), ("batch", batch)])
def test_fuzz_every_malformed_body_is_a_4xx_never_500_never_an_answer(client, endpoint, make):
    valid = orjson.dumps(make("alice"))
    cases = list(mutations(make("alice")))
    cases += [(f"cut at {n}", valid[:n]) for n in range(0, len(valid), 7)]
    assert len(cases) > 100
    for what, mutated in cases:
        content = mutated if isinstance(mutated, bytes) else orjson.dumps(mutated)
        answer = client.post(endpoint, content=content)
        assert 400 <= answer.status_code < 500, (what, answer.status_code, answer.text)
        assert "result" not in answer.json(), what
