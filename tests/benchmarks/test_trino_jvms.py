"""The query-level benchmark with several JVMs per configuration (`--jvms`): a difference
between two configurations is decided only when it is larger than the JVM-to-JVM spread, and
the rounds' measurements add up to one table."""

from __future__ import annotations

import pytest

from benchmarks.trino_bench import compare, comparisons, jvm_markdown, jvm_report, merged

# (values, reference, limit %) -> (difference %, spread %, verdict); one value per JVM
COMPARE_TABLE = [
    # 3 JVMs each: medians 104 against 100 (+4 %), the wider range 2 (2 %): decided
    ([103, 104, 105], [99, 100, 101], 0.0, 4.0, 2.0, "above"),
    # the same medians, but one JVM of the reference 6 ms off: the spread covers the difference
    ([103, 104, 105], [95, 100, 101], 0.0, 4.0, 6.0, "undecided"),
    # faster by more than the spread
    ([90, 91, 92], [99, 100, 101], 0.0, -9.0, 2.0, "below"),
    # +1 % +- 0.5 %: below a 2 % limit whatever the JVMs' luck
    ([101, 101, 101.5], [100, 100, 100.5], 2.0, 1.0, 0.5, "below"),
    # +2.5 % +- 1 %: neither surely above nor below 2 %
    ([102, 102.5, 103], [100, 100, 100], 2.0, 2.5, 1.0, "undecided"),
    # one JVM each: no spread to weigh against, any difference decides (documented: use K >= 3)
    ([101], [100], 0.0, 1.0, 0.0, "above"),
]


def test_compare_table():
    for values, reference, limit, diff, spread, verdict in COMPARE_TABLE:
        got = compare(values, reference, limit)
        assert got["diff_pct"] == pytest.approx(diff), (values, reference)
        assert got["spread_pct"] == pytest.approx(spread), (values, reference)
        assert got["verdict"] == verdict, (values, reference, limit)


def test_the_goals_asked_of_the_configs_measured():
    assert comparisons(["none", "plugin"]) == [("plugin", "none", 0.0), ("plugin", "none", 2.0)]
    assert comparisons(["none", "file", "sidecar", "plugin"]) == [
        ("file", "none", 0.0),
        ("sidecar", "none", 0.0),
        ("plugin", "none", 0.0),
        ("plugin", "none", 2.0),
        ("sidecar", "file", 0.0),
        ("plugin", "file", 0.0),
        ("plugin", "sidecar", 0.0),
    ]
    assert comparisons(["file", "opa"]) == [("opa", "file", 0.0)]


def _summary(blocks: list[float], trino: float, backend: float, over_none: float) -> dict:
    return {
        "block_means_ms": blocks,
        "trino_cpu_ms_per_query": trino,
        "jit_cpu_ms_per_query": 20,
        "backend_idle_ms_per_query": 0.05,  # at rest: subtracted, never below 0
        "backend_cpu_ms_per_query": backend,
        "block_overhead_pct": {"median": over_none, "min": over_none, "max": over_none},
    }


def test_jvm_report_takes_each_jvms_block_median_and_the_median_over_jvms():
    rounds = [
        {
            "none": _summary([800, 900, 1000], 100, 0, 0),
            "plugin": _summary([810, 2000, 905], 101, 0.3, 1),
        },
        {
            "none": _summary([700, 950, 990], 104, 0, 0),
            "plugin": _summary([700, 960, 1000], 103, 0.4, 1),
        },
        {
            "none": _summary([900, 920, 930], 99, 0, 0),
            "plugin": _summary([900, 935, 940], 100, 0.2, 2),
        },
    ]
    report = jvm_report(rounds)
    assert [v["latency"] for v in report["per_jvm"]["plugin"]] == [905, 960, 935]
    assert report["medians"]["none"]["latency"] == 920
    assert report["medians"]["plugin"] == pytest.approx(
        {
            "latency": 935,
            "trino_cpu": 101,
            "trino_work": 81,
            "backend_cpu": 0.25,
            "total_work": 81.25,
        }
    )
    verdicts = {(v["reference"], v["metric"], v["limit_pct"]): v for v in report["verdicts"]}
    assert set(verdicts) == {
        ("none", "latency", 0.0),
        ("none", "trino_cpu", 0.0),
        ("none", "trino_work", 0.0),
        ("none", "total_work", 0.0),
        ("none", "latency", 2.0),
    }
    # +1.6 % latency against a spread of 55 ms (6 %): undecided
    assert verdicts[("none", "latency", 0.0)]["diff_pct"] == pytest.approx(100 * (935 / 920 - 1))
    assert verdicts[("none", "latency", 0.0)]["verdict"] == "undecided"
    assert report["paired"] == {"plugin": [1, 1, 2]}
    lines = jvm_markdown(report)
    assert "| plugin | **median** | 935 | 101.0 | 81.0 | 0.25 |" in lines
    assert report["medians"]["none"]["backend_cpu"] == 0
    assert "* plugin: +1.0 %, +1.0 %, +2.0 % (median +1.0 %)" in lines
    assert any(line.startswith("| plugin | none | mix") and "undecided" in line for line in lines)


def test_merged_rounds_add_up_and_keep_each_rounds_blocks_in_order():
    def acc(blocks: list[float], trino: int) -> dict:
        return {
            "results": [("point", b, "ok") for b in blocks],
            "wall": 1.0,
            "system": [1, 2],
            "mine": 1,
            "trino": trino,
            "jit": 0,
            "backend": 1,
            "backend_idle": 0.5,
            "loadavg": [1.0],
            "blocks": blocks,
        }

    first, second = {"none": acc([0.8, 0.9], 10)}, {"none": acc([0.7], 5)}
    both = merged([first, second])["none"]
    assert both["blocks"] == [0.8, 0.9, 0.7]
    assert (both["wall"], both["trino"], both["backend"], both["system"]) == (2.0, 15, 2, [2, 4])
    assert both["backend_idle"] == 1.0
    assert len(both["results"]) == 3
    assert first["none"]["blocks"] == [0.8, 0.9]  # the rounds' own measurements untouched
