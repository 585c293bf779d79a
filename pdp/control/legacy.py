"""The legacy data source API (spec §8.5), until an integration's upgrade retires it.

`POST /dataSource` registers a data source (and its integration, the legacy connection) by hand;
`PUT`/`DELETE /dataSource/{id}`, `PUT /dataSource/detectRemoteChanges` and
`PUT /integrations/{name}/schemaMonitoring` edit them. Once an upgrade of the integration has
started past validation (`pdp.store.legacy.RETIRED_FROM`), each answers 400 `legacy_retired`
naming the `/data` endpoint that replaces it. Permission checks come before parsing the body.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pdp.control import permissions as perm
from pdp.control.catalogs import check_mapping
from pdp.control.permissions import Caller, Forbidden
from pdp.control.plane import ControlPlane
from pdp.objects.errors import Conflict, InvalidInput, NotFound
from pdp.objects.paths import ObjectPath
from pdp.policy.model import ObjectType, Technology
from pdp.store import ConnectionRecord, ConnectionState, NewConnection, Store, Writer
from pdp.store import legacy as lg
from pdp.store.legacy import Integration, LegacySource
from pdp.store.rows import technology as technology_of


class LegacyRetired(InvalidInput):
    """400: a legacy endpoint called for a data source of an upgraded integration."""

    def __init__(self, field: str, value: Any, integration: Integration, replacement: str):
        key = integration.display_name or integration.name
        super().__init__(
            field,
            value,
            f"{integration.name!r} is being (or has been) upgraded to connection {key!r}: "
            f"the legacy data source endpoints no longer apply to it; use {replacement}",
        )
        self.replacement = replacement


@dataclass(frozen=True, slots=True)
class ListingError:
    path: str  # database.schema
    message: str


@dataclass(frozen=True, slots=True)
class Detected:
    """What `detectRemoteChanges` registered, and the schemas it could not list."""

    added: tuple[LegacySource, ...]
    errors: tuple[ListingError, ...]


@dataclass(frozen=True, slots=True)
class Monitoring:
    """An integration's schema monitoring flags: (database, schema, on), as spelled."""

    integration: str
    flags: tuple[tuple[str, str, bool], ...]


def as_connection(
    store: Store,
    integration: Integration,
    endpoint: Mapping[str, Any] | None,
    credentials: Mapping[str, Any] | None,
) -> ConnectionRecord:
    """The connection an integration becomes (state `upgrading`), to check or crawl: with
    these endpoint and credentials (sealed here), or the integration's own."""
    sealed = (
        store.secrets.seal(credentials, "credentials")
        if credentials is not None
        else integration.credentials
    )
    becomes = NewConnection(
        integration.display_name or integration.name,
        integration.technology,
        endpoint=endpoint if endpoint is not None else integration.endpoint,
        settings=integration.settings,
    )
    return becomes.checkable(sealed, ConnectionState.UPGRADING)


