"""Prometheus metrics for a sidecar of several uvicorn worker processes.

The hot path only bumps plain counters of its own worker (a dict increment, where a
prometheus-client multiprocess counter costs microseconds per call: a tenth of a cache hit).
Once a second each worker writes a snapshot of them to a file in a directory the workers
share; `GET /metrics`, answered by whichever worker gets it, adds the snapshots up and renders
them with prometheus-client. Counters are therefore at most a second old."""

from __future__ import annotations

import bisect
import os
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from pdp.collector import Pauses
from sidecar.http import GATE

BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.0)
STALE_AFTER = 10.0  # a worker file not rewritten for this long belongs to a dead worker


class WorkerStats:
    """This worker's counters; `gauges` reads its current state (revision, watch) on export."""

    def __init__(self, gauges: Callable[[], dict[str, Any]]) -> None:
        self.decisions: Counter[tuple[str, str]] = Counter()  # (operation, allow|deny)
        self.cache: Counter[str] = Counter()  # hit | miss
        # (endpoint, status) -> responses per latency bucket (+inf last), then their seconds:
        # one lookup per response; the exported families are summed from it on export
        self._answered: dict[tuple[str, int], list[float]] = {}
        self._gauges = gauges
        self.collections = Pauses(BUCKETS)  # started and stopped with the worker (app.py)

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        row = self._answered.get((endpoint, status))
        if row is None:
            row = self._answered[endpoint, status] = [0] * (len(BUCKETS) + 2)
        row[bisect.bisect_left(BUCKETS, seconds)] += 1
        row[-1] += seconds

    def responses(self) -> int:
        """How many requests this worker has answered."""
        return sum(int(n) for row in self._answered.values() for n in row[:-1])

    def snapshot(self) -> dict[str, Any]:
        latency: dict[str, list[int]] = {}  # endpoint -> responses per bucket, all statuses
        latency_sum: defaultdict[str, float] = defaultdict(float)
        for (endpoint, _), row in self._answered.items():
            counts = latency.setdefault(endpoint, [0] * (len(BUCKETS) + 1))
            for i, n in enumerate(row[:-1]):
                counts[i] += int(n)
            latency_sum[endpoint] += row[-1]
        return {
            "time": time.time(),
            "decisions": [[op, result, n] for (op, result), n in self.decisions.items()],
            "cache": dict(self.cache),
            "responses": [
                [endpoint, status, int(sum(row[:-1]))]
                for (endpoint, status), row in self._answered.items()
            ],
            "latency": latency,
            "latency_sum": dict(latency_sum),
            "connections": dict(GATE.events),
            "gauges": self._gauges(),
            "gc": self.collections.snapshot(),
        }

    def save(self, directory: Path) -> None:
        """Atomically: a reader never sees half a file."""
        path = directory / f"worker-{os.getpid()}.json"
        temporary = path.with_suffix(".tmp")
        temporary.write_bytes(orjson.dumps(self.snapshot()))
        temporary.replace(path)


def _snapshots(directory: Path) -> Iterator[dict[str, Any]]:
    now = time.time()
    for path in sorted(directory.glob("worker-*.json")):
        try:
            data = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            continue
        if now - data["time"] <= STALE_AFTER:
            yield data


