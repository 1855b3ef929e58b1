"""DESIGN §2: the import graph is layered, acyclic, and SQL lives in store/.

Every module of the package sits on one level of `LEVELS`, read top (the bottom of the
house: errors) to bottom (the edges). A module may import a module of a lower-numbered
level, or of its own top-level package (store.events may import store.bulk); never one of
its own level in another package (sideways) nor a higher one (upwards). On top of that:
no import cycles at all (inside packages too), no module outside store/ imports
store.schema or sqlalchemy's SQL builders, frameworks only at the edges, and no module
longer than MAX_LINES (migrations aside).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PKG = Path(__file__).parents[1] / "src" / "mailsignal"
LEVELS: tuple[tuple[str, ...], ...] = (
    # bottom
    ("errors",),
    ("settings_privacy",),
    ("model", "settings", "keyring"),
    # pure logic
    (
        "addresses",
        "tokens",
        "engagement",
        "enrich",
        "classify",
        "replies",
        "fetchxml",
        "instrument",
        "sealing",
        "passwords",
        "throttle",
        "demostory",
        "environments",
        "basis",
    ),
    ("urls", "composing"),
    # storage: the only place SQL is written
    ("store",),
    # services
    ("pipeline", "outgoing", "views"),
    ("history", "demo"),
    # edges
    ("web", "mail"),
    ("cli",),
)
LEVEL = {name: n for n, names in enumerate(LEVELS) for name in names}
EDGE = LEVEL["web"]
FRAMEWORKS = {"fastapi", "starlette", "aiosmtpd", "typer", "jinja2", "granian", "rich"}
# What only store/ may use: the schema, and SQLAlchemy beyond the types that carry a
# connection or an expression through (Connection, Engine, ColumnElement, ...).
SQL_BUILDERS = {"select", "insert", "update", "delete", "text", "func", "bindparam", "union_all"}
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    out = {}
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"]
        if not parts or parts[0] == "__main__" or "migrations" in parts:
            continue
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _level(module: str) -> int:
    top = module.split(".")[0]
    if top not in LEVEL:
        raise AssertionError(f"module {module} is not placed in a layer; add it to LEVELS")
    return LEVEL[top]


def _imports(module: str, path: Path) -> list[tuple[str, list[str], int]]:
    """(module imported, names taken from it, line) for every import of the package's own
    modules and of other packages; relative imports resolved."""
    tree = ast.parse(path.read_text())
    package = module.split(".")[:-1] if path.name != "__init__.py" else module.split(".")
    found: list[tuple[str, list[str], int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [alias.name for alias in node.names]
            if not node.level:
                found.append((node.module or "", names, node.lineno))
                continue
            base = package[: len(package) - node.level + 1]
            target = ".".join([*base, node.module] if node.module else base)
            subs = [".".join([*target.split("."), n] if target else [n]) for n in names]
            if node.module or not all(sub in MODULES for sub in subs):
                found.append(
                    (f"mailsignal.{target}" if target else "mailsignal", names, node.lineno)
                )
            # `from . import events`: the submodule itself
            found += [(f"mailsignal.{sub}", [], node.lineno) for sub in subs if sub in MODULES]
    return found


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in MODULES.items():
        for name, _names, _line in _imports(module, path):
            if name.startswith("mailsignal."):
                target = name.removeprefix("mailsignal.")
                while target and target not in MODULES:
                    target = target.rpartition(".")[0]
                if target and target != module:
                    graph[module].add(target)
    return graph


def test_every_module_is_placed() -> None:
    for module in MODULES:
        _level(module)


def test_imports_point_down_only() -> None:
    problems = []
    for module, path in MODULES.items():
        mine, top = _level(module), module.split(".")[0]
        for name, _names, line in _imports(module, path):
            root = name.split(".")[0]
            if root == "mailsignal" and name != "mailsignal":
                other = name.removeprefix("mailsignal.")
                if other.split(".")[0] == top:
                    continue  # inside its own package
                theirs = _level(other)
                if theirs >= mine:
                    way = "sideways" if theirs == mine else "upwards"
                    problems.append(f"{module}:{line} imports {other} ({way})")
            elif root in FRAMEWORKS and mine < EDGE:
                problems.append(f"{module}:{line} imports framework {root} below the edges")
    assert problems == []


def test_there_are_no_import_cycles() -> None:
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(MODULES):
        if module not in state:
            visit(module)
    assert cycles == []


def test_sql_is_written_in_store_only() -> None:
    problems = []
    for module, path in MODULES.items():
        if module.split(".")[0] == "store":
            continue
        for name, names, line in _imports(module, path):
            if name in ("mailsignal.store.schema", "mailsignal.store.bulk") or (
                name == "mailsignal.store" and {"schema", "bulk"} & set(names)
            ):
                problems.append(f"{module}:{line} imports {name} {names}")
            # fetchxml compiles FetchXML to SQLAlchemy Core over the catalog it is given
            # (issue 9 allows it: "it may build SQLAlchemy expressions from the catalog it
            # is given"); it still never sees store.schema, above, nor runs a query.
            if module.split(".")[0] == "fetchxml":
                continue
            if name.split(".")[0] == "sqlalchemy" and SQL_BUILDERS & set(names):
                problems.append(f"{module}:{line} builds SQL: {sorted(SQL_BUILDERS & set(names))}")
        # SQL as text, or a statement run on a connection, outside store/.
        for n, text in enumerate(path.read_text().splitlines(), 1):
            if "exec_driver_sql(" in text or ".execute(text(" in text:
                problems.append(f"{module}:{n} runs SQL text")
    assert problems == []


def test_modules_stay_small() -> None:
    long = {
        module: n
        for module, path in MODULES.items()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_the_checks_can_fail() -> None:
    """The graph walk sees real edges (a test that found nothing to check passes too)."""
    graph = _graph()
    assert "store.events" in graph["pipeline.ingest"]
    assert "store.bulk" in graph["store.events"]
    assert _level("cli.main") > _level("web.app") > _level("pipeline.ingest") > _level("store")
