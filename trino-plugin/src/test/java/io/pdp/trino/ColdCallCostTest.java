package io.pdp.trino;

import com.sun.management.ThreadMXBean;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.lang.management.ManagementFactory;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Locale;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * What one cold call (a cache miss: one request to the sidecar) costs, through the JDK's
 * HttpClient (what the plugin used before) and through the plugin's own {@link ConnectionPool},
 * against the fake sidecar on loopback, one call at a time on one thread, in alternating blocks.
 * Prints the time per call, the bytes the calling thread allocated per call and those the
 * client's threads allocated all together (every thread but the fake sidecar's: HttpClient's
 * selector and executor threads count, terminated ones too), and the CPU time of the whole JVM
 * but the fake sidecar's threads (GC and JIT included). A measurement, run on request:
 * {@code make plugin-measure}.
 */
@Tag("measure")
class ColdCallCostTest
{
    private static final int CALLS = 5_000;
    private static final int BLOCKS = 4;
    private static final String BODY = "{\"identity\":{\"user\":\"u003\",\"groups\":[\"g03\",\"h24\"]},\"asks\":[{\"operation\":\"SelectFromColumns\","
            + "\"resource\":{\"table\":{\"catalogName\":\"postgresql\",\"schemaName\":\"s01\",\"tableName\":\"t003\",\"columns\":[\"amount\",\"id\",\"name\"]}}}]}";

    private interface Call
    {
        String run()
                throws Exception;
    }

    private static String measure(Call call)
            throws Exception
    {
        ThreadMXBean threads = (ThreadMXBean) ManagementFactory.getThreadMXBean();
        long thread = Thread.currentThread().threadId();
        long own = threads.getThreadAllocatedBytes(thread);
        long all = threads.getTotalThreadAllocatedBytes() - server(threads);
        long cpu = clientCpu(threads);
        long start = System.nanoTime();
        for (int i = 0; i < CALLS; i++) {
            call.run();
        }
        long nanos = System.nanoTime() - start;
        cpu = clientCpu(threads) - cpu;
        own = threads.getThreadAllocatedBytes(thread) - own;
        all = threads.getTotalThreadAllocatedBytes() - server(threads) - all;
        return String.format(Locale.ROOT, "%6.1f µs per call (%5.1f µs of CPU outside the fake sidecar), %,7d bytes allocated by the calling thread, %,7d by the client's threads", nanos / 1e3 / CALLS, cpu / 1e3 / CALLS, own / CALLS, all / CALLS);
    }

    /** Bytes allocated so far by the fake sidecar's threads (its HttpServer's dispatcher and handlers). */
    private static long server(ThreadMXBean threads)
    {
        return serverThreads(threads, threads::getThreadAllocatedBytes);
    }

    /** CPU time the JVM spent so far outside the fake sidecar's threads (GC and JIT included). */
    private static long clientCpu(ThreadMXBean threads)
    {
        long process = ((com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean()).getProcessCpuTime();
        return process - serverThreads(threads, threads::getThreadCpuTime);
    }

    private static long serverThreads(ThreadMXBean threads, java.util.function.LongUnaryOperator measure)
    {
        long sum = 0;
        for (Thread thread : Thread.getAllStackTraces().keySet()) {
            if (thread.getName().equals("fake-sidecar") || thread.getName().startsWith("HTTP-Dispatcher")) {
                sum += Math.max(0, measure.applyAsLong(thread.threadId()));
            }
        }
        return sum;
    }

    @Test
    void aColdCallThroughHttpClientAndThroughThePool()
            throws Exception
    {
        try (FakeSidecar sidecar = new FakeSidecar();
                HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(Duration.ofSeconds(1)).build();
                ConnectionPool pool = new ConnectionPool(URI.create(sidecar.url() + "/v1/pdp/decisions"), Duration.ofSeconds(1), 64)) {
            sidecar.grants.add("u003:t003");
            HttpRequest request = HttpRequest.newBuilder(URI.create(sidecar.url() + "/v1/pdp/decisions"))
                    .timeout(Duration.ofSeconds(5))
                    .header("content-type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString(BODY))
                    .build();
            Call before = () -> http.send(request, HttpResponse.BodyHandlers.ofString()).body();
            Call now = () -> pool.post(BODY.getBytes(StandardCharsets.UTF_8), Duration.ofSeconds(5)).body();
            assertEquals(before.run(), now.run());
            for (int i = 0; i < CALLS; i++) {  // the JIT's turn
                before.run();
                now.run();
            }
            for (int block = 1; block <= BLOCKS; block++) {
                System.out.println("block " + block + " HttpClient:     " + measure(before));
                System.out.println("block " + block + " ConnectionPool: " + measure(now));
            }
        }
    }
}
