package io.pdp.trino;

import io.trino.spi.QueryId;
import io.trino.spi.connector.CatalogSchemaName;
import io.trino.spi.connector.CatalogSchemaTableName;
import io.trino.spi.connector.ColumnSchema;
import io.trino.spi.connector.SchemaTableName;
import io.trino.spi.security.AccessDeniedException;
import io.trino.spi.security.Identity;
import io.trino.spi.security.SystemAccessControl;
import io.trino.spi.security.SystemSecurityContext;
import io.trino.spi.type.Type;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

import static io.trino.spi.type.BigintType.BIGINT;
import static io.trino.spi.type.DecimalType.createDecimalType;
import static io.trino.spi.type.IntegerType.INTEGER;
import static io.trino.spi.type.VarcharType.VARCHAR;

/**
 * The SPI calls Trino 476 makes for each kind of query of benchmarks/trino_bench.py's mix
 * ({@code spi-sequences-476.txt}, recorded by benchmarks/plugin_spi_order.py), and a driver that
 * makes them on any {@link SystemAccessControl} as Trino would: a denial ends the query.
 */
final class SpiSequences
{
    static final String CATALOG = "postgresql";
    /** The benchmark's tables' columns (benchmarks/trino_world.py); types as Trino reads them from PostgreSQL. */
    static final List<ColumnSchema> TABLE_COLUMNS = columns("id", INTEGER, "name", VARCHAR, "amount", createDecimalType(12, 2), "region", VARCHAR);
    static final Set<String> TABLE_COLUMN_NAMES = Set.of("id", "name", "amount", "region");
    /** Trino 476's information_schema tables, as the recording lists their columns. */
    static final Map<String, List<ColumnSchema>> INFORMATION_SCHEMA = Map.of(
            "tables", columns("table_catalog", VARCHAR, "table_schema", VARCHAR, "table_name", VARCHAR, "table_type", VARCHAR, "table_comment", VARCHAR),
            "columns", columns("table_catalog", VARCHAR, "table_schema", VARCHAR, "table_name", VARCHAR, "column_name", VARCHAR,
                    "ordinal_position", BIGINT, "column_default", VARCHAR, "is_nullable", VARCHAR, "data_type", VARCHAR,
                    "comment", VARCHAR, "extra_info", VARCHAR, "column_comment", VARCHAR));

    /** One call of a sequence: an operation, its object, and the columns a SelectFromColumns reads. */
    record Call(String operation, String object, Set<String> columns) {}

    /**
     * One query of the mix: its kind, who runs it, its tables (T1, T2) or the schema it lists
     * and that schema's tables (as the connector lists them).
     */
    record Query(String kind, String user, Set<String> groups, List<SchemaTableName> tables, String schema, List<SchemaTableName> listed)
    {
        Identity identity()
        {
            return Identity.forUser(user).withGroups(groups).build();
        }
    }

    private SpiSequences() {}

    /** Each kind's calls, in Trino's order. */
    static Map<String, List<Call>> load()
    {
        Map<String, List<Call>> sequences = new LinkedHashMap<>();
        List<Call> current = null;
        for (String line : resource("spi-sequences-476.txt").split("\n")) {
            if (line.isBlank() || line.startsWith("#")) {
                continue;
            }
            if (!line.startsWith(" ")) {
                current = new ArrayList<>();
                sequences.put(line.substring(0, line.indexOf(':')), current);
                continue;
            }
            String[] parts = line.trim().split(" ");
            Set<String> columns = parts.length > 2 ? Set.of(parts[2].split(",")) : Set.of();
            current.add(new Call(parts[0], parts.length > 1 ? parts[1] : "", columns));
        }
        sequences.put("wide", sequences.get("columns"));  // the 2,000-table schema's columns
        return sequences;
    }

    static String resource(String name)
    {
        try (InputStream in = SpiSequences.class.getResourceAsStream(name)) {
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
        catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    /**
     * Makes {@code calls} for {@code query} on {@code control}, as Trino 476 would. Returns the
     * outcome every access control must agree on: "denied" (the first denial ends the query), or
     * for a listing the tables it shows and its columns' count, else "allowed"; "error" and the
     * exception's class when a call failed otherwise (the query would fail).
     */
    static String run(SystemAccessControl control, List<Call> calls, Query query, long number)
    {
        Identity identity = query.identity();
        QueryId queryId = new QueryId("q" + number);
        SystemSecurityContext context = new SystemSecurityContext(identity, queryId, Instant.now());
        Set<SchemaTableName> shown = null;
        int columns = 0;
        try {
            for (Call call : calls) {
                switch (call.operation()) {
                    case "ExecuteQuery" -> control.checkCanExecuteQuery(identity, queryId);
                    case "GetColumnMask" -> control.getColumnMasks(context, table(call, query), columnsOf(call));
                    case "GetRowFilters" -> control.getRowFilters(context, table(call, query));
                    case "AccessCatalog" -> {
                        if (!control.canAccessCatalog(context, CATALOG)) {
                            return "denied";
                        }
                    }
                    case "SelectFromColumns" -> control.checkCanSelectFromColumns(context, table(call, query), call.columns());
                    case "ShowTables" -> control.checkCanShowTables(context, new CatalogSchemaName(CATALOG, query.schema()));
                    case "FilterCatalogs" -> {
                        if (control.filterCatalogs(context, Set.of(CATALOG)).isEmpty()) {
                            return "catalog hidden";
                        }
                    }
                    case "FilterTables" -> shown = control.filterTables(context, CATALOG, new HashSet<>(query.listed()));
                    case "FilterColumns" -> {
                        Map<SchemaTableName, Set<String>> asked = new HashMap<>();
                        for (SchemaTableName table : shown) {
                            asked.put(table, TABLE_COLUMN_NAMES);
                        }
                        for (Set<String> kept : control.filterColumns(context, CATALOG, asked).values()) {
                            columns += kept.size();
                        }
                    }
                    default -> throw new IllegalArgumentException("no such call: " + call.operation());
                }
            }
        }
        catch (AccessDeniedException e) {
            return "denied";
        }
        catch (RuntimeException e) {  // the stock OPA plugin's failed call: the query fails
            return "error " + e.getClass().getSimpleName();
        }
        if (shown == null) {
            return "allowed";
        }
        Collection<String> names = new TreeSet<>();
        shown.forEach(table -> names.add(table.getTableName()));
        return String.format(Locale.ROOT, "%d tables %08x, %d columns", names.size(), String.join(",", names).hashCode(), columns);
    }

    private static CatalogSchemaTableName table(Call call, Query query)
    {
        return switch (call.object()) {
            case "T1" -> new CatalogSchemaTableName(CATALOG, query.tables().get(0));
            case "T2" -> new CatalogSchemaTableName(CATALOG, query.tables().get(1));
            default -> new CatalogSchemaTableName(CATALOG, "information_schema", call.object().substring("information_schema.".length()));
        };
    }

    private static List<ColumnSchema> columnsOf(Call call)
    {
        return call.object().startsWith("information_schema.")
                ? INFORMATION_SCHEMA.get(call.object().substring("information_schema.".length()))
                : TABLE_COLUMNS;
    }

    private static List<ColumnSchema> columns(Object... namesAndTypes)
    {
        List<ColumnSchema> columns = new ArrayList<>();
        for (int i = 0; i < namesAndTypes.length; i += 2) {
            columns.add(ColumnSchema.builder().setName((String) namesAndTypes[i]).setType((Type) namesAndTypes[i + 1]).build());
        }
        return List.copyOf(columns);
    }
}
