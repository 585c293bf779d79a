"""Every import points down: a module may import its own package and the layers below it,
never a layer above it nor a sibling package of its own layer. Function-local imports count.

The table reads bottom-up, the order in which a newcomer reads the code (README, Layout)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("core", ("pdp.core",)),  # the pure decision: decide(view, request) -> Decision
    ("policy", ("pdp.policy",)),  # registry, policies, directory; the snapshot per revision
    ("objects", ("pdp.objects",)),  # the object tree's pure rules: paths, status, sync plans
    ("config", ("pdp.config",)),  # file formats, file:line errors, hot reload
    ("store", ("pdp.store",)),  # connections and the object tree in SQLite or PostgreSQL
    ("web", ("pdp.web",)),  # small ASGI apps served inside a running process
    ("auth", ("pdp.auth",)),  # OAuth 2.0 tokens, JWT validation, gRPC interceptors
    ("platforms", ("pdp.platforms",)),  # per technology: connection settings, opening its client
    ("api", ("pdp.api",)),  # the gRPC messages and stubs generated from proto/
    ("wire", ("pdp.wire",)),  # Trino OPA request bodies; core values <-> protobuf
    ("grant sync", ("pdp.grants",)),  # native grants; the PDP service runs it per revision
    ("crawl", ("pdp.crawl",)),  # crawlers: list a platform's databases, schemas and tables
    ("control", ("pdp.control",)),  # sync jobs, their schedule, the snapshot of files + store
    ("admin", ("pdp.admin",)),  # the admin API (FastAPI) over the control plane
    ("services", ("pdp.service", "sidecar")),  # the PDP gRPC service; the Trino sidecar
    ("entry points", ("pdp.cli", "sidecar.__main__", "devstack")),  # may import anything below
)
ROOTS = {"pdp", "sidecar", "devstack"}


def package_of(module: str) -> tuple[int, str] | None:
    """(layer index, package) of the longest package prefix naming `module`."""
    best: tuple[int, str] | None = None
    for index, (_, packages) in enumerate(LAYERS):
        for package in packages:
            if (module == package or module.startswith(package + ".")) and (
                best is None or len(package) > len(best[1])
            ):
                best = (index, package)
    return best


def modules() -> list[tuple[str, Path]]:
    found = []
    for root in sorted(ROOTS):
        for path in sorted((ROOT / root).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found.append((".".join(parts), path))
    return found


def imports(module: str, path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every import in the file, at any depth."""
    is_package = path.name == "__init__.py"
    result = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            result += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                name = ".".join([*base, *([node.module] if node.module else [])])
            else:
                name = node.module or ""
            # `from pdp.wire import proto` imports the module pdp.wire.proto
            result += [(node.lineno, f"{name}.{alias.name}") for alias in node.names]
    return [(line, name) for line, name in result if name.split(".")[0] in ROOTS]


def problem(module: str, name: str) -> str | None:
    """Why `module` may not import `name`, or None if it may."""
    own = package_of(module)
    if own is None:
        return f"{module} is in no layer; add its package to LAYERS"
    target = package_of(name) or package_of(name.rsplit(".", 1)[0])
    if target is None:
        return f"{name} is in no layer"
    if target[0] > own[0]:
        return f"up from {LAYERS[own[0]][0]} to {LAYERS[target[0]][0]}"
    if target[0] == own[0] and target[1] != own[1]:
        return f"sideways within {LAYERS[own[0]][0]}"
    return None


def violations() -> list[str]:
    found = []
    for module, path in modules():
        if module in ROOTS - {"sidecar"}:  # the bare namespace packages import nothing
            continue
        if package_of(module) is None:
            found.append(f"{module} is in no layer; add its package to LAYERS")
        for line, name in imports(module, path):
            if (why := problem(module, name)) is not None:
                found.append(f"{path.relative_to(ROOT)}:{line}: {module} imports {name}: {why}")
    return found


def test_every_import_points_down() -> None:
    assert violations() == []


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("pdp.core.decide", "from pdp.service.server import Revisions", "up from core to services"),
        ("sidecar.app", "from pdp.service import server", "sideways within services"),
        ("pdp.config.load", "def f():\n    import sidecar.app", "up from config to services"),
        ("pdp.service.run", "from pdp.core import decide", None),
    ],
)
def test_the_check_sees_upward_sideways_and_local_imports(
    tmp_path: Path, module: str, source: str, expected: str | None
) -> None:
    path = tmp_path / "m.py"
    path.write_text(source + "\n")
    problems = [why for _, name in imports(module, path) if (why := problem(module, name))]
    assert problems == ([expected] if expected else [])
