"""The 64 operation names Trino's OPA plugin sends, each mapped to the rule that decides it
(decisions.md section 4)."""

from __future__ import annotations

from enum import Enum

from pdp.core.model import Access

READ, WRITE, OWN, CREATE = Access.READ, Access.WRITE, Access.OWN, Access.CREATE


class Rule(Enum):
    ALLOW = "allow"  # identity-only checks every user passes
    SELF = "self"  # the resource user must be the caller
    ADMIN_ONLY = "admin-only"
    TABLE = "table"  # data-source rule on resource.table, else the non-data-source rule
    CREATE_TABLE = "create-table"  # CREATE on a new object, OWN if it already is a data source
    RENAME_TABLE = "rename-table"  # OWN on the source, CREATE on the target
    NON_DATASOURCE = "non-data-source"
    CONTAINER_OWN = "container-own"  # OWN on the container and on every data source inside
    CATALOG_VISIBLE = "catalog-visible"
    SCHEMA_VISIBLE = "schema-visible"
    NO_ROW_FILTER = "no-row-filter"
    NO_MASK = "no-mask"


OPERATIONS: dict[str, tuple[Rule, Access | None]] = {
    # identity
    "ExecuteQuery": (Rule.ALLOW, None),
    "SetSystemSessionProperty": (Rule.ALLOW, None),
    "SetCatalogSessionProperty": (Rule.ALLOW, None),
    "ImpersonateUser": (Rule.SELF, None),
    "ViewQueryOwnedBy": (Rule.SELF, None),
    "KillQueryOwnedBy": (Rule.SELF, None),
    "FilterViewQueryOwnedBy": (Rule.SELF, None),
    "ReadSystemInformation": (Rule.ADMIN_ONLY, None),
    "WriteSystemInformation": (Rule.ADMIN_ONLY, None),
    # tables: read
    "SelectFromColumns": (Rule.TABLE, READ),
    "ShowColumns": (Rule.TABLE, READ),
    "ShowCreateTable": (Rule.TABLE, READ),
    "FilterTables": (Rule.TABLE, READ),
    "FilterColumns": (Rule.TABLE, READ),
    "CreateViewWithSelectFromColumns": (Rule.TABLE, READ),
    # tables: write
    "InsertIntoTable": (Rule.TABLE, WRITE),
    "UpdateTableColumns": (Rule.TABLE, WRITE),
    "DeleteFromTable": (Rule.TABLE, WRITE),
    "TruncateTable": (Rule.TABLE, WRITE),
    "RefreshMaterializedView": (Rule.TABLE, WRITE),
    # tables: own
    "DropTable": (Rule.TABLE, OWN),
    "DropView": (Rule.TABLE, OWN),
    "DropMaterializedView": (Rule.TABLE, OWN),
    "AddColumn": (Rule.TABLE, OWN),
    "AlterColumn": (Rule.TABLE, OWN),
    "DropColumn": (Rule.TABLE, OWN),
    "RenameColumn": (Rule.TABLE, OWN),
    "SetTableProperties": (Rule.TABLE, OWN),
    "SetMaterializedViewProperties": (Rule.TABLE, OWN),
    "SetTableComment": (Rule.TABLE, OWN),
    "SetViewComment": (Rule.TABLE, OWN),
    "SetMaterializedViewComment": (Rule.TABLE, OWN),
    "SetColumnComment": (Rule.TABLE, OWN),
    "SetTableAuthorization": (Rule.TABLE, OWN),
    "SetViewAuthorization": (Rule.TABLE, OWN),
    "ExecuteTableProcedure": (Rule.TABLE, OWN),
    # tables: create and rename
    "CreateTable": (Rule.CREATE_TABLE, CREATE),
    "CreateView": (Rule.CREATE_TABLE, CREATE),
    "CreateMaterializedView": (Rule.CREATE_TABLE, CREATE),
    "RenameTable": (Rule.RENAME_TABLE, OWN),
    "RenameView": (Rule.RENAME_TABLE, OWN),
    "RenameMaterializedView": (Rule.RENAME_TABLE, OWN),
    # containers and functions
    "CreateCatalog": (Rule.NON_DATASOURCE, CREATE),
    "CreateSchema": (Rule.NON_DATASOURCE, CREATE),
    "CreateFunction": (Rule.NON_DATASOURCE, CREATE),
    "DropCatalog": (Rule.CONTAINER_OWN, OWN),
    "DropSchema": (Rule.CONTAINER_OWN, OWN),
    "RenameSchema": (Rule.CONTAINER_OWN, OWN),
    "SetSchemaAuthorization": (Rule.CONTAINER_OWN, OWN),
    "ExecuteFunction": (Rule.NON_DATASOURCE, READ),
    "ShowCreateFunction": (Rule.NON_DATASOURCE, READ),
    "FilterFunctions": (Rule.NON_DATASOURCE, READ),
    "CreateViewWithExecuteFunction": (Rule.NON_DATASOURCE, READ),
    "ExecuteProcedure": (Rule.NON_DATASOURCE, WRITE),
    "DropFunction": (Rule.NON_DATASOURCE, OWN),
    # visibility
    "AccessCatalog": (Rule.CATALOG_VISIBLE, READ),
    "ShowSchemas": (Rule.CATALOG_VISIBLE, READ),
    "FilterCatalogs": (Rule.CATALOG_VISIBLE, READ),
    "ShowTables": (Rule.SCHEMA_VISIBLE, READ),
    "ShowFunctions": (Rule.SCHEMA_VISIBLE, READ),
    "ShowCreateSchema": (Rule.SCHEMA_VISIBLE, READ),
    "FilterSchemas": (Rule.SCHEMA_VISIBLE, READ),
    # data policies (none exist yet)
    "GetRowFilters": (Rule.NO_ROW_FILTER, None),
    "GetColumnMask": (Rule.NO_MASK, None),
}

IDENTITY_RULES = frozenset(
    {Rule.ALLOW, Rule.SELF, Rule.ADMIN_ONLY, Rule.NO_ROW_FILTER, Rule.NO_MASK}
)


def needs_grants(operation: str) -> bool:
    """Whether deciding `operation` can depend on the registry or the user's grants. Identity
    checks can be answered from the cluster settings alone, even while the PDP is away."""
    entry = OPERATIONS.get(operation)
    return entry is not None and entry[0] not in IDENTITY_RULES
