"""decide(view, request) -> Decision: the combining rule of decisions.md, section 3."""

from __future__ import annotations

from collections.abc import Iterable

from pdp.core.datapolicy import data_policies_on
from pdp.core.model import (
    Access,
    AccessGrantMapping,
    Basis,
    CatalogRef,
    Decision,
    Identity,
    PolicyGrant,
    Request,
    Resource,
    SchemaRef,
    TableKey,
    TableRef,
    UserRef,
    View,
    fold,
    name_of,
)
from pdp.core.operations import OPERATIONS, ByIdentity, IdentityRule, ObjectRule


def decide(view: View, request: Request) -> Decision:
    check = OPERATIONS.get(request.operation)
    if check is None:
        return Decision(False, Basis.UNKNOWN_OPERATION, f"unknown operation {request.operation!r}")
    user = request.identity.user
    if view.settings.is_admin(user):
        return Decision(True, Basis.ADMIN, f"user {user!r} matches immuta.user.admin")
    if isinstance(check, ByIdentity):
        decision = by_identity(check.rule, request)
    else:
        decision = on_object(view, check.rule, check.access, request)
    if decision is None:
        return Decision(False, Basis.MALFORMED, f"{request.operation} needs a different resource")
    return decision


def by_identity(rule: IdentityRule, request: Request) -> Decision | None:
    user, operation = request.identity.user, request.operation
    match rule, request.resource:
        case IdentityRule.ALLOW, _:
            return Decision(True, Basis.IDENTITY, f"{operation} is allowed to every user")
        case IdentityRule.SELF, UserRef(owner):
            return Decision(owner == user, Basis.IDENTITY, f"{user!r} acting on user {owner!r}")
        case IdentityRule.ADMIN_ONLY, _:
            return Decision(False, Basis.IDENTITY, f"{operation} is for admins only")
        case IdentityRule.NO_ROW_FILTER | IdentityRule.NO_MASK, _:
            return Decision(True, Basis.NO_DATA_POLICY, "no data policy applies")
    return None


def on_object(view: View, rule: ObjectRule, access: Access, request: Request) -> Decision | None:
    match rule, request.resource:
        case (
            ObjectRule.TABLE | ObjectRule.TABLE_ROWS,
            TableRef() as table,
        ) if access is Access.READ and is_metadata(table):
            return Decision(True, Basis.METADATA, f"{_name(table)} lists only what Trino filters")
        case ObjectRule.TABLE, TableRef() as table:
            return on_table(view, table, access)
        case ObjectRule.TABLE_ROWS, TableRef() as table:
            return unasked_data_policy(view, access, request.identity, table)
        case ObjectRule.CREATE_TABLE, TableRef() as table:
            if view.registry.holds(table.key):  # CREATE OR REPLACE of a data source
                return on_table(view, table, Access.OWN)
            return unregistered(view, access, table)
        case ObjectRule.RENAME_TABLE, TableRef() as table:
            return renamed(view, on_table(view, table, access), request.target)
        case ObjectRule.NON_DATASOURCE, resource:
            return unregistered(view, access, resource)
        case ObjectRule.CONTAINER_OWN, CatalogRef() | SchemaRef() as container:
            return container_own(view, container)
        case ObjectRule.RENAME_SCHEMA, CatalogRef() | SchemaRef() as container:
            return renamed(view, container_own(view, container), request.target)
        case ObjectRule.CATALOG_VISIBLE, CatalogRef(catalog):
            return visible(view, catalog, None)
        case ObjectRule.SCHEMA_VISIBLE, SchemaRef(catalog, schema):
            return visible(view, catalog, schema)
    return None


# Metadata tables whose rows Trino itself filters per user (FilterCatalogs/Schemas/Tables/Columns),
# as Trino's file-based access control exempts information_schema. Denying the table would only
# break SHOW SCHEMAS, JDBC metadata and BI tools for users who may see some of its rows.
METADATA_SCHEMAS = frozenset({"information_schema"})
METADATA_SYSTEM_SCHEMAS = frozenset({"jdbc", "metadata"})


def is_metadata(table: TableRef) -> bool:
    return is_metadata_name(table.catalog, table.schema)


def is_metadata_name(catalog: str, schema: str) -> bool:
    schema = schema.lower()
    return schema in METADATA_SCHEMAS or (
        catalog.lower() == "system" and schema in METADATA_SYSTEM_SCHEMAS
    )


