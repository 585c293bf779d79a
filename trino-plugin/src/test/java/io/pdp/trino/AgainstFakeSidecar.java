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
}
