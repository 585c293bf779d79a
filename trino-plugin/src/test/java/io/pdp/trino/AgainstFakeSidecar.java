package io.pdp.trino;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;

import java.util.Map;

/** Tests of the plugin against a fresh {@link FakeSidecar} each: the plugin holds its revision before a test starts. */
abstract class AgainstFakeSidecar
{
    protected FakeSidecar sidecar;
    protected PdpAccessControl control;

    /** The fake sidecar's grants, row filters and masks for this class's tests. */
    abstract void policy(FakeSidecar sidecar);

    @BeforeEach
    void start()
            throws Exception
    {
        sidecar = new FakeSidecar();
        policy(sidecar);
        control = Plugins.watching(sidecar, Map.of());
    }

    @AfterEach
    void stop()
    {
        control.shutdown();
        sidecar.close();
    }

    /** What a test does with another plugin. */
    interface PluginUse
    {
        void accept(PdpAccessControl plugin)
                throws Exception;
    }

    /** {@code use} given another plugin against the same sidecar (a cache of its own), shut down after. */
    void withAnotherPlugin(Map<String, String> extra, PluginUse use)
            throws Exception
    {
        PdpAccessControl other = Plugins.watching(sidecar, extra);
        try {
            use.accept(other);
        }
        finally {
            other.shutdown();
        }
    }
}
