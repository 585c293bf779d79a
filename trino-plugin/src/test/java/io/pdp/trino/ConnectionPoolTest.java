package io.pdp.trino;

import io.trino.spi.security.AccessDeniedException;
import io.trino.spi.security.Identity;
import org.junit.jupiter.api.Test;

import java.io.EOFException;
import java.io.IOException;
import java.net.ProtocolException;
import java.net.SocketTimeoutException;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The plugin's HTTP/1.1 client against servers that misbehave on purpose: which socket each call
 * travels on, when one is reused, retried or closed, and that every failure comes within the
 * call's deadline.
 */
class ConnectionPoolTest
{
    private static final Duration SECOND = Duration.ofSeconds(1);
    // generous: a failure must come within the deadline, long before this (never a timing assertion
    // on the happy path; this only catches a call that would hang without the deadline)
    private static final long HANG_NANOS = Duration.ofSeconds(20).toNanos();

    private static ConnectionPool pool(ScriptedServer server, int size)
    {
        return new ConnectionPool(URI.create(server.url() + "/v1/pdp/decisions"), SECOND, size);
    }

    private static String post(ConnectionPool pool, String body, Duration timeout)
            throws IOException
    {
        Http1Connection.Answer answer = pool.post(body.getBytes(StandardCharsets.UTF_8), timeout);
        assertEquals(200, answer.status());
        return answer.body();
    }

    /** How a server sends a raw answer (at once, a byte at a time). */
    private interface Sender
    {
        void send(java.io.OutputStream out, String raw)
                throws IOException, InterruptedException;
    }

    /** {@code raw} sent by {@code sender} as the answer to every request: read as {@code body} twice, on one kept socket. */
    private static void assertReadWholeOnOneKeptSocket(String raw, Sender sender, String body)
            throws Exception
    {
        try (ScriptedServer server = new ScriptedServer((connection, in, out) -> {
            while (ScriptedServer.read(in) != null) {
                sender.send(out, raw);
            }
        }); ConnectionPool pool = pool(server, 4)) {
            assertEquals(body, post(pool, "{}", Duration.ofSeconds(5)));
            assertEquals(body, post(pool, "{}", Duration.ofSeconds(5)));
            assertEquals(1, server.accepted.get());
        }
    }

    /** A call that fails at its deadline (long before {@link #HANG_NANOS}) and leaves no socket open. */
    private static void assertFailsAtItsDeadline(ConnectionPool pool, byte[] body, Duration deadline)
    {
        long start = System.nanoTime();
        IOException failure = assertThrows(IOException.class, () -> pool.post(body, deadline));
        assertTrue(System.nanoTime() - start < HANG_NANOS);
        assertEquals(SocketTimeoutException.class, failure.getClass(), failure.toString());
        assertEquals(0, pool.open(), "a timed-out socket is closed, never reused");
    }

    /** Answers every request on a connection with its own body, for as long as the client keeps it. */
    private static void echo(int connection, java.io.InputStream in, java.io.OutputStream out)
            throws IOException
    {
        for (ScriptedServer.Request request = ScriptedServer.read(in); request != null; request = ScriptedServer.read(in)) {
            ScriptedServer.answer(out, request.body());
        }
    }

    @Test
    void manyCallsTravelOnOneKeptAliveSocket()
            throws Exception
    {
        try (ScriptedServer server = new ScriptedServer(ConnectionPoolTest::echo); ConnectionPool pool = pool(server, 4)) {
            for (int i = 0; i < 50; i++) {
                assertEquals("{\"n\":" + i + "}", post(pool, "{\"n\":" + i + "}", SECOND));
            }
            assertEquals(1, server.accepted.get());
            assertEquals(1, pool.open());
        }
    }

    @Test
    void aSocketTheServerClosedWhileIdleIsRetriedOnceOnAFreshOne()
            throws Exception
    {
        // the keep-alive race: the server answers one request per connection and then closes it
        // without saying so, as the sidecar does to an idle connection after its idle timeout
        try (ScriptedServer server = new ScriptedServer((connection, in, out) -> ScriptedServer.answer(out, ScriptedServer.read(in).body()));
                ConnectionPool pool = pool(server, 4)) {
            assertEquals("a", post(pool, "a", SECOND));
            Thread.sleep(100);  // the close reaches the client's socket
            assertEquals("b", post(pool, "b", SECOND));
            assertEquals("c", post(pool, "c", SECOND));
            assertEquals(3, server.accepted.get());
        }
    }

