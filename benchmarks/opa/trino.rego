# The benchmark's policies for a real OPA behind Trino's OPA access control (Rego v1, OPA 1.x).
#
# The same decisions as the PDP with the benchmark's cluster properties (trino_world.py):
#   * admins (data.bench.admins) may do anything;
#   * identity checks (ExecuteQuery, session properties) pass; a user may act on itself;
#   * every catalog and schema is visible (READ is allowed on non-data-sources, so the PDP's
#     visibility rule passes everywhere);
#   * reading a table (SelectFromColumns, FilterTables, FilterColumns, ShowColumns, ...):
#     information_schema is always readable (Trino filters its rows per user); a table that is not
#     registered is readable by everyone; a registered one iff a user policy names it or one of the
#     user's groups (from Trino's group provider) reads its schema;
#   * functions are non-data-sources: READ-like function checks pass;
#   * everything else (writes, DDL) is denied.
# `batch` answers the plugin's batched filtering with the indices of the allowed items
# (FilterColumns: the indices of the columns of its one table).
package trino

default allow := false

allow if is_admin

allow if {
	not is_admin
	permitted(input.action.operation, object.get(input.action, "resource", {}))
}

batch contains i if {
	input.action.operation != "FilterColumns"
	some i, resource in input.action.filterResources
	allowed_on(input.action.operation, resource)
}

batch contains i if {
	input.action.operation == "FilterColumns"
	some resource in input.action.filterResources
	allowed_on("FilterColumns", resource)
	some i, _ in resource.table.columns
}

# No row filters and no masks: the answers the PDP gives too.
default rowFilters := []

default batchColumnMasks := []

allowed_on(_, _) if is_admin

allowed_on(operation, resource) if {
	not is_admin
	permitted(operation, resource)
}

is_admin if input.context.identity.user in data.bench.admins

identity_ops := {"ExecuteQuery", "SetSystemSessionProperty", "SetCatalogSessionProperty"}

self_ops := {"ImpersonateUser", "ViewQueryOwnedBy", "KillQueryOwnedBy", "FilterViewQueryOwnedBy"}

visibility_ops := {
	"AccessCatalog", "ShowSchemas", "FilterCatalogs",
	"ShowTables", "ShowFunctions", "ShowCreateSchema", "FilterSchemas",
}

table_read_ops := {
	"SelectFromColumns", "ShowColumns", "ShowCreateTable",
	"FilterTables", "FilterColumns", "CreateViewWithSelectFromColumns",
}

function_read_ops := {"ExecuteFunction", "ShowCreateFunction", "FilterFunctions", "CreateViewWithExecuteFunction"}

permitted(operation, _) if operation in identity_ops

permitted(operation, resource) if {
	operation in self_ops
	resource.user.user == input.context.identity.user
}

permitted(operation, _) if operation in visibility_ops

permitted(operation, _) if operation in function_read_ops

permitted(operation, resource) if {
	operation in table_read_ops
	readable(resource.table)
}

readable(table) if lower(table.schemaName) == "information_schema"

readable(table) if {
	lower(table.catalogName) == "system"
	lower(table.schemaName) in {"jdbc", "metadata"}
}

readable(table) if not data.bench.registered[table_key(table)]

readable(table) if data.bench.user_tables[input.context.identity.user][table_key(table)]

readable(table) if {
	data.bench.registered[table_key(table)]
	some group in input.context.identity.groups
	data.bench.group_schemas[group][schema_key(table)]
}

table_key(table) := concat(".", [lower(table.catalogName), lower(table.schemaName), lower(table.tableName)])

schema_key(table) := concat(".", [lower(table.catalogName), lower(table.schemaName)])
