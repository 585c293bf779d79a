"""The fake Unity Catalog workspace (tests/grants/fakes/uc_server.py) served on loopback and
reached through the real Databricks SDK: one set-up for the grant and the data-policy tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.core import Config

from tests.grants.fakes.uc_server import Workspace, serve


@pytest.fixture
def uc_workspace() -> Workspace:
    """What the served workspace holds: a test module overrides this fixture to fill it."""
    return Workspace()


@pytest.fixture
def uc(uc_workspace: Workspace) -> Iterator[tuple[Workspace, WorkspaceClient]]:
    """`uc_workspace` served, and an SDK client signed in with OAuth M2M (retries give up
    after 2 s). Afterwards every request the fake saw must have fit the Unity Catalog
    schema and the Databricks overlay."""
    with serve(uc_workspace) as url:
        config = Config(
            host=url,
            client_id="sync-client",
            client_secret="sync-secret",
            auth_type="oauth-m2m",
            retry_timeout_seconds=2,
        )
        yield uc_workspace, WorkspaceClient(config=config)
    assert uc_workspace.violations == []
