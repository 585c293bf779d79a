"""Plan and apply for one target, and the loop that keeps every target in sync."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

from pdp.grants.config import GrantsConfig
from pdp.grants.desired import check_connections, desired_state
from pdp.grants.errors import ReadError
from pdp.grants.model import Desired, Phase, Plan, Report, StepFailure
from pdp.grants.targets import Target
from pdp.policy import PolicySnapshot, Revisions

log = logging.getLogger(__name__)
TIMER_TICK = 1.0  # how often the reconcile timer is looked at: a new interval applies this soon


@dataclass(frozen=True)
class Planned:
    desired: Desired
    plan: Plan


def plan(target: Target, snapshot: PolicySnapshot) -> Planned:
    """Read the target and compute the minimal change. Raises ReadError if the read fails:
    a partial picture of current grants could make the diff grant or revoke the wrong things."""
    check_connections(target.name, target.connections, snapshot)
    desired = desired_state(snapshot, target.dialect, target.connections)
    return Planned(desired, _plan(target, desired))


def _plan(target: Target, desired: Desired) -> Plan:
    try:
        current = target.read(desired)
    except Exception as exc:
        raise ReadError(f"{target.name}: cannot read current grants: {exc}") from exc
    return target.plan(desired, current)


def apply(target: Target, planned: Planned, sleep: Callable[[float], None] = time.sleep) -> Report:
    """Run `planned.plan` step by step in its fail-closed order. A failing step is recorded and
    the rest go on; then the target is read again and what still differs is reported as drift."""
    applied, failed = [], []
    closed: set[str] = set()  # gates of objects whose data policies could not be set up
    for step in planned.plan.steps:
        if step.gate in closed:
            why = f"skipped: a data policy step on {step.gate} failed"
            failed.append(StepFailure(step, why))
            continue
        try:
            target.run(step)
        except Exception as exc:  # isolate: one object's failure must not stop the others
            log.warning("%s: %s failed: %s", target.name, step.subject, exc)
            failed.append(StepFailure(step, f"{type(exc).__name__}: {exc}"))
            if step.gate and step.phase is Phase.TIGHTEN:
                closed.add(step.gate)
        else:
            applied.append(step)
    drift = _verify(target, planned.desired, sleep)
    return Report(target.name, planned.plan.revision, tuple(applied), tuple(failed), drift)


def _verify(target: Target, desired: Desired, sleep: Callable[[float], None]) -> Plan | None:
    deadline = time.monotonic() + target.settle
    while True:
        try:
            drift = _plan(target, desired)
        except ReadError as exc:
            log.error("%s", exc)
            return None
        if drift.empty or time.monotonic() >= deadline:
            return drift
        sleep(min(1.0, target.settle))  # a platform with eventual consistency may lag


TargetOpener = Callable[[], AbstractContextManager[Target]]
Outcome = Callable[[str, str], None]


class GrantSyncer:
    """Keeps targets in line with the policy snapshot: a sync runs when the revision changes and
    every `interval` seconds in any case, so grants changed by hand are repaired."""

    def __init__(
        self,
        openers: Sequence[TargetOpener],
        interval: float,
        names: Sequence[str] = (),
        outcome: Outcome | None = None,
    ) -> None:
        self.openers, self.interval = list(openers), interval
        self.names = list(names) or [f"target {i + 1}" for i in range(len(self.openers))]
        self.outcome = outcome  # told (target, clean | drift | failed | unreachable) per run
        self.last_reports: list[Report] = []

    def sync(self, snapshot: PolicySnapshot) -> list[Report]:
        reports = []
        for name, opener in zip(self.names, self.openers, strict=True):
            try:
                with opener() as target:
                    planned = plan(target, snapshot)
                    for problem in planned.plan.failing:
                        log.warning("%s: %s", target.name, problem)
                    report = apply(target, planned)
            except Exception as exc:  # one unreachable account must not stop the others
                log.error("grant sync failed: %s", exc)
                self._tell(name, "unreachable")
                continue
            _log_report(report)
            self._tell(name, _outcome(report))
            reports.append(report)
        self.last_reports = reports
        return reports

    def _tell(self, target: str, outcome: str) -> None:
        if self.outcome is not None:
            self.outcome(target, outcome)

    async def run(self, revisions: Revisions) -> None:
        """Run until cancelled: sync each revision as `revisions` publishes it, and every
        `interval` seconds in any case. The blocking platform calls run in a worker thread."""
        revision, last = None, 0.0
        while True:
            try:
                async with asyncio.timeout(TIMER_TICK):
                    snapshot = await revisions.after(revision)
            except TimeoutError:
                if time.monotonic() - last < self.interval:
                    continue
                snapshot = revisions.current
            reason = "new revision" if snapshot.revision != revision else "periodic reconcile"
            log.info("grant sync: %s %s", reason, snapshot.revision)
            await asyncio.to_thread(self.sync, snapshot)
            revision, last = snapshot.revision, time.monotonic()


def _outcome(report: Report) -> str:
    if report.failed:
        return "failed"
    return "clean" if report.clean else "drift"


def syncer_from(config: GrantsConfig, outcome: Outcome | None = None) -> GrantSyncer | None:
    """The syncer `pdp up` starts; None (and a log line saying so) when no target is configured."""
    if not config.targets:
        log.info("grant sync is off: no targets configured")
        return None
    names = ", ".join(spec.name for spec in config.targets)
    log.info("grant sync on for %s, full reconcile every %.0f s", names, config.interval)
    return GrantSyncer(
        [spec.open for spec in config.targets],
        config.interval,
        [spec.name for spec in config.targets],
        outcome,
    )


def _log_report(report: Report) -> None:
    drift = "unknown" if report.drift is None else str(len(report.drift.steps))
    level = logging.INFO if report.clean else logging.WARNING
    log.log(
        level,
        "%s: revision %s: %d applied, %d failed, drift left: %s",
        report.target,
        report.revision,
        len(report.applied),
        len(report.failed),
        drift,
    )