class _Collector:
    def __init__(self, snapshots: list[dict[str, Any]]) -> None:
        self.snapshots = snapshots

    def collect(self) -> Iterator[Metric]:
        decisions: Counter[tuple[str, str]] = Counter()
        cache: Counter[str] = Counter()
        connections: Counter[str] = Counter()
        responses: Counter[tuple[str, str]] = Counter()
        latency: dict[str, list[int]] = {}
        latency_sum: defaultdict[str, float] = defaultdict(float)
        for s in self.snapshots:
            for op, result, n in s["decisions"]:
                decisions[op, result] += n
            cache.update(s["cache"])
            connections.update(s.get("connections", {}))
            for endpoint, status, n in s["responses"]:
                responses[endpoint, str(status)] += n
            for endpoint, counts in s["latency"].items():
                total = latency.setdefault(endpoint, [0] * len(counts))
                latency[endpoint] = [a + b for a, b in zip(total, counts, strict=True)]
            for endpoint, seconds in s["latency_sum"].items():
                latency_sum[endpoint] += seconds

        family = CounterMetricFamily(
            "pdp_sidecar_decisions",
            "Decisions answered, by operation and result",
            labels=["operation", "result"],
        )
        for (op, result), n in sorted(decisions.items()):
            family.add_metric([op, result], n)
        yield family
        family = CounterMetricFamily(
            "pdp_sidecar_decision_cache_lookups", "Decision cache lookups", labels=["outcome"]
        )
        for outcome in ("hit", "miss"):
            family.add_metric([outcome], cache.get(outcome, 0))
        yield family
        family = CounterMetricFamily(
            "pdp_sidecar_connections_capped",
            "Connections at a cap: idle ones closed to make room (evicted), new ones refused "
            "with 503 over the worker's cap (refused_total) or a client address's cap "
            "(refused_per_client)",
            labels=["outcome"],
        )
        for outcome in ("evicted", "refused_total", "refused_per_client"):
            family.add_metric([outcome], connections.get(outcome, 0))
        yield family
        family = CounterMetricFamily(
            "pdp_sidecar_http_responses",
            "HTTP responses, by endpoint and status",
            labels=["endpoint", "status"],
        )
        for (endpoint, status), n in sorted(responses.items()):
            family.add_metric([endpoint, status], n)
        yield family
        histogram = HistogramMetricFamily(
            "pdp_sidecar_request_duration_seconds",
            "Time to answer, by endpoint",
            labels=["endpoint"],
        )
        for endpoint, counts in sorted(latency.items()):
            histogram.add_metric([endpoint], _cumulative(counts), latency_sum[endpoint])
        yield histogram
        yield self._collections()
        yield from self._gauges()

    def _collections(self) -> Metric:
        counts = [[0] * (len(BUCKETS) + 1) for _ in range(3)]
        seconds = [0.0] * 3
        for s in self.snapshots:
            for generation in range(3):
                row = s["gc"]["counts"][generation]
                counts[generation] = [a + b for a, b in zip(counts[generation], row, strict=True)]
                seconds[generation] += s["gc"]["seconds"][generation]
        histogram = HistogramMetricFamily(
            "pdp_sidecar_gc_pause_seconds",
            "Garbage collections (the worker answers nothing meanwhile), by generation",
            labels=["generation"],
        )
        for generation in range(3):
            histogram.add_metric(
                [str(generation)], _cumulative(counts[generation]), seconds[generation]
            )
        return histogram

    def _gauges(self) -> Iterator[Metric]:
        specs = [
            ("pdp_sidecar_revision_age_seconds", "Seconds since the served revision arrived"),
            ("pdp_sidecar_pdp_connected", "1 while the PDP's revision watch is live"),
            ("pdp_sidecar_pdp_silence_seconds", "Seconds since the PDP was last heard"),
            ("pdp_sidecar_cached_users", "Per-user views in the cache"),
            ("pdp_sidecar_cached_decisions", "Decisions in the cache"),
            ("pdp_sidecar_open_connections", "Client connections open"),
            ("pdp_sidecar_max_connections", "The connection cap (fitted to the open-files limit)"),
            (
                "pdp_sidecar_gc_frozen_objects",
                "Objects kept out of garbage collections, at the last settle (pdp/collector.py)",
            ),
        ]
        for name, text in specs:
            key = name.removeprefix("pdp_sidecar_")
            family = GaugeMetricFamily(name, text, labels=["worker"])
            for s in self.snapshots:
                family.add_metric([str(s["gauges"]["worker"])], s["gauges"][key])
            yield family
        info = GaugeMetricFamily(
            "pdp_sidecar_revision",
            "The policy revision each worker serves (value 1)",
            labels=["worker", "revision"],
        )
        for s in self.snapshots:
            gauges = s["gauges"]
            info.add_metric([str(gauges["worker"]), gauges["revision"] or ""], 1)
        yield info


def _cumulative(counts: list[int]) -> list[tuple[str, float]]:
    """Prometheus histogram buckets from the count in each bucket (+inf last)."""
    total, buckets = 0, list[tuple[str, float]]()
    for bound, n in zip((*map(str, BUCKETS), "+Inf"), counts, strict=True):
        total += n
        buckets.append((bound, total))
    return buckets


def render(directory: Path) -> bytes:
    """The Prometheus text exposition of every live worker's last snapshot."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(list(_snapshots(directory))))
    return generate_latest(registry)
