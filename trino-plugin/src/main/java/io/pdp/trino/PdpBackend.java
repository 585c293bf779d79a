package io.pdp.trino;

import io.trino.spi.security.AccessDeniedException;

import java.io.IOException;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * The sidecar's compact endpoint ({@code /v1/pdp/decisions}), the answers cached from it and
 * the revision watch ({@code /v1/pdp/watch}) that drops them.
 *
 * <p>Answers are cached per policy revision: one generation of answers at a time, replaced by
 * an empty one when the watch reports another revision; an answer computed at any other
 * revision than the current one is used once and not kept. With no word from the sidecar for
 * {@code pdp.max-stale-seconds} (it is down, hangs, or the network drops packets silently)
 * every cached answer is dropped and every check is denied until the watch hears it again.
 *
 * <p>Calls travel on the calling thread over a {@link ConnectionPool} of keep-alive HTTP/1.1
 * connections; the watch's long poll has a pool of one connection of its own, so that it never
 * holds a connection the checks need.
 */
final class PdpBackend
        implements AutoCloseable
{
    private static final Logger log = Logger.getLogger(PdpBackend.class.getName());
    private static final long RETRY_FIRST_MILLIS = 50;
    private static final long RETRY_LONGEST_MILLIS = 250;

    record Answers(String revision, List<Object> answers) {}

    private record Generation(String revision, ConcurrentHashMap<String, Object> answers) {}

    private final PdpConfig config;
    private final ConnectionPool decisions;
    private final ConnectionPool watch;
    private final long maxStaleNanos;
    private volatile Generation generation = new Generation(null, new ConcurrentHashMap<>());
    private volatile long heard = System.nanoTime();
    private volatile boolean running = true;
    private final Thread watcher;
    private final AtomicLong requests = new AtomicLong();

    PdpBackend(PdpConfig config)
    {
        this.config = config;
        this.decisions = new ConnectionPool(URI.create(config.sidecarUrl() + "/v1/pdp/decisions"), config.connectTimeout(), config.maxConnections());
        this.watch = new ConnectionPool(URI.create(config.sidecarUrl() + "/v1/pdp/watch"), config.connectTimeout(), 1);
        this.maxStaleNanos = config.maxStale().toNanos();
        this.watcher = Thread.ofPlatform().daemon().name("pdp-revision-watch").unstarted(this::watchLoop);
        watcher.start();
    }

    /** The cached answer under {@code key}, or null; denies when the sidecar has been silent too long. */
    Object cached(String key)
    {
        requireFresh();
        return generation.answers().get(key);
    }

    /** Keep an answer computed at {@code revision} if that is still the current revision. */
    void remember(String revision, String key, Object answer)
    {
        Generation current = generation;
        if (revision == null || !revision.equals(current.revision())) {
            return;
        }
        ConcurrentHashMap<String, Object> answers = current.answers();
        answers.put(key, answer);
        if (answers.size() > config.cacheSize()) {
            // a fixed bound: make room by dropping a tenth, in no particular order. Every caller
            // that finds the map over its bound after its own put trims it down to the mark, so
            // callers racing past the bound (or removing the same key) cannot leave it larger
            int mark = config.cacheSize() - config.cacheSize() / 10;
            Iterator<String> keys = answers.keySet().iterator();
            while (answers.size() > mark && keys.hasNext()) {
                keys.next();
                keys.remove();
            }
        }
    }

    /** One request for every ask of a check or filter call; AccessDeniedException when the sidecar fails. */
    Answers ask(String identity, List<String> asks)
    {
        requireFresh();
        StringBuilder body = new StringBuilder("{\"identity\":").append(identity).append(",\"asks\":[");
        for (int i = 0; i < asks.size(); i++) {
            body.append(i == 0 ? "" : ",").append(asks.get(i));
        }
        body.append("]}");
        Map<?, ?> answer = post(decisions, body.toString(), config.requestTimeout());
        if (!(answer.get("answers") instanceof List<?> list) || list.size() != asks.size()) {
            throw unavailable("the sidecar's answer has no answer for each ask");
        }
        return new Answers(answer.get("revision") instanceof String revision ? revision : null, List.copyOf(list));
    }

    /** The revision whose answers are cached now (null: none). */
    String revision()
    {
        return generation.revision();
    }

    long requests()
    {
        return requests.get();
    }

    int size()
    {
        return generation.answers().size();
    }

    /** The answers cached now (read by the tests that measure their heap). */
    Map<String, Object> answers()
    {
        return generation.answers();
    }

    private void requireFresh()
    {
        long silence = System.nanoTime() - heard;
        if (silence > maxStaleNanos) {
            if (generation.revision() != null || !generation.answers().isEmpty()) {
                log.severe("pdp: no word from the sidecar for over " + config.maxStale().toSeconds() + "s: cached answers dropped, failing closed");
                generation = new Generation(null, new ConcurrentHashMap<>());
            }
            throw new AccessDeniedException("no word from the pdp sidecar at " + config.sidecarUrl() + " for "
                    + Duration.ofNanos(silence).toSeconds() + "s (pdp.max-stale-seconds=" + config.maxStale().toSeconds() + "): denied until it answers again");
        }
    }

    private Map<?, ?> post(ConnectionPool pool, String body, Duration timeout)
    {
        requests.incrementAndGet();
        Http1Connection.Answer response;
        try {
            response = pool.post(body.getBytes(StandardCharsets.UTF_8), timeout);
        }
        catch (IOException e) {
            throw unavailable(e.getClass().getSimpleName() + (e.getMessage() == null ? "" : ": " + e.getMessage()));
        }
        heard = System.nanoTime();  // any answer is a word from the sidecar
        if (response.status() != 200) {
            throw new AccessDeniedException("the pdp sidecar at " + config.sidecarUrl() + " refused the call (HTTP " + response.status() + ": " + response.body() + "): denied");
        }
        try {
            if (Json.parse(response.body()) instanceof Map<?, ?> map) {
                return map;
            }
        }
        catch (IllegalArgumentException e) {
            throw unavailable(e.getMessage());
        }
        throw unavailable("the sidecar's answer is not a JSON object");
    }

    private AccessDeniedException unavailable(String why)
    {
        return new AccessDeniedException("the pdp sidecar at " + config.sidecarUrl() + " did not answer (" + why + "): denied");
    }

    private void watchLoop()
    {
        long backoff = RETRY_FIRST_MILLIS;
        boolean announced = false;
        while (running) {
            try {
                String known = generation.revision();
                String body = "{\"revision\":" + (known == null ? "null" : Json.quote(known)) + ",\"waitSeconds\":" + config.watchWait().toMillis() / 1000.0 + "}";
                Map<?, ?> answer = post(watch, body, config.watchWait().plus(config.requestTimeout()));
                String revision = answer.get("revision") instanceof String value ? value : null;
                if (!Objects.equals(revision, generation.revision())) {
                    log.info("pdp: policy revision " + revision + ": cached answers dropped");
                    generation = new Generation(revision, new ConcurrentHashMap<>());
                }
                if (announced) {
                    log.info("pdp: revision watch established at " + revision);
                }
                backoff = RETRY_FIRST_MILLIS;
                announced = false;
            }
            catch (RuntimeException e) {  // the watch outlives any failure: it is what recovers
                if (!running) {
                    return;
                }
                if (!announced) {
                    log.log(Level.WARNING, "pdp: revision watch lost: " + e.getMessage());
                    announced = true;
                }
                try {
                    requireFresh();  // drops what is cached once the bound is passed
                }
                catch (AccessDeniedException stale) {
                    // nothing to deny here: checks are denied as they come
                }
                try {
                    Thread.sleep(backoff);
                }
                catch (InterruptedException interrupted) {
                    return;
                }
                backoff = Math.min(backoff * 2, RETRY_LONGEST_MILLIS);
            }
        }
    }

    @Override
    public void close()
    {
        running = false;
        watcher.interrupt();
        decisions.close();
        watch.close();
    }
}