class LegacyApi:
    """The legacy endpoints over the store's integrations. Blocking (store and platform I/O)."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self.store: Store = plane.store

    def _live(self, integration: Integration, field: str, value: Any, replacement: str) -> None:
        if integration.upgrade_state in lg.RETIRED_FROM:
            raise LegacyRetired(field, value, integration, replacement)

    @staticmethod
    def _replacement(integration: Integration, *names: str) -> str:
        key = integration.display_name or integration.name
        return ObjectPath(key, tuple(names)).url

    def register_source(self, caller: Caller, body: Mapping[str, Any]) -> LegacySource:
        perm.require_register(caller)
        details = dict(body.get("connection") or {})
        self.plane.references.check(details.get("endpoint"), "connection.endpoint")
        self.plane.references.check(details.get("credentials"), "connection.credentials")
        name = details.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidInput("connection.name", name, "name the integration (connection)")
        with self.store.write() as writer:
            integration = writer.find_integration(name)
            if integration is None:
                try:
                    writer.connection(name)
                    raise Conflict(
                        "connection.name", name, "a connection has this key: use /data instead"
                    )
                except NotFound:
                    pass
                technology, endpoint, catalogs = self._claims(caller, name, details)
                integration = writer.create_integration(
                    name,
                    technology,
                    endpoint,
                    details.get("credentials") or {},
                    {"trinoCatalogs": catalogs} if catalogs else None,
                )
            self._live(
                integration,
                "connection.name",
                name,
                "PUT /data/settings/"
                + self._replacement(
                    integration, *(str(body.get(k, "")) for k in ("database", "schema", "table"))
                ),
            )
            source = writer.add_source(
                integration,
                body.get("database", ""),
                body.get("schema", ""),
                body.get("table", ""),
                type=_object_type(body.get("type")),
                tags=_strings(body.get("tags"), "tags"),
                owners=_owners(body.get("owners")),
                active=_status(body.get("status", "active")),
            )
        return source

    def _editable(
        self,
        writer: Writer,
        caller: Caller,
        source_id: str,
        replacement: Callable[[str, str], str],
    ) -> tuple[Integration, LegacySource]:
        """A data source the caller may edit, of an integration not being upgraded (else 400
        naming `replacement(the source's /data path, the connection's)`)."""
        integration, source = writer.source(source_id)
        self._require_source(writer, caller)
        url = self._replacement(integration, *source.names)
        self._live(
            integration, "dataSourceId", source_id, replacement(url, self._replacement(integration))
        )
        return integration, source

    def _claims(
        self, caller: Caller, name: str, details: Mapping[str, Any]
    ) -> tuple[Technology, Mapping[str, Any], dict[str, str]]:
        """A new integration's technology, endpoint and `trinoCatalogs`, checked as a
        connection's registration checks what it claims (`ControlPlane.may_claim`)."""
        technology = technology_of(details.get("technology", ""), "connection.technology")
        catalogs = details.get("trinoCatalogs") or {}
        if catalogs:
            catalogs = check_mapping(technology, catalogs, "connection.trinoCatalogs")
        endpoint = details.get("endpoint") or {}
        self.plane.may_claim(caller, name, technology, endpoint, catalogs)
        return technology, endpoint, catalogs

    def edit_source(self, caller: Caller, source_id: str, body: Mapping[str, Any]) -> LegacySource:
        with self.store.write() as writer:
            integration, source = self._editable(
                writer,
                caller,
                source_id,
                lambda url, key: (
                    f"PUT /data/settings/{url} (status) and PUT "
                    f"/data/connection/{key} (connection details)"
                ),
            )
            details = body.get("connection") or {}
            if integration.technology is Technology.TRINO and "endpoint" in details:
                endpoint = details["endpoint"] or {}
                self.plane.may_claim(caller, integration.name, integration.technology, endpoint, {})
            values: dict[str, Any] = {}
            if "tags" in body:
                values["tags"] = _strings(body["tags"], "tags")
            if "owners" in body:
                values["owners"] = _owners(body["owners"])
            if "status" in body:
                values["active"] = _status(body["status"])
            if values:
                source = writer.update_source(source_id, **values)
            for part in ("endpoint", "credentials"):
                self.plane.references.check(details.get(part), f"connection.{part}")
            changes = {k: details[k] for k in ("endpoint", "credentials") if k in details}
            if changes:
                writer.update_integration(integration, **changes)
        return source

    def delete_source(self, caller: Caller, source_id: str) -> str:
        with self.store.write() as writer:
            self._editable(writer, caller, source_id, lambda url, _: f"DELETE /data/object/{url}")
            writer.delete_source(source_id)
        return source_id

    def detect_remote_changes(self, caller: Caller, name: str) -> Detected:
        """The legacy schema monitoring run: tables found in monitored schemas that are not
        registered yet are registered, active."""
        with self.store.read() as reader:
            integration = reader.integration(name)
            self._require_source(reader, caller)
            self._live(
                integration,
                "connection",
                name,
                f"POST /data/crawl/{self._replacement(integration)}",
            )
            known = {lg.fold_names(s.names) for s in reader.sources_of(integration)}
        record = as_connection(self.store, integration, None, None)
        monitored = [k.split("\x00") for k, on in integration.schema_monitoring.items() if on]
        found: list[tuple[str, str, str, str | None]] = []
        errors: list[ListingError] = []
        crawler = self.plane.crawler_factory(record)
        try:
            for database, schema in monitored:
                spelled = _spelling(integration, database, schema)
                listing = crawler.list(spelled)
                if listing.children is None:
                    errors.append(ListingError(".".join(spelled), listing.error or "failed"))
                    continue
                for child in listing.children:
                    if lg.fold_names((*spelled, child.name)) not in known:
                        found.append((*spelled, child.name, child.remote_type))
        finally:
            crawler.close()
        added: list[LegacySource] = []
        with self.store.write() as writer:
            integration = writer.integration(name)
            for database, schema, table, _ in found:
                added.append(writer.add_source(integration, database, schema, table))
        return Detected(tuple(added), tuple(errors))

    def schema_monitoring(
        self, caller: Caller, name: str, database: str, schema: str, enabled: bool
    ) -> Monitoring:
        with self.store.write() as writer:
            integration = writer.integration(name)
            self._require_source(writer, caller)
            self._live(
                integration,
                "integration",
                name,
                f"PUT /data/settings/{self._replacement(integration, database, schema)} "
                "(activateNewChildren)",
            )
            if not isinstance(enabled, bool):
                raise InvalidInput("enabled", enabled, "expected true or false")
            flags = dict(integration.schema_monitoring)
            flags[lg.monitor_key(database, schema)] = enabled
            integration = writer.update_integration(integration, schema_monitoring=flags)
            spellings = dict(integration.settings.get("schemaSpelling", {}))
            spellings[lg.monitor_key(database, schema)] = [database, schema]
            settings = {**integration.settings, "schemaSpelling": spellings}
            integration = writer.update_integration(integration, settings=settings)
        return Monitoring(
            integration.name,
            tuple(
                (d, s, integration.schema_monitoring.get(k, False))
                for k, (d, s) in sorted(spellings.items())
            ),
        )

    @staticmethod
    def _require_source(reader: Any, caller: Caller) -> None:
        if not caller.has(perm.APPLICATION_ADMIN, perm.CREATE_DATA_SOURCE, perm.GOVERNANCE):
            raise Forbidden(
                "APPLICATION_ADMIN, CREATE_DATA_SOURCE or GOVERNANCE",
                f"user {caller.name!r} may not manage legacy data sources",
                caller.name,
            )


