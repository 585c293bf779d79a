package io.pdp.trino;

import io.trino.spi.QueryId;
import io.trino.spi.connector.CatalogSchemaName;
import io.trino.spi.connector.CatalogSchemaRoutineName;
import io.trino.spi.connector.CatalogSchemaTableName;
import io.trino.spi.connector.ColumnSchema;
import io.trino.spi.connector.SchemaTableName;
import io.trino.spi.function.SchemaFunctionName;
import io.trino.spi.security.AccessDeniedException;
import io.trino.spi.security.Identity;
import io.trino.spi.security.SystemAccessControl;
import io.trino.spi.security.SystemSecurityContext;
import io.trino.spi.security.TrinoPrincipal;
import io.trino.spi.security.ViewExpression;

import java.security.Principal;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;
import java.util.function.Function;
import java.util.function.Supplier;

/**
 * Trino's access control by the product's PDP: every check, filter, row filter and column mask
 * that Trino's OPA plugin covers, asked of the sidecar's compact endpoint (at most one request
 * per call, however many objects a filter holds) and answered from a cache inside Trino between
 * policy revisions (see {@link PdpBackend}). Denials carry the PDP's reason.
 *
 * <p>A table's first call that misses the cache also asks what Trino 476 asks next about that
 * table (docs/trino-plugin.md, "The order of Trino's calls"): {@code getColumnMasks} brings its
 * row filters, its catalog's {@code AccessCatalog} and its {@code SelectFromColumns}, which the
 * product decides per table whatever the columns (sidecar/compact.py); so a table not queried
 * yet costs one request, not three. A listing's first check does the same for the
 * {@code information_schema} table Trino reads it from ({@code checkCanShowTables} brings
 * {@code information_schema.tables}' masks, row filters, catalog, {@code SelectFromColumns}
 * and the catalog's {@code FilterCatalogs}), so its only other request is {@code FilterTables}
 * of the tables the connector lists, which no earlier call names.
 */
