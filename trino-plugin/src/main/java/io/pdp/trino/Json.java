package io.pdp.trino;

import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The few JSON needs of the plugin, without a runtime dependency (Trino gives a plugin its own
 * class loader and no JSON library): writing strings and reading the sidecar's answers into
 * maps, lists, strings, numbers (as double), booleans and null.
 */
final class Json
{
    private Json() {}

    static String quote(String value)
    {
        StringBuilder out = new StringBuilder(value.length() + 2);
        quote(out, value);
        return out.toString();
    }

    static void quote(StringBuilder out, String value)
    {
        out.append('"');
        for (int i = 0; i < value.length(); i++) {
            char c = value.charAt(i);
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                default -> {
                    if (c < 0x20) {
                        out.append(String.format("\\u%04x", (int) c));
                    }
                    else {
                        out.append(c);
                    }
                }
            }
        }
        out.append('"');
    }

    /** A JSON array of strings. */
    static String strings(Collection<String> values)
    {
        return strings(new StringBuilder(), values).toString();
    }

    static StringBuilder strings(StringBuilder out, Collection<String> values)
    {
        out.append('[');
        boolean first = true;
        for (String value : values) {
            if (!first) {
                out.append(',');
            }
            first = false;
            quote(out, value);
        }
        return out.append(']');
    }

    static Object parse(String text)
    {
        Parser parser = new Parser(text);
        Object value = parser.value();
        parser.space();
        if (parser.at < text.length()) {
            throw parser.error("trailing characters");
        }
        return value;
    }

    private static final class Parser
    {
        private final String text;
        private int at;

        Parser(String text)
        {
            this.text = text;
        }

        Object value()
        {
            space();
            if (at >= text.length()) {
                throw error("unexpected end");
            }
            char c = text.charAt(at);
            return switch (c) {
                case '{' -> object();
                case '[' -> array();
                case '"' -> string();
                case 't' -> literal("true", Boolean.TRUE);
                case 'f' -> literal("false", Boolean.FALSE);
                case 'n' -> literal("null", null);
                default -> number();
            };
        }

        private Map<String, Object> object()
        {
            Map<String, Object> result = new LinkedHashMap<>();
            at++;
            space();
            if (peek() == '}') {
                at++;
                return result;
            }
            while (true) {
                space();
                if (peek() != '"') {
                    throw error("expected a key");
                }
                String key = string();
                space();
                expect(':');
                result.put(key, value());
                space();
                if (peek() == ',') {
                    at++;
                    continue;
                }
                expect('}');
                return result;
            }
        }

        private List<Object> array()
        {
            List<Object> result = new ArrayList<>();
            at++;
            space();
            if (peek() == ']') {
                at++;
                return result;
            }
            while (true) {
                result.add(value());
                space();
                if (peek() == ',') {
                    at++;
                    continue;
                }
                expect(']');
                return result;
            }
        }

        private String string()
        {
            at++;
            StringBuilder out = new StringBuilder();
            while (true) {
                if (at >= text.length()) {
                    throw error("unterminated string");
                }
                char c = text.charAt(at++);
                if (c == '"') {
                    return out.toString();
                }
                if (c != '\\') {
                    out.append(c);
                    continue;
                }
                if (at >= text.length()) {
                    throw error("unterminated escape");
                }
                char e = text.charAt(at++);
                switch (e) {
                    case '"', '\\', '/' -> out.append(e);
                    case 'b' -> out.append('\b');
                    case 'f' -> out.append('\f');
                    case 'n' -> out.append('\n');
                    case 'r' -> out.append('\r');
                    case 't' -> out.append('\t');
                    case 'u' -> {
                        if (at + 4 > text.length()) {
                            throw error("short \\u escape");
                        }
                        out.append((char) Integer.parseInt(text.substring(at, at + 4), 16));
                        at += 4;
                    }
                    default -> throw error("bad escape \\" + e);
                }
            }
        }

        private Object literal(String word, Object value)
        {
            if (!text.startsWith(word, at)) {
                throw error("expected " + word);
            }
            at += word.length();
            return value;
        }

        private Double number()
        {
            int start = at;
            while (at < text.length() && "+-0123456789.eE".indexOf(text.charAt(at)) >= 0) {
                at++;
            }
            if (start == at) {
                throw error("unexpected character");
            }
            try {
                return Double.parseDouble(text.substring(start, at));
            }
            catch (NumberFormatException e) {
                throw error("bad number");
            }
        }

        private char peek()
        {
            return at < text.length() ? text.charAt(at) : '\0';
        }

        private void expect(char c)
        {
            if (peek() != c) {
                throw error("expected '" + c + "'");
            }
            at++;
        }

        void space()
        {
            while (at < text.length() && Character.isWhitespace(text.charAt(at))) {
                at++;
            }
        }

        IllegalArgumentException error(String what)
        {
            return new IllegalArgumentException("invalid JSON at offset " + at + ": " + what);
        }
    }
}
