"""DESIGN §2: each layer imports only the layers above it; frameworks only at the edges."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).parents[1] / "src" / "mailsignal"
LEVELS = {
    "errors": 0,
    "settings": 0,
    "model": 0,
    "tokens": 1,
    "attachments": 1,
    "instrument": 1,
    "instrument_html": 1,
    "enrich": 1,
    "classify": 1,
    "scoring": 1,
    "fetchxml": 2,
    "mail.replies": 1,
    "mail.sync": 2,
    "store": 2,
    "ingest": 2,
    "outgoing": 2,
    "privacy": 2,
    "demo": 2,
    "history": 2,
    "views": 2,
    "sweep": 2,
    "web": 3,
    "mail": 3,
    "cli": 3,
    "console": 3,
}
FRAMEWORKS = {"fastapi", "starlette", "aiosmtpd", "typer", "jinja2", "granian", "rich"}


def _level(module: str) -> int:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        key = ".".join(parts[:n])
        if key in LEVELS:
            return LEVELS[key]
    raise AssertionError(f"module {module} is not placed in a layer; add it to LEVELS")


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"]
        if not parts or parts[0] == "__main__" or "migrations" in parts:
            continue
        out.append((".".join(parts), path))
    return out


def _imports(module: str, path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text())
    package = module.split(".")[:-1] if path.name != "__init__.py" else module.split(".")
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
                if node.module:
                    found.append(("mailsignal." + name, node.lineno))
                else:
                    for alias in node.names:
                        sub = [*base, alias.name]
                        if (
                            PKG.joinpath(*sub).with_suffix(".py").exists()
                            or PKG.joinpath(*sub).is_dir()
                        ):
                            found.append(("mailsignal." + ".".join(sub), node.lineno))
            else:
                found.append((node.module or "", node.lineno))
    return found


def test_imports_point_upwards_only() -> None:
    problems = []
    for module, path in _modules():
        mine = _level(module)
        for name, line in _imports(module, path):
            top = name.split(".")[0]
            if top == "mailsignal" and name != "mailsignal":
                theirs = _level(name.removeprefix("mailsignal."))
                if theirs > mine:
                    problems.append(
                        f"{path.name}:{line} {module} (layer {mine}) imports {name} "
                        f"(layer {theirs})"
                    )
            elif top in FRAMEWORKS and mine < 3:
                problems.append(f"{path.name}:{line} {module} imports framework {top}")
    assert problems == []


def test_every_module_is_placed() -> None:
    for module, _path in _modules():
        _level(module)
