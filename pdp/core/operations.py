"""The 64 operation names Trino's OPA plugin sends, each mapped to the check that decides it
(decisions.md section 4). The table is typed so that a rule which weighs an access on an object
cannot be listed without that access, and an identity rule cannot be given one."""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple

from pdp.core.model import Access

READ, WRITE, OWN, CREATE = Access.READ, Access.WRITE, Access.OWN, Access.CREATE


class IdentityRule(Enum):
    """Decided from the caller and the cluster settings alone, even while the PDP is away."""

    ALLOW = "allow"  # every user passes
    SELF = "self"  # the resource user must be the caller
    ADMIN_ONLY = "admin-only"
    NO_ROW_FILTER = "no-row-filter"
    NO_MASK = "no-mask"


class ObjectRule(Enum):
    """Weighs an access value on an object against the registry and the user's grants."""

    TABLE = "table"  # data-source rule on resource.table, else the non-data-source rule
    # TABLE for the operations that read or change rows, through which Trino applies data
    # policies: denied where one applies and the cluster's Trino does not ask for them.
    TABLE_ROWS = "table-rows"
    CREATE_TABLE = "create-table"  # CREATE on a new object, OWN if it already is a data source
    RENAME_TABLE = "rename-table"  # OWN on the source, CREATE on the target
    NON_DATASOURCE = "non-data-source"
    CONTAINER_OWN = "container-own"  # OWN on the container and on every data source inside
    RENAME_SCHEMA = "rename-schema"  # CONTAINER_OWN on the schema, CREATE on the new name
    CATALOG_VISIBLE = "catalog-visible"
    SCHEMA_VISIBLE = "schema-visible"


class ByIdentity(NamedTuple):
    rule: IdentityRule
    access: None = None


class OnObject(NamedTuple):
    rule: ObjectRule
    access: Access


Check = ByIdentity | OnObject

ALLOW = ByIdentity(IdentityRule.ALLOW)
SELF = ByIdentity(IdentityRule.SELF)
ADMIN_ONLY = ByIdentity(IdentityRule.ADMIN_ONLY)