public final class PdpAccessControl
        implements SystemAccessControl
{
    record Decision(boolean allowed, String reason) {}

    private static final String MASKS = "GetColumnMask";
    private static final String ROW_FILTERS = "GetRowFilters";
    private static final String SELECT = "SelectFromColumns";
    private static final String CATALOG = "AccessCatalog";
    private static final String CATALOGS = "FilterCatalogs";
    private static final String TABLES = "FilterTables";
    private static final String INFORMATION_SCHEMA = "information_schema";
    /** Trino 476's {@code information_schema.tables} (all varchar), which SHOW TABLES reads. */
    private static final List<String> TABLES_COLUMNS = List.of("table_catalog", "table_schema", "table_name", "table_type", "table_comment");

    /** An ask sent beside a call's own, the key its own call looks up, and how its answer is read before it is kept. */
    private record Next(String key, String ask, Function<Object, Object> read) {}

    private static final Function<String, List<Next>> NOTHING_NEXT = identity -> List.of();

    private final PdpBackend backend;

    PdpAccessControl(PdpBackend backend)
    {
        this.backend = backend;
    }

    PdpBackend backend()
    {
        return backend;
    }

    // --- identity and queries -------------------------------------------------------------

    @Override
    public void checkCanImpersonateUser(Identity identity, String userName)
    {
        check(identity, "ImpersonateUser", Resources.user(userName), null, () -> "impersonate user " + userName);
    }

    @Override
    public void checkCanSetUser(Optional<Principal> principal, String userName) {}

    @Override
    public void checkCanExecuteQuery(Identity identity, QueryId queryId)
    {
        check(identity, "ExecuteQuery", null, null, () -> "execute query");
    }

    @Override
    public void checkCanViewQueryOwnedBy(Identity identity, Identity queryOwner)
    {
        check(identity, "ViewQueryOwnedBy", Resources.user(queryOwner.getUser()), null, () -> "view query owned by " + queryOwner.getUser());
    }

    @Override
    public Collection<Identity> filterViewQueryOwnedBy(Identity identity, Collection<Identity> queryOwners)
    {
        return filter(identity, "FilterViewQueryOwnedBy", queryOwners, owner -> Resources.user(owner.getUser()));
    }

    @Override
    public void checkCanKillQueryOwnedBy(Identity identity, Identity queryOwner)
    {
        check(identity, "KillQueryOwnedBy", Resources.user(queryOwner.getUser()), null, () -> "kill query owned by " + queryOwner.getUser());
    }

    @Override
    public void checkCanReadSystemInformation(Identity identity)
    {
        check(identity, "ReadSystemInformation", null, null, () -> "read system information");
    }

    @Override
    public void checkCanWriteSystemInformation(Identity identity)
    {
        check(identity, "WriteSystemInformation", null, null, () -> "write system information");
    }

    @Override
    public void checkCanSetSystemSessionProperty(Identity identity, QueryId queryId, String propertyName)
    {
        check(identity, "SetSystemSessionProperty", Resources.systemSessionProperty(propertyName), null, () -> "set system session property " + propertyName);
    }

    // --- catalogs and schemas -------------------------------------------------------------

    @Override
    public boolean canAccessCatalog(SystemSecurityContext context, String catalogName)
    {
        return decide(context.getIdentity(), CATALOG, Resources.catalog(catalogName), null).allowed();
    }

    @Override
    public void checkCanCreateCatalog(SystemSecurityContext context, String catalog)
    {
        check(context, "CreateCatalog", Resources.catalog(catalog), null, () -> "create catalog " + catalog);
    }

    @Override
    public void checkCanDropCatalog(SystemSecurityContext context, String catalog)
    {
        check(context, "DropCatalog", Resources.catalog(catalog), null, () -> "drop catalog " + catalog);
    }

    @Override
    public Set<String> filterCatalogs(SystemSecurityContext context, Set<String> catalogs)
    {
        return filter(context.getIdentity(), "FilterCatalogs", catalogs, Resources::catalog);
    }

    @Override
    public void checkCanCreateSchema(SystemSecurityContext context, CatalogSchemaName schema, Map<String, Object> properties)
    {
        check(context, "CreateSchema", Resources.schema(schema), null, () -> "create schema " + schema);
    }

    @Override
    public void checkCanDropSchema(SystemSecurityContext context, CatalogSchemaName schema)
    {
        check(context, "DropSchema", Resources.schema(schema), null, () -> "drop schema " + schema);
    }

    @Override
    public void checkCanRenameSchema(SystemSecurityContext context, CatalogSchemaName schema, String newSchemaName)
    {
        check(context, "RenameSchema", Resources.schema(schema), Resources.schema(schema.getCatalogName(), newSchemaName), () -> "rename schema " + schema + " to " + newSchemaName);
    }

    @Override
    public void checkCanSetSchemaAuthorization(SystemSecurityContext context, CatalogSchemaName schema, TrinoPrincipal principal)
    {
        check(context, "SetSchemaAuthorization", Resources.schema(schema), null, () -> "set authorization of schema " + schema + " to " + principal);
    }

    @Override
    public void checkCanShowSchemas(SystemSecurityContext context, String catalogName)
    {
        check(context, "ShowSchemas", Resources.catalog(catalogName), null, () -> "show schemas of " + catalogName);
    }

    @Override
    public Set<String> filterSchemas(SystemSecurityContext context, String catalogName, Set<String> schemaNames)
    {
        return filter(context.getIdentity(), "FilterSchemas", schemaNames, schema -> Resources.schema(catalogName, schema));
    }

    @Override
    public void checkCanShowCreateSchema(SystemSecurityContext context, CatalogSchemaName schemaName)
    {
        check(context, "ShowCreateSchema", Resources.schema(schemaName), null, () -> "show create schema " + schemaName);
    }

    @Override
    public void checkCanShowTables(SystemSecurityContext context, CatalogSchemaName schema)
    {
        // SHOW TABLES reads information_schema.tables next: asked in the same request
        CatalogSchemaTableName tables = new CatalogSchemaTableName(schema.getCatalogName(), INFORMATION_SCHEMA, "tables");
        check(context.getIdentity(), "ShowTables", Resources.schema(schema), null, identity -> listing(identity, tables, TABLES_COLUMNS), () -> "show tables of " + schema);
    }

    @Override
    public void checkCanShowFunctions(SystemSecurityContext context, CatalogSchemaName schema)
    {
        check(context, "ShowFunctions", Resources.schema(schema), null, () -> "show functions of " + schema);
    }

    @Override
    public void checkCanSetCatalogSessionProperty(SystemSecurityContext context, String catalogName, String propertyName)
    {
        check(context, "SetCatalogSessionProperty", Resources.catalogSessionProperty(catalogName, propertyName), null, () -> "set catalog session property " + catalogName + "." + propertyName);
    }

    // --- tables, views, materialized views ------------------------------------------------

    @Override
    public void checkCanShowCreateTable(SystemSecurityContext context, CatalogSchemaTableName table)
    {
        table(context, "ShowCreateTable", table);
    }

    @Override
    public void checkCanCreateTable(SystemSecurityContext context, CatalogSchemaTableName table, Map<String, Object> properties)
    {
        table(context, "CreateTable", table);
    }

    @Override
    public void checkCanDropTable(SystemSecurityContext context, CatalogSchemaTableName table)
    {
        table(context, "DropTable", table);
    }

    @Override
    public void checkCanRenameTable(SystemSecurityContext context, CatalogSchemaTableName table, CatalogSchemaTableName newTable)
    {
        check(context, "RenameTable", Resources.table(table), Resources.table(newTable), () -> "rename table " + table + " to " + newTable);
    }

    @Override
    public void checkCanSetTableProperties(SystemSecurityContext context, CatalogSchemaTableName table, Map<String, Optional<Object>> properties)
    {
        table(context, "SetTableProperties", table);
    }

    @Override
    public void checkCanSetTableComment(SystemSecurityContext context, CatalogSchemaTableName table)
    {
        table(context, "SetTableComment", table);
    }

    @Override
    public void checkCanSetViewComment(SystemSecurityContext context, CatalogSchemaTableName view)
    {
        table(context, "SetViewComment", view);
    }

    @Override
    public void checkCanSetColumnComment(SystemSecurityContext context, CatalogSchemaTableName table)
    {
        table(context, "SetColumnComment", table);
    }

    @Override
    public Set<SchemaTableName> filterTables(SystemSecurityContext context, String catalogName, Set<SchemaTableName> tableNames)
    {
        return filter(context.getIdentity(), TABLES, tableNames, name -> Resources.table(catalogName, name.getSchemaName(), name.getTableName()));
    }

    @Override
    public void checkCanShowColumns(SystemSecurityContext context, CatalogSchemaTableName table)
    {
        table(context, "ShowColumns", table);
    }

    @Override
    public Set<String> filterColumns(SystemSecurityContext context, CatalogSchemaTableName table, Set<String> columns)
    {
        return filterColumns(context, table.getCatalogName(), Map.of(table.getSchemaTableName(), columns))
                .getOrDefault(table.getSchemaTableName(), Set.of());
    }

    /**
     * Every table's columns in one request: one ask per table neither cached nor answered by a
     * {@code FilterTables} of this revision (a listing's, just before), all in one body.
     */
    @Override
    public Map<SchemaTableName, Set<String>> filterColumns(SystemSecurityContext context, String catalogName, Map<SchemaTableName, Set<String>> tableColumns)
    {
        String identity = Resources.identity(context.getIdentity());
        Map<SchemaTableName, Set<String>> result = new HashMap<>();
        List<SchemaTableName> missing = new ArrayList<>();
        List<List<String>> missingColumns = new ArrayList<>();
        List<String> asks = new ArrayList<>();
        List<String> keys = new ArrayList<>();
        for (Map.Entry<SchemaTableName, Set<String>> entry : tableColumns.entrySet()) {
            if (entry.getValue().isEmpty()) {
                continue;
            }
            SchemaTableName name = entry.getKey();
            // all of a table's columns or none, as FilterTables answers the table (sidecar/compact.py):
            // a listing's tables were filtered just before, so their answers are at hand. Looked
            // up first: it needs neither the columns sorted nor their ask written
            if (backend.cached(identity + TABLES + Resources.table(catalogName, name.getSchemaName(), name.getTableName())) instanceof Boolean readable) {
                put(result, name, readable ? Set.copyOf(entry.getValue()) : Set.of());
                continue;
            }
            List<String> columns = new ArrayList<>(new TreeSet<>(entry.getValue()));
            String resource = Resources.tableWithSortedColumns(catalogName, name.getSchemaName(), name.getTableName(), columns);
            String key = identity + "FilterColumns" + resource;
            if (backend.cached(key) instanceof Set<?> allowed) {
                put(result, name, allowed);
                continue;
            }
            missing.add(name);
            missingColumns.add(columns);
            asks.add(filterAsk("FilterColumns", List.of(resource)));
            keys.add(key);
        }
        if (!asks.isEmpty()) {
            PdpBackend.Answers answers = backend.ask(identity, asks);
            for (int i = 0; i < asks.size(); i++) {
                Set<String> allowed = new HashSet<>();
                for (int index : indices(answers.answers().get(i))) {
                    allowed.add(missingColumns.get(i).get(index));
                }
                Set<String> kept = Set.copyOf(allowed);
                backend.remember(answers.revision(), keys.get(i), kept);
                put(result, missing.get(i), kept);
            }
        }
        return result;
    }

    @Override
    public void checkCanAddColumn(SystemSecurityContext context, CatalogSchemaTableName table)
    {
        table(context, "AddColumn", table);
    }

    @Override
    public void checkCanAlterColumn(SystemSecurityContext context, CatalogSchemaTableName table)
    {
        table(context, "AlterColumn", table);
    }

    @Override
    public void checkCanDropColumn(SystemSecurityContext context, CatalogSchemaTableName table)
    {
        table(context, "DropColumn", table);
    }

    @Override
    public void checkCanSetTableAuthorization(SystemSecurityContext context, CatalogSchemaTableName table, TrinoPrincipal principal)
    {
        check(context, "SetTableAuthorization", Resources.table(table), null, () -> "set authorization of table " + table + " to " + principal);
    }

    @Override
    public void checkCanRenameColumn(SystemSecurityContext context, CatalogSchemaTableName table)
    {
        table(context, "RenameColumn", table);
    }

    @Override
    public void checkCanSelectFromColumns(SystemSecurityContext context, CatalogSchemaTableName table, Set<String> columns)
    {
        // asked and kept per table: the product decides it whatever the columns, so every
        // column set Trino checks (a masked column's, the query's) shares one answer
        check(context, SELECT, Resources.table(table), null, () -> "select from columns " + new TreeSet<>(columns) + " in table " + table);
    }

    @Override
    public void checkCanInsertIntoTable(SystemSecurityContext context, CatalogSchemaTableName table)
    {
        table(context, "InsertIntoTable", table);
    }

    @Override
    public void checkCanDeleteFromTable(SystemSecurityContext context, CatalogSchemaTableName table)
    {
        table(context, "DeleteFromTable", table);
    }

    @Override
    public void checkCanTruncateTable(SystemSecurityContext context, CatalogSchemaTableName table)
    {
        table(context, "TruncateTable", table);
    }

    @Override
    public void checkCanUpdateTableColumns(SystemSecurityContext context, CatalogSchemaTableName table, Set<String> updatedColumnNames)
    {
        check(context, "UpdateTableColumns", Resources.tableWithColumns(table, updatedColumnNames), null, () -> "update columns " + new TreeSet<>(updatedColumnNames) + " in table " + table);
    }

    @Override
    public void checkCanCreateView(SystemSecurityContext context, CatalogSchemaTableName view)
    {
        table(context, "CreateView", view);
    }

    @Override
    public void checkCanRenameView(SystemSecurityContext context, CatalogSchemaTableName view, CatalogSchemaTableName newView)
    {
        check(context, "RenameView", Resources.table(view), Resources.table(newView), () -> "rename view " + view + " to " + newView);
    }

    @Override
    public void checkCanSetViewAuthorization(SystemSecurityContext context, CatalogSchemaTableName view, TrinoPrincipal principal)
    {
        check(context, "SetViewAuthorization", Resources.table(view), null, () -> "set authorization of view " + view + " to " + principal);
    }

    @Override
    public void checkCanDropView(SystemSecurityContext context, CatalogSchemaTableName view)
    {
        table(context, "DropView", view);
    }

    @Override
    public void checkCanCreateViewWithSelectFromColumns(SystemSecurityContext context, CatalogSchemaTableName table, Set<String> columns)
    {
        check(context, "CreateViewWithSelectFromColumns", Resources.tableWithColumns(table, columns), null, () -> "create view selecting from " + table);
    }

    @Override
    public void checkCanCreateMaterializedView(SystemSecurityContext context, CatalogSchemaTableName materializedView, Map<String, Object> properties)
    {
        table(context, "CreateMaterializedView", materializedView);
    }

    @Override
    public void checkCanRefreshMaterializedView(SystemSecurityContext context, CatalogSchemaTableName materializedView)
    {
        table(context, "RefreshMaterializedView", materializedView);
    }

    @Override
    public void checkCanSetMaterializedViewProperties(SystemSecurityContext context, CatalogSchemaTableName materializedView, Map<String, Optional<Object>> properties)
    {
        table(context, "SetMaterializedViewProperties", materializedView);
    }

    @Override
    public void checkCanDropMaterializedView(SystemSecurityContext context, CatalogSchemaTableName materializedView)
    {
        table(context, "DropMaterializedView", materializedView);
    }

    @Override
    public void checkCanRenameMaterializedView(SystemSecurityContext context, CatalogSchemaTableName view, CatalogSchemaTableName newView)
    {
        check(context, "RenameMaterializedView", Resources.table(view), Resources.table(newView), () -> "rename materialized view " + view + " to " + newView);
    }

    // --- roles: the PDP has none; privileges are not managed through Trino -----------------
    // (GRANT, REVOKE, DENY and role management keep the SPI's default: denied.)

    @Override
    public void checkCanShowRoles(SystemSecurityContext context) {}

    @Override
    public void checkCanShowCurrentRoles(SystemSecurityContext context) {}

    @Override
    public void checkCanShowRoleGrants(SystemSecurityContext context) {}

    // --- procedures and functions ---------------------------------------------------------

    @Override
    public void checkCanExecuteProcedure(SystemSecurityContext context, CatalogSchemaRoutineName procedure)
    {
        check(context, "ExecuteProcedure", Resources.function(procedure), null, () -> "execute procedure " + procedure);
    }

    @Override
    public boolean canExecuteFunction(SystemSecurityContext context, CatalogSchemaRoutineName functionName)
    {
        return decide(context.getIdentity(), "ExecuteFunction", Resources.function(functionName), null).allowed();
    }

    @Override
    public boolean canCreateViewWithExecuteFunction(SystemSecurityContext context, CatalogSchemaRoutineName functionName)
    {
        return decide(context.getIdentity(), "CreateViewWithExecuteFunction", Resources.function(functionName), null).allowed();
    }

    @Override
    public void checkCanExecuteTableProcedure(SystemSecurityContext context, CatalogSchemaTableName table, String procedure)
    {
        check(context, "ExecuteTableProcedure", Resources.tableProcedure(table, procedure), null, () -> "execute procedure " + procedure + " on " + table);
    }

    @Override
    public Set<SchemaFunctionName> filterFunctions(SystemSecurityContext context, String catalogName, Set<SchemaFunctionName> functionNames)
    {
        return filter(context.getIdentity(), "FilterFunctions", functionNames, f -> Resources.function(catalogName, FunctionNames.schema(f), FunctionNames.function(f)));
    }

    @Override
    public void checkCanCreateFunction(SystemSecurityContext context, CatalogSchemaRoutineName functionName)
    {
        check(context, "CreateFunction", Resources.function(functionName), null, () -> "create function " + functionName);
    }

    @Override
    public void checkCanDropFunction(SystemSecurityContext context, CatalogSchemaRoutineName functionName)
    {
        check(context, "DropFunction", Resources.function(functionName), null, () -> "drop function " + functionName);
    }

    @Override
    public void checkCanShowCreateFunction(SystemSecurityContext context, CatalogSchemaRoutineName functionName)
    {
        check(context, "ShowCreateFunction", Resources.function(functionName), null, () -> "show create function " + functionName);
    }

    // --- row filters and column masks -----------------------------------------------------

    @Override
    public List<ViewExpression> getRowFilters(SystemSecurityContext context, CatalogSchemaTableName table)
    {
        String identity = Resources.identity(context.getIdentity());
        String key = key(identity, ROW_FILTERS, Resources.table(table), null);
        List<String> expressions;
        if (backend.cached(key) instanceof List<?> cached) {
            expressions = kept(cached);
        }
        else {
            PdpBackend.Answers answers = ask(identity, List.of(key.substring(identity.length())), next(identity, table, false));
            expressions = rowFilters(answers.answers().get(0));
            backend.remember(answers.revision(), key, expressions);
        }
        List<ViewExpression> filters = new ArrayList<>(expressions.size());
        for (String expression : expressions) {
            filters.add(expression(table, expression));
        }
        return filters;
    }

    /** Masks of every column asked about in one request (those not cached). */
    @Override
    public Map<ColumnSchema, ViewExpression> getColumnMasks(SystemSecurityContext context, CatalogSchemaTableName table, List<ColumnSchema> columns)
    {
        String identity = Resources.identity(context.getIdentity());
        Map<ColumnSchema, ViewExpression> masks = new LinkedHashMap<>();
        List<ColumnSchema> missing = new ArrayList<>();
        List<String> resources = new ArrayList<>();
        for (ColumnSchema column : columns) {
            String resource = Resources.column(table, column.getName(), column.getType().getDisplayName());
            Object cached = backend.cached(identity + MASKS + resource);
            if (cached instanceof Optional<?> mask) {
                mask.ifPresent(expression -> masks.put(column, expression(table, (String) expression)));
                continue;
            }
            missing.add(column);
            resources.add(resource);
        }
        if (!missing.isEmpty()) {
            PdpBackend.Answers answers = ask(identity, List.of(filterAsk(MASKS, resources)), next(identity, table, true));
            List<Optional<String>> found = masks(answers.answers().get(0), missing.size(), table);
            for (int i = 0; i < missing.size(); i++) {
                Optional<String> mask = found.get(i);
                backend.remember(answers.revision(), identity + MASKS + resources.get(i), mask);
                ColumnSchema column = missing.get(i);
                mask.ifPresent(expression -> masks.put(column, expression(table, expression)));
            }
        }
        return masks;
    }

    @Override
    public void shutdown()
    {
        backend.close();
    }

    // --- the one way each kind of call is asked and answered ------------------------------

    private void table(SystemSecurityContext context, String operation, CatalogSchemaTableName table)
    {
        check(context, operation, Resources.table(table), null, () -> words(operation) + " " + table);
    }

    private void check(SystemSecurityContext context, String operation, String resource, String target, Supplier<String> what)
    {
        check(context.getIdentity(), operation, resource, target, what);
    }

    private void check(Identity identity, String operation, String resource, String target, Supplier<String> what)
    {
        check(identity, operation, resource, target, NOTHING_NEXT, what);
    }

    /** What was asked is put into words only for a denial: most checks are allowed. */
    private void check(Identity identity, String operation, String resource, String target, Function<String, List<Next>> next, Supplier<String> what)
    {
        Decision decision = decide(identity, operation, resource, target, next);
        if (!decision.allowed()) {
            throw new AccessDeniedException("Cannot " + what.get() + ": " + decision.reason());
        }
    }

    private Decision decide(Identity identity, String operation, String resource, String target)
    {
        return decide(identity, operation, resource, target, NOTHING_NEXT);
    }

    /** A check from the cache, or asked with {@code next} (of the identity's JSON) on a miss. */
    private Decision decide(Identity identity, String operation, String resource, String target, Function<String, List<Next>> next)
    {
        String id = Resources.identity(identity);
        String key = key(id, operation, resource, target);
        if (backend.cached(key) instanceof Decision cached) {
            return cached;
        }
        PdpBackend.Answers answers = ask(id, List.of(key.substring(id.length())), next.apply(id));
        Decision decision = decision(answers.answers().get(0));
        backend.remember(answers.revision(), key, decision);
        return decision;
    }

    /**
     * What Trino asks next about {@code table} once its masks ({@code rowFilters}: true) or its
     * row filters were asked, where not cached: its row filters, then its catalog and its
     * {@code SelectFromColumns} (in the keys their own calls look up); for an {@code
     * information_schema} table, a listing, then {@code FilterCatalogs} of its catalog.
     */
    private List<Next> next(String identity, CatalogSchemaTableName table, boolean rowFilters)
    {
        List<Next> next = new ArrayList<>(4);
        String resource = Resources.table(table);
        if (rowFilters) {
            missing(next, identity, key(identity, ROW_FILTERS, resource, null), PdpAccessControl::rowFilters);
        }
        missing(next, identity, key(identity, CATALOG, Resources.catalog(table.getCatalogName()), null), PdpAccessControl::decision);
        missing(next, identity, key(identity, SELECT, resource, null), PdpAccessControl::decision);
        if (table.getSchemaTableName().getSchemaName().equals(INFORMATION_SCHEMA)) {
            String catalog = Resources.catalog(table.getCatalogName());
            missingAsk(next, identity + CATALOGS + catalog, filterAsk(CATALOGS, List.of(catalog)), answer -> indices(answer).contains(0));
        }
        return next;
    }

    /**
     * What Trino asks next when a listing reads {@code table} of {@code information_schema},
     * whose columns (all varchar in Trino 476) are {@code columns}, where not cached: the masks
     * of its columns (one ask each, in the keys {@code getColumnMasks} looks up; a Trino with
     * other columns makes that call ask for its own), then {@link #next}.
     */
    private List<Next> listing(String identity, CatalogSchemaTableName table, List<String> columns)
    {
        List<Next> next = new ArrayList<>(columns.size() + 4);
        for (String column : columns) {
            String resource = Resources.column(table, column, "varchar");
            missingAsk(next, identity + MASKS + resource, filterAsk(MASKS, List.of(resource)), answer -> masks(answer, 1, table).getFirst());
        }
        next.addAll(next(identity, table, true));
        return next;
    }

    /** A check or row filters: the ask is the key without the identity. */
    private void missing(List<Next> next, String identity, String key, Function<Object, Object> read)
    {
        missingAsk(next, key, key.substring(identity.length()), read);
    }

    private void missingAsk(List<Next> next, String key, String ask, Function<Object, Object> read)
    {
        if (backend.cached(key) == null) {
            next.add(new Next(key, ask, read));
        }
    }

    /**
     * One request: a call's own asks, then {@code next}. The answers to {@code next} are read as
     * their own calls read them and kept by the same rule as any answer (only under the
     * revision the plugin holds: an answer without one, a fallback, is not kept, and its call
     * asks again); the call's own answers are returned for it to read and keep.
     */
    private PdpBackend.Answers ask(String identity, List<String> own, List<Next> next)
    {
        List<String> asks = new ArrayList<>(own.size() + next.size());
        asks.addAll(own);
        for (Next ask : next) {
            asks.add(ask.ask());
        }
        PdpBackend.Answers answers = backend.ask(identity, asks);
        for (int i = 0; i < next.size(); i++) {
            Next ask = next.get(i);
            backend.remember(answers.revision(), ask.key(), ask.read().apply(answers.answers().get(own.size() + i)));
        }
        return answers;
    }

    /** The items allowed: cached ones from memory, the rest in one request. */
    private <T> Set<T> filter(Identity identity, String operation, Collection<T> items, Function<T, String> resourceOf)
    {
        String id = Resources.identity(identity);
        Set<T> allowed = new HashSet<>();
        List<T> missing = new ArrayList<>();
        List<String> resources = new ArrayList<>();
        for (T item : items) {
            String resource = resourceOf.apply(item);
            Object cached = backend.cached(id + operation + resource);
            if (cached instanceof Boolean ok) {
                if (ok) {
                    allowed.add(item);
                }
                continue;
            }
            missing.add(item);
            resources.add(resource);
        }
        if (!missing.isEmpty()) {
            PdpBackend.Answers answers = backend.ask(id, List.of(filterAsk(operation, resources)));
            Set<Integer> indices = indices(answers.answers().get(0));
            for (int i = 0; i < missing.size(); i++) {
                boolean ok = indices.contains(i);
                backend.remember(answers.revision(), id + operation + resources.get(i), ok);
                if (ok) {
                    allowed.add(missing.get(i));
                }
            }
        }
        return allowed;
    }

    /**
     * The cache key of one ask: the identity, then the ask itself as sent (so that a miss sends
     * {@code key.substring(identity.length())}), written once: a hit makes no other string.
     */
    private static String key(String identity, String operation, String resource, String target)
    {
        StringBuilder key = new StringBuilder(identity.length() + 64 + (resource == null ? 0 : resource.length()) + (target == null ? 0 : target.length()))
                .append(identity)
                .append("{\"operation\":");
        Json.quote(key, operation);
        if (resource != null) {
            key.append(",\"resource\":").append(resource);
        }
        if (target != null) {
            key.append(",\"targetResource\":").append(target);
        }
        return key.append('}').toString();
    }

    private static String filterAsk(String operation, List<String> resources)
    {
        return "{\"operation\":" + Json.quote(operation) + ",\"filterResources\":[" + String.join(",", resources) + "]}";
    }

    private static Object field(Object answer, String name)
    {
        return answer instanceof Map<?, ?> map ? map.get(name) : null;
    }

    private static Set<Integer> indices(Object answer)
    {
        Set<Integer> indices = new HashSet<>();
        if (field(answer, "indices") instanceof List<?> list) {
            for (Object index : list) {
                if (index instanceof Double number) {
                    indices.add(number.intValue());
                }
            }
        }
        return indices;
    }

    private static Decision decision(Object answer)
    {
        return new Decision(
                field(answer, "allowed") instanceof Boolean allowed && allowed,
                field(answer, "reason") instanceof String reason ? reason : "denied by the PDP");
    }

    /** A {@code GetColumnMask} answer: one mask (or none) for each of {@code columns} columns. */
    private static List<Optional<String>> masks(Object answer, int columns, CatalogSchemaTableName table)
    {
        if (!(field(answer, "masks") instanceof List<?> found) || found.size() != columns) {
            throw new AccessDeniedException("the pdp sidecar's answer has no mask for each column of " + table + ": denied");
        }
        List<Optional<String>> masks = new ArrayList<>(columns);
        for (Object mask : found) {
            if (mask != null && !(mask instanceof String)) {
                throw new AccessDeniedException("the pdp sidecar sent a mask that is not a string for a column of " + table + ": denied");
            }
            masks.add(Optional.ofNullable((String) mask));
        }
        return masks;
    }

    private static List<String> rowFilters(Object answer)
    {
        Object value = field(answer, "rowFilters");
        List<String> strings = new ArrayList<>();
        if (value instanceof List<?> list) {
            for (Object item : list) {
                if (!(item instanceof String string)) {
                    throw new AccessDeniedException("the pdp sidecar sent a row filter that is not a string: denied");
                }
                strings.add(string);
            }
        }
        else {
            throw new AccessDeniedException("the pdp sidecar sent no row filters: denied");
        }
        return List.copyOf(strings);
    }

    /** A table's allowed columns: the cached set itself, as it is. */
    private static void put(Map<SchemaTableName, Set<String>> result, SchemaTableName name, Set<?> columns)
    {
        if (!columns.isEmpty()) {
            result.put(name, kept(columns));
        }
    }

    /**
     * A list or set of strings as this class cached it: checked and made immutable before it was
     * kept (row filters by {@link #rowFilters}, columns by {@code Set.copyOf}), so a hit returns
     * it as it is instead of copying it.
     */
    @SuppressWarnings("unchecked")
    private static <T> T kept(Object value)
    {
        return (T) value;
    }

    private static ViewExpression expression(CatalogSchemaTableName table, String expression)
    {
        return ViewExpression.builder()
                .catalog(table.getCatalogName())
                .schema(table.getSchemaTableName().getSchemaName())
                .expression(expression)
                .build();
    }

    /** "SelectFromColumns" -> "select from columns". */
    static String words(String operation)
    {
        return operation.replaceAll("([a-z])([A-Z])", "$1 $2").toLowerCase(java.util.Locale.ROOT);
    }
}
