package io.pdp.trino;

import com.sun.management.OperatingSystemMXBean;
import com.sun.management.ThreadMXBean;
import io.opentelemetry.api.OpenTelemetry;
import io.opentelemetry.api.trace.Tracer;
import io.trino.plugin.base.security.AllowAllSystemAccessControl;
import io.trino.plugin.base.security.FileBasedSystemAccessControl;
import io.trino.spi.Plugin;
import io.trino.spi.connector.SchemaTableName;
import io.trino.spi.security.SystemAccessControl;
import io.trino.spi.security.SystemAccessControlFactory;
import io.trino.spi.security.SystemAccessControlFactory.SystemAccessControlContext;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.lang.management.ManagementFactory;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.ServiceLoader;
import java.util.Set;
import java.util.function.Supplier;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * What each access control's own work costs per query of benchmarks/trino_bench.py's mix, in one
 * JVM, side by side: Trino's file-based rules, the product's plugin (as in the benchmark, warm,
 * and cold) against a real sidecar and PDP, and Trino's stock OPA plugin against another sidecar
 * and PDP and against OPA. Each is driven with the SPI calls Trino 476 makes for each query
 * ({@link SpiSequences}), the same queries in the same blocks, the order rotating from block to
 * block. Run by benchmarks/spi_cost.py, which starts the backends, writes the queries and reads
 * the result (JSON at {@code spicost.out}); a measurement, run on request, no timing asserted.
 */
