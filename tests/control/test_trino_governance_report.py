"""Active data sources that no Trino catalog exposes are reported wherever an operator looks:
`pdp connections sync` and `status`, the PDP's admin /health and the sidecar's /health
("degraded": "N active data sources are not governed in Trino"), until `pdp connections update
--trino-catalog` maps their database; real PDP and sidecar processes, the fake platform behind
the crawler seam. /health counts them only on a platform Trino fronts (its catalog files hold
a catalog of that platform, or a catalog is mapped to one of its databases): a platform read
only natively is no reason to be degraded."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from devstack.processes import free_port, start_sidecar
from devstack.replica import Replica, write_world

WARNING = "2 active data sources are not governed in Trino"


def eventually_health(url: str, status: str, seconds: float = 15) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        health = httpx.get(f"{url}/health", timeout=2).json()
        if health["status"] == status:
            return health
        assert time.monotonic() < deadline, health
        time.sleep(0.1)


def catalog_files(root: Path) -> str:
    """pdp.yaml's lines naming Trino's catalog files: one postgresql catalog (of another
    database), so Trino fronts PostgreSQL and nothing else."""
    catalogs = root / "catalog"
    catalogs.mkdir()
    (catalogs / "other.properties").write_text(
        "connector.name=postgresql\nconnection-url=jdbc:postgresql://db.example:5432/other\n"
    )
    return f"control: {{trinoCatalogFiles: {catalogs}}}\n"


def connections_cli(pdp: Replica) -> Callable[..., subprocess.CompletedProcess[str]]:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        done = pdp.cli("connections", *args)
        assert done.returncode == 0, done.stderr
        return done

    return cli


def test_unmapped_active_postgres_tables_are_reported_until_mapped(tmp_path):
    world = tmp_path / "world.json"
    write_world(world, {"shop": {"public": {"orders": [["id", "int"]], "items": [["id", "int"]]}}})
    extra = catalog_files(tmp_path)
    pdp = Replica(tmp_path, f"sqlite:///{tmp_path}/store.db", world, "gov", extra)
    url = pdp.url
    cli = connections_cli(pdp)
    sidecar = None
    try:
        port = free_port()
        sidecar = start_sidecar(pdp.tree.sidecar_yaml(port, pdp.grpc_port), port)
        sidecar_url = f"http://127.0.0.1:{port}"
        assert "pdpDegraded" not in eventually_health(sidecar_url, "ok")
        registered = cli("register", "pg", "--technology", "postgresql", "--endpoint", "host=fake")
        assert "Trino catalogs: none" in registered.stdout
        cli("settings", "pg/shop/public", "--active", "true")
        synced = cli("sync", "pg")
        assert "notGovernedInTrino=2" in synced.stdout
        assert "WARNING: 2 active data sources of pg are not governed in Trino" in synced.stdout
        status = cli("status", "pg")
        assert f"WARNING: {WARNING}: no Trino catalog is mapped to shop" in status.stdout
        assert "Trino catalog: none" in cli("status", "pg/shop/public/orders").stdout

        assert eventually_health(url, "degraded")["reason"].startswith(WARNING)
        assert eventually_health(sidecar_url, "degraded")["pdpDegraded"].startswith(WARNING)

        updated = cli("update", "pg", "--trino-catalog", "shop=postgresql")
        assert "Trino catalogs: shop -> postgresql" in updated.stdout
        assert "WARNING" not in updated.stdout
        assert "Trino catalog: postgresql" in cli("status", "pg/shop/public/orders").stdout
        assert "reason" not in eventually_health(url, "ok")
        assert "pdpDegraded" not in eventually_health(sidecar_url, "ok")
    finally:
        if sidecar is not None:
            sidecar.stop()
        pdp.stop()


def test_a_platform_trino_does_not_front_is_reported_but_not_degraded(tmp_path):
    """A Snowflake-only install (Trino's catalog files hold no Snowflake catalog, none is
    mapped): its unmapped data sources are reported on the connection, and /health stays ok."""
    world = tmp_path / "world.json"
    write_world(world, {"SHOP": {"PUBLIC": {"ORDERS": [["ID", "int"]]}}})
    extra = catalog_files(tmp_path)
    pdp = Replica(tmp_path, f"sqlite:///{tmp_path}/store.db", world, "gov", extra)
    url = pdp.url
    cli = connections_cli(pdp)
    try:
        cli("register", "sf", "--technology", "snowflake", "--endpoint", "account=fake")
        before = pdp.revision()
        cli("settings", "sf/SHOP/PUBLIC", "--active", "true")
        synced = cli("sync", "sf")
        assert "WARNING: 1 active data sources of sf are not governed in Trino" in synced.stdout
        deadline = time.monotonic() + 15
        while (health := httpx.get(f"{url}/health", timeout=2).json())["revision"] == before:
            assert time.monotonic() < deadline, health  # the data source is in the snapshot
            time.sleep(0.1)
        assert health["status"] == "ok" and "reason" not in health, health
        # once a Snowflake catalog exposes one database, Trino fronts Snowflake: the rest count
        cli("register", "sf2", "--technology", "snowflake", "--endpoint", "account=fake2")
        cli("settings", "sf2/SHOP/PUBLIC", "--active", "true")
        cli("sync", "sf2")
        cli("update", "sf2", "--trino-catalog", "SHOP=snow")
        degraded = eventually_health(url, "degraded")
        assert degraded["reason"].startswith("1 active data sources are not governed"), degraded
    finally:
        pdp.stop()
