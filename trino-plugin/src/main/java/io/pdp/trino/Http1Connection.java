package io.pdp.trino;

import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.ProtocolException;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * One keep-alive HTTP/1.1 connection to the sidecar, used by one calling thread at a time: the
 * caller writes the request and reads the answer itself, with no hand-off to another thread.
 * Every read is bounded by what is left of the call's deadline; a write that outlives it is
 * cut by {@link ConnectionPool}'s watchdog, which closes the socket.
 */
final class Http1Connection
        implements AutoCloseable
{
    /** The largest answer read (headers excepted); a larger one fails the call. */
    static final int MAX_ANSWER_BYTES = 16 * 1024 * 1024;
    private static final int MAX_HEAD_BYTES = 64 * 1024;

    record Answer(int status, String body, boolean keepAlive) {}

    private final Socket raw;  // closed to cut a blocked write (an SSL socket wraps it)
    private final Socket socket;
    private final InputStream in;
    private final OutputStream out;
    private final byte[] requestHead;  // "POST <path> HTTP/1.1 ... content-length: " up to the number
    private final byte[] buffer = new byte[8192];
    private int start;
    private int end;
    private long deadline;
    private boolean received;
    private boolean answered;
    volatile long writeDeadline;  // System.nanoTime() bound of a write in progress, 0: none

    Http1Connection(Socket raw, Socket socket, String host, String path)
            throws IOException
    {
        this.raw = raw;
        this.socket = socket;
        this.in = socket.getInputStream();
        this.out = socket.getOutputStream();
        this.requestHead = ("POST " + path + " HTTP/1.1\r\nhost: " + host + "\r\ncontent-type: application/json\r\ncontent-length: ")
                .getBytes(StandardCharsets.US_ASCII);
    }

    /** Whether an earlier request on this connection was answered in full (it is a kept-alive one). */
    boolean reused()
    {
        return answered;
    }

    /** Whether any byte of the answer to the last request was read (a retry is then unsafe). */
    boolean received()
    {
        return received;
    }

    /** Send one POST with {@code body} and read its whole answer before {@code deadline} (System.nanoTime()). */
    Answer post(byte[] body, long deadline)
            throws IOException
    {
        this.deadline = deadline;
        received = false;
        start = 0;
        end = 0;
        writeDeadline = deadline;
        try {
            byte[] length = (body.length + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII);
            byte[] request = new byte[requestHead.length + length.length + body.length];
            System.arraycopy(requestHead, 0, request, 0, requestHead.length);
            System.arraycopy(length, 0, request, requestHead.length, length.length);
            System.arraycopy(body, 0, request, requestHead.length + length.length, body.length);
            out.write(request);  // one write: head and body in one segment when they fit
            out.flush();
        }
        catch (IOException e) {
            throw System.nanoTime() - deadline >= 0 ? new SocketTimeoutException("the request was not sent before the deadline") : e;
        }
        finally {
            writeDeadline = 0;
        }
        Answer answer = readAnswer();
        answered = true;
        return answer;
    }

    private Answer readAnswer()
            throws IOException
    {
        String status = line();
        if (!status.startsWith("HTTP/1.") || status.length() < 12 || status.charAt(8) != ' '
                || !Character.isDigit(status.charAt(9)) || !Character.isDigit(status.charAt(10)) || !Character.isDigit(status.charAt(11))
                || (status.length() > 12 && status.charAt(12) != ' ')) {
            throw new ProtocolException("malformed status line: " + printable(status));
        }
        int code = Integer.parseInt(status, 9, 12, 10);
        boolean keepAlive = status.charAt(7) == '1';  // HTTP/1.0 closes unless told otherwise
        long contentLength = -1;
        boolean chunked = false;
        int headBytes = status.length();
        for (String header = line(); !header.isEmpty(); header = line()) {
            headBytes += header.length() + 2;
            if (headBytes > MAX_HEAD_BYTES) {
                throw new ProtocolException("the answer's headers exceed " + MAX_HEAD_BYTES + " bytes");
            }
            int colon = header.indexOf(':');
            if (colon <= 0) {
                throw new ProtocolException("malformed header line: " + printable(header));
            }
            String name = header.substring(0, colon).trim();
            String value = header.substring(colon + 1).trim();
            if (name.equalsIgnoreCase("content-length")) {
                try {
                    long parsed = Long.parseLong(value);
                    if (parsed < 0 || (contentLength >= 0 && contentLength != parsed)) {
                        throw new NumberFormatException();
                    }
                    contentLength = parsed;
                }
                catch (NumberFormatException e) {
                    throw new ProtocolException("bad content-length: " + printable(value));
                }
            }
            else if (name.equalsIgnoreCase("transfer-encoding")) {
                if (!value.equalsIgnoreCase("chunked")) {
                    throw new ProtocolException("unsupported transfer-encoding: " + printable(value));
                }
                chunked = true;
            }
            else if (name.equalsIgnoreCase("connection")) {
                keepAlive = value.equalsIgnoreCase("close") ? false : keepAlive || value.equalsIgnoreCase("keep-alive");
            }
        }
        if (chunked) {
            return new Answer(code, chunkedBody(), keepAlive);
        }
        if (contentLength < 0) {
            throw new ProtocolException("the answer has no content-length");
        }
        if (contentLength > MAX_ANSWER_BYTES) {
            throw new ProtocolException("the answer's " + contentLength + " bytes exceed " + MAX_ANSWER_BYTES);
        }
        byte[] body = new byte[(int) contentLength];
        read(body, 0, body.length);
        return new Answer(code, new String(body, StandardCharsets.UTF_8), keepAlive);
    }

    private String chunkedBody()
            throws IOException
    {
        byte[] body = new byte[0];
        int size = 0;
        while (true) {
            String line = line();
            int extension = line.indexOf(';');
            int chunk;
            try {
                chunk = Integer.parseInt((extension < 0 ? line : line.substring(0, extension)).trim(), 16);
            }
            catch (NumberFormatException e) {
                throw new ProtocolException("malformed chunk size: " + printable(line));
            }
            if (chunk < 0 || chunk > MAX_ANSWER_BYTES - size) {
                throw new ProtocolException("the chunked answer exceeds " + MAX_ANSWER_BYTES + " bytes");
            }
            if (chunk == 0) {
                while (!line().isEmpty()) {
                    // trailers: none that matter here
                }
                return new String(body, 0, size, StandardCharsets.UTF_8);
            }
            if (size + chunk > body.length) {
                body = Arrays.copyOf(body, Math.max(size + chunk, body.length * 2));
            }
            read(body, size, chunk);
            size += chunk;
            if (!line().isEmpty()) {
                throw new ProtocolException("a chunk does not end with CRLF");
            }
        }
    }

    /** One line of the head, without its CRLF (a bare LF is accepted). */
    private String line()
            throws IOException
    {
        StringBuilder line = null;
        while (true) {
            for (int i = start; i < end; i++) {
                if (buffer[i] == '\n') {
                    int from = start;
                    start = i + 1;
                    if (line == null) {
                        return new String(buffer, from, (i > from && buffer[i - 1] == '\r' ? i - 1 : i) - from, StandardCharsets.ISO_8859_1);
                    }
                    line.append(new String(buffer, from, i - from, StandardCharsets.ISO_8859_1));  // began in an earlier read
                    if (!line.isEmpty() && line.charAt(line.length() - 1) == '\r') {
                        line.setLength(line.length() - 1);
                    }
                    return line.toString();
                }
            }
            if (line == null) {
                line = new StringBuilder();
            }
            line.append(new String(buffer, start, end - start, StandardCharsets.ISO_8859_1));
            if (line.length() > MAX_HEAD_BYTES) {
                throw new ProtocolException("a line of the answer's head exceeds " + MAX_HEAD_BYTES + " bytes");
            }
            start = end;
            fill();
        }
    }

    private void read(byte[] target, int offset, int length)
            throws IOException
    {
        while (length > 0) {
            if (start == end) {
                if (length >= buffer.length) {  // large bodies go straight into their array
                    int n = receive(target, offset, length);
                    offset += n;
                    length -= n;
                    continue;
                }
                fill();
            }
            int n = Math.min(length, end - start);
            System.arraycopy(buffer, start, target, offset, n);
            start += n;
            offset += n;
            length -= n;
        }
    }

    private void fill()
            throws IOException
    {
        start = 0;
        end = receive(buffer, 0, buffer.length);
    }

    private int receive(byte[] target, int offset, int length)
            throws IOException
    {
        long left = deadline - System.nanoTime();
        if (left <= 0) {
            throw new SocketTimeoutException("no complete answer before the deadline");
        }
        socket.setSoTimeout((int) Math.max(1, Math.min(Integer.MAX_VALUE, (left + 999_999) / 1_000_000)));
        int n = in.read(target, offset, length);
        if (n < 0) {
            throw new EOFException(received ? "the sidecar closed the connection in the middle of an answer" : "the sidecar closed the connection before answering");
        }
        received = true;
        return n;
    }

    private static String printable(String text)
    {
        String cut = text.length() > 100 ? text.substring(0, 100) + "..." : text;
        return cut.replaceAll("[^\\x20-\\x7e]", "?");
    }

    @Override
    public void close()
    {
        try {
            raw.close();
        }
        catch (IOException e) {
            // nothing left to do with it
        }
    }
}