OPERATIONS: dict[str, Check] = {
    # identity
    "ExecuteQuery": ALLOW,
    "SetSystemSessionProperty": ALLOW,
    "SetCatalogSessionProperty": ALLOW,
    "ImpersonateUser": SELF,
    "ViewQueryOwnedBy": SELF,
    "KillQueryOwnedBy": SELF,
    "FilterViewQueryOwnedBy": SELF,
    "ReadSystemInformation": ADMIN_ONLY,
    "WriteSystemInformation": ADMIN_ONLY,
    # tables: read
    "SelectFromColumns": OnObject(ObjectRule.TABLE_ROWS, READ),
    "ShowColumns": OnObject(ObjectRule.TABLE, READ),
    "ShowCreateTable": OnObject(ObjectRule.TABLE, READ),
    "FilterTables": OnObject(ObjectRule.TABLE, READ),
    "FilterColumns": OnObject(ObjectRule.TABLE, READ),
    "CreateViewWithSelectFromColumns": OnObject(ObjectRule.TABLE, READ),
    # tables: write
    "InsertIntoTable": OnObject(ObjectRule.TABLE, WRITE),
    "UpdateTableColumns": OnObject(ObjectRule.TABLE_ROWS, WRITE),
    "DeleteFromTable": OnObject(ObjectRule.TABLE_ROWS, WRITE),
    "TruncateTable": OnObject(ObjectRule.TABLE, WRITE),
    "RefreshMaterializedView": OnObject(ObjectRule.TABLE, WRITE),
    # tables: own
    "DropTable": OnObject(ObjectRule.TABLE, OWN),
    "DropView": OnObject(ObjectRule.TABLE, OWN),
    "DropMaterializedView": OnObject(ObjectRule.TABLE, OWN),
    "AddColumn": OnObject(ObjectRule.TABLE, OWN),
    "AlterColumn": OnObject(ObjectRule.TABLE, OWN),
    "DropColumn": OnObject(ObjectRule.TABLE, OWN),
    "RenameColumn": OnObject(ObjectRule.TABLE, OWN),
    "SetTableProperties": OnObject(ObjectRule.TABLE, OWN),
    "SetMaterializedViewProperties": OnObject(ObjectRule.TABLE, OWN),
    "SetTableComment": OnObject(ObjectRule.TABLE, OWN),
    "SetViewComment": OnObject(ObjectRule.TABLE, OWN),
    "SetMaterializedViewComment": OnObject(ObjectRule.TABLE, OWN),
    "SetColumnComment": OnObject(ObjectRule.TABLE, OWN),
    "SetTableAuthorization": OnObject(ObjectRule.TABLE, OWN),
    "SetViewAuthorization": OnObject(ObjectRule.TABLE, OWN),
    "ExecuteTableProcedure": OnObject(ObjectRule.TABLE, OWN),
    # tables: create and rename
    "CreateTable": OnObject(ObjectRule.CREATE_TABLE, CREATE),
    "CreateView": OnObject(ObjectRule.CREATE_TABLE, CREATE),
    "CreateMaterializedView": OnObject(ObjectRule.CREATE_TABLE, CREATE),
    "RenameTable": OnObject(ObjectRule.RENAME_TABLE, OWN),
    "RenameView": OnObject(ObjectRule.RENAME_TABLE, OWN),
    "RenameMaterializedView": OnObject(ObjectRule.RENAME_TABLE, OWN),
    # containers and functions
    "CreateCatalog": OnObject(ObjectRule.NON_DATASOURCE, CREATE),
    "CreateSchema": OnObject(ObjectRule.NON_DATASOURCE, CREATE),
    "CreateFunction": OnObject(ObjectRule.NON_DATASOURCE, CREATE),
    "DropCatalog": OnObject(ObjectRule.CONTAINER_OWN, OWN),
    "DropSchema": OnObject(ObjectRule.CONTAINER_OWN, OWN),
    "RenameSchema": OnObject(ObjectRule.RENAME_SCHEMA, OWN),
    "SetSchemaAuthorization": OnObject(ObjectRule.CONTAINER_OWN, OWN),
    "ExecuteFunction": OnObject(ObjectRule.NON_DATASOURCE, READ),
    "ShowCreateFunction": OnObject(ObjectRule.NON_DATASOURCE, READ),
    "FilterFunctions": OnObject(ObjectRule.NON_DATASOURCE, READ),
    "CreateViewWithExecuteFunction": OnObject(ObjectRule.NON_DATASOURCE, READ),
    "ExecuteProcedure": OnObject(ObjectRule.NON_DATASOURCE, WRITE),
    "DropFunction": OnObject(ObjectRule.NON_DATASOURCE, OWN),
    # visibility
    "AccessCatalog": OnObject(ObjectRule.CATALOG_VISIBLE, READ),
    "ShowSchemas": OnObject(ObjectRule.CATALOG_VISIBLE, READ),
    "FilterCatalogs": OnObject(ObjectRule.CATALOG_VISIBLE, READ),
    "ShowTables": OnObject(ObjectRule.SCHEMA_VISIBLE, READ),
    "ShowFunctions": OnObject(ObjectRule.SCHEMA_VISIBLE, READ),
    "ShowCreateSchema": OnObject(ObjectRule.SCHEMA_VISIBLE, READ),
    "FilterSchemas": OnObject(ObjectRule.SCHEMA_VISIBLE, READ),
    # data policies (none exist yet)
    "GetRowFilters": ByIdentity(IdentityRule.NO_ROW_FILTER),
    "GetColumnMask": ByIdentity(IdentityRule.NO_MASK),
}


def needs_grants(operation: str) -> bool:
    """Whether deciding `operation` can depend on the registry or the user's grants. Identity
    checks can be answered from the cluster settings alone, even while the PDP is away."""
    return isinstance(OPERATIONS.get(operation), OnObject)
