"""Every import points down: a module may import its own package and the layers below it,
never a layer above it nor a sibling package of its own layer. Function-local imports count,
and so do `importlib.import_module("…")` and `__import__("…")`; in pdp and sidecar a name
computed at run time is refused (the check could not see where it points), and so is any import
of the test suite or the benchmarks. The benchmarks and devstack run without the test suite: they
never import it (the tests may import devstack).

The table reads bottom-up, the order in which a newcomer reads the code (README, Layout).
Two more rules keep the structure of issue #23: only pdp.store speaks SQL (SQLAlchemy,
Alembic), and no function in pdp is over 60 lines. Each has a named list of today's exceptions,
which may only shrink: an entry that no longer breaks its rule fails the test until removed."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("collector", ("pdp.collector",)),  # a long-running process's garbage collector (stdlib)
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
    ("console", ("pdp.console",)),  # the governor's console: pages over the admin API
    ("services", ("pdp.service", "sidecar")),  # the PDP gRPC service; the Trino sidecar
    ("entry points", ("pdp.cli", "sidecar.__main__", "devstack")),  # may import anything below
)
ROOTS = {"pdp", "sidecar", "devstack"}
PRODUCTION = ("pdp", "sidecar")  # what ships: never imports these, nor names its imports late
NOT_SHIPPED = ("tests", "benchmarks")
TOOLS = ("benchmarks", "devstack")  # run beside the product, never with the test suite
DYNAMIC = "<a name computed at run time>"
SQL = ("sqlalchemy", "alembic")
MAX_FUNCTION_LINES = 60


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
    """(line, imported module) for every import in the file, at any depth: statements, and calls
    of `importlib.import_module` or `__import__` (DYNAMIC when the name is not a literal)."""
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
        elif isinstance(node, ast.Call) and _imports_by_name(node.func):
            first = node.args[0] if node.args else None
            named = first.value if isinstance(first, ast.Constant) else None
            result.append((node.lineno, named if isinstance(named, str) else DYNAMIC))
    return result


def _imports_by_name(func: ast.expr) -> bool:
    if isinstance(func, ast.Attribute):
        return func.attr == "import_module" and ast.unparse(func.value) == "importlib"
    return isinstance(func, ast.Name) and func.id in ("import_module", "__import__")


def problem(module: str, name: str) -> str | None:
    """Why `module` may not import `name`, or None if it may."""
    shipped = module.split(".")[0] in PRODUCTION
    if name == DYNAMIC:
        return "an import the layer check cannot follow: name the module" if shipped else None
    if name.split(".")[0] in NOT_SHIPPED:
        return f"production code imports {name.split('.')[0]}" if shipped else None
    if name.split(".")[0] not in ROOTS:
        return None  # the standard library and third-party packages
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


def test_benchmarks_and_devstack_never_import_the_tests() -> None:
    found = []
    for root in TOOLS:
        for path in sorted((ROOT / root).rglob("*.py")):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found += [
                f"{path.relative_to(ROOT)}:{line}: {module} imports {name}"
                for line, name in imports(module, path)
                if name.split(".")[0] == "tests"
            ]
    assert found == []


def test_each_layer_and_package_is_listed_once() -> None:
    names = [name for name, _ in LAYERS]
    packages = [package for _, listed in LAYERS for package in listed]
    assert len(set(names)) == len(names) and len(set(packages)) == len(packages)


def test_only_the_store_speaks_sql() -> None:
    """`grep -r sqlalchemy pdp | grep -v pdp/store` comes back empty: the store is the seam."""
    speaking = {
        module
        for module, path in modules()
        if module.startswith("pdp.")
        and package_of(module) != package_of("pdp.store")
        and any(name.split(".")[0] in SQL for _, name in imports(module, path))
    }
    assert speaking == set(), "only pdp.store may import SQLAlchemy"


def long_functions() -> dict[str, int]:
    """`path:qualified name` -> lines, of every function in pdp over MAX_FUNCTION_LINES."""
    found = {}
    for _, path in modules():
        if path.relative_to(ROOT).parts[0] != "pdp":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for qualname, node in _functions(tree, ""):
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            if lines > MAX_FUNCTION_LINES:
                found[f"{path.relative_to(ROOT).as_posix()}:{qualname}"] = lines
    return found


def _functions(node: ast.AST, prefix: str) -> list[tuple[str, ast.AST]]:
    found: list[tuple[str, ast.AST]] = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            name = f"{prefix}{child.name}"
            if not isinstance(child, ast.ClassDef):
                found.append((name, child))
            found += _functions(child, f"{name}.")
        else:
            found += _functions(child, prefix)
    return found


def test_no_function_is_over_sixty_lines() -> None:
    assert long_functions() == {}


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("pdp.crawl.base", 'importlib.import_module("pdp.control")', "up from crawl to control"),
        ("pdp.crawl.base", '__import__("sidecar.app")', "up from crawl to services"),
        ("pdp.crawl.base", "importlib.import_module(name)", "an import the layer check cannot"),
        ("devstack.run", "importlib.import_module(name)", None),
        ("pdp.service.run", "from tests.support import x", "production code imports tests"),
        ("sidecar.app", "import benchmarks.sync_scale", "production code imports benchmarks"),
        ("devstack.record_corpus", "from pdp.service import run", None),
        ("pdp.core.decide", "import sqlalchemy", None),
    ],
)
def test_the_check_sees_imports_by_name_and_of_what_never_ships(
    tmp_path: Path, module: str, source: str, expected: str | None
) -> None:
    path = tmp_path / "m.py"
    path.write_text(source + "\n")
    problems = [why for _, name in imports(module, path) if (why := problem(module, name))]
    assert [p[: len(expected)] for p in problems] == ([expected] if expected else [])


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
