"""The query-level benchmark's fairness: every configuration takes its turn first (warm-up rounds
and measured blocks alike), and the warm-up ends when each Trino's JIT compiler CPU per query
has stopped falling, not after a guessed count."""

from __future__ import annotations

import pytest

from benchmarks.trino_bench import paired, rotation, settled

CONFIGS = ["none", "file", "sidecar", "plugin"]


def test_each_configuration_goes_first_once_every_len_turns():
    orders = [rotation(CONFIGS, turn) for turn in range(4)]
    assert [order[0] for order in orders] == CONFIGS
    assert [order[-1] for order in orders] == ["plugin", "none", "file", "sidecar"]
    assert all(sorted(order) == sorted(CONFIGS) for order in orders)
    assert rotation(CONFIGS, 5) == rotation(CONFIGS, 1) == ["file", "sidecar", "plugin", "none"]


def test_each_position_is_taken_equally_often_by_every_configuration():
    counts = {
        (config, rotation(CONFIGS, turn).index(config)) for config in CONFIGS for turn in range(8)
    }
    assert counts == {(c, p) for c in CONFIGS for p in range(4)}


# JIT compiler CPU per query (ms) of one Trino's warm-up chunks, oldest first; window 3, 10 %.
SETTLE_TABLE = [
    ([], False),  # nothing measured yet
    ([30, 20, 15, 12, 10], False),  # fewer than two windows: cannot tell
    ([30, 20, 15, 12, 10, 9], False),  # last three 10.3 against 21.7 before: still falling
    ([12, 10, 9, 9, 8.5, 8.5], False),  # 8.7 against 10.3: 16 % lower, still falling
    ([10, 9, 9, 9, 8.8, 9.1], True),  # 8.97 against 9.33: 4 % lower
    ([9, 9, 9, 9, 10, 10], True),  # 9.7 against 9: 7 % higher, within the tolerance
    ([9, 9, 9, 12, 11, 13], False),  # 12 against 9: compiling again, not settled
    ([40, 30, 20, 9, 9, 9, 9, 9, 9], True),  # only the last two windows count
    ([1.0, 1.2, 1.1, 1.4, 1.5, 1.3], True),  # 1.4 against 1.1: 27 % but under 0.5 ms
]


def test_settle_table():
    for jit_ms, expected in SETTLE_TABLE:
        assert settled(jit_ms, window=3, tolerance=0.1) is expected, jit_ms


def test_a_window_of_one_compares_the_last_two_chunks():
    assert settled([20, 10], window=1, tolerance=0.1) is False
    assert settled([10, 9.5], window=1, tolerance=0.1) is True


def test_blocks_are_paired_with_the_same_block_on_the_reference():
    spread = paired([110, 95, 102], reference=[100, 100, 100])
    assert spread == pytest.approx({"median": 2.0, "min": -5.0, "max": 10.0})
