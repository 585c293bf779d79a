package io.pdp.trino;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;

import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A sidecar in the test's JVM speaking the compact endpoints over real HTTP on loopback. Its
 * policy: a user may do anything on the tables granted to them ("user:table"), nothing on
 * others; catalogs and identity checks are allowed; row filters and masks as set. It can change
 * revision (a policy edit), freeze (hang without answering, as a stuck process would) and answer
 * without a revision (as the sidecar's fail-closed fallback does: answers for now, not to keep).
 */
final class FakeSidecar
        implements AutoCloseable
{
    private final HttpServer server;
    final Set<String> grants = ConcurrentHashMap.newKeySet();
    final Map<String, List<String>> rowFilters = new ConcurrentHashMap<>();
    final Map<String, String> masks = new ConcurrentHashMap<>();  // column -> expression
    final AtomicInteger decisionRequests = new AtomicInteger();
    final List<String> bodies = new CopyOnWriteArrayList<>();
    private volatile String revision = "r1";
    private volatile boolean frozen;
    volatile boolean fallback;  // decisions answered without a revision (the watch keeps its own)
    private final Object lock = new Object();

    FakeSidecar()
            throws IOException
    {
        server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
        server.setExecutor(Executors.newCachedThreadPool(runnable -> {
            Thread thread = new Thread(runnable, "fake-sidecar");
            thread.setDaemon(true);
            return thread;
        }));
        server.createContext("/v1/pdp/decisions", this::decisions);
        server.createContext("/v1/pdp/watch", this::watch);
        server.start();
    }

    String url()
    {
        return "http://127.0.0.1:" + server.getAddress().getPort();
    }

    /** A policy edit: grants change and the revision moves, waking every watch. */
    void edit(Runnable change)
    {
        synchronized (lock) {
            change.run();
            revision = "r" + (Integer.parseInt(revision.substring(1)) + 1);
            lock.notifyAll();
        }
    }

    void freeze(boolean frozen)
    {
        synchronized (lock) {
            this.frozen = frozen;
            lock.notifyAll();
        }
    }

    private void decisions(HttpExchange exchange)
            throws IOException
    {
        String body = new String(exchange.getRequestBody().readAllBytes(), StandardCharsets.UTF_8);
        hangWhileFrozen();
        decisionRequests.incrementAndGet();
        bodies.add(body);
        Map<?, ?> request = (Map<?, ?>) Json.parse(body);
        String user = (String) ((Map<?, ?>) request.get("identity")).get("user");
        StringBuilder out = new StringBuilder("{\"revision\":" + (fallback ? "null" : Json.quote(revision)) + ",\"answers\":[");
        List<?> asks = (List<?>) request.get("asks");
        for (int i = 0; i < asks.size(); i++) {
            out.append(i == 0 ? "" : ",").append(answer(user, (Map<?, ?>) asks.get(i)));
        }
        respond(exchange, out.append("]}").toString());
    }

    private String answer(String user, Map<?, ?> ask)
    {
        String operation = (String) ask.get("operation");
        if (operation.equals("GetRowFilters")) {
            String table = table((Map<?, ?>) ask.get("resource"));
            return "{\"rowFilters\":" + Json.strings(rowFilters.getOrDefault(table, List.of())) + "}";
        }
        if (operation.equals("GetColumnMask")) {
            List<String> found = new ArrayList<>();
            for (Object item : (List<?>) ask.get("filterResources")) {
                String column = (String) ((Map<?, ?>) ((Map<?, ?>) item).get("column")).get("columnName");
                String mask = masks.get(column);
                found.add(mask == null ? "null" : Json.quote(mask));
            }
            return "{\"masks\":[" + String.join(",", found) + "]}";
        }
        if (ask.get("filterResources") instanceof List<?> items) {
            List<String> indices = new ArrayList<>();
            for (int i = 0; i < items.size(); i++) {
                Map<?, ?> item = (Map<?, ?>) items.get(i);
                if (allowed(user, item)) {
                    if (operation.equals("FilterColumns")) {
                        List<?> columns = (List<?>) ((Map<?, ?>) item.get("table")).get("columns");
                        for (int c = 0; c < columns.size(); c++) {
                            indices.add(String.valueOf(c));
                        }
                    }
                    else {
                        indices.add(String.valueOf(i));
                    }
                }
            }
            return "{\"indices\":[" + String.join(",", indices) + "]}";
        }
        Map<?, ?> resource = (Map<?, ?>) ask.get("resource");
        if (resource == null || allowed(user, resource)) {
            return "{\"allowed\":true}";
        }
        return "{\"allowed\":false,\"reason\":" + Json.quote("no policy grants " + user + " " + table(resource)) + "}";
    }

    private boolean allowed(String user, Map<?, ?> resource)
    {
        String table = table(resource);
        return table == null || grants.contains(user + ":" + table);
    }

    private static String table(Map<?, ?> resource)
    {
        return resource.get("table") instanceof Map<?, ?> table ? (String) table.get("tableName") : null;
    }

    private void watch(HttpExchange exchange)
            throws IOException
    {
        Map<?, ?> request = (Map<?, ?>) Json.parse(new String(exchange.getRequestBody().readAllBytes(), StandardCharsets.UTF_8));
        hangWhileFrozen();
        Object known = request.get("revision");
        long deadline = System.nanoTime() + (long) ((Double) request.get("waitSeconds") * 1e9);
        synchronized (lock) {
            while (revision.equals(known) && !frozen && System.nanoTime() < deadline) {
                try {
                    lock.wait(Math.max(1, (deadline - System.nanoTime()) / 1_000_000));
                }
                catch (InterruptedException e) {
                    return;
                }
            }
        }
        hangWhileFrozen();
        respond(exchange, "{\"revision\":" + Json.quote(revision) + "}");
    }

    private void hangWhileFrozen()
    {
        synchronized (lock) {
            while (frozen) {
                try {
                    lock.wait();
                }
                catch (InterruptedException e) {
                    return;
                }
            }
        }
    }

    private static void respond(HttpExchange exchange, String body)
            throws IOException
    {
        byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
        exchange.getResponseHeaders().set("content-type", "application/json");
        exchange.sendResponseHeaders(200, bytes.length);
        try (OutputStream out = exchange.getResponseBody()) {
            out.write(bytes);
        }
    }

    @Override
    public void close()
    {
        freeze(false);
        server.stop(0);
    }
}
