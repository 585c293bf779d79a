package io.pdp.trino;

import java.net.URI;
import java.time.Duration;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * The keys of {@code access-control.properties} (besides {@code access-control.name=pdp}).
 * An unknown key or a bad value stops Trino at start with a message naming the key.
 */
record PdpConfig(
        URI sidecarUrl,
        Duration maxStale,
        int cacheSize,
        Duration connectTimeout,
        Duration requestTimeout,
        Duration watchWait,
        int maxConnections)
{
    static final String SIDECAR_URL = "pdp.sidecar-url";
    static final String MAX_STALE = "pdp.max-stale-seconds";
    static final String CACHE_SIZE = "pdp.cache-size";
    static final String CONNECT_TIMEOUT = "pdp.connect-timeout-seconds";
    static final String REQUEST_TIMEOUT = "pdp.request-timeout-seconds";
    static final String WATCH_WAIT = "pdp.watch-wait-seconds";
    static final String MAX_CONNECTIONS = "pdp.max-connections";
    private static final Set<String> KEYS = Set.of(SIDECAR_URL, MAX_STALE, CACHE_SIZE, CONNECT_TIMEOUT, REQUEST_TIMEOUT, WATCH_WAIT, MAX_CONNECTIONS);

    static PdpConfig from(Map<String, String> properties)
    {
        Set<String> unknown = new TreeSet<>(properties.keySet());
        unknown.removeAll(KEYS);
        if (!unknown.isEmpty()) {
            throw new IllegalArgumentException("access-control.properties: unknown key(s) " + unknown + " for access-control.name=pdp; known: " + new TreeSet<>(KEYS));
        }
        String url = properties.get(SIDECAR_URL);
        if (url == null || url.isBlank()) {
            throw new IllegalArgumentException("access-control.properties: " + SIDECAR_URL + " is required (the sidecar's base URL, e.g. http://127.0.0.1:8181)");
        }
        URI uri;
        try {
            uri = URI.create(url.endsWith("/") ? url.substring(0, url.length() - 1) : url);
        }
        catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("access-control.properties: " + SIDECAR_URL + ": not a URL: " + url);
        }
        if (!"http".equals(uri.getScheme()) && !"https".equals(uri.getScheme())) {
            throw new IllegalArgumentException("access-control.properties: " + SIDECAR_URL + ": expected http:// or https://, got " + url);
        }
        Duration maxStale = seconds(properties, MAX_STALE, 300);
        Duration watchWait = seconds(properties, WATCH_WAIT, 20);
        if (watchWait.compareTo(maxStale) >= 0) {
            // the watch must report within the bound, or a quiet but healthy sidecar looks stale
            watchWait = maxStale.dividedBy(2);
        }
        int cacheSize = integer(properties, CACHE_SIZE, 100_000);
        return new PdpConfig(uri, maxStale, cacheSize, seconds(properties, CONNECT_TIMEOUT, 1), seconds(properties, REQUEST_TIMEOUT, 5), watchWait,
                integer(properties, MAX_CONNECTIONS, 64));
    }

    private static Duration seconds(Map<String, String> properties, String key, double fallback)
    {
        String text = properties.get(key);
        double value;
        try {
            value = text == null ? fallback : Double.parseDouble(text.trim());
        }
        catch (NumberFormatException e) {
            throw new IllegalArgumentException("access-control.properties: " + key + ": expected a number of seconds, got " + text);
        }
        if (!(value > 0) || Double.isInfinite(value)) {
            throw new IllegalArgumentException("access-control.properties: " + key + ": expected a positive number of seconds, got " + text);
        }
        return Duration.ofNanos((long) (value * 1e9));
    }

    private static int integer(Map<String, String> properties, String key, int fallback)
    {
        String text = properties.get(key);
        try {
            int value = text == null ? fallback : Integer.parseInt(text.trim());
            if (value > 0) {
                return value;
            }
        }
        catch (NumberFormatException e) {
            // reported below
        }
        throw new IllegalArgumentException("access-control.properties: " + key + ": expected a positive integer, got " + text);
    }
}
