package io.pdp.trino;

import io.trino.spi.QueryId;
import io.trino.spi.security.AccessDeniedException;
import io.trino.spi.security.Identity;
import io.trino.spi.security.SystemSecurityContext;

import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.BooleanSupplier;

import static org.junit.jupiter.api.Assertions.assertTrue;

/** What the tests of the plugin against {@link FakeSidecar} share: the plugin, a session, waiting, reading. */
final class Plugins
{
    private Plugins() {}

    /** The plugin pointed at {@code sidecar}, watching it every 0.2 s; {@code extra} properties on top. */
    static PdpAccessControl plugin(FakeSidecar sidecar, Map<String, String> extra)
    {
        Map<String, String> properties = new HashMap<>(Map.of(
                "pdp.sidecar-url", sidecar.url(),
                "pdp.max-stale-seconds", "30",
                "pdp.watch-wait-seconds", "0.2"));
        properties.putAll(extra);
        return new PdpAccessControl(new PdpBackend(PdpConfig.from(properties)));
    }

    /** {@link #plugin}, once it holds the sidecar's revision (so that it caches). */
    static PdpAccessControl watching(FakeSidecar sidecar, Map<String, String> extra)
            throws InterruptedException
    {
        PdpAccessControl control = plugin(sidecar, extra);
        eventually(() -> control.backend().revision() != null);
        return control;
    }

    static SystemSecurityContext as(String user, String... groups)
    {
        Identity identity = Identity.forUser(user).withGroups(Set.of(groups)).build();
        return new SystemSecurityContext(identity, new QueryId("q1"), Instant.now());
    }

    static void eventually(BooleanSupplier check)
            throws InterruptedException
    {
        long deadline = System.nanoTime() + 5_000_000_000L;
        while (!check.getAsBoolean()) {
            assertTrue(System.nanoTime() < deadline, "not true within 5s");
            Thread.sleep(20);
        }
    }

    /** "allowed", or the denial's message. */
    static String outcome(Runnable check)
    {
        try {
            check.run();
            return "allowed";
        }
        catch (AccessDeniedException e) {
            return e.getMessage();
        }
    }

    /** The operations of a request's asks, in order. */
    static List<String> operations(String body)
    {
        List<String> operations = new ArrayList<>();
        for (Object ask : (List<?>) ((Map<?, ?>) Json.parse(body)).get("asks")) {
            operations.add((String) ((Map<?, ?>) ask).get("operation"));
        }
        return operations;
    }
}
