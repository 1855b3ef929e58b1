"""Regenerate the reference pages docs/settings.md and docs/cli.md from the code.

    .venv/bin/python scripts/gen_docs.py        (or `make docs`)

tests/test_docs.py fails when a setting, command, rule or endpoint is missing from docs/.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from mailsignal.cli.main import app
from mailsignal.settings import Settings
from mailsignal.settings_privacy import PrivacySettings

DOCS = Path(__file__).resolve().parents[1] / "docs"

SETTINGS_INTRO = """# Settings

Every setting can be given as an environment variable `MAILSIGNAL_<NAME>` (upper case)
or as a key in the TOML file named by `MAILSIGNAL_CONFIG` (default `<data_dir>/mailsignal.toml`).
Environment variables win over the file. Lists are JSON in the environment
(`MAILSIGNAL_TRUSTED_PROXIES='["10.0.0.0/8"]'`) and TOML arrays in the file. An unknown key in
the file is an error, so a typo never silently does nothing.

The token signing key is not a setting: `mailsignal init` writes it to `<data_dir>/secret.key`
(mode 0600, refused if others can read it); `mailsignal keys rotate` adds a new one.
"""

CLI_INTRO = """# Command line

`mailsignal --help` and `mailsignal COMMAND --help` print the same as this page.
Errors print one line starting with `error:` on stderr and exit with status 2; usage errors
(unknown options, missing arguments) exit with status 2 too, with a message naming the problem.
Every command reads the settings in [settings.md](settings.md).
"""


def settings_md() -> str:
    lines = [SETTINGS_INTRO]
    # The privacy settings (a base class of Settings) after the others, as they read.
    own = [n for n in Settings.model_fields if n not in PrivacySettings.model_fields]
    for name in [*own, *PrivacySettings.model_fields]:
        field = Settings.model_fields[name]
        if name == "data_dir":
            default: Any = "$XDG_DATA_HOME/mailsignal (~/.local/share/mailsignal)"
        elif field.default_factory is not None:
            default = field.default_factory()  # type: ignore[call-arg]
        else:
            default = field.default
        lines.extend(
            [
                f"## `{name}`",
                "",
                str(field.description),
                "",
                f"- environment: `MAILSIGNAL_{name.upper()}`",
                f"- default: `{default}`" if default is not None else "- default: none",
                "",
            ]
        )
    return "\n".join(lines)


def cli_md() -> str:
    lines = [CLI_INTRO]

    def walk(cmd: Any, path: list[str]) -> None:
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                walk(sub, [*path, name])
            return
        lines.extend([f"## `mailsignal {' '.join(path)}`", "", (cmd.help or "").strip(), ""])
        params = [p for p in cmd.params if p.name != "help"]
        for p in params:
            if type(p).__name__.endswith("Argument"):
                lines.append(f"- `{p.name.upper()}` (argument): {getattr(p, 'help', '') or ''}")
            else:
                opts = " / ".join(f"`{o}`" for o in [*p.opts, *p.secondary_opts])
                d = p.default
                shown = d not in (None, False, "") and not callable(d)
                lines.append(f"- {opts}: {p.help or ''}" + (f" Default: `{d}`." if shown else ""))
        if params:
            lines.append("")

    walk(typer.main.get_command(app), [])
    return "\n".join(lines)


RULES_INTRO = """# Classifier rules

Every open, click and download is kept and labelled `human`, `forward`, `machine` or
`unknown`, with a confidence and the list of rules that fired (and those that did not).
Each rule adds a weight in log-odds to a prior for the event kind (open 0.4, click and
download 0.8, reply 3.0); the sign of the sum gives human or machine, its size the
confidence, and a sum within 0.25 of zero is `unknown`. Pass-one rules read only the
event's own facts (user agent, network, method, time since sending); pass-two rules
(marked *timeline*) read the recipient's whole timeline with pass-one verdicts. A rule is
switched off with the `disabled_rules` setting. Classifier version: `{version}`.
Sources: NS = `noise-signals.md`, FIELD = `field.md` (the research notes under
shared/reference), and the public issue threads named.

How well they work is measured, not asserted: `bench/accuracy.py` runs the real pipeline
over a labelled evaluation set generated from documented behaviour (`bench/evalset.py`:
MPP, Safe Links sweeps and time-of-click checks, gateway scans, Gmail proxy and prefetch,
forwards, people on VPNs, Private Relay, reading within a minute, images blocked) and
prints precision and recall per event kind and per email beside three baselines.

| id | argues | kinds | weight | pass | what it means | source |
|---|---|---|---|---|---|---|
"""

FACTS_INTRO = """
## Enrichment facts

Rules read what the enrichers wrote about each hit by the names the enrichers declare:
`ua.*` from the user-agent enricher, `net.*` from the network enricher (their declarations
are `USER_AGENT_FACTS` and `NETWORK_FACTS` in `src/mailsignal/model.py`). The classifier
reads a fact as its kind says: `bool` its truth, `str` as text, `labels` as a set of
labels (stored as a JSON list), `any` as stored. A fact missing from a stored hit (an
older row, or an enricher that failed and left `{"error": ...}` in its namespace) reads
as its default. "agent", which the sentences use, is `ua.family`, else the first 60
characters of the user agent.

To add an enricher: write a class in its own module under `src/mailsignal/enrich/` with
a `namespace`, `provides` (one `FactSpec` per key it writes: name, kind, default, what it
holds) and `enrich(hit) -> dict`; add it to `Pipeline.default()`. A rule reading its
facts names them in its row in `classify/rules.py` (`facts=("ns.name",)`, read in the
check as `features["ns.name"]`; or `lookups=` for a per-event `event.fact("ns.name")`).
Ingest hands the classifier `pipeline.facts`, and a rule naming a fact no enricher
declares is refused before anything runs. `tests/classify/test_plugin.py` does all this.

| fact | kind | when missing | what it holds | read by |
|---|---|---|---|---|
"""


def rules_md() -> str:
    from mailsignal.classify import RULES, VERSION, Derived
    from mailsignal.enrich import Pipeline

    lines = [RULES_INTRO.format(version=VERSION).rstrip("\n")]
    for rule in RULES:
        kinds = ", ".join(sorted(k.name.lower() for k in rule.kinds))
        lines.append(
            f"| `{rule.id}` | {rule.verdict} | {kinds} | {rule.weight:+g} | "
            f"{'timeline' if rule.timeline else 'event'} | {rule.description} | "
            f"{rule.source} |"
        )
    # Which rules read each fact: by name, per event (`lookups`), or through a derived value.
    readers: dict[str, list[str]] = {}
    for rule in RULES:
        for read in (*rule.facts, *rule.lookups):
            for name in read.reads if isinstance(read, Derived) else (read,):
                readers.setdefault(name, []).append(rule.id)
    lines.append(FACTS_INTRO.rstrip("\n"))
    for name, spec in Pipeline.default().facts.items():
        default = "empty" if spec.default == frozenset() else f"`{spec.default!r}`"
        read_by = ", ".join(f"`{r}`" for r in dict.fromkeys(readers.get(name, []))) or "-"
        lines.append(f"| `{name}` | {spec.kind} | {default} | {spec.description} | {read_by} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    (DOCS / "rules.md").write_text(rules_md())
    (DOCS / "settings.md").write_text(settings_md())
    (DOCS / "cli.md").write_text(cli_md())


if __name__ == "__main__":
    main()