def _spelling(integration: Integration, database: str, schema: str) -> tuple[str, str]:
    spelled = integration.settings.get("schemaSpelling", {}).get(lg.monitor_key(database, schema))
    return (spelled[0], spelled[1]) if spelled else (database, schema)


def _object_type(value: Any) -> ObjectType:
    if value is None:
        return ObjectType.TABLE
    try:
        return ObjectType(str(value).upper())
    except ValueError:
        raise InvalidInput("type", value, "not a table type") from None


def _strings(value: Any, field: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput(field, value, "expected a list of strings")
    return value


def _owners(value: Any) -> list[dict[str, str]]:
    if value is None:
        return []
    result = []
    for owner in value if isinstance(value, list) else [None]:
        if isinstance(owner, str):
            owner = {"principal": owner, "principalKind": "user"}
        if not isinstance(owner, dict) or not owner.get("principal"):
            raise InvalidInput("owners", value, "expected user names or {principal, principalKind}")
        kind = owner.get("principalKind", "user")
        if kind not in ("user", "group"):
            raise InvalidInput("owners", value, "principalKind is user or group")
        result.append({"principal": owner["principal"], "principalKind": kind})
    return result


def _status(value: Any) -> bool:
    if value in ("active", True):
        return True
    if value in ("inactive", False):
        return False
    raise InvalidInput("status", value, "expected active or inactive")
