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

    static String identity(Identity identity)
    {
        return "{\"user\":" + Json.quote(identity.getUser()) + ",\"groups\":" + Json.strings(new TreeSet<>(identity.getGroups())) + "}";
    }

    static String catalog(String catalog)
    {
        return "{\"catalog\":{\"name\":" + Json.quote(catalog) + "}}";
    }

    static String schema(String catalog, String schema)
    {
        return "{\"schema\":{\"catalogName\":" + Json.quote(catalog) + ",\"schemaName\":" + Json.quote(schema) + "}}";
    }

    static String schema(CatalogSchemaName schema)
    {
        return schema(schema.getCatalogName(), schema.getSchemaName());
    }

    static String table(String catalog, String schema, String table)
    {
        return "{\"table\":" + tableFields(catalog, schema, table) + "}";
    }

    static String table(CatalogSchemaTableName table)
    {
        return table(table.getCatalogName(), table.getSchemaTableName().getSchemaName(), table.getSchemaTableName().getTableName());
    }

    /** A table with columns (sorted: the same columns make the same key). */
    static String tableWithColumns(String catalog, String schema, String table, Collection<String> columns)
    {
        String fields = tableFields(catalog, schema, table);
        return "{\"table\":" + fields.substring(0, fields.length() - 1) + ",\"columns\":" + Json.strings(new TreeSet<>(columns)) + "}}";
    }

    static String tableWithColumns(CatalogSchemaTableName table, Collection<String> columns)
    {
        return tableWithColumns(table.getCatalogName(), table.getSchemaTableName().getSchemaName(), table.getSchemaTableName().getTableName(), columns);
    }

    static String function(String catalog, String schema, String function)
    {
        return "{\"function\":{\"catalogName\":" + Json.quote(catalog) + ",\"schemaName\":" + Json.quote(schema) + ",\"functionName\":" + Json.quote(function) + "}}";
    }

    static String function(CatalogSchemaRoutineName routine)
    {
        return function(routine.getCatalogName(), routine.getSchemaName(), routine.getRoutineName());
    }

    static String tableProcedure(CatalogSchemaTableName table, String procedure)
    {
        String t = table(table);
        return t.substring(0, t.length() - 1) + ",\"function\":{\"functionName\":" + Json.quote(procedure) + "}}";
    }

    static String user(String user)
    {
        return "{\"user\":{\"user\":" + Json.quote(user) + "}}";
    }

    static String systemSessionProperty(String name)
    {
        return "{\"systemSessionProperty\":{\"name\":" + Json.quote(name) + "}}";
    }

    static String catalogSessionProperty(String catalog, String name)
    {
        return "{\"catalogSessionProperty\":{\"catalogName\":" + Json.quote(catalog) + ",\"propertyName\":" + Json.quote(name) + "}}";
    }

    static String column(CatalogSchemaTableName table, String column, String type)
    {
        String t = tableFields(table.getCatalogName(), table.getSchemaTableName().getSchemaName(), table.getSchemaTableName().getTableName());
        return "{\"column\":" + t.substring(0, t.length() - 1) + ",\"columnName\":" + Json.quote(column) + ",\"columnType\":" + Json.quote(type) + "}}";
    }

    private static String tableFields(String catalog, String schema, String table)
    {
        return "{\"catalogName\":" + Json.quote(catalog) + ",\"schemaName\":" + Json.quote(schema) + ",\"tableName\":" + Json.quote(table) + "}";
    }
}