    @Test
    void aConnectionCloseAnswerIsNotKept()
            throws Exception
    {
        try (ScriptedServer server = new ScriptedServer((connection, in, out) -> {
            ScriptedServer.read(in);
            ScriptedServer.send(out, "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}");
            ScriptedServer.hold();  // a socket wrongly kept would hang the next call
        }); ConnectionPool pool = pool(server, 4)) {
            for (int i = 0; i < 3; i++) {
                assertEquals(503, pool.post(new byte[0], SECOND).status());
            }
            assertEquals(3, server.accepted.get());
            assertEquals(0, pool.open());
        }
    }

    @Test
    void anAnswerCutInTheMiddleIsNotRetried()
            throws Exception
    {
        try (ScriptedServer server = new ScriptedServer((connection, in, out) -> {
            if (connection == 1) {
                ScriptedServer.answer(out, ScriptedServer.read(in).body());
            }
            ScriptedServer.read(in);
            ScriptedServer.send(out, "HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n{\"a\"");
        }); ConnectionPool pool = pool(server, 4)) {
            assertEquals("first", post(pool, "first", SECOND));
            EOFException cut = assertThrows(EOFException.class, () -> post(pool, "second", SECOND));
            assertTrue(cut.getMessage().contains("in the middle of an answer"), cut.getMessage());
            assertEquals(1, server.accepted.get(), "part of the answer was read: no second try");
            assertEquals(0, pool.open());
        }
    }

    @Test
    void aServerThatNeverAnswersFailsTheCallAtItsDeadline()
            throws Exception
    {
        try (ScriptedServer server = new ScriptedServer((connection, in, out) -> {
            ScriptedServer.read(in);
            ScriptedServer.hold();
        }); ConnectionPool pool = pool(server, 4)) {
            assertFailsAtItsDeadline(pool, new byte[0], Duration.ofMillis(300));
            assertFailsAtItsDeadline(pool, new byte[0], Duration.ofMillis(300));
            assertEquals(2, server.accepted.get(), "no retry of a timeout");
        }
    }

    @Test
    void halfAnAnswerThenSilenceFailsTheCallAtItsDeadline()
            throws Exception
    {
        // every byte arriving before its read's timeout: only the call's overall deadline ends it
        try (ScriptedServer server = new ScriptedServer((connection, in, out) -> {
            ScriptedServer.read(in);
            ScriptedServer.send(out, "HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n{");
            for (int i = 0; i < 100; i++) {
                Thread.sleep(50);
                ScriptedServer.send(out, " ");
            }
            ScriptedServer.hold();
        }); ConnectionPool pool = pool(server, 4)) {
            assertFailsAtItsDeadline(pool, new byte[0], Duration.ofMillis(500));
        }
    }

    @Test
    void aRequestTheServerNeverReadsFailsAtItsDeadline()
            throws Exception
    {
        // a body larger than both sockets' buffers blocks the write itself (SO_TIMEOUT bounds reads only)
        byte[] body = new byte[64 * 1024 * 1024];
        try (ScriptedServer server = new ScriptedServer((connection, in, out) -> ScriptedServer.hold()); ConnectionPool pool = pool(server, 4)) {
            assertFailsAtItsDeadline(pool, body, Duration.ofMillis(500));
        }
    }

