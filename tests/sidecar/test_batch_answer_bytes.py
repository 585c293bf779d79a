"""Whole batch answers (served to a batch body seen before) are bounded by the bytes of the
bodies and answers they hold, not only by their number (issue 26): a batch body may list
thousands of tables, so `cache.decisions` answers of them could hold gigabytes. The oldest go
first; one evicted is made again from the cached decisions (sidecar/app.py)."""

from __future__ import annotations

from pdp.core.model import AccessGrantMapping, ClusterSettings, Registry
from sidecar.answers import Answers, BatchAnswers
from sidecar.bodykeys import BODY_BYTES


class Pdp:
    async def registry(self):
        return "r1", Registry(), AccessGrantMapping()


def answers(decisions: int = 200_000) -> Answers:
    cache = Answers(lambda: ClusterSettings(), Pdp(), decision_cache=decisions)  # type: ignore[arg-type]
    cache.reset("r1")
    return cache


def body(n: int, size: int) -> bytes:
    return b"%08d" % n + b"x" * (size - 8)


def answer(n: int) -> tuple[bytes, str, int, int]:
    return b'{"result":[%d]}' % n, "FilterTables", 1, 2


def test_large_batch_answers_are_held_within_the_bytes_bound() -> None:
    cache = answers()
    bodies = [body(n, 1024 * 1024) for n in range(100)]  # 100 MiB of bodies in all
    for n, b in enumerate(bodies):
        cache.remember_batch(b, answer(n))
        assert cache._batch_answers.bytes <= BODY_BYTES
    served = [n for n, b in enumerate(bodies) if cache.cached_batch(b) is not None]
    assert served == list(range(100 - len(served), 100))  # the newest, oldest out first
    assert 25 <= len(served) < 32  # 32 MiB of 1 MiB bodies, less their answers
    assert cache.cached_batch(bodies[-1]) == answer(99)


def test_small_batch_answers_are_bounded_by_their_number() -> None:
    cache = answers(decisions=10)
    bodies = [body(n, 100) for n in range(25)]
    for n, b in enumerate(bodies):
        cache.remember_batch(b, answer(n))
    assert [n for n, b in enumerate(bodies) if cache.cached_batch(b)] == list(range(15, 25))
    cache.configure(10_000, 4, None)  # sidecar.yaml reloaded with fewer decisions
    assert [n for n, b in enumerate(bodies) if cache.cached_batch(b)] == [21, 22, 23, 24]


def test_the_bytes_follow_what_is_held() -> None:
    held = BatchAnswers(limit=3, max_bytes=1_000)
    held.put(b"a" * 100, "r1", answer(1))
    held.put(b"a" * 100, "r2", answer(2))  # the same body again: counted once
    assert held.bytes == 100 + len(answer(2)[0]) and len(held) == 1
    held.put(b"b" * 900, "r2", answer(3))  # over 1,000: the oldest goes
    assert held.get(b"a" * 100) is None and held.bytes == 900 + len(answer(3)[0])
    held.clear()
    assert held.bytes == 0 and len(held) == 0
