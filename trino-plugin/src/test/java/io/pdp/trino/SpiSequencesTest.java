package io.pdp.trino;

import io.trino.plugin.base.security.FileBasedSystemAccessControl;
import io.trino.spi.connector.SchemaTableName;
import io.trino.spi.security.SystemAccessControl;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * What {@code SpiCostTest} (benchmarks/spi_cost.py) rests on: the call sequences it drives are
 * Trino 476's as recorded, and the product's plugin and Trino's file rules give the same answers
 * to them under the same policy, the plugin's second time without a request.
 */
class SpiSequencesTest
{
    private static final Pattern CALL = Pattern.compile("^\\s*\\d+\\. \\[(\\w+)] (\\w+)\\(([^)]*)\\)");

    /** The recording's sections for the mix's kinds. */
    private static final Map<String, String> RECORDED = Map.of(
            "point", "point SELECT of some columns",
            "join", "join",
            "show_tables", "SHOW TABLES",
            "columns", "information_schema.columns");

    @Test
    void theSequencesAreTrinosRecordedCallsForTablesWithoutMasks()
    {
        Map<String, List<String>> recorded = recorded();
        Map<String, List<SpiSequences.Call>> sequences = SpiSequences.load();
        for (Map.Entry<String, String> kind : RECORDED.entrySet()) {
            List<String> expected = new ArrayList<>();
            for (SpiSequences.Call call : sequences.get(kind.getKey())) {
                expected.add((call.operation() + " " + call.object()).trim());
            }
            assertEquals(expected, recorded.get(kind.getValue()), kind.getKey());
        }
    }

    /**
     * Each recorded section's calls (each line's first ask), the objects named as the sequences
     * name them, without the calls a masked column adds: the stand-in masks alice's column
     * {@code secret}, and Trino then checks the catalog and that one column after the table's masks.
     */
    private static Map<String, List<String>> recorded()
    {
        Map<String, List<String>> sections = new LinkedHashMap<>();
        List<String> current = null;
        int skip = 0;
        for (String line : SpiSequences.resource("spi-order-476.txt").split("\n")) {
            if (line.startsWith("## ")) {
                current = new ArrayList<>();
                sections.put(line.substring(3, line.lastIndexOf(':')), current);
                continue;
            }
            Matcher call = CALL.matcher(line);
            if (!call.find()) {
                continue;
            }
            if (skip > 0) {
                skip--;
                continue;
            }
            String operation = call.group(2);
            String object = call.group(3);
            if (operation.equals("GetColumnMask") && call.group(1).equals("alice") && object.contains("secret")) {
                skip = 2;
            }
            current.add((operation + " " + name(operation, object)).trim());
        }
        return sections;
    }

    private static String name(String operation, String object)
    {
        String first = object.split("[ :,]")[0];
        if (operation.startsWith("Filter") && !operation.equals("FilterCatalogs") || operation.equals("ShowTables")) {
            return "S";
        }
        return switch (first) {
            case "memory.s.t1" -> "T1";
            case "memory.s.t2" -> "T2";
            case "", "memory" -> "";
            default -> first.replace("memory.", "");
        };
    }

    @Test
    void thePluginAndFileRulesAgreeOnEveryKindAndAWarmPluginAsksNothing(@TempDir Path directory)
            throws Exception
    {
        Path rules = directory.resolve("rules.json");
        // as benchmarks/trino_world.py's: without schema rules every user owns every schema and sees all of its tables
        Files.writeString(rules, """
                {"schemas": [{"user": "admin", "owner": true}],
                 "tables": [
                  {"user": "alice", "catalog": "postgresql", "schema": "s01", "table": "t00[0-2]", "privileges": ["SELECT"]},
                  {"user": "bob", "catalog": "postgresql", "schema": "s01", "table": "t003", "privileges": ["SELECT"]}
                ]}
                """);
        SystemAccessControl file = new FileBasedSystemAccessControl.Factory().create(Map.of("security.config-file", rules.toString()), null);
        List<SchemaTableName> schema = new ArrayList<>();
        for (int t = 0; t < 10; t++) {
            schema.add(new SchemaTableName("s01", "t00" + t));
        }
        List<SpiSequences.Query> queries = List.of(
                query("point", "alice", List.of("t000"), schema),
                query("point", "alice", List.of("t005"), schema),
                query("point", "bob", List.of("t003"), schema),
                query("join", "alice", List.of("t000", "t002"), schema),
                query("join", "alice", List.of("t001", "t003"), schema),
                query("show_tables", "alice", List.of(), schema),
                query("show_tables", "bob", List.of(), schema),
                query("columns", "alice", List.of(), schema),
                query("columns", "bob", List.of(), schema));
        Map<String, List<SpiSequences.Call>> sequences = SpiSequences.load();
        try (FakeSidecar sidecar = new FakeSidecar()) {
            sidecar.grants.addAll(Set.of("alice:t000", "alice:t001", "alice:t002", "bob:t003"));
            // information_schema's tables: readable by everyone, as under file rules and the PDP's `metadata` rule
            sidecar.grants.addAll(Set.of("alice:tables", "alice:columns", "bob:tables", "bob:columns"));
            PdpAccessControl plugin = Plugins.watching(sidecar, Map.of());
            try {
                List<String> expected = new ArrayList<>();
                List<String> cold = new ArrayList<>();
                for (int i = 0; i < queries.size(); i++) {
                    expected.add(SpiSequences.run(file, sequences.get(queries.get(i).kind()), queries.get(i), i));
                    cold.add(SpiSequences.run(plugin, sequences.get(queries.get(i).kind()), queries.get(i), i));
                }
                assertEquals(List.of("allowed", "denied", "allowed", "allowed", "denied"), expected.subList(0, 5));
                assertEquals(expected, cold);
                int asked = sidecar.decisionRequests.get();
                List<String> warm = new ArrayList<>();
                for (int i = 0; i < queries.size(); i++) {
                    warm.add(SpiSequences.run(plugin, sequences.get(queries.get(i).kind()), queries.get(i), queries.size() + i));
                }
                assertEquals(expected, warm);
                assertEquals(asked, sidecar.decisionRequests.get(), "a warm query reached the sidecar");
            }
            finally {
                plugin.shutdown();
            }
        }
    }

    private static SpiSequences.Query query(String kind, String user, List<String> tables, List<SchemaTableName> schema)
    {
        List<SchemaTableName> names = tables.stream().map(table -> new SchemaTableName("s01", table)).toList();
        boolean listing = tables.isEmpty();
        return new SpiSequences.Query(kind, user, Set.of(), names, listing ? "s01" : null, listing ? schema : List.of());
    }
}
