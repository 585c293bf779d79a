"""Why the PDP is degraded (`pdp.service.run.Degraded`) is asked by every sidecar worker with
each heartbeat: the answer follows each new revision at once and a change of Trino's catalog
files within `every` seconds, while the snapshot counts its ungoverned sources once, however
often it is asked."""

from __future__ import annotations

import dataclasses
from collections.abc import ItemsView, Iterator, Mapping
from pathlib import Path

import pytest

from pdp.policy import DataSource, PolicySnapshot, Revisions, Technology
from pdp.service.run import Degraded

EXPOSED = DataSource("pg", Technology.POSTGRESQL, "shop", "public", "orders", trino_catalog="pg")
UNMAPPED = DataSource("pg", Technology.POSTGRESQL, "crm", "public", "leads")
NATIVE = DataSource("sf", Technology.SNOWFLAKE, "SALES", "PUBLIC", "DEALS")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def snapshot(revision: str, *sources: DataSource) -> PolicySnapshot:
    return PolicySnapshot.compile(revision, sources, [], {})


def ungoverned(count: int) -> str:
    return (
        f"{count} active data sources are not governed in Trino "
        "(no Trino catalog is mapped to their database: trinoCatalogs)"
    )


@pytest.mark.parametrize(
    ("sources", "catalogs", "reason"),
    [
        ((EXPOSED,), {}, None),
        ((EXPOSED, UNMAPPED), {}, ungoverned(1)),
        # a platform no catalog exposes is governed natively, until Trino's files front it
        ((EXPOSED, NATIVE), {}, None),
        ((NATIVE,), {"snow": "snowflake"}, ungoverned(1)),
        ((UNMAPPED,), {}, None),
        ((UNMAPPED,), {"other": "postgresql"}, ungoverned(1)),
        ((EXPOSED, UNMAPPED, NATIVE), {"snow": "snowflake"}, ungoverned(2)),
    ],
)
def test_ungoverned_sources_on_the_platforms_trino_fronts(
    tmp_path: Path, sources: tuple[DataSource, ...], catalogs: dict[str, str], reason: str | None
) -> None:
    for name, connector in catalogs.items():
        (tmp_path / f"{name}.properties").write_text(f"connector.name={connector}\n")
    assert Degraded(None, Revisions(snapshot("r1", *sources)), tmp_path)() == reason


def test_a_new_revision_is_answered_at_once_the_catalog_files_within_every_seconds(
    tmp_path: Path,
) -> None:
    revisions, clock = Revisions(snapshot("r1", UNMAPPED)), Clock()
    degraded = Degraded(None, revisions, tmp_path, every=1.0, clock=clock)
    assert degraded() is None  # no catalog fronts PostgreSQL
    (tmp_path / "other.properties").write_text("connector.name=postgresql\n")
    clock.now += 0.5
    assert degraded() is None  # the files read half a second ago stand
    clock.now += 0.5
    assert degraded() == ungoverned(1)
    revisions.publish(snapshot("r2", EXPOSED))
    assert degraded() is None  # the new revision's, without waiting


class CountedWalks(Mapping[str, DataSource]):
    """The sources of a snapshot, counting the walks over all of them."""

    def __init__(self, sources: Mapping[str, DataSource]) -> None:
        self.sources, self.walks = dict(sources), 0

    def __getitem__(self, path: str) -> DataSource:
        return self.sources[path]

    def __iter__(self) -> Iterator[str]:
        self.walks += 1
        return iter(self.sources)

    def __len__(self) -> int:
        return len(self.sources)

    def items(self) -> ItemsView[str, DataSource]:
        self.walks += 1
        return self.sources.items()


def test_the_snapshot_counts_its_ungoverned_sources_once_however_often_asked() -> None:
    compiled = snapshot("r1", EXPOSED, UNMAPPED, NATIVE)
    counted = CountedWalks(compiled.sources)
    walked = dataclasses.replace(compiled, sources=counted)
    answers = {walked.ungoverned(), walked.ungoverned(), walked.ungoverned({Technology.SNOWFLAKE})}
    assert counted.walks == 1
    assert answers == {(ungoverned(1),), (ungoverned(2),)}
