package io.pdp.trino;

import io.trino.spi.QueryId;
import io.trino.spi.connector.CatalogSchemaTableName;
import io.trino.spi.connector.ColumnSchema;
import io.trino.spi.connector.SchemaTableName;
import io.trino.spi.function.SchemaFunctionName;
import io.trino.spi.security.AccessDeniedException;
import io.trino.spi.security.Identity;
import io.trino.spi.security.SystemSecurityContext;
import io.trino.spi.security.ViewExpression;
import io.trino.spi.type.BigintType;
import io.trino.spi.type.VarcharType;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static io.pdp.trino.Plugins.as;
import static io.pdp.trino.Plugins.eventually;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class PdpAccessControlTest
        extends AgainstFakeSidecar
{
    private static final CatalogSchemaTableName ORDERS = new CatalogSchemaTableName("memory", "sales", "orders");
    private static final CatalogSchemaTableName CUSTOMERS = new CatalogSchemaTableName("memory", "sales", "customers");

    @Override
    void policy(FakeSidecar sidecar)
    {
        sidecar.grants.add("alice:orders");
    }

    private PdpAccessControl plugin(Map<String, String> extra)
    {
        return Plugins.plugin(sidecar, extra);
    }

    private boolean canSelect(String user, CatalogSchemaTableName table)
    {
        try {
            control.checkCanSelectFromColumns(as(user), table, Set.of("id"));
            return true;
        }
        catch (AccessDeniedException e) {
            return false;
        }
    }

    @Test
    void checksAreDecidedByTheSidecarAndDenialsCarryItsReason()
    {
        control.checkCanSelectFromColumns(as("alice"), ORDERS, Set.of("id", "region"));
        control.checkCanExecuteQuery(Identity.ofUser("alice"), new QueryId("q1"));
        AccessDeniedException denied = assertThrows(AccessDeniedException.class,
                () -> control.checkCanSelectFromColumns(as("alice"), CUSTOMERS, Set.of("id")));
        assertEquals("Access Denied: Cannot select from columns [id] in table memory.sales.customers: no policy grants alice customers", denied.getMessage());
        denied = assertThrows(AccessDeniedException.class, () -> control.checkCanDropTable(as("bob"), ORDERS));
        assertTrue(denied.getMessage().contains("Cannot drop table memory.sales.orders: no policy grants bob orders"), denied.getMessage());
        assertTrue(control.canAccessCatalog(as("bob"), "memory"));
    }

    @Test
    void aFilterIsOneRequestHoweverManyObjectsAndAWarmOneNone()
    {
        Set<SchemaTableName> tables = new HashSet<>();
        for (int i = 0; i < 2000; i++) {
            tables.add(new SchemaTableName("sales", "t" + i));
        }
        tables.add(new SchemaTableName("sales", "orders"));
        Map<SchemaTableName, Set<String>> columns = new HashMap<>();
        for (SchemaTableName table : tables) {
            columns.put(table, Set.of("id", "region"));
        }
        // columns first: no FilterTables answer to read them from (ColdListingTest), so asked
        int before = sidecar.decisionRequests.get();
        assertEquals(Map.of(new SchemaTableName("sales", "orders"), Set.of("id", "region")), control.filterColumns(as("alice"), "memory", columns));
        assertEquals(before + 1, sidecar.decisionRequests.get());
        assertEquals(Set.of(new SchemaTableName("sales", "orders")), control.filterTables(as("alice"), "memory", tables));
        assertEquals(before + 2, sidecar.decisionRequests.get());
        assertEquals(Set.of("memory", "tpch"), control.filterCatalogs(as("alice"), Set.of("memory", "tpch")));
        assertEquals(before + 3, sidecar.decisionRequests.get());

        // warm: the same listings again make no request at all
        control.filterTables(as("alice"), "memory", tables);
        control.filterColumns(as("alice"), "memory", columns);
        control.filterCatalogs(as("alice"), Set.of("memory", "tpch"));
        assertEquals(before + 3, sidecar.decisionRequests.get());
        // one new table: one request, for that table alone
        tables.add(new SchemaTableName("sales", "new_one"));
        control.filterTables(as("alice"), "memory", tables);
        assertEquals(before + 4, sidecar.decisionRequests.get());
        assertTrue(sidecar.bodies.getLast().contains("new_one") && !sidecar.bodies.getLast().contains("\"t1\""));
    }

    @Test
    void answersAreCachedPerUserAndGroups()
    {
        int before = sidecar.decisionRequests.get();
        for (int i = 0; i < 100; i++) {
            control.checkCanSelectFromColumns(as("alice"), ORDERS, Set.of("id"));
            assertThrows(AccessDeniedException.class, () -> control.checkCanInsertIntoTable(as("alice"), CUSTOMERS));
        }
        assertEquals(before + 2, sidecar.decisionRequests.get());
        control.checkCanSelectFromColumns(as("alice", "analysts"), ORDERS, Set.of("id"));  // other groups: asked
        assertEquals(before + 3, sidecar.decisionRequests.get());
    }

    @Test
    void aNewRevisionDropsTheCacheARevocationDeniesAnOpenSessionsNextQuery()
            throws Exception
    {
        SystemSecurityContext session = as("alice");
        control.checkCanSelectFromColumns(session, ORDERS, Set.of("id"));
        control.checkCanSelectFromColumns(session, ORDERS, Set.of("id"));  // from the cache
        long start = System.nanoTime();
        sidecar.edit(() -> sidecar.grants.remove("alice:orders"));
        eventually(() -> !canSelect("alice", ORDERS));
        assertTrue(System.nanoTime() - start < 1_000_000_000L, "revoked within a second");
        assertEquals("r2", control.backend().revision());
        assertThrows(AccessDeniedException.class, () -> control.checkCanSelectFromColumns(session, ORDERS, Set.of("id")));
        sidecar.edit(() -> sidecar.grants.add("alice:orders"));
        eventually(() -> canSelect("alice", ORDERS));
    }

    @Test
    void anAnswerFromAnotherRevisionIsUsedButNotKept()
    {
        PdpBackend backend = control.backend();
        backend.remember("r0", "key", Boolean.TRUE);
        assertEquals(0, backend.size());
        backend.remember("r1", "key", Boolean.TRUE);
        assertEquals(1, backend.size());
    }

    @Test
    void theCacheHasAFixedSize()
    {
        PdpAccessControl small = plugin(Map.of("pdp.cache-size", "100"));
        try {
            PdpBackend backend = small.backend();
            for (int i = 0; i < 1000; i++) {
                backend.remember(backend.revision() == null ? "r1" : backend.revision(), "key" + i, Boolean.TRUE);
            }
            assertTrue(backend.size() <= 100, "size " + backend.size());
        }
        finally {
            small.shutdown();
        }
    }

    @Test
    void theBoundHoldsWithManyThreadsFillingTheCacheAtOnce()
            throws Exception
    {
        PdpAccessControl small = plugin(Map.of("pdp.cache-size", "10"));
        ExecutorService pool = Executors.newFixedThreadPool(16);
        try {
            PdpBackend backend = small.backend();
            eventually(() -> "r1".equals(backend.revision()));
            List<Future<?>> fills = new ArrayList<>();
            for (int t = 0; t < 16; t++) {
                int thread = t;
                fills.add(pool.submit(() -> {
                    for (int i = 0; i < 20_000; i++) {
                        backend.remember("r1", thread + ":" + i, Boolean.TRUE);
                    }
                }));
            }
            for (Future<?> fill : fills) {
                fill.get();
            }
            assertTrue(backend.size() <= 10, "size " + backend.size());
        }
        finally {
            pool.shutdownNow();
            small.shutdown();
        }
    }

    @Test
    void aSidecarThatStopsAnsweringDropsEveryCachedAnswerAndDeniesAfterTheBound()
            throws Exception
    {
        PdpAccessControl control = plugin(Map.of("pdp.max-stale-seconds", "2", "pdp.request-timeout-seconds", "0.5"));
        try {
            aFrozenSidecar(control);
        }
        finally {
            control.shutdown();
        }
    }

    private void aFrozenSidecar(PdpAccessControl control)
            throws Exception
    {
        eventually(() -> "r1".equals(control.backend().revision()));
        control.checkCanSelectFromColumns(as("alice"), ORDERS, Set.of("id"));
        sidecar.freeze(true);  // hangs: connections open, no answer
        long frozen = System.nanoTime();
        control.checkCanSelectFromColumns(as("alice"), ORDERS, Set.of("id"));  // within the bound: cached
        assertTrue(System.nanoTime() - frozen < 2_000_000_000L, "too slow to check within the bound");
        Thread.sleep(2200);
        AccessDeniedException denied = assertThrows(AccessDeniedException.class,
                () -> control.checkCanSelectFromColumns(as("alice"), ORDERS, Set.of("id")));
        assertTrue(denied.getMessage().contains("no word from the pdp sidecar"), denied.getMessage());
        assertEquals(0, control.backend().size());
        assertThrows(AccessDeniedException.class, () -> control.filterCatalogs(as("alice"), Set.of("memory")));
        sidecar.freeze(false);
        eventually(() -> {
            try {
                control.checkCanSelectFromColumns(as("alice"), ORDERS, Set.of("id"));
                return true;
            }
            catch (AccessDeniedException e) {
                return false;
            }
        });
    }

    @Test
    void anUnreachableSidecarDeniesWithoutAnAnswer()
    {
        sidecar.close();
        AccessDeniedException denied = assertThrows(AccessDeniedException.class,
                () -> control.checkCanSelectFromColumns(as("carol"), ORDERS, Set.of("id")));
        assertTrue(denied.getMessage().contains("did not answer"), denied.getMessage());
    }

    @Test
    void aSidecarThatRefusesTheCallDenies()
    {
        PdpAccessControl elsewhere = plugin(Map.of("pdp.sidecar-url", sidecar.url() + "/not-the-sidecar"));
        try {
            AccessDeniedException denied = assertThrows(AccessDeniedException.class,
                    () -> elsewhere.checkCanSelectFromColumns(as("alice"), ORDERS, Set.of("id")));
            assertTrue(denied.getMessage().contains("refused the call (HTTP 404"), denied.getMessage());
        }
        finally {
            elsewhere.shutdown();
        }
    }

    @Test
    void rowFiltersAndMasksComeInOneRequestAndAreCached()
    {
        sidecar.rowFilters.put("orders", List.of("region = 'emea'"));
        sidecar.masks.put("phone", "'****'");
        List<ViewExpression> filters = control.getRowFilters(as("alice"), ORDERS);
        assertEquals(1, filters.size());
        assertEquals("region = 'emea'", filters.getFirst().getExpression());
        assertEquals("memory", filters.getFirst().getCatalog().orElseThrow());
        ColumnSchema id = ColumnSchema.builder().setName("id").setType(BigintType.BIGINT).build();
        ColumnSchema phone = ColumnSchema.builder().setName("phone").setType(VarcharType.VARCHAR).build();
        int before = sidecar.decisionRequests.get();
        Map<ColumnSchema, ViewExpression> masks = control.getColumnMasks(as("alice"), ORDERS, List.of(id, phone));
        assertEquals(Set.of(phone), masks.keySet());
        assertEquals("'****'", masks.get(phone).getExpression());
        assertEquals(before + 1, sidecar.decisionRequests.get());
        assertTrue(sidecar.bodies.getLast().contains("\"columnType\":\"varchar\""));
        control.getColumnMasks(as("alice"), ORDERS, List.of(id, phone));
        control.getRowFilters(as("alice"), ORDERS);
        assertEquals(before + 1, sidecar.decisionRequests.get());
    }

    @Test
    void manyThreadsAtOnceGetTheSameAnswers()
            throws Exception
    {
        ExecutorService pool = Executors.newFixedThreadPool(16);
        try {
            List<Future<Boolean>> results = new java.util.ArrayList<>();
            for (int i = 0; i < 400; i++) {
                CatalogSchemaTableName table = i % 2 == 0 ? ORDERS : CUSTOMERS;
                results.add(pool.submit(() -> canSelect("alice", table)));
            }
            for (int i = 0; i < results.size(); i++) {
                assertEquals(i % 2 == 0, results.get(i).get());
            }
        }
        finally {
            pool.shutdownNow();
        }
    }

    @Test
    void badPropertiesStopTrinoNamingTheKey()
    {
        IllegalArgumentException unknown = assertThrows(IllegalArgumentException.class,
                () -> PdpConfig.from(Map.of("pdp.sidecar-url", "http://x", "pdp.cache-sise", "1")));
        assertTrue(unknown.getMessage().contains("[pdp.cache-sise]"), unknown.getMessage());
        IllegalArgumentException missing = assertThrows(IllegalArgumentException.class, () -> PdpConfig.from(Map.of()));
        assertTrue(missing.getMessage().contains("pdp.sidecar-url is required"), missing.getMessage());
        IllegalArgumentException stale = assertThrows(IllegalArgumentException.class,
                () -> PdpConfig.from(Map.of("pdp.sidecar-url", "http://x", "pdp.max-stale-seconds", "-1")));
        assertTrue(stale.getMessage().contains("pdp.max-stale-seconds"), stale.getMessage());
        assertFalse(PdpConfig.from(Map.of("pdp.sidecar-url", "http://x/")).sidecarUrl().toString().endsWith("/"));
    }

    @Test
    void functionsAreFilteredByTheirCatalogSchemaAndName()
    {
        Set<SchemaFunctionName> functions = Set.of(new SchemaFunctionName("fns", "mine"), new SchemaFunctionName("fns", "other"));
        assertEquals(functions, control.filterFunctions(as("alice"), "memory", functions));
        assertTrue(sidecar.bodies.getLast().contains("{\"function\":{\"catalogName\":\"memory\",\"schemaName\":\"fns\",\"functionName\":\"mine\"}}"), sidecar.bodies.getLast());
    }

    @Test
    void operationNamesReadAsWords()
    {
        assertEquals("select from columns", PdpAccessControl.words("SelectFromColumns"));
    }
}
