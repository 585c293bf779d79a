"""The body-to-key memory (sidecar/bodykeys.py): a body is found again whatever its queryId,
and the memory is bounded by the bytes of the bodies kept, the oldest leaving first."""

from __future__ import annotations

from sidecar.bodykeys import BodyKeys


def body(n: int, query: str = "20261207_000000_00001_abcde") -> bytes:
    return b'{"input":{"context":{"queryId":"%s"},"action":{"n":%05d}}}' % (query.encode(), n)


def test_a_body_is_found_again_with_another_query_id():
    keys = BodyKeys()
    bare, key = keys.find(body(1))
    assert key is None
    keys.remember(bare, ("alice", (), "ExecuteQuery"))
    assert keys.find(body(1, "20261207_000000_00002_fghij"))[1] == ("alice", (), "ExecuteQuery")


def test_the_oldest_bodies_leave_first_within_the_byte_bound():
    first = BodyKeys().find(body(0))[0]
    assert first is not None
    keys = BodyKeys(max_bytes=10 * len(first))
    for n in range(1_000):  # many times the bound: every eviction takes the oldest
        bare, _ = keys.find(body(n))
        keys.remember(bare, ("u", (), str(n)))
    assert len(keys) == 10
    assert [keys.find(body(n))[1] for n in (989, 990, 999)] == [
        None,
        ("u", (), "990"),
        ("u", (), "999"),
    ]
