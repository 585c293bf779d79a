"""A sidecar stopped by SIGTERM, the way supervisors stop it, removes the directory where its
workers' metrics meet, and ends as a clean stop: by the signal itself with one worker (uvicorn
serving in the process), with status 0 when uvicorn's supervisor of several workers ends it."""

from __future__ import annotations

import signal

import pytest

from devstack.configs import make_tree
from devstack.processes import free_port, start_sidecar


@pytest.mark.parametrize(("workers", "status"), [(1, -signal.SIGTERM), (2, 0)])
def test_sigterm_leaves_no_metrics_directory_behind(tmp_path, monkeypatch, workers, status):
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    tree = make_tree(tmp_path)
    port = free_port()
    sidecar_yaml = tree.sidecar_yaml(port, free_port())  # no PDP: it need not answer
    sidecar_yaml.write_text(sidecar_yaml.read_text().replace("workers: 1", f"workers: {workers}"))
    sidecar = start_sidecar(sidecar_yaml, port, wait_connected=False)
    assert [p.name.startswith("pdp-sidecar-metrics-") for p in temp.iterdir()] == [True]
    sidecar.stop()
    assert list(temp.iterdir()) == []
    assert sidecar.popen.returncode == status
