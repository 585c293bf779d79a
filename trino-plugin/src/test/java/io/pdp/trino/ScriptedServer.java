package io.pdp.trino;

import java.io.BufferedInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A raw HTTP/1.1 server on loopback for what a well-behaved server never does: it counts the
 * connections it accepts and serves each one with a script (answer, close, stall, send bytes
 * that are not HTTP). Each connection gets a thread of its own; {@link #close()} ends them all.
 */
final class ScriptedServer
        implements AutoCloseable
{
    record Request(String path, String body) {}

    interface Script
    {
        /** Serve one accepted connection (number {@code connection}, from 1); return to close it. */
        void serve(int connection, InputStream in, OutputStream out)
                throws IOException, InterruptedException;
    }

    private final ServerSocket server;
    private final Script script;
    private final Thread acceptor;
    private final List<Socket> sockets = new CopyOnWriteArrayList<>();
    private final List<Thread> threads = new CopyOnWriteArrayList<>();
    final AtomicInteger accepted = new AtomicInteger();
    final AtomicInteger openNow = new AtomicInteger();
    final AtomicInteger mostOpen = new AtomicInteger();

    ScriptedServer(Script script)
            throws IOException
    {
        this.server = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
        this.script = script;
        this.acceptor = Thread.ofPlatform().daemon().name("scripted-server").start(this::accept);
    }

    String url()
    {
        return "http://127.0.0.1:" + server.getLocalPort();
    }

    private void accept()
    {
        while (!server.isClosed()) {
            Socket socket;
            try {
                socket = server.accept();
            }
            catch (IOException e) {
                return;
            }
            sockets.add(socket);
            try {
                socket.setTcpNoDelay(true);  // an answer written in one go leaves at once
            }
            catch (IOException e) {
                continue;
            }
            int connection = accepted.incrementAndGet();
            mostOpen.accumulateAndGet(openNow.incrementAndGet(), Math::max);
            threads.add(Thread.ofPlatform().daemon().name("scripted-connection-" + connection).start(() -> {
                try (socket) {
                    script.serve(connection, new BufferedInputStream(socket.getInputStream()), socket.getOutputStream());
                }
                catch (IOException | InterruptedException e) {
                    // the client went away or the test ended
                }
                finally {
                    openNow.decrementAndGet();
                }
            }));
        }
    }

    /** The next request on a connection (null: the client closed it). */
    static Request read(InputStream in)
            throws IOException
    {
        String requestLine = line(in);
        if (requestLine == null) {
            return null;
        }
        int length = 0;
        for (String header = line(in); header != null && !header.isEmpty(); header = line(in)) {
            if (header.toLowerCase(Locale.ROOT).startsWith("content-length:")) {
                length = Integer.parseInt(header.substring(15).trim());
            }
        }
        String body = new String(in.readNBytes(length), StandardCharsets.UTF_8);
        return new Request(requestLine.split(" ")[1], body);
    }

    private static String line(InputStream in)
            throws IOException
    {
        ByteArrayOutputStream line = new ByteArrayOutputStream();
        for (int b = in.read(); b != '\n'; b = in.read()) {
            if (b < 0) {
                return null;
            }
            if (b != '\r') {
                line.write(b);
            }
        }
        return line.toString(StandardCharsets.ISO_8859_1);
    }

    /** A complete 200 answer with a content-length, as the sidecar sends it. */
    static void answer(OutputStream out, String body)
            throws IOException
    {
        send(out, "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: " + body.getBytes(StandardCharsets.UTF_8).length + "\r\n\r\n" + body);
    }

    /** Keep the connection open, neither reading nor writing, until the server is closed (30 s at most). */
    static void hold()
            throws InterruptedException
    {
        Thread.sleep(30_000);
    }

    static void send(OutputStream out, String raw)
            throws IOException
    {
        out.write(raw.getBytes(StandardCharsets.UTF_8));
        out.flush();
    }

    @Override
    public void close()
            throws IOException
    {
        server.close();
        for (Socket socket : sockets) {
            socket.close();
        }
        acceptor.interrupt();
        threads.forEach(Thread::interrupt);
    }
}
