"""`privacy export` and `privacy erase`: a recipient's rights of access and erasure (issue
13, docs/privacy.md). Registered on the `privacy` sub-app by main.py.

    privacy export ADDRESS [--output FILE]   every stored row about ADDRESS, one JSON document
    privacy erase ADDRESS [--yes]            delete or anonymise every row and file about it
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from ..addresses import normalise_address
from ..errors import InputError
from . import common
from .common import out


def export(
    address: Annotated[str, typer.Argument(help="The recipient's email address.")],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the document here (mode 0600), not stdout."),
    ] = None,
) -> None:
    """Every stored row about ADDRESS as one JSON document: its contacts, leads and
    accounts, the copies sent to it, their events (network facts, verdicts, reasons),
    its replies, retained aggregates, scores, do-not-track entry and consent."""
    from ..pipeline.rights import export as run_export

    address = normalise_address(address)
    settings = common.settings()
    engine = common.engine(settings)
    signer = common.signer(settings)
    if output is None:
        run_export(engine, signer, address, sys.stdout, settings, actor="cli")
        return
    try:
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:
        raise InputError(f"cannot write {output}: {exc.strerror}") from None
    os.fchmod(fd, 0o600)  # an existing file keeps its mode otherwise
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        counts = run_export(engine, signer, address, fh, settings, actor="cli")
    summary = ", ".join(f"{n} {name}" for name, n in counts.items())
    out.print(f"wrote {output}: {summary}")


def erase(
    address: Annotated[str, typer.Argument(help="The recipient's email address.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the counts as JSON.")] = False,
    vacuum: Annotated[
        bool,
        typer.Option(
            help="SQLite: rebuild the database file afterwards, so no deleted byte survives "
            "in its free space (takes a while on a large store; PostgreSQL: no effect)."
        ),
    ] = True,
) -> None:
    """Delete or anonymise every row and file about ADDRESS: its contacts and leads, the
    copies sent to it and their events, its replies, journal and spooled hits, queued
    outbound copies; counters and scores recounted from what remains. A do-not-track
    choice stays, by keyed hash. Cannot be undone."""
    from ..pipeline.rights import erase as run_erase

    address = normalise_address(address)
    if not yes and not typer.confirm(f"Erase every record of {address}? This cannot be undone"):
        raise InputError("not erased (confirm, or pass --yes)")
    settings = common.settings()
    engine = common.engine(settings)
    done = run_erase(
        engine,
        common.signer(settings),
        address,
        settings,
        actor="cli",
        source="cli",
        vacuum=vacuum,
    )
    if as_json:
        json.dump({"addresshash": done.address_hash, **done.counts}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    out.print(f"erased {address} (audit subject {done.address_hash[:16]}...)")
    for name, n in done.counts.items():
        out.print(f"  {name}: {n}")
