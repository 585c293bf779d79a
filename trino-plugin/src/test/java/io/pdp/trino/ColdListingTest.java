package io.pdp.trino;

import io.trino.spi.connector.CatalogSchemaName;
import io.trino.spi.connector.CatalogSchemaTableName;
import io.trino.spi.connector.ColumnSchema;
import io.trino.spi.connector.SchemaTableName;
import io.trino.spi.security.SystemSecurityContext;
import io.trino.spi.security.ViewExpression;
import io.trino.spi.type.BigintType;
import io.trino.spi.type.VarcharType;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

import static io.pdp.trino.Plugins.as;
import static io.pdp.trino.Plugins.operations;
import static io.pdp.trino.Plugins.outcome;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * A listing's checks cost one request: {@code checkCanShowTables}, or the masks of the {@code
 * information_schema} table a query reads, also asks what Trino 476 asks next about that table
 * and {@code FilterCatalogs} of its catalog. What stays a request of its own is {@code
 * FilterTables} of the tables the connector lists (no earlier call names them); {@code
 * FilterColumns} of those tables is then answered from it (all of a table's columns or none, as
 * the sidecar decides it). The calls are made in Trino 476's order, as {@code
 * benchmarks/plugin_spi_order.py} recorded it.
 */
class ColdListingTest
        extends AgainstFakeSidecar
{
    private static final CatalogSchemaName SALES = new CatalogSchemaName("memory", "sales");
    private static final Set<SchemaTableName> LISTED = Set.of(new SchemaTableName("sales", "orders"), new SchemaTableName("sales", "customers"));
    private static final Map<SchemaTableName, Set<String>> LISTED_COLUMNS = Map.of(
            new SchemaTableName("sales", "orders"), Set.of("id", "region"),
            new SchemaTableName("sales", "customers"), Set.of("id", "phone"));
    private static final CatalogSchemaTableName TABLES = new CatalogSchemaTableName("memory", "information_schema", "tables");
    private static final CatalogSchemaTableName COLUMNS = new CatalogSchemaTableName("memory", "information_schema", "columns");
    private static final List<ColumnSchema> TABLES_COLUMNS = varchars("table_catalog", "table_schema", "table_name", "table_type", "table_comment");
    private static final List<ColumnSchema> COLUMNS_COLUMNS = List.of(
            varchar("table_catalog"), varchar("table_schema"), varchar("table_name"), varchar("column_name"),
            ColumnSchema.builder().setName("ordinal_position").setType(BigintType.BIGINT).build(),
            varchar("column_default"), varchar("is_nullable"), varchar("data_type"), varchar("comment"), varchar("extra_info"), varchar("column_comment"));

    @Override
    void policy(FakeSidecar sidecar)
    {
        sidecar.grants.addAll(Set.of("alice:orders", "alice:tables", "alice:columns", "bob:columns"));
        sidecar.masks.put("comment", "'-'");
    }

    private static ColumnSchema varchar(String name)
    {
        return ColumnSchema.builder().setName(name).setType(VarcharType.VARCHAR).build();
    }

    private static List<ColumnSchema> varchars(String... names)
    {
        return List.of(names).stream().map(ColdListingTest::varchar).toList();
    }

    /** What a listing's calls gave: the masks and row filters of the table read, its check, and what was listed. */
    private record Seen(Map<String, String> masks, List<String> rowFilters, String select, Set<String> catalogs, Set<SchemaTableName> tables, Map<SchemaTableName, Set<String>> columns) {}

    /** Trino 476 reading {@code table} of {@code information_schema}: masks, row filters, catalog, select, then the listing's filters. */
    private static Seen listing(PdpAccessControl control, SystemSecurityContext session, CatalogSchemaTableName table, List<ColumnSchema> columns, boolean ofColumns)
    {
        Map<String, String> masks = new TreeMap<>();
        control.getColumnMasks(session, table, columns).forEach((column, mask) -> masks.put(column.getName(), mask.getExpression()));
        for (String column : masks.keySet()) {  // Trino applies a mask where the column may be read
            control.canAccessCatalog(session, "memory");
            outcome(() -> control.checkCanSelectFromColumns(session, table, Set.of(column)));
        }
        List<String> rowFilters = control.getRowFilters(session, table).stream().map(ViewExpression::getExpression).toList();
        control.canAccessCatalog(session, "memory");
        String select = outcome(() -> control.checkCanSelectFromColumns(session, table, Set.of("table_name")));
        Set<String> catalogs = control.filterCatalogs(session, Set.of("memory"));
        Set<SchemaTableName> tables = control.filterTables(session, "memory", LISTED);
        Map<SchemaTableName, Set<String>> found = Map.of();
        if (ofColumns) {  // information_schema.columns filters the catalogs and tables twice
            control.filterCatalogs(session, Set.of("memory"));
            control.filterTables(session, "memory", LISTED);
            found = control.filterColumns(session, "memory", LISTED_COLUMNS);
        }
        return new Seen(masks, rowFilters, select, catalogs, tables, found);
    }

    /** SHOW TABLES FROM memory.sales in Trino 476: the catalog, ShowTables, then the listing from information_schema.tables. */
    private static Map.Entry<String, Seen> showTables(PdpAccessControl control, SystemSecurityContext session)
    {
        control.canAccessCatalog(session, "memory");
        String shown = outcome(() -> control.checkCanShowTables(session, SALES));
        return Map.entry(shown, shown.equals("allowed") ? listing(control, session, TABLES, TABLES_COLUMNS, false) : null);
    }

    @Test
    void aColdShowTablesIsOneRequestForItsChecksAndOneForItsTables()
    {
        SystemSecurityContext alice = as("alice");
        control.canAccessCatalog(alice, "memory");  // the session's catalog, known from an earlier query
        int before = sidecar.decisionRequests.get();

        Map.Entry<String, Seen> seen = showTables(control, alice);
        assertEquals(before + 2, sidecar.decisionRequests.get(), "ShowTables with what follows, then FilterTables");
        assertEquals(List.of("ShowTables", "GetColumnMask", "GetColumnMask", "GetColumnMask", "GetColumnMask", "GetColumnMask", "GetRowFilters", "SelectFromColumns", "FilterCatalogs"),
                operations(sidecar.bodies.get(before)));
        assertEquals(List.of("FilterTables"), operations(sidecar.bodies.getLast()));
        assertEquals(Map.entry("allowed", new Seen(Map.of(), List.of(), "allowed", Set.of("memory"), Set.of(new SchemaTableName("sales", "orders")), Map.of())), seen);

        showTables(control, alice);  // warm: none
        assertEquals(before + 2, sidecar.decisionRequests.get());
    }

    @Test
    void aColdColumnsListingIsOneRequestForItsChecksAndOneForItsTablesWhichAnswersTheirColumns()
    {
        SystemSecurityContext alice = as("alice");
        int before = sidecar.decisionRequests.get();

        Seen seen = listing(control, alice, COLUMNS, COLUMNS_COLUMNS, true);
        assertEquals(before + 2, sidecar.decisionRequests.get(), "masks with what follows, then FilterTables; FilterColumns from it");
        assertEquals(List.of("GetColumnMask", "GetRowFilters", "AccessCatalog", "SelectFromColumns", "FilterCatalogs"), operations(sidecar.bodies.get(before)));
        assertEquals(new Seen(Map.of("comment", "'-'"), List.of(), "allowed", Set.of("memory"), Set.of(new SchemaTableName("sales", "orders")),
                Map.of(new SchemaTableName("sales", "orders"), Set.of("id", "region"))), seen);

        listing(control, alice, COLUMNS, COLUMNS_COLUMNS, true);  // warm: none
        assertEquals(before + 2, sidecar.decisionRequests.get());

        // a table no FilterTables answered (DESCRIBE, SHOW COLUMNS) is asked
        Map<SchemaTableName, Set<String>> regions = Map.of(new SchemaTableName("sales", "regions"), Set.of("id"));
        assertEquals(Map.of(), control.filterColumns(alice, "memory", regions));
        assertEquals(before + 3, sidecar.decisionRequests.get());
        assertEquals(List.of("FilterColumns"), operations(sidecar.bodies.getLast()));
    }

    @Test
    void answersAskedAheadAreTheOnesAskedOneByOne()
            throws Exception
    {
        withAnotherPlugin(Map.of(), separate -> {
            for (String user : List.of("alice", "bob", "carol")) {
                // asked ahead by ShowTables (bob and carol may not show tables: nothing follows)
                Map.Entry<String, Seen> ahead = showTables(control, as(user));
                String shown = outcome(() -> separate.checkCanShowTables(as(user), SALES));
                Seen oneByOne = shown.equals("allowed") ? reversed(separate, as(user), TABLES, TABLES_COLUMNS, false) : null;
                assertEquals(Map.entry(shown, oneByOne == null ? ahead.getValue() : oneByOne), ahead, user);
                // asked ahead by the masks of information_schema.columns; columns from FilterTables,
                // compared with a plugin holding no FilterTables answer, which asks FilterColumns
                withAnotherPlugin(Map.of(), alone -> assertEquals(
                        reversed(alone, as(user), COLUMNS, COLUMNS_COLUMNS, true), listing(control, as(user), COLUMNS, COLUMNS_COLUMNS, true), user));
            }
        });
    }

    /** {@link #listing}'s calls in the reverse order, none of them then asking anything beside its own. */
    private static Seen reversed(PdpAccessControl control, SystemSecurityContext session, CatalogSchemaTableName table, List<ColumnSchema> columns, boolean ofColumns)
    {
        // FilterColumns first: asked of the sidecar, not answered from FilterTables
        Map<SchemaTableName, Set<String>> columnsFound = ofColumns ? control.filterColumns(session, "memory", LISTED_COLUMNS) : Map.of();
        Set<SchemaTableName> tables = control.filterTables(session, "memory", LISTED);
        Set<String> catalogs = control.filterCatalogs(session, Set.of("memory"));
        String select = outcome(() -> control.checkCanSelectFromColumns(session, table, Set.of("table_name")));
        control.canAccessCatalog(session, "memory");
        List<String> rowFilters = control.getRowFilters(session, table).stream().map(ViewExpression::getExpression).toList();
        Map<String, String> masks = new TreeMap<>();
        control.getColumnMasks(session, table, columns).forEach((column, mask) -> masks.put(column.getName(), mask.getExpression()));
        return new Seen(masks, rowFilters, select, catalogs, tables, columnsFound);
    }

    @Test
    void aNewRevisionDropsWhatShowTablesAskedAhead()
            throws Exception
    {
        SystemSecurityContext alice = as("alice");
        control.checkCanShowTables(alice, SALES);
        int before = sidecar.decisionRequests.get();
        control.getColumnMasks(alice, TABLES, TABLES_COLUMNS);
        assertEquals(before, sidecar.decisionRequests.get(), "answered from what was asked ahead");

        sidecar.edit(() -> sidecar.grants.remove("alice:tables"));
        Plugins.eventually(() -> "r2".equals(control.backend().revision()));
        String denied = outcome(() -> control.checkCanSelectFromColumns(alice, TABLES, Set.of("table_name")));
        assertEquals("Access Denied: Cannot select from columns [table_name] in table memory.information_schema.tables: no policy grants alice tables", denied);
    }
}