@Tag("spicost")
class SpiCostTest
{
    private static final ThreadMXBean THREADS = (ThreadMXBean) ManagementFactory.getThreadMXBean();
    private static final OperatingSystemMXBean OS = (OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();

    /** An access control under test: how to make one, and the backend processes it asks. */
    private record Control(String name, Supplier<SystemAccessControl> make, List<Long> backend, boolean freshPerBlock) {}

    @Test
    void eachAccessControlsCostPerQuery()
            throws Exception
    {
        Map<?, ?> input = (Map<?, ?>) Json.parse(Files.readString(Path.of(System.getProperty("spicost.input"))));
        Map<String, List<SpiSequences.Call>> sequences = SpiSequences.load();
        Map<String, List<SchemaTableName>> schemas = new LinkedHashMap<>();
        List<SpiSequences.Query> warm = queries((List<?>) input.get("warm"), (Map<?, ?>) input.get("schemas"), schemas);
        List<SpiSequences.Query> mix = queries((List<?>) input.get("mix"), (Map<?, ?>) input.get("schemas"), schemas);
        List<SpiSequences.Query> wide = queries((List<?>) input.get("wide"), (Map<?, ?>) input.get("schemas"), schemas);
        int block = ((Number) input.get("block")).intValue();
        int wideBlock = ((Number) input.get("wideBlock")).intValue();
        Map<?, ?> backends = (Map<?, ?>) input.get("backends");

        List<Control> controls = new ArrayList<>();
        controls.add(new Control("none", AllowAllSystemAccessControl::new, List.of(), false));
        controls.add(new Control("file", () -> new FileBasedSystemAccessControl.Factory().create(
                Map.of("security.config-file", (String) input.get("rules"), "security.refresh-period", "1s"), CONTEXT), List.of(), false));
        // the plugin as benchmarked asks a sidecar of its own: one that has decided for it alone, as
        // in trino_bench, not also for plugin-warm's pass over the measured queries
        Map<?, ?> plugin = (Map<?, ?>) backends.get("plugin");
        Map<?, ?> others = (Map<?, ?>) backends.get("plugin-others");
        Supplier<SystemAccessControl> pdp = () -> watching((String) others.get("url"));
        controls.add(new Control("plugin", () -> watching((String) plugin.get("url")), pids(plugin), false));
        controls.add(new Control("plugin-warm", pdp, pids(others), false));
        controls.add(new Control("plugin-cold", pdp, pids(others), true));
        SystemAccessControlFactory opa = opaFactory(Path.of((String) input.get("opaPlugin")));
        for (String name : List.of("sidecar", "opa")) {
            Map<?, ?> backend = (Map<?, ?>) backends.get(name);
            controls.add(new Control(name, () -> opa.create(opaConfig((String) backend.get("url")), CONTEXT), pids(backend), false));
        }

        Map<String, Object> out = new LinkedHashMap<>();
        out.put("cpus", Runtime.getRuntime().availableProcessors());
        Map<String, SystemAccessControl> live = new LinkedHashMap<>();
        for (Control control : controls) {
            live.put(control.name(), control.make().get());
        }
        // the backends at rest (the plugins' revision watches waiting): subtracted from each block
        Map<String, Double> idle = new LinkedHashMap<>();
        Map<Long, Long> before = new LinkedHashMap<>();
        for (Control control : controls) {
            for (long pid : control.backend()) {
                before.put(pid, cpuNanos(pid));
            }
        }
        long idleStart = System.nanoTime();
        Thread.sleep(5_000);
        double idleSeconds = (System.nanoTime() - idleStart) / 1e9;
        for (Control control : controls) {
            long used = 0;
            for (long pid : control.backend()) {
                used += cpuNanos(pid) - before.get(pid);
            }
            idle.put(control.name(), used / 1e6 / idleSeconds);  // ms of CPU per second
        }
        out.put("backendIdleMsPerSecond", idle);

        // warm-up as the benchmark's: every user twice, then the warm-up mix; the JIT's turn too
        for (Control control : controls) {
            SystemAccessControl ac = live.get(control.name());
            long n = 0;
            for (SpiSequences.Query query : warm) {
                SpiSequences.run(ac, sequences.get(query.kind()), query, n++);
            }
            if (control.name().equals("plugin-warm")) {  // every answer of the measured queries cached
                for (SpiSequences.Query query : mix) {
                    SpiSequences.run(ac, sequences.get(query.kind()), query, n++);
                }
                for (SpiSequences.Query query : wide) {
                    SpiSequences.run(ac, sequences.get(query.kind()), query, n++);
                }
            }
        }
        for (int round = 0; round < 2; round++) {  // the cold plugin's JIT: fresh caches, other queries
            SystemAccessControl fresh = pdp.get();
            for (int i = 0; i < Math.min(warm.size(), 4 * block); i++) {
                SpiSequences.run(fresh, sequences.get(warm.get(i).kind()), warm.get(i), i);
            }
            fresh.shutdown();
        }

        Map<String, List<String>> outcomes = new LinkedHashMap<>();
        out.put("mix", measure(controls, live, sequences, mix, block, outcomes, "mix"));
        out.put("wide", measure(controls, live, sequences, wide, wideBlock, outcomes, "wide"));
        out.put("kinds", mix.stream().map(SpiSequences.Query::kind).toList());

        // every access control but allow-all gives the same answers to every query (a failed call aside)
        List<String> mismatches = new ArrayList<>();
        Map<String, Integer> errors = new LinkedHashMap<>();
        List<String> reference = outcomes.get("file");
        for (Map.Entry<String, List<String>> entry : outcomes.entrySet()) {
            errors.put(entry.getKey(), (int) entry.getValue().stream().filter(outcome -> outcome.startsWith("error")).count());
            if (entry.getKey().equals("none") || entry.getKey().equals("file")) {
                continue;
            }
            for (int i = 0; i < reference.size(); i++) {
                String outcome = entry.getValue().get(i);
                if (!reference.get(i).equals(outcome) && !outcome.startsWith("error")) {
                    mismatches.add(entry.getKey() + " query " + i + ": " + outcome + ", file rules: " + reference.get(i));
                }
            }
        }
        out.put("mismatches", mismatches);
        out.put("errors", errors);
        out.put("outcomes", summary(reference));
        for (SystemAccessControl ac : live.values()) {
            ac.shutdown();
        }
        Files.writeString(Path.of(System.getProperty("spicost.out")), write(out, new StringBuilder()).toString());
        assertEquals(List.of(), mismatches.subList(0, Math.min(20, mismatches.size())), "the access controls disagree");
    }

    /**
     * {@code queries} in blocks of {@code size}; each block run by every access control in turn,
     * the order rotating. Per access control and block: the calling thread's CPU and the wall time
     * of its queries, the CPU of every Java thread (the HTTP clients' too) and of the whole process
     * (GC and JIT too, in clock ticks), the backend
     * processes' CPU less what they use at rest, and the plugins' requests.
     */
    private Map<String, Object> measure(List<Control> controls, Map<String, SystemAccessControl> live, Map<String, List<SpiSequences.Call>> sequences,
            List<SpiSequences.Query> queries, int size, Map<String, List<String>> outcomes, String label)
    {
        Map<String, Object> result = new LinkedHashMap<>();
        Map<String, List<Map<String, Object>>> blocks = new LinkedHashMap<>();
        Map<String, List<List<Long>>> each = new LinkedHashMap<>();  // per query: thread CPU and wall, ns
        for (Control control : controls) {
            blocks.put(control.name(), new ArrayList<>());
            each.put(control.name(), new ArrayList<>());
            outcomes.computeIfAbsent(control.name(), name -> new ArrayList<>());
        }
        long thread = Thread.currentThread().threadId();
        int count = (queries.size() + size - 1) / size;
        for (int b = 0; b < count; b++) {
            List<SpiSequences.Query> slice = queries.subList(b * size, Math.min(queries.size(), (b + 1) * size));
            for (int turn = 0; turn < controls.size(); turn++) {
                Control control = controls.get((b + turn) % controls.size());
                SystemAccessControl ac = control.freshPerBlock() ? control.make().get() : live.get(control.name());
                long requests = ac instanceof PdpAccessControl p ? p.backend().requests() : 0;
                long backend = 0;
                for (long pid : control.backend()) {
                    backend -= cpuNanos(pid);
                }
                long process = OS.getProcessCpuTime();
                long jvm = -javaThreadsCpu();
                long cpu = 0;
                long wall = 0;
                long bytes = THREADS.getThreadAllocatedBytes(thread);
                List<String> seen = new ArrayList<>();
                long start = System.nanoTime();
                for (int i = 0; i < slice.size(); i++) {
                    SpiSequences.Query query = slice.get(i);
                    long c0 = THREADS.getCurrentThreadCpuTime();
                    long w0 = System.nanoTime();
                    seen.add(SpiSequences.run(ac, sequences.get(query.kind()), query, (long) b * size + i));
                    long w = System.nanoTime() - w0;
                    long c = THREADS.getCurrentThreadCpuTime() - c0;
                    wall += w;
                    cpu += c;
                    each.get(control.name()).add(List.of(c, w));
                }
                long elapsed = System.nanoTime() - start;
                jvm += javaThreadsCpu();
                process = OS.getProcessCpuTime() - process;
                bytes = THREADS.getThreadAllocatedBytes(thread) - bytes;
                for (long pid : control.backend()) {
                    backend += cpuNanos(pid);
                }
                Map<String, Object> row = new LinkedHashMap<>();
                row.put("queries", slice.size());
                row.put("threadCpuNs", cpu);
                row.put("wallNs", wall);
                row.put("jvmCpuNs", jvm);
                row.put("processCpuNs", process);  // in 10 ms ticks, GC and JIT included
                row.put("elapsedNs", elapsed);
                row.put("backendCpuMs", backend / 1e6);
                row.put("bytes", bytes);
                row.put("requests", ac instanceof PdpAccessControl p ? p.backend().requests() - requests : -1);
                blocks.get(control.name()).add(row);
                outcomes.get(control.name()).addAll(seen);
                if (control.freshPerBlock()) {
                    ac.shutdown();
                }
            }
        }
        result.put("blocks", blocks);
        result.put("queries", each);
        System.out.println(label + ": " + count + " blocks measured");
        return result;
    }

    /** The CPU every live Java thread has used (the HTTP clients' threads too; not GC or the JIT), in ns. */
    private static long javaThreadsCpu()
    {
        long sum = 0;
        for (long used : THREADS.getThreadCpuTime(THREADS.getAllThreadIds())) {
            sum += Math.max(0, used);
        }
        return sum;
    }

    private static Map<String, Integer> summary(List<String> outcomes)
    {
        Map<String, Integer> counts = new LinkedHashMap<>();
        for (String outcome : outcomes) {
            counts.merge(outcome.contains("tables") ? "listing" : outcome, 1, Integer::sum);
        }
        return counts;
    }

    private static List<SpiSequences.Query> queries(List<?> rows, Map<?, ?> schemaTables, Map<String, List<SchemaTableName>> schemas)
    {
        List<SpiSequences.Query> queries = new ArrayList<>();
        for (Object item : rows) {
            Map<?, ?> row = (Map<?, ?>) item;
            List<SchemaTableName> tables = new ArrayList<>();
            for (Object key : (List<?>) row.get("tables")) {
                List<?> pair = (List<?>) key;
                tables.add(new SchemaTableName((String) pair.get(0), (String) pair.get(1)));
            }
            String schema = (String) row.get("schema");
            List<SchemaTableName> listed = schema == null ? List.of() : schemas.computeIfAbsent(schema, name -> {
                List<SchemaTableName> names = new ArrayList<>();
                for (Object table : (List<?>) schemaTables.get(name)) {
                    names.add(new SchemaTableName(name, (String) table));
                }
                return List.copyOf(names);
            });
            Set<String> groups = new LinkedHashSet<>();
            for (Object group : (List<?>) row.get("groups")) {
                groups.add((String) group);
            }
            queries.add(new SpiSequences.Query((String) row.get("kind"), (String) row.get("user"), groups, List.copyOf(tables), schema, listed));
        }
        return queries;
    }

    private static List<Long> pids(Map<?, ?> backend)
    {
        return ((List<?>) backend.get("pids")).stream().map(pid -> ((Number) pid).longValue()).toList();
    }

    /** The plugin against the sidecar at {@code url}, once it holds its revision (so that it caches). */
    private static SystemAccessControl watching(String url)
    {
        PdpAccessControl control = new PdpAccessControl(new PdpBackend(PdpConfig.from(Map.of("pdp.sidecar-url", url))));
        try {
            Plugins.eventually(() -> control.backend().revision() != null);
        }
        catch (InterruptedException e) {
            throw new IllegalStateException(e);
        }
        return control;
    }

    /** The stock OPA plugin's properties as devstack/trino.py's {@code Opa} sets them for the benchmark. */
    private static Map<String, String> opaConfig(String url)
    {
        return Map.of(
                "opa.policy.uri", url + "/v1/data/trino/allow",
                "opa.policy.batched-uri", url + "/v1/data/trino/batch",
                "opa.policy.row-filters-uri", url + "/v1/data/trino/rowFilters",
                "opa.policy.batch-column-masking-uri", url + "/v1/data/trino/batchColumnMasks",
                "opa.http-client.request-timeout", "5s",
                "opa.http-client.connect-timeout", "1s",
                "opa.http-client.max-requests-queued-per-destination", "65536");
    }

    /**
     * The stock OPA plugin's factory, loaded from Trino 476's own plugin directory (its jars; the
     * SPI, and the airlift and Jackson versions it shares with trino-plugin-toolkit, from this
     * class path).
     */
    private static SystemAccessControlFactory opaFactory(Path directory)
            throws Exception
    {
        List<URL> jars = new ArrayList<>();
        try (var files = Files.list(directory)) {
            for (Path jar : files.filter(file -> file.toString().endsWith(".jar")).sorted().toList()) {
                jars.add(jar.toUri().toURL());
            }
        }
        URLClassLoader loader = new URLClassLoader(jars.toArray(URL[]::new), SpiCostTest.class.getClassLoader());
        for (Plugin plugin : ServiceLoader.load(Plugin.class, loader)) {
            for (SystemAccessControlFactory factory : plugin.getSystemAccessControlFactories()) {
                if (factory.getName().equals("opa")) {
                    return factory;
                }
            }
        }
        throw new IllegalStateException("no OPA access control in " + directory);
    }

    /**
     * A process's and its descendants' CPU so far, ns: the sum over their threads of
     * /proc/PID/task/TID/schedstat's time on a CPU (nanoseconds, where /proc/PID/stat counts 10 ms
     * ticks; a thread that exited since is lost, and the backends' threads live as long as they do).
     */
    private static long cpuNanos(long root)
    {
        long sum = 0;
        List<Long> pids = new ArrayList<>(List.of(root));
        ProcessHandle.of(root).ifPresent(handle -> handle.descendants().forEach(child -> pids.add(child.pid())));
        for (long pid : pids) {
            try (var tasks = Files.list(Path.of("/proc/" + pid + "/task"))) {
                for (Path task : tasks.toList()) {
                    try {
                        sum += Long.parseLong(Files.readString(task.resolve("schedstat")).split(" ")[0]);
                    }
                    catch (java.io.IOException e) {
                        // the thread exited meanwhile
                    }
                }
            }
            catch (java.io.IOException e) {
                // the process exited meanwhile
            }
        }
        return sum;
    }

    /** The result as JSON: maps, lists, strings and numbers. */
    private static StringBuilder write(Object value, StringBuilder out)
    {
        if (value instanceof Map<?, ?> map) {
            out.append('{');
            String separator = "";
            for (Map.Entry<?, ?> entry : map.entrySet()) {
                Json.quote(out.append(separator), (String) entry.getKey());
                write(entry.getValue(), out.append(':'));
                separator = ",";
            }
            return out.append('}');
        }
        if (value instanceof List<?> list) {
            out.append('[');
            for (int i = 0; i < list.size(); i++) {
                write(list.get(i), out.append(i == 0 ? "" : ","));
            }
            return out.append(']');
        }
        if (value instanceof String text) {
            Json.quote(out, text);
            return out;
        }
        return out.append(value);
    }

    private static final SystemAccessControlContext CONTEXT = new SystemAccessControlContext()
    {
        @Override
        public String getVersion()
        {
            return "476";
        }

        @Override
        public OpenTelemetry getOpenTelemetry()
        {
            return OpenTelemetry.noop();
        }

        @Override
        public Tracer getTracer()
        {
            return OpenTelemetry.noop().getTracer("spicost");
        }
    };
}