    @Test
    void answersThatAreNotHttpFailAndTheirSocketsAreClosed()
            throws Exception
    {
        List<String> answers = List.of(
                "HTPT/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}",
                "HTTP/1.1 2x0 OK\r\ncontent-length: 2\r\n\r\n{}",
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{}",
                "HTTP/1.1 200 OK\r\ncontent-length: two\r\n\r\n{}",
                "HTTP/1.1 200 OK\r\nno colon here\r\ncontent-length: 2\r\n\r\n{}",
                "HTTP/1.1 200 OK\r\ncontent-length: " + (Http1Connection.MAX_ANSWER_BYTES + 1) + "\r\n\r\n{}",
                "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n{}",
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n");
        try (ScriptedServer server = new ScriptedServer((connection, in, out) -> {
            ScriptedServer.read(in);
            ScriptedServer.send(out, answers.get(connection - 1));
            ScriptedServer.hold();
        }); ConnectionPool pool = pool(server, 4)) {
            for (String answer : answers) {
                ProtocolException failure = assertThrows(ProtocolException.class, () -> post(pool, "{}", SECOND), answer);
                assertFalse(failure.getMessage().isEmpty());
                assertEquals(0, pool.open(), answer);
            }
            assertEquals(answers.size(), server.accepted.get());
        }
    }

    @Test
    void anAnswerArrivingAByteAtATimeIsReadWhole()
            throws Exception
    {
        // every line, and a CR apart from its LF, split across reads
        assertReadWholeOnOneKeptSocket("HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\n{\"a\":[]}", (out, raw) -> {
            for (char c : raw.toCharArray()) {
                ScriptedServer.send(out, String.valueOf(c));
                Thread.sleep(1);
            }
        }, "{\"a\":[]}");
    }

    @Test
    void aChunkedAnswerIsReadAndItsSocketKept()
            throws Exception
    {
        assertReadWholeOnOneKeptSocket("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\n{\"a\":\r\n3\r\n[1]\r\n1\r\n}\r\n0\r\n\r\n", ScriptedServer::send, "{\"a\":[1]}");
    }

    @Test
    void manyThreadsShareTheBoundedPoolAndEachGetsItsOwnAnswers()
            throws Exception
    {
        int threads = 16;
        int size = 4;
        try (ScriptedServer server = new ScriptedServer(ConnectionPoolTest::echo); ConnectionPool pool = pool(server, size)) {
            ExecutorService executor = Executors.newFixedThreadPool(threads);
            try {
                List<Future<Integer>> done = new ArrayList<>();
                for (int t = 0; t < threads; t++) {
                    int thread = t;
                    done.add(executor.submit(() -> {
                        for (int i = 0; i < 300; i++) {
                            String body = "{\"thread\":" + thread + ",\"call\":" + i + ",\"pad\":\"" + "x".repeat(i * 37 % 20_000) + "\"}";
                            assertEquals(body, post(pool, body, Duration.ofSeconds(10)));
                            assertTrue(pool.open() <= size);
                        }
                        return thread;
                    }));
                }
                for (Future<Integer> future : done) {
                    future.get();
                }
            }
            finally {
                executor.shutdownNow();
            }
            assertTrue(server.mostOpen.get() <= size, "at most " + size + " connections at once, saw " + server.mostOpen.get());
            assertTrue(server.accepted.get() <= size, "kept-alive sockets reused, accepted " + server.accepted.get());
        }
    }

    @Test
    void aCheckTheSidecarNeverAnswersIsDeniedWithinTheRequestTimeout()
            throws Exception
    {
        try (ScriptedServer server = new ScriptedServer((connection, in, out) -> {
            for (ScriptedServer.Request request = ScriptedServer.read(in); request != null; request = ScriptedServer.read(in)) {
                if (!request.path().equals("/v1/pdp/watch")) {
                    ScriptedServer.hold();  // the decisions endpoint hangs
                }
                Thread.sleep(100);
                ScriptedServer.answer(out, "{\"revision\":\"r1\"}");
            }
        })) {
            PdpAccessControl control = new PdpAccessControl(new PdpBackend(PdpConfig.from(Map.of(
                    "pdp.sidecar-url", server.url(),
                    "pdp.request-timeout-seconds", "0.3",
                    "pdp.watch-wait-seconds", "0.2"))));
            try {
                long start = System.nanoTime();
                AccessDeniedException denied = assertThrows(AccessDeniedException.class,
                        () -> control.checkCanExecuteQuery(Identity.ofUser("alice"), new io.trino.spi.QueryId("q1")));
                assertTrue(System.nanoTime() - start < HANG_NANOS);
                assertTrue(denied.getMessage().contains("the pdp sidecar at " + server.url() + " did not answer (SocketTimeoutException"), denied.getMessage());
            }
            finally {
                control.shutdown();
            }
        }
    }

    @Test
    void theNumberOfConnectionsIsAPositiveInteger()
    {
        for (String bad : List.of("0", "-1", "many")) {
            IllegalArgumentException failure = assertThrows(IllegalArgumentException.class,
                    () -> PdpConfig.from(Map.of("pdp.sidecar-url", "http://x", "pdp.max-connections", bad)));
            assertTrue(failure.getMessage().contains("pdp.max-connections: expected a positive integer, got " + bad), failure.getMessage());
        }
        assertEquals(64, PdpConfig.from(Map.of("pdp.sidecar-url", "http://x")).maxConnections());
    }

    @Test
    void theWatchsLongPollHoldsNoConnectionTheChecksNeed()
            throws Exception
    {
        try (FakeSidecar sidecar = new FakeSidecar()) {
            PdpAccessControl control = new PdpAccessControl(new PdpBackend(PdpConfig.from(Map.of(
                    "pdp.sidecar-url", sidecar.url(),
                    "pdp.max-connections", "1",
                    "pdp.request-timeout-seconds", "2",
                    "pdp.watch-wait-seconds", "20"))));  // a long poll open all through the test
            try {
                long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
                while (control.backend().revision() == null && System.nanoTime() < deadline) {
                    Thread.sleep(10);
                }
                for (int i = 0; i < 5; i++) {
                    control.checkCanExecuteQuery(Identity.ofUser("u" + i), new io.trino.spi.QueryId("q" + i));
                }
                assertEquals(5, sidecar.decisionRequests.get());
            }
            finally {
                control.shutdown();
            }
        }
    }
}
