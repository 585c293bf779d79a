package io.pdp.trino;

import io.trino.spi.Plugin;
import io.trino.spi.security.SystemAccessControl;
import io.trino.spi.security.SystemAccessControlFactory;

import java.util.List;
import java.util.Map;

/** The plugin: one access control, {@code access-control.name=pdp}. */
public final class PdpPlugin
        implements Plugin
{
    public static final String NAME = "pdp";

    @Override
    public Iterable<SystemAccessControlFactory> getSystemAccessControlFactories()
    {
        return List.of(new SystemAccessControlFactory()
        {
            @Override
            public String getName()
            {
                return NAME;
            }

            @Override
            public SystemAccessControl create(Map<String, String> config, SystemAccessControlContext context)
            {
                return new PdpAccessControl(new PdpBackend(PdpConfig.from(config)));
            }
        });
    }
}
