"""decide(view, request) -> Decision: the combining rule of decisions.md, section 3."""

from __future__ import annotations

from collections.abc import Iterable

from pdp.core.model import (
    Access,
    AccessGrantMapping,
    CatalogRef,
    Decision,
    PolicyGrant,
    Request,
    Resource,
    SchemaRef,
    TableKey,
    TableRef,
    UserRef,
    View,
    name_of,
)
from pdp.core.operations import OPERATIONS, Rule


def decide(view: View, request: Request) -> Decision:
    entry = OPERATIONS.get(request.operation)
    if entry is None:
        return Decision(False, "unknown-operation", f"unknown operation {request.operation!r}")
    rule, access = entry
    user, resource = request.identity.user, request.resource
    if view.settings.is_admin(user):
        return Decision(True, "admin", f"user {user!r} matches immuta.user.admin")
    match rule, resource:
        case Rule.ALLOW, _:
            return Decision(True, "identity", f"{request.operation} is allowed to every user")
        case Rule.SELF, UserRef(owner):
            return Decision(owner == user, "identity", f"{user!r} acting on user {owner!r}")
        case Rule.ADMIN_ONLY, _:
            return Decision(False, "identity", f"{request.operation} is for admins only")
        case Rule.TABLE, TableRef() if access is Access.READ and is_metadata(resource):
            return Decision(True, "metadata", f"{_name(resource)} lists only what Trino filters")
        case Rule.TABLE, TableRef():
            return on_table(view, resource, access)
        case Rule.CREATE_TABLE, TableRef():
            if resource.key in view.registry.tables:  # CREATE OR REPLACE of a data source
                return on_table(view, resource, Access.OWN)
            return non_datasource(view, Access.CREATE, _name(resource))
        case Rule.RENAME_TABLE, TableRef():
            source = on_table(view, resource, Access.OWN)
            if not source.allowed or request.target is None:
                return source
            return non_datasource(view, Access.CREATE, _name(request.target))
        case Rule.NON_DATASOURCE, _:
            return non_datasource(view, access, _name(resource))
        case Rule.CONTAINER_OWN, CatalogRef() | SchemaRef():
            return container_own(view, request)
        case Rule.CATALOG_VISIBLE, CatalogRef(catalog):
            return visible(view, catalog, None)
        case Rule.SCHEMA_VISIBLE, SchemaRef(catalog, schema):
            return visible(view, catalog, schema)
        case Rule.NO_ROW_FILTER | Rule.NO_MASK, _:
            return Decision(True, "no-data-policy", "no data policy applies")
    return Decision(False, "malformed", f"{request.operation} needs a different resource")


# Metadata tables whose rows Trino itself filters per user (FilterCatalogs/Schemas/Tables/Columns),
# as Trino's file-based access control exempts information_schema. Denying the table would only
# break SHOW SCHEMAS, JDBC metadata and BI tools for users who may see some of its rows.
METADATA_SCHEMAS = frozenset({"information_schema"})
METADATA_SYSTEM_SCHEMAS = frozenset({"jdbc", "metadata"})


def is_metadata(table: TableRef) -> bool:
    schema = table.schema.lower()
    return schema in METADATA_SCHEMAS or (
        table.catalog.lower() == "system" and schema in METADATA_SYSTEM_SCHEMAS
    )


def on_table(view: View, table: TableRef, access: Access) -> Decision:
    if table.key not in view.registry.tables:
        return non_datasource(view, access, _name(table))
    granting = _granting(view, table.key, access)
    if not granting:
        return Decision(False, "data-source", f"no active policy grants {access} on {_name(table)}")
    if access not in view.settings.datasource_operations:
        return Decision(
            False,
            "data-source",
            f"{access} is not in immuta.allowed.immuta.datasource.operations",
            granting,
        )
    return Decision(True, "data-source", f"{access} on {_name(table)} granted", granting)


def non_datasource(view: View, access: Access, name: str) -> Decision:
    allowed = access in view.settings.non_datasource_operations
    verb = "is" if allowed else "is not"
    return Decision(
        allowed,
        "non-data-source",
        f"{name} is no data source and {access} {verb} in "
        "immuta.allowed.non.immuta.datasource.operations",
    )


def container_own(view: View, request: Request) -> Decision:
    resource = request.resource
    catalog, schema = resource.catalog, getattr(resource, "schema", None)  # type: ignore[union-attr]
    decision = non_datasource(view, Access.OWN, _name(resource))
    if not decision.allowed:
        return decision
    for key in sorted(view.registry.inside(catalog, schema)):
        if not _allowed(view, key, Access.OWN):
            return Decision(False, "data-source", f"OWN is not allowed on {'.'.join(key)} inside")
    if request.operation == "RenameSchema" and request.target is not None:
        return non_datasource(view, Access.CREATE, _name(request.target))
    return decision


def visible(view: View, catalog: str, schema: str | None) -> Decision:
    name = catalog if schema is None else f"{catalog}.{schema}"
    if Access.READ in view.settings.non_datasource_operations:
        return non_datasource(view, Access.READ, name)
    inside = view.registry.inside(catalog, schema)
    candidates = inside if len(inside) < len(view.grants) else view.grants.keys() & inside
    for key in sorted(candidates):
        if _allowed(view, key, Access.READ):
            granting = _granting(view, key, Access.READ)
            return Decision(True, "visible", f"{name} holds readable {'.'.join(key)}", granting)
    return Decision(False, "visible", f"{name} holds no data source the user may read")


def granting(
    mapping: AccessGrantMapping, grants: Iterable[PolicyGrant], access: Access
) -> tuple[str, ...]:
    """The policies among `grants` whose access type yields `access` under `mapping`.

    Trino decisions and native grant sync (pdp.grants) both ask this, so a table is readable
    through Trino exactly when the native read privilege is planned."""
    return tuple(g.policy for g in grants if access in mapping[g.access])


def _granting(view: View, key: TableKey, access: Access) -> tuple[str, ...]:
    return granting(view.settings.mapping, view.grants.get(key, ()), access)


def _allowed(view: View, key: TableKey, access: Access) -> bool:
    return access in view.settings.datasource_operations and bool(_granting(view, key, access))


def _name(resource: Resource | None) -> str:
    return "(no object)" if resource is None else name_of(resource)
