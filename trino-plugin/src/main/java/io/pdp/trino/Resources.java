package io.pdp.trino;

import io.trino.spi.connector.CatalogSchemaName;
import io.trino.spi.connector.CatalogSchemaRoutineName;
import io.trino.spi.connector.CatalogSchemaTableName;
import io.trino.spi.security.Identity;

import java.util.Collection;
import java.util.TreeSet;

/**
 * The objects a decision is about, in the JSON shapes of Trino's OPA contract (the sidecar
 * decodes them with the same decoder as the OPA endpoints). Written the same way every time,
 * so that each string is also its cache key.
 */
final class Resources
{
    private Resources() {}

    /**
     * The user and groups, as written into every ask and key. Trino passes the same (immutable)
     * Identity to every call of a query, so each thread keeps the last one it wrote: most calls
     * then neither sort the groups nor write them again.
     */
    static String identity(Identity identity)
    {
        Written last = LAST_IDENTITY.get();
        if (last != null && last.identity() == identity) {
            return last.json();
        }
        String json = "{\"user\":" + Json.quote(identity.getUser()) + ",\"groups\":" + Json.strings(new TreeSet<>(identity.getGroups())) + "}";
        LAST_IDENTITY.set(new Written(identity, json));
        return json;
    }

    private record Written(Identity identity, String json) {}

    private static final ThreadLocal<Written> LAST_IDENTITY = new ThreadLocal<>();

    static String catalog(String catalog)
    {
        StringBuilder out = new StringBuilder(48).append("{\"catalog\":{\"name\":");
        Json.quote(out, catalog);
        return out.append("}}").toString();
    }

    static String schema(String catalog, String schema)
    {
        StringBuilder out = new StringBuilder(64).append("{\"schema\":{\"catalogName\":");
        Json.quote(out, catalog);
        out.append(",\"schemaName\":");
        Json.quote(out, schema);
        return out.append("}}").toString();
    }

    static String schema(CatalogSchemaName schema)
    {
        return schema(schema.getCatalogName(), schema.getSchemaName());
    }

    static String table(String catalog, String schema, String table)
    {
        return tableFields(new StringBuilder(96).append("{\"table\":"), catalog, schema, table).append("}}").toString();
    }

    static String table(CatalogSchemaTableName table)
    {
        return table(table.getCatalogName(), table.getSchemaTableName().getSchemaName(), table.getSchemaTableName().getTableName());
    }

    /** A table with columns (sorted: the same columns make the same key). */
    static String tableWithColumns(String catalog, String schema, String table, Collection<String> columns)
    {
        return tableWithSortedColumns(catalog, schema, table, new TreeSet<>(columns));
    }

    /** A table with columns already sorted (and without duplicates). */
    static String tableWithSortedColumns(String catalog, String schema, String table, Collection<String> sorted)
    {
        StringBuilder out = tableFields(new StringBuilder(128).append("{\"table\":"), catalog, schema, table).append(",\"columns\":");
        Json.strings(out, sorted);
        return out.append("}}").toString();
    }

    static String tableWithColumns(CatalogSchemaTableName table, Collection<String> columns)
    {
        return tableWithColumns(table.getCatalogName(), table.getSchemaTableName().getSchemaName(), table.getSchemaTableName().getTableName(), columns);
    }

    static String function(String catalog, String schema, String function)
    {
        StringBuilder out = new StringBuilder(96).append("{\"function\":{\"catalogName\":");
        Json.quote(out, catalog);
        out.append(",\"schemaName\":");
        Json.quote(out, schema);
        out.append(",\"functionName\":");
        Json.quote(out, function);
        return out.append("}}").toString();
    }

    static String function(CatalogSchemaRoutineName routine)
    {
        return function(routine.getCatalogName(), routine.getSchemaName(), routine.getRoutineName());
    }

    static String tableProcedure(CatalogSchemaTableName table, String procedure)
    {
        StringBuilder out = tableFields(new StringBuilder(128).append("{\"table\":"), table).append("},\"function\":{\"functionName\":");
        Json.quote(out, procedure);
        return out.append("}}").toString();
    }

    static String user(String user)
    {
        StringBuilder out = new StringBuilder(32).append("{\"user\":{\"user\":");
        Json.quote(out, user);
        return out.append("}}").toString();
    }

    static String systemSessionProperty(String name)
    {
        StringBuilder out = new StringBuilder(64).append("{\"systemSessionProperty\":{\"name\":");
        Json.quote(out, name);
        return out.append("}}").toString();
    }

    static String catalogSessionProperty(String catalog, String name)
    {
        StringBuilder out = new StringBuilder(80).append("{\"catalogSessionProperty\":{\"catalogName\":");
        Json.quote(out, catalog);
        out.append(",\"propertyName\":");
        Json.quote(out, name);
        return out.append("}}").toString();
    }

    static String column(CatalogSchemaTableName table, String column, String type)
    {
        StringBuilder out = tableFields(new StringBuilder(128).append("{\"column\":"), table).append(",\"columnName\":");
        Json.quote(out, column);
        out.append(",\"columnType\":");
        Json.quote(out, type);
        return out.append("}}").toString();
    }

    /** A table's fields, its object left open for more fields: written into {@code out}. */
    private static StringBuilder tableFields(StringBuilder out, String catalog, String schema, String table)
    {
        out.append("{\"catalogName\":");
        Json.quote(out, catalog);
        out.append(",\"schemaName\":");
        Json.quote(out, schema);
        out.append(",\"tableName\":");
        Json.quote(out, table);
        return out;
    }

    private static StringBuilder tableFields(StringBuilder out, CatalogSchemaTableName table)
    {
        return tableFields(out, table.getCatalogName(), table.getSchemaTableName().getSchemaName(), table.getSchemaTableName().getTableName());
    }
}
