"""Fixtures for the auth tests; the helpers behind them live in tests/auth/support.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.auth.support import GeneratedCertificate, Idp, Recorder, make_certificate, start_idp


@pytest.fixture(scope="session")
def client_certificate() -> GeneratedCertificate:
    return make_certificate("sidecar-cert")


@pytest.fixture(scope="session")
def idp(
    tmp_path_factory: pytest.TempPathFactory, client_certificate: GeneratedCertificate
) -> Iterator[Idp]:
    with start_idp(tmp_path_factory.mktemp("idp"), client_certificate) as running:
        yield running


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    recorder = Recorder()
    yield recorder
    recorder.close()
