"""Fixtures that start the real PDP and sidecar processes on free loopback ports."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devstack import postgres
from devstack.configs import ConfigTree, make_tree
from devstack.processes import Process, free_port, start_pdp, start_sidecar


@dataclass
class Stack:
    tree: ConfigTree
    pdp: Process
    sidecar: Process
    pdp_port: int
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.sidecar.stop()
        self.pdp.stop()


def start_stack(
    root: Path,
    max_stale: float | None = 300,
    pdp_auth: str = "none",
    sidecar_auth: str = "none",
    **tree_args: str,
) -> Stack:
    """The real PDP and sidecar processes; `*_auth` are the YAML of their `auth:` blocks."""
    tree = make_tree(root, **tree_args)
    pdp_port, port = free_port(), free_port()
    pdp = start_pdp(tree.pdp_yaml(pdp_port, pdp_auth), pdp_port)
    try:
        sidecar = start_sidecar(tree.sidecar_yaml(port, pdp_port, max_stale, sidecar_auth), port)
    except BaseException:
        pdp.stop()
        raise
    return Stack(tree, pdp, sidecar, pdp_port, port)


@pytest.fixture
def stack_factory(tmp_path) -> Iterator:
    started: list[Stack] = []

    def start(**args: Any) -> Stack:
        root = tmp_path / f"stack{len(started)}"
        root.mkdir()
        stack = start_stack(root, **args)
        started.append(stack)
        return stack

    yield start
    for stack in started:
        stack.stop()


@pytest.fixture(scope="session")
def pg() -> Iterator[postgres.Postgres]:
    """One PostgreSQL server for the test run: a throwaway cluster on a free loopback port,
    stopped at the end, or the server that PDP_TEST_POSTGRES names."""
    with postgres.server() as server:
        yield server


@pytest.fixture
def stoppable_pg() -> Iterator[postgres.Throwaway]:
    """A PostgreSQL cluster of the test's own, which it stops and starts (a store outage),
    with an empty database `store`."""
    with postgres.throwaway() as server:
        with server.connect() as admin:
            admin.execute("CREATE DATABASE store")
        yield server