def on_table(view: View, table: TableRef, access: Access) -> Decision:
    if not view.registry.holds(table.key):
        return unregistered(view, access, table)
    granting = _granting(view, table.key, access)
    if not granting:
        return Decision(
            False, Basis.DATA_SOURCE, f"no active policy grants {access} on {_name(table)}"
        )
    if access not in view.settings.datasource_operations:
        return Decision(
            False,
            Basis.DATA_SOURCE,
            f"{access} is not in immuta.allowed.immuta.datasource.operations",
            granting,
        )
    return Decision(True, Basis.DATA_SOURCE, f"{access} on {_name(table)} granted", granting)


def unasked_data_policy(
    view: View, access: Access, identity: Identity, table: TableRef
) -> Decision:
    """`on_table`, except that an allowed read or write becomes a denial when a data policy
    applies that the cluster's Trino will not apply (configured without the data-policy URIs)."""
    decision = on_table(view, table, access)
    if view.settings.data_policy_uris or not decision.allowed:
        return decision
    policies = data_policies_on(view, identity, table.key, masks=access is Access.READ)
    if not policies:
        return decision
    return Decision(
        False,
        Basis.DATA_POLICY_UNASKED,
        f"data policies apply to {identity.user!r} on {_name(table)} "
        f"({', '.join(policies)}), and this cluster's Trino does not ask for them "
        "(pdp.trino.data.policy.uris=absent)",
        decision.policies,
    )


# Trino's own catalog: no connector catalog can take its name and crawlers skip it, so no store
# ever registers a data source in it.
SYSTEM_CATALOG = "system"


def unregistered(view: View, access: Access, resource: Resource | None) -> Decision:
    """An object the registry does not list as a data source: the non-data-source rule, unless
    the registry is incomplete (the store unknown), when it may be one of the store's: deny."""
    if not view.registry.complete and not _in_system_catalog(resource):
        return Decision(
            False,
            Basis.STORE_UNKNOWN,
            f"{_name(resource)} may be a data source of the PDP's store, which is unreachable "
            "with no saved snapshot of it",
        )
    return non_datasource(view, access, _name(resource))


def _in_system_catalog(resource: Resource | None) -> bool:
    catalog = getattr(resource, "catalog", None)
    return isinstance(catalog, str) and fold(catalog) == SYSTEM_CATALOG


def non_datasource(view: View, access: Access, name: str) -> Decision:
    allowed = access in view.settings.non_datasource_operations
    verb = "is" if allowed else "is not"
    return Decision(
        allowed,
        Basis.NON_DATA_SOURCE,
        f"{name} is no data source and {access} {verb} in "
        "immuta.allowed.non.immuta.datasource.operations",
    )


def container_own(view: View, container: CatalogRef | SchemaRef) -> Decision:
    schema = container.schema if isinstance(container, SchemaRef) else None
    decision = unregistered(view, Access.OWN, container)
    if not decision.allowed:
        return decision
    for key in sorted(view.registry.inside(container.catalog, schema)):
        if not _allowed(view, key, Access.OWN):
            return Decision(
                False, Basis.DATA_SOURCE, f"OWN is not allowed on {'.'.join(key)} inside"
            )
    return decision


def renamed(view: View, source: Decision, target: Resource | None) -> Decision:
    """A rename needs what its source needs, then CREATE for the new name."""
    if not source.allowed or target is None:
        return source
    return unregistered(view, Access.CREATE, target)


def visible(view: View, catalog: str, schema: str | None) -> Decision:
    container = CatalogRef(catalog) if schema is None else SchemaRef(catalog, schema)
    name = _name(container)
    if Access.READ in view.settings.non_datasource_operations:
        unlisted = unregistered(view, Access.READ, container)
        if unlisted.allowed:
            return unlisted
    else:
        unlisted = Decision(False, Basis.VISIBLE, f"{name} holds no data source the user may read")
    inside = view.registry.inside(catalog, schema)
    candidates = inside if len(inside) < len(view.grants) else view.grants.keys() & inside
    for key in sorted(candidates):
        if _allowed(view, key, Access.READ):
            granting = _granting(view, key, Access.READ)
            return Decision(True, Basis.VISIBLE, f"{name} holds readable {'.'.join(key)}", granting)
    return unlisted


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
