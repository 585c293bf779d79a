package io.pdp.trino;

import io.trino.spi.function.SchemaFunctionName;

import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;

/**
 * The parts of a {@link SchemaFunctionName}, whichever SPI the plugin runs with: a class with
 * {@code getSchemaName()} up to Trino 476, a record with {@code schemaName()} in later ones.
 */
final class FunctionNames
{
    private static final MethodHandle SCHEMA = accessor("schemaName", "getSchemaName");
    private static final MethodHandle FUNCTION = accessor("functionName", "getFunctionName");

    private FunctionNames() {}

    static String schema(SchemaFunctionName name)
    {
        return call(SCHEMA, name);
    }

    static String function(SchemaFunctionName name)
    {
        return call(FUNCTION, name);
    }

    private static String call(MethodHandle accessor, SchemaFunctionName name)
    {
        try {
            return (String) accessor.invoke(name);
        }
        catch (Throwable e) {
            throw new IllegalStateException("cannot read " + name, e);
        }
    }

    private static MethodHandle accessor(String... names)
    {
        MethodHandles.Lookup lookup = MethodHandles.publicLookup();
        for (String name : names) {
            try {
                return lookup.findVirtual(SchemaFunctionName.class, name, MethodType.methodType(String.class));
            }
            catch (ReflectiveOperationException e) {
                // the other SPI's name
            }
        }
        throw new IllegalStateException("SchemaFunctionName has none of " + String.join(", ", names));
    }
}
