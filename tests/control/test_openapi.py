"""The admin API's contract, frozen: `/openapi.json` must equal `openapi.json` beside this file.

A refactoring of the admin API (routers, schema modules, error tables) must leave this document
as it is. A change of the API itself regenerates the file on purpose, and the diff is reviewed:

    .venv/bin/python -m tests.control.test_openapi > tests/control/openapi.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from devstack.fakes import FakePlatform
from pdp.admin import create_app
from pdp.admin.auth import trusted_header
from pdp.control import ControlPlane, SyncRunner
from pdp.store import Store

GOLDEN = Path(__file__).with_name("openapi.json")


def document(tmp: Path) -> dict[str, Any]:
    store = Store.open(f"sqlite:///{tmp / 'openapi.db'}")
    try:
        platform = FakePlatform()
        plane = ControlPlane(store, SyncRunner(store, platform.factory), platform.factory)
        return create_app(plane, trusted_header(lambda: {})).openapi()
    finally:
        store.close()


def test_openapi_document_is_unchanged(tmp_path):
    assert document(tmp_path) == json.loads(GOLDEN.read_text())


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        json.dump(document(Path(tmp)), sys.stdout, indent=1, sort_keys=True)
        sys.stdout.write("\n")
