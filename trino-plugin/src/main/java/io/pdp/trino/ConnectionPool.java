package io.pdp.trino;

import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.SSLSocketFactory;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.net.URI;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * At most {@code size} keep-alive connections to one endpoint of the sidecar. A call takes an
 * idle one (the most recently used: the least likely to have been closed by the sidecar's idle
 * timeout) or opens one, and with all of them busy waits for one until its deadline. A
 * connection goes back to the pool only after a complete answer that did not ask to close it;
 * one that failed or timed out is closed, never reused.
 *
 * <p>The sidecar may close an idle connection just as a request is sent on it. A call that
 * failed that way on a reused connection, before any byte of an answer, is sent once more on a
 * fresh one: the calls are questions, and asking twice changes nothing.
 */
final class ConnectionPool
        implements AutoCloseable
{
    private static final long WATCHDOG_MILLIS = 100;

    private final String host;
    private final int port;
    private final boolean tls;
    private final String hostHeader;
    private final String path;
    private final Duration connectTimeout;
    private final int size;
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition changed = lock.newCondition();
    private final ArrayDeque<Http1Connection> idle = new ArrayDeque<>();  // guarded by lock
    private int open;  // connections counted against size, idle or busy; guarded by lock
    private boolean closed;  // guarded by lock
    private final Set<Http1Connection> connections = ConcurrentHashMap.newKeySet();
    private final Thread watchdog;

    ConnectionPool(URI endpoint, Duration connectTimeout, int size)
    {
        this.tls = "https".equals(endpoint.getScheme());
        this.host = endpoint.getHost();
        this.port = endpoint.getPort() >= 0 ? endpoint.getPort() : tls ? 443 : 80;
        this.hostHeader = endpoint.getPort() >= 0 ? host + ":" + port : host;
        this.path = endpoint.getRawPath();
        this.connectTimeout = connectTimeout;
        this.size = size;
        // a blocked socket write has no timeout of its own: this thread closes the socket of a
        // write that outlives its call's deadline (reads are bounded by SO_TIMEOUT)
        this.watchdog = Thread.ofPlatform().daemon().name("pdp-sidecar-write-deadline").unstarted(this::cutLateWrites);
        watchdog.start();
    }

    /** POST {@code body} and read the whole answer within {@code timeout}, on the calling thread. */
    Http1Connection.Answer post(byte[] body, Duration timeout)
            throws IOException
    {
        long deadline = System.nanoTime() + timeout.toNanos();
        Http1Connection connection = take(deadline);
        Http1Connection.Answer answer;
        try {
            answer = connection.post(body, deadline);
        }
        catch (IOException | RuntimeException e) {
            boolean raced = e instanceof IOException && !(e instanceof SocketTimeoutException)
                    && connection.reused() && !connection.received() && System.nanoTime() - deadline < 0;
            forget(connection);
            if (!raced) {
                release();
                throw e;
            }
            try {
                connection = connect(deadline);  // in the same place in the pool
            }
            catch (IOException again) {
                release();
                throw again;
            }
            try {
                answer = connection.post(body, deadline);
            }
            catch (IOException | RuntimeException again) {
                forget(connection);
                release();
                throw again;
            }
        }
        if (answer.keepAlive()) {
            giveBack(connection);
        }
        else {
            forget(connection);
            release();
        }
        return answer;
    }

    private Http1Connection take(long deadline)
            throws IOException
    {
        lock.lock();
        try {
            while (true) {
                if (closed) {
                    throw new IOException("the plugin is shutting down");
                }
                Http1Connection connection = idle.pollFirst();
                if (connection != null) {
                    return connection;
                }
                if (open < size) {
                    open++;
                    break;
                }
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    throw new SocketTimeoutException("all " + size + " connections to the sidecar stayed busy until the deadline");
                }
                changed.awaitNanos(left);
            }
        }
        catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted while waiting for a connection");
        }
        finally {
            lock.unlock();
        }
        try {
            return connect(deadline);
        }
        catch (IOException e) {
            release();
            throw e;
        }
    }

    private Http1Connection connect(long deadline)
            throws IOException
    {
        long left = Math.min(connectTimeout.toNanos(), deadline - System.nanoTime());
        if (left <= 0) {
            throw new SocketTimeoutException("no time left to connect");
        }
        int millis = (int) Math.max(1, Math.min(Integer.MAX_VALUE, TimeUnit.NANOSECONDS.toMillis(left)));
        Socket raw = new Socket();
        try {
            raw.setTcpNoDelay(true);
            raw.connect(new InetSocketAddress(host, port), millis);
            Socket socket = raw;
            if (tls) {
                SSLSocket ssl = (SSLSocket) ((SSLSocketFactory) SSLSocketFactory.getDefault()).createSocket(raw, host, port, true);
                SSLParameters parameters = ssl.getSSLParameters();
                parameters.setEndpointIdentificationAlgorithm("HTTPS");
                ssl.setSSLParameters(parameters);
                ssl.setSoTimeout(millis);
                ssl.startHandshake();
                socket = ssl;
            }
            Http1Connection connection = new Http1Connection(raw, socket, hostHeader, path);
            connections.add(connection);
            return connection;
        }
        catch (IOException e) {
            raw.close();
            throw e;
        }
    }

    private void giveBack(Http1Connection connection)
    {
        lock.lock();
        try {
            if (!closed) {
                idle.offerFirst(connection);
                changed.signal();
                return;
            }
        }
        finally {
            lock.unlock();
        }
        forget(connection);
        release();
    }

    private void forget(Http1Connection connection)
    {
        connection.close();
        connections.remove(connection);
    }

    /** One connection fewer counted against the size: a waiting call may open one. */
    private void release()
    {
        lock.lock();
        try {
            open--;
            changed.signal();
        }
        finally {
            lock.unlock();
        }
    }

    /** Connections open now, idle or busy (for the tests). */
    int open()
    {
        lock.lock();
        try {
            return open;
        }
        finally {
            lock.unlock();
        }
    }

    private void cutLateWrites()
    {
        while (true) {
            try {
                Thread.sleep(WATCHDOG_MILLIS);
            }
            catch (InterruptedException e) {
                return;
            }
            long now = System.nanoTime();
            for (Http1Connection connection : connections) {
                long deadline = connection.writeDeadline;
                if (deadline != 0 && now - deadline >= 0) {
                    connection.close();
                }
            }
        }
    }

    /** Closes every connection, busy ones too (a long poll waiting on one fails at once). */
    @Override
    public void close()
    {
        lock.lock();
        try {
            closed = true;
            idle.clear();
            changed.signalAll();
        }
        finally {
            lock.unlock();
        }
        watchdog.interrupt();
        connections.forEach(Http1Connection::close);
    }
}
