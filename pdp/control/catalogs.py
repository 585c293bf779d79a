"""The Trino catalog that exposes each database of a non-Trino connection (`trinoCatalogs`).

A PostgreSQL table is governed in Trino only through the catalog Trino reads it by: without
that mapping its masks, row filters and subscription policies never reach a Trino query. At
registration the PDP proposes the mapping from the Trino catalog files it knows
(`control.trinoCatalogFiles` in pdp.yaml: a copy of, or the path to, Trino's `etc/catalog`):
every `postgresql` catalog whose `connection-url` names the connection's host and port maps the
database the URL names. A mapping given at registration wins; none found, the registration
answer and `pdp connections status` say so.

A mapping decides who governs a catalog's tables in Trino: the Data Owners of the connection's
objects own the Trino tables they map to (and masks that exempt owners skip them). So a caller
without GOVERNANCE may map a catalog only when nobody governs it yet (the policy files, a Trino
connection that lists it, another connection's mapping, a legacy integration's) or when the
operator's catalog files show that it reads this very connection (the proposal); else 403
naming who governs it.

A Trino connection claims every catalog its Trino lists, which nobody knows before its sync (and
a Trino reached under another name, or a look-alike listing the same catalog names, is not told
apart from the one the sidecars guard): the first claimant governs, and a caller without
GOVERNANCE may register a Trino connection, or point one at another endpoint, only while no
other Trino connection exists and no Trino catalog is governed. `check_claims` is the one
place both rules are checked.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pdp.config.properties import read_entries
from pdp.control.permissions import GOVERNANCE, Caller, Forbidden
from pdp.core.model import fold
from pdp.objects.errors import InvalidInput
from pdp.policy.model import DataSource, Technology

log = logging.getLogger(__name__)

KEY = "trinoCatalogs"  # in a connection's settings: {database: catalog}
LOOPBACK = {"localhost", "127.0.0.1", "::1"}
POSTGRES_PORT = 5432
# Trino connector -> the platform its catalogs read (a catalog file's `connector.name`)
CONNECTORS = {
    "postgresql": Technology.POSTGRESQL,
    "snowflake": Technology.SNOWFLAKE,
    "delta_lake": Technology.DATABRICKS,
}


@dataclass(frozen=True)
class Proposal:
    catalogs: dict[str, str]
    source: str  # where they come from, or why there are none


def check_mapping(technology: Technology, mapping: Any, field: str) -> dict[str, str]:
    """A `trinoCatalogs` value: database names to catalog names, both non-empty strings; a
    Trino connection has none (its databases are its catalogs)."""
    if technology is Technology.TRINO and mapping:
        raise InvalidInput(field, mapping, "a Trino connection's databases are its catalogs")
    if not isinstance(mapping, Mapping) or not all(
        isinstance(k, str) and k and isinstance(v, str) and v for k, v in mapping.items()
    ):
        raise InvalidInput(field, mapping, "expected {database: Trino catalog} of names")
    return dict(mapping)


def governed(
    key: str,
    declared: Iterable[DataSource],
    mappings: Mapping[str, Mapping[str, str]],
    trino_catalogs: Mapping[str, Iterable[str]],
) -> dict[str, str]:
    """Folded Trino catalog -> who governs it, other than connection `key`: the policy files'
    data sources, other connections' `trinoCatalogs` (`mappings`: key -> mapping) and the
    catalogs Trino connections list (`trino_catalogs`: key -> catalog names)."""
    found: dict[str, str] = {}
    for source in declared:
        if source.trino_catalog and fold(source.connection) != fold(key):
            found.setdefault(fold(source.trino_catalog), "the policy files")
    for other, catalogs in trino_catalogs.items():
        if fold(other) != fold(key):
            for catalog in catalogs:
                found.setdefault(fold(catalog), f"the Trino connection {other!r}")
    for other, mapping in mappings.items():
        if fold(other) != fold(key):
            for catalog in mapping.values():
                found.setdefault(fold(catalog), f"the connection {other!r}")
    return found


def check_claims(
    caller: Caller,
    technology: Technology,
    mapping: Mapping[str, str],
    governed: Mapping[str, str],
    proposal: Proposal,
    trinos: Iterable[str] = (),
) -> None:
    """403 unless `caller` may claim what a connection of `technology` with `mapping` claims
    (see the module's docstring); `trinos` names the other Trino connections."""
    if caller.has(GOVERNANCE):
        return
    if technology is Technology.TRINO:
        claimants = [f"the Trino connection {k!r}" for k in sorted(trinos)]
        claimants += [who for _, who in sorted(governed.items())]
        if claimants:
            by = claimants[0]
            raise Forbidden(
                "GOVERNANCE",
                f"Trino catalogs are governed already (by {by}) and a Trino connection claims "
                "every catalog its Trino lists: only GOVERNANCE may register another one or "
                "point one at another endpoint",
                by,
            )
        return
    for database, catalog in sorted(mapping.items()):
        who = governed.get(fold(catalog))
        if who is not None and proposal.catalogs.get(database) != catalog:
            raise Forbidden(
                "GOVERNANCE",
                f"the Trino catalog {catalog!r} is governed by {who}: only GOVERNANCE may map "
                "another connection onto it (the Trino catalog files do not show that it reads "
                "this connection)",
                {database: catalog},
            )


def propose(
    technology: Technology, endpoint: Mapping[str, Any], directory: Path | None
) -> Proposal:
    """The mapping proposed for a connection registered without one."""
    if technology is not Technology.POSTGRESQL:
        return Proposal({}, f"no proposal for {technology.value} connections: give {KEY}")
    if directory is None:
        return Proposal({}, "control.trinoCatalogFiles is not set: no Trino catalog is known")
    try:
        files = sorted(directory.glob("*.properties"))
    except OSError as error:
        return Proposal({}, f"cannot read {directory}: {error.strerror}")
    host = _host(str(endpoint.get("host", "")))
    port = _port(endpoint.get("port"))
    found: dict[str, str] = {}
    for file in files:
        try:
            entries = read_entries(file.read_text(encoding="utf-8"))
        except OSError as error:
            log.warning("cannot read the Trino catalog file %s: %s", file, error.strerror)
            continue
        if entries.get("connector.name") != "postgresql":
            continue
        target = _postgres_url(entries.get("connection-url", ""))
        if target is not None and target[:2] == (host, port):
            found.setdefault(target[2], file.stem)
    if not found:
        return Proposal({}, f"no postgresql catalog in {directory} points at {host}:{port}")
    return Proposal(found, f"proposed from the Trino catalog files in {directory}")


def fronted(directory: Path | None) -> frozenset[Technology]:
    """The platforms Trino's catalog files (`control.trinoCatalogFiles`) hold a catalog of: an
    active data source on one of them that no catalog exposes is a reason to be degraded."""
    if directory is None:
        return frozenset()
    found: set[Technology] = set()
    for file in sorted(directory.glob("*.properties")):
        try:
            connector = read_entries(file.read_text(encoding="utf-8")).get("connector.name")
        except OSError as error:
            log.warning("cannot read the Trino catalog file %s: %s", file, error.strerror)
            continue
        if connector in CONNECTORS:
            found.add(CONNECTORS[connector])
    return frozenset(found)


def _postgres_url(url: str) -> tuple[str, int, str] | None:
    """(host, port, database) of `jdbc:postgresql://host[:port]/database[?...]`."""
    if not url.startswith("jdbc:postgresql:"):
        return None
    try:
        parts = urlsplit(url[len("jdbc:") :])
        port = parts.port or POSTGRES_PORT
    except ValueError:
        return None
    database = parts.path.lstrip("/")
    if not parts.hostname or not database:
        return None
    return _host(parts.hostname), port, database


def _host(name: str) -> str:
    name = name.strip("[]").casefold()
    return "127.0.0.1" if name in LOOPBACK else name


def _port(value: Any) -> int:
    try:
        return int(value) if value is not None else POSTGRES_PORT
    except (TypeError, ValueError):
        return POSTGRES_PORT
