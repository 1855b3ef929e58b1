"""Every setting, CLI command, classifier rule and HTTP endpoint is documented (Datasette's
habit): adding one without its documentation fails here."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import typer

from mailsignal.classify import RULES
from mailsignal.cli.main import app
from mailsignal.settings import Settings

ROOT = Path(__file__).parents[1]
DOCS = ROOT / "docs"
sys.path.insert(0, str(ROOT / "scripts"))


def _commands() -> list[str]:
    found: list[str] = []

    def walk(cmd: object, path: list[str]) -> None:
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                walk(sub, [*path, name])
        else:
            found.append(" ".join(path))

    walk(typer.main.get_command(app), [])
    return found


@pytest.mark.parametrize("name", list(Settings.model_fields))
def test_setting_documented(name: str) -> None:
    assert f"## `{name}`" in (DOCS / "settings.md").read_text()


@pytest.mark.parametrize("command", _commands())
def test_command_documented(command: str) -> None:
    assert f"## `mailsignal {command}`" in (DOCS / "cli.md").read_text()


@pytest.mark.parametrize("rule", [r.id for r in RULES])
def test_rule_documented(rule: str) -> None:
    assert f"| `{rule}` |" in (DOCS / "rules.md").read_text()


def test_endpoints_documented(tmp_path: Path) -> None:
    from mailsignal.web.app import create_api

    text = (DOCS / "api.md").read_text()
    for path in ("/o/{token}.gif", "/c/{token}"):
        assert f"`GET {path}`" in text
    # routes straight from the app, so a new endpoint cannot hide
    from fastapi.routing import APIRoute

    from mailsignal.keyring import create_secret

    create_secret(tmp_path / "secret.key")
    api = create_api(Settings(data_dir=tmp_path))
    for route in api.routes:
        if isinstance(route, APIRoute):
            for method in route.methods:
                assert f"`{method} {route.path}`" in text, f"{method} {route.path} undocumented"
    api.state.engine.dispose()


def test_generated_pages_are_current() -> None:
    import gen_docs

    assert (DOCS / "settings.md").read_text() == gen_docs.settings_md(), "run make docs"
    assert (DOCS / "cli.md").read_text() == gen_docs.cli_md(), "run make docs"
    assert (DOCS / "rules.md").read_text() == gen_docs.rules_md(), "run make docs"


def _doc_pages() -> list[Path]:
    return [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_no_dead_links_between_pages() -> None:
    """Every relative link in README, CHANGELOG and docs/ names a file that exists, and
    every `docs/NAME.md` mentioned in text or in a setting's description too."""
    dead = []
    for page in _doc_pages():
        text = page.read_text("utf-8")
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (page.parent / target).exists():
                dead.append(f"{page.name}: {target}")
        for name in re.findall(r"\bdocs/([\w.-]+\.md)\b", text):
            if not (ROOT / "docs" / name).exists():
                dead.append(f"{page.name}: docs/{name}")
    assert dead == []


def test_readme_layout_names_every_package() -> None:
    """The README's Layout section names every top-level module and package of the code."""
    layout = (ROOT / "README.md").read_text("utf-8").split("## Layout", 1)[1]
    pkg = ROOT / "src" / "mailsignal"
    names = sorted(
        p.stem if p.is_file() else p.name
        for p in pkg.iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").exists()
    )
    missing = [n for n in names if not re.search(rf"\b{re.escape(n)}\b", layout)]
    assert missing == []
