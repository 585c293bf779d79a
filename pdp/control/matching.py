"""Matching legacy data sources to the tables of their upgraded connection (spec §8.4).

A data source names a database, schema and table; the upgrade's listings say what the platform
has. Exact names win; otherwise a case-insensitive match counts only when it is unique. A match
gives the table the data source's id, status override, tags and owners.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pdp.objects.errors import NotFound
from pdp.objects.paths import ObjectPath
from pdp.objects.syncplan import Listing
from pdp.store import PrincipalKind, Role, Writer
from pdp.store.legacy import LegacySource, MatchReason, MatchState

REASONS = {
    MatchReason.NOT_FOUND: "no remote table has this database, schema and table name",
    MatchReason.NOT_VISIBLE: "the system user could not list {where}",
    MatchReason.AMBIGUOUS: "several remote names differ from {name!r} by case only",
    MatchReason.INVALID_NAME: "{name!r} is not a name a remote object can have",
}


def _invalid_name(name: str) -> bool:
    return not name or name != name.strip() or any(ord(c) < 32 for c in name) or len(name) > 255


@dataclass(frozen=True, slots=True)
class Match:
    names: tuple[str, ...] | None  # the remote spelling, when matched
    reason: MatchReason | None = None
    detail: str = ""


def match_source(names: Sequence[str], listings: Mapping[tuple[str, ...], Listing]) -> Match:
    """Spec §8.4: exact names first, then a case-insensitive match only when unique."""
    parent: tuple[str, ...] = ()
    for name in names:
        if _invalid_name(name):
            return Match(
                None, MatchReason.INVALID_NAME, REASONS[MatchReason.INVALID_NAME].format(name=name)
            )
        listing = listings.get(tuple(n.casefold() for n in parent))
        if listing is None or listing.children is None:
            where = ".".join(parent) or "the connection"
            return Match(
                None,
                MatchReason.NOT_VISIBLE,
                REASONS[MatchReason.NOT_VISIBLE].format(where=where)
                + (f" ({listing.error})" if listing is not None and listing.error else ""),
            )
        remote = [child.name for child in listing.children]
        if name in remote:
            chosen = name
        else:
            folded = [r for r in remote if r.casefold() == name.casefold()]
            if len(folded) > 1:
                return Match(
                    None, MatchReason.AMBIGUOUS, REASONS[MatchReason.AMBIGUOUS].format(name=name)
                )
            if not folded:
                return Match(None, MatchReason.NOT_FOUND, REASONS[MatchReason.NOT_FOUND])
            chosen = folded[0]
        if sum(1 for r in remote if r.casefold() == chosen.casefold()) > 1:
            # The store keeps one object per name case-insensitively; sync skipped them both.
            return Match(
                None, MatchReason.AMBIGUOUS, REASONS[MatchReason.AMBIGUOUS].format(name=name)
            )
        parent = (*parent, chosen)
    return Match(parent)


def index_listings(listings: Sequence[Listing]) -> dict[tuple[str, ...], Listing]:
    return {tuple(n.casefold() for n in x.parent): x for x in listings}


def apply_match(writer: Writer, source: LegacySource, path: ObjectPath) -> None:
    """The table becomes this data source: its id, status, tags and owners carry over."""
    record = writer.object(path)
    if record.data_source_id != source.id:
        writer.assign_data_source(record.path, source.id)
    writer.set_settings(
        path, is_active=source.active and source.match_state is not MatchState.DISABLED
    )
    for tag in source.tags:
        writer.add_tag(path, tag)
    for owner in source.owners:
        writer.grant(
            path,
            owner["principal"],
            Role.DATA_OWNER,
            principal_kind=PrincipalKind(owner.get("principalKind", "user")),
            granted_by="upgrade",
        )
    writer.update_source(
        source.id,
        match_state=MatchState.MATCHED,
        matched_path=record.path.url,
        match_reason=None,
    )


def apply_matches(
    writer: Writer, integration_name: str, key: str, listings: Sequence[Listing]
) -> dict[str, Any]:
    """Match every data source not resolved yet; schema monitoring becomes schema status."""
    integration = writer.integration(integration_name)
    by_parent = index_listings(listings)
    stats = {"matched": 0, "matchedByCase": 0, "unresolved": 0, "alreadyResolved": 0}
    sources = writer.sources_of(integration)
    claimed = {
        s.matched_path.casefold()
        for s in sources
        if s.match_state is MatchState.MATCHED and s.matched_path
    }
    for source in sources:
        if source.match_state in (MatchState.DISABLED, MatchState.DELETED):
            stats["alreadyResolved"] += 1
            continue
        for counter in _match_one(writer, source, key, by_parent, claimed):
            stats[counter] += 1
    for monitored, on in integration.schema_monitoring.items():
        if not on:
            continue
        database, schema = monitored.split("\x00")
        try:
            stored = writer.object(ObjectPath(key, (database, schema)))
        except NotFound:
            continue
        writer.set_settings(stored.path, is_active=True, activate_new_children=True)
    return stats


def _match_one(
    writer: Writer,
    source: LegacySource,
    key: str,
    by_parent: Mapping[tuple[str, ...], Listing],
    claimed: set[str],
) -> tuple[str, ...]:
    """Match one data source (again: a match whose table is still there is kept); the
    counters of `apply_matches`' stats it adds to. `claimed`: tables matched so far."""
    if source.match_state is MatchState.MATCHED and source.matched_path:
        try:
            apply_match(writer, source, ObjectPath.parse_url(source.matched_path))
            return ("matched",)
        except NotFound:
            pass
    found = match_source(source.names, by_parent)
    if found.names is not None:
        target = ObjectPath(key, found.names)
        try:
            writer.object(target)
        except NotFound:
            found = Match(None, MatchReason.NOT_FOUND, REASONS[MatchReason.NOT_FOUND])
        else:
            if target.url.casefold() in claimed:
                found = Match(
                    None,
                    MatchReason.AMBIGUOUS,
                    f"another data source is matched to {target.url} already",
                )
    if found.names is None:
        assert found.reason is not None
        writer.update_source(
            source.id,
            match_state=MatchState.UNRESOLVED,
            match_reason=f"{found.reason.value}: {found.detail}",
            matched_path=None,
        )
        return ("unresolved",)
    target = ObjectPath(key, found.names)
    claimed.add(target.url.casefold())
    apply_match(writer, source, target)
    return ("matched", "matchedByCase") if found.names != source.names else ("matched",)
