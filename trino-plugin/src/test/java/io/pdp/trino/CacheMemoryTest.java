package io.pdp.trino;

import io.trino.spi.QueryId;
import io.trino.spi.connector.CatalogSchemaName;
import io.trino.spi.connector.CatalogSchemaTableName;
import io.trino.spi.connector.ColumnSchema;
import io.trino.spi.connector.SchemaTableName;
import io.trino.spi.security.Identity;
import io.trino.spi.security.SystemSecurityContext;
import io.trino.spi.type.BigintType;
import io.trino.spi.type.VarcharType;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.openjdk.jol.info.GraphLayout;

import java.time.Instant;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The cache's heap at 10,000 users: each user runs one session's worth of calls through the
 * access control (and the fake sidecar over real HTTP), the cache keeps what it may, and the
 * heap the cached answers hold (keys and values, measured by JOL's object graph walk) is
 * printed. The bound is in answers, so it is the bound, not the number of users, that sets the
 * memory: the figures are in docs/trino-plugin.md. A measurement of tens of thousands of calls,
 * so not in the default run: {@code make plugin-measure}. (The bound itself is checked in every
 * run by PdpAccessControlTest.)
 */
@Tag("measure")
class CacheMemoryTest
{
    private static final int USERS = 10_000;
    private static final int THREADS = 8;
    private static final List<String> COLUMNS = List.of("id", "name", "amount");

    /** A user's session: a point SELECT's calls (in Trino 476's order) and a SHOW TABLES. */
    private static int session(PdpAccessControl control, int user)
    {
        Set<String> groups = new HashSet<>();
        for (int g = 0; g < 3; g++) {
            groups.add(String.format(Locale.ROOT, "finance-analysts-%s-%03d", g == 0 ? "eu" : "us", (user * 7 + g * 31) % 250));
        }
        Identity identity = Identity.forUser(name(user)).withGroups(groups).build();
        SystemSecurityContext context = new SystemSecurityContext(identity, new QueryId("q" + user), Instant.now());
        String schema = String.format(Locale.ROOT, "s%02d", user % 20);
        CatalogSchemaTableName table = new CatalogSchemaTableName("postgresql", schema, table(user));
        control.checkCanExecuteQuery(identity, context.getQueryId());
        control.filterCatalogs(context, Set.of("postgresql", "system"));
        control.getColumnMasks(context, table, List.of(
                ColumnSchema.builder().setName("id").setType(BigintType.BIGINT).build(),
                ColumnSchema.builder().setName("name").setType(VarcharType.VARCHAR).build(),
                ColumnSchema.builder().setName("amount").setType(BigintType.BIGINT).build()));
        control.getRowFilters(context, table);
        control.canAccessCatalog(context, "postgresql");
        control.checkCanSelectFromColumns(context, table, Set.copyOf(COLUMNS));
        control.checkCanShowTables(context, new CatalogSchemaName("postgresql", schema));
        Set<SchemaTableName> tables = new HashSet<>();
        for (int t = 0; t < 10; t++) {
            tables.add(new SchemaTableName(schema, String.format(Locale.ROOT, "t%03d", t)));
        }
        control.filterTables(context, "postgresql", tables);
        return 1 + 2 + COLUMNS.size() + 1 + 1 + 1 + 1 + tables.size();  // answers asked for: 20
    }

    private static String name(int user)
    {
        return String.format(Locale.ROOT, "user%05d@corp.example.com", user);
    }

    private static String table(int user)
    {
        return String.format(Locale.ROOT, "t%03d", user % 100);
    }

    private static Measured fill(FakeSidecar sidecar, int cacheSize)
            throws Exception
    {
        PdpAccessControl control = new PdpAccessControl(new PdpBackend(PdpConfig.from(Map.of(
                "pdp.sidecar-url", sidecar.url(),
                "pdp.cache-size", String.valueOf(cacheSize)))));
        try {
            long deadline = System.nanoTime() + 5_000_000_000L;
            while (control.backend().revision() == null) {
                assertTrue(System.nanoTime() < deadline, "no revision from the fake sidecar within 5s");
                Thread.sleep(10);
            }
            ExecutorService pool = Executors.newFixedThreadPool(THREADS);
            List<Future<Integer>> sessions = new ArrayList<>();
            for (int user = 0; user < USERS; user++) {
                int u = user;
                sessions.add(pool.submit(() -> session(control, u)));
            }
            int asked = 0;
            for (Future<Integer> session : sessions) {
                asked += session.get();
            }
            pool.shutdown();
            Map<String, Object> answers = control.backend().answers();
            long bytes = GraphLayout.parseInstance(answers).totalSize();
            return new Measured(asked, answers.size(), bytes);
        }
        finally {
            control.shutdown();
        }
    }

    private record Measured(int asked, int kept, long bytes)
    {
        String describe(String what)
        {
            return String.format(Locale.ROOT, "%s: %,d users, %,d answers asked, %,d kept, %.1f MB of heap (%,d bytes per answer)",
                    what, USERS, asked, kept, bytes / 1e6, bytes / Math.max(1, kept));
        }
    }

    @Test
    void tenThousandUsersFitTheFixedBoundAndItsHeapIsMeasured()
            throws Exception
    {
        try (FakeSidecar sidecar = new FakeSidecar()) {
            for (int user = 0; user < USERS; user++) {
                sidecar.grants.add(name(user) + ":" + table(user));
            }
            Measured measured = fill(sidecar, 100_000);  // the default pdp.cache-size
            System.out.println(measured.describe("pdp.cache-size=100000"));
            assertEquals(USERS * 20, measured.asked());
            assertTrue(measured.kept() <= 100_000, "the cache outgrew its bound: " + measured.kept());
            assertTrue(measured.kept() >= 90_000, "the cache kept too little: " + measured.kept());
        }
    }
}
