package io.pdp.trino;

import com.sun.management.ThreadMXBean;
import io.trino.spi.QueryId;
import io.trino.spi.connector.CatalogSchemaTableName;
import io.trino.spi.connector.ColumnSchema;
import io.trino.spi.connector.SchemaTableName;
import io.trino.spi.security.Identity;
import io.trino.spi.security.SystemSecurityContext;
import io.trino.spi.type.BigintType;
import io.trino.spi.type.VarcharType;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.lang.management.ManagementFactory;
import java.time.Instant;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * What the plugin's own work costs Trino once its answers are cached: the calls Trino 476 makes
 * for a point SELECT, and for an {@code information_schema.columns} listing of a schema of 100
 * tables, repeated on one thread against a warm cache. Prints the time and the bytes allocated
 * per query's calls (after a JIT warm-up); asserts only that no call reached the sidecar. A
 * measurement, run on request: {@code make plugin-measure}.
 */
@Tag("measure")
class WarmCallCostTest
{
    private static final int USERS = 100;
    private static final int ROUNDS = 200_000;
    private static final CatalogSchemaTableName TABLE = new CatalogSchemaTableName("postgresql", "s01", "t003");
    private static final List<ColumnSchema> COLUMNS = List.of(
            ColumnSchema.builder().setName("id").setType(BigintType.BIGINT).build(),
            ColumnSchema.builder().setName("name").setType(VarcharType.VARCHAR).build(),
            ColumnSchema.builder().setName("amount").setType(BigintType.BIGINT).build());

    private static SystemSecurityContext[] sessions()
    {
        SystemSecurityContext[] sessions = new SystemSecurityContext[USERS];
        for (int u = 0; u < USERS; u++) {
            Identity identity = Identity.forUser(String.format(Locale.ROOT, "u%03d", u))
                    .withGroups(Set.of(String.format(Locale.ROOT, "g%02d", u % 25), String.format(Locale.ROOT, "h%02d", (u * 7 + 3) % 25)))
                    .build();
            sessions[u] = new SystemSecurityContext(identity, new QueryId("q" + u), Instant.now());
        }
        return sessions;
    }

    private static void pointSelect(PdpAccessControl control, SystemSecurityContext session)
    {
        control.checkCanExecuteQuery(session.getIdentity(), session.getQueryId());
        control.getColumnMasks(session, TABLE, COLUMNS);
        control.getRowFilters(session, TABLE);
        control.canAccessCatalog(session, "postgresql");
        control.checkCanSelectFromColumns(session, TABLE, Set.of("id", "name", "amount"));
    }

    private static final Set<SchemaTableName> SCHEMA_TABLES = new HashSet<>();
    private static final Map<SchemaTableName, Set<String>> SCHEMA_COLUMNS = new HashMap<>();

    static {
        for (int t = 0; t < 100; t++) {
            SchemaTableName name = new SchemaTableName("s01", String.format(Locale.ROOT, "t%03d", t));
            SCHEMA_TABLES.add(name);
            SCHEMA_COLUMNS.put(name, Set.of("id", "name", "amount", "region"));
        }
    }

    private static void columnsListing(PdpAccessControl control, SystemSecurityContext session)
    {
        control.checkCanExecuteQuery(session.getIdentity(), session.getQueryId());
        control.filterCatalogs(session, Set.of("postgresql"));
        control.filterTables(session, "postgresql", SCHEMA_TABLES);
        control.filterColumns(session, "postgresql", SCHEMA_COLUMNS);
    }

    private interface Query
    {
        void run(PdpAccessControl control, SystemSecurityContext session);
    }

    private static String measure(PdpAccessControl control, SystemSecurityContext[] sessions, Query query, int rounds)
    {
        ThreadMXBean threads = (ThreadMXBean) ManagementFactory.getThreadMXBean();
        long thread = Thread.currentThread().threadId();
        for (int i = 0; i < rounds; i++) {  // the JIT's turn
            query.run(control, sessions[i % USERS]);
        }
        long bytes = threads.getThreadAllocatedBytes(thread);
        long start = System.nanoTime();
        for (int i = 0; i < rounds; i++) {
            query.run(control, sessions[i % USERS]);
        }
        long nanos = System.nanoTime() - start;
        bytes = threads.getThreadAllocatedBytes(thread) - bytes;
        return String.format(Locale.ROOT, "%.2f µs and %,d bytes allocated per query", nanos / 1e3 / rounds, bytes / rounds);
    }

    @Test
    void aWarmQuerysCallsCostMicroseconds()
            throws Exception
    {
        try (FakeSidecar sidecar = new FakeSidecar()) {
            for (int u = 0; u < USERS; u++) {
                sidecar.grants.add(String.format(Locale.ROOT, "u%03d:t003", u));
            }
            PdpAccessControl control = new PdpAccessControl(new PdpBackend(PdpConfig.from(Map.of("pdp.sidecar-url", sidecar.url()))));
            try {
                long deadline = System.nanoTime() + 5_000_000_000L;
                while (control.backend().revision() == null && System.nanoTime() < deadline) {
                    Thread.sleep(10);
                }
                SystemSecurityContext[] sessions = sessions();
                for (SystemSecurityContext session : sessions) {  // every answer cached
                    pointSelect(control, session);
                    columnsListing(control, session);
                }
                int asked = sidecar.decisionRequests.get();
                System.out.println("warm point SELECT: " + measure(control, sessions, WarmCallCostTest::pointSelect, ROUNDS));
                System.out.println("warm information_schema.columns of 100 tables: " + measure(control, sessions, WarmCallCostTest::columnsListing, ROUNDS / 20));
                assertEquals(asked, sidecar.decisionRequests.get(), "a warm call reached the sidecar");
            }
            finally {
                control.shutdown();
            }
        }
    }
}
