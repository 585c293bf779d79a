package io.pdp.trino;

import io.trino.spi.connector.CatalogSchemaTableName;
import io.trino.spi.connector.ColumnSchema;
import io.trino.spi.security.SystemSecurityContext;
import io.trino.spi.security.ViewExpression;
import io.trino.spi.type.BigintType;
import io.trino.spi.type.VarcharType;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

import static io.pdp.trino.Plugins.eventually;
import static io.pdp.trino.Plugins.operations;
import static io.pdp.trino.Plugins.outcome;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A table a user has not queried yet costs one request: the first of Trino's calls about it
 * ({@code getColumnMasks}) also asks what Trino asks next (its row filters, its catalog, its
 * {@code SelectFromColumns}). The calls are made in Trino 476's order, as
 * {@code benchmarks/plugin_spi_order.py} recorded it in a real Trino (docs/trino-plugin.md).
 */
class ColdTableTest
        extends AgainstFakeSidecar
{
    private static final CatalogSchemaTableName ORDERS = new CatalogSchemaTableName("memory", "sales", "orders");
    private static final CatalogSchemaTableName CUSTOMERS = new CatalogSchemaTableName("memory", "sales", "customers");
    private static final CatalogSchemaTableName REGIONS = new CatalogSchemaTableName("tpch", "tiny", "regions");
    private static final List<ColumnSchema> COLUMNS = List.of(
            ColumnSchema.builder().setName("id").setType(BigintType.BIGINT).build(),
            ColumnSchema.builder().setName("region").setType(VarcharType.VARCHAR).build(),
            ColumnSchema.builder().setName("phone").setType(VarcharType.VARCHAR).build());

    @Override
    void policy(FakeSidecar sidecar)
    {
        sidecar.grants.addAll(Set.of("alice:orders", "alice:regions", "bob:customers"));
        sidecar.rowFilters.put("orders", List.of("region = 'emea'"));
        sidecar.masks.put("phone", "'****'");
    }

    private static SystemSecurityContext as(String user)
    {
        return Plugins.as(user, "staff");
    }

    /** What a table's analysis in Trino 476 asks and what the query is then allowed to see. */
    private record Seen(Map<String, String> masks, List<String> rowFilters, String select) {}

    /**
     * Trino 476 analysing {@code SELECT <selected> FROM <each table>}: per table, its masks (all
     * its columns), a masked column's own {@code SelectFromColumns} (after {@code
     * AccessCatalog}), its row filters; after the whole statement, {@code AccessCatalog} and
     * {@code SelectFromColumns} of the columns selected, per table.
     */
    private static List<Seen> select(PdpAccessControl control, SystemSecurityContext session, Set<String> selected, CatalogSchemaTableName... tables)
    {
        List<Map<String, String>> masks = new ArrayList<>();
        List<List<String>> filters = new ArrayList<>();
        for (CatalogSchemaTableName table : tables) {
            Map<String, String> found = new TreeMap<>();
            control.getColumnMasks(session, table, COLUMNS).forEach((column, mask) -> found.put(column.getName(), mask.getExpression()));
            for (String column : found.keySet()) {  // Trino applies a mask where the column may be read
                if (control.canAccessCatalog(session, table.getCatalogName())) {
                    outcome(() -> control.checkCanSelectFromColumns(session, table, Set.of(column)));
                }
            }
            masks.add(found);
            filters.add(control.getRowFilters(session, table).stream().map(ViewExpression::getExpression).toList());
        }
        List<Seen> seen = new ArrayList<>();
        for (int i = 0; i < tables.length; i++) {
            CatalogSchemaTableName table = tables[i];
            String select = control.canAccessCatalog(session, table.getCatalogName())
                    ? outcome(() -> control.checkCanSelectFromColumns(session, table, selected))
                    : "no catalog";
            seen.add(new Seen(masks.get(i), filters.get(i), select));
        }
        return seen;
    }

    /** The same calls in the reverse order, none of them then asking anything beside its own. */
    private static Seen oneByOne(PdpAccessControl control, SystemSecurityContext session, Set<String> selected, CatalogSchemaTableName table)
    {
        String select = control.canAccessCatalog(session, table.getCatalogName())
                ? outcome(() -> control.checkCanSelectFromColumns(session, table, selected))
                : "no catalog";
        List<String> filters = control.getRowFilters(session, table).stream().map(ViewExpression::getExpression).toList();
        Map<String, String> masks = new TreeMap<>();
        control.getColumnMasks(session, table, COLUMNS).forEach((column, mask) -> masks.put(column.getName(), mask.getExpression()));
        return new Seen(masks, filters, select);
    }

    @Test
    void aColdSelectOfATableIsOneRequestAndAWarmOneNone()
    {
        SystemSecurityContext alice = as("alice");
        control.checkCanExecuteQuery(alice.getIdentity(), alice.getQueryId());  // the user's own ask
        int before = sidecar.decisionRequests.get();

        List<Seen> seen = select(control, alice, Set.of("id", "phone"), ORDERS);
        assertEquals(before + 1, sidecar.decisionRequests.get(), "a cold table in one request");
        assertEquals(List.of("GetColumnMask", "GetRowFilters", "AccessCatalog", "SelectFromColumns"), operations(sidecar.bodies.getLast()));
        assertTrue(sidecar.bodies.getLast().contains("{\"operation\":\"SelectFromColumns\",\"resource\":{\"table\":{\"catalogName\":\"memory\",\"schemaName\":\"sales\",\"tableName\":\"orders\"}}}"),
                "asked per table, without columns: " + sidecar.bodies.getLast());
        assertEquals(List.of(new Seen(Map.of("phone", "'****'"), List.of("region = 'emea'"), "allowed")), seen);

        // a second table: one more request, the catalog already known
        seen = select(control, alice, Set.of("id"), CUSTOMERS);
        assertEquals(before + 2, sidecar.decisionRequests.get());
        assertEquals(List.of("GetColumnMask", "GetRowFilters", "SelectFromColumns"), operations(sidecar.bodies.getLast()));
        assertEquals("Access Denied: Cannot select from columns [id] in table memory.sales.customers: no policy grants alice customers", seen.getFirst().select());

        // warm: the same queries, other column sets included, make no request at all
        select(control, alice, Set.of("id", "phone"), ORDERS);
        select(control, alice, Set.of("region"), ORDERS);
        select(control, alice, Set.of(), ORDERS, CUSTOMERS);
        assertEquals(before + 2, sidecar.decisionRequests.get());
    }

    @Test
    void aJoinOfTwoColdTablesIsOneRequestPerTable()
    {
        int before = sidecar.decisionRequests.get();
        select(control, as("alice"), Set.of("id"), ORDERS, REGIONS);
        assertEquals(before + 2, sidecar.decisionRequests.get());
    }

    @Test
    void prefetchedAnswersAreTheOnesAskedOneByOne()
            throws Exception
    {
        withAnotherPlugin(Map.of(), separate -> {
            for (String user : List.of("alice", "bob", "carol")) {
                for (CatalogSchemaTableName table : List.of(ORDERS, CUSTOMERS, REGIONS)) {
                    int before = sidecar.decisionRequests.get();
                    Seen prefetched = select(control, as(user), Set.of("id", "phone"), table).getFirst();
                    assertEquals(before + 1, sidecar.decisionRequests.get(), user + " " + table);
                    before = sidecar.decisionRequests.get();
                    Seen asked = oneByOne(separate, as(user), Set.of("id", "phone"), table);
                    assertTrue(sidecar.decisionRequests.get() - before >= 3, "one request per call");
                    assertEquals(asked, prefetched, user + " " + table);
                }
            }
            // masks and row filters where the user may read the table; denials where not
            assertEquals(new Seen(Map.of("phone", "'****'"), List.of("region = 'emea'"), "allowed"), oneByOne(separate, as("alice"), Set.of("id"), ORDERS));
            assertTrue(oneByOne(separate, as("bob"), Set.of("id"), ORDERS).select().contains("no policy grants bob orders"));
        });
    }

    @Test
    void aNewRevisionDropsPrefetchedAnswers()
            throws Exception
    {
        SystemSecurityContext alice = as("alice");
        control.getColumnMasks(alice, ORDERS, COLUMNS);  // SelectFromColumns prefetched: allowed
        int before = sidecar.decisionRequests.get();
        control.checkCanSelectFromColumns(alice, ORDERS, Set.of("id"));
        assertEquals(before, sidecar.decisionRequests.get(), "answered from the prefetch");

        sidecar.edit(() -> sidecar.grants.remove("alice:orders"));
        eventually(() -> "r2".equals(control.backend().revision()));
        assertEquals(0, control.backend().size());
        String denied = outcome(() -> control.checkCanSelectFromColumns(alice, ORDERS, Set.of("id")));
        assertTrue(denied.contains("no policy grants alice orders"), denied);
        assertEquals(before + 1, sidecar.decisionRequests.get());
    }

    @Test
    void answersWithoutARevisionAreUsedOnceAndNoneIsKept()
    {
        SystemSecurityContext alice = as("alice");
        sidecar.fallback = true;
        int before = sidecar.decisionRequests.get();
        Seen seen = select(control, alice, Set.of("id", "phone"), ORDERS).getFirst();
        assertEquals(new Seen(Map.of("phone", "'****'"), List.of("region = 'emea'"), "allowed"), seen);
        assertEquals(0, control.backend().size(), "a fallback answer, prefetched or not, is not kept");
        // every call asked again: masks (with what follows), the masked column's catalog and
        // SelectFromColumns, row filters (with what follows), then the catalog and SelectFromColumns
        assertEquals(before + 6, sidecar.decisionRequests.get());

        sidecar.fallback = false;
        select(control, alice, Set.of("id", "phone"), ORDERS);
        assertEquals(before + 7, sidecar.decisionRequests.get(), "with a revision again: one request");
        assertEquals(COLUMNS.size() + 3, control.backend().size());  // masks, row filters, catalog, select
    }

    @Test
    void prefetchedAnswersCountAgainstTheBound()
            throws Exception
    {
        withAnotherPlugin(Map.of("pdp.cache-size", "10"), small -> {
            for (int t = 0; t < 20; t++) {
                select(small, as("alice"), Set.of("id"), new CatalogSchemaTableName("memory", "sales", "t" + t));
                assertTrue(small.backend().size() <= 10, "size " + small.backend().size());
            }
        });
    }
}
