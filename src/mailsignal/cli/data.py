"""`data`: the bundled IP-range lists enrichment reads, and refreshing them by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..errors import InputError
from . import common
from .common import err, out

data_app = typer.Typer(no_args_is_help=True, help="Bundled IP-range lists used by enrichment.")


@data_app.command("list")
def data_list() -> None:
    """List the network lists: source, date, licence, and whether a refreshed copy is used."""
    from ..enrich.network import read_manifest

    settings = common.settings()
    table = Table("name", "labels", "date", "licence", "in use")
    for name, entry in read_manifest().items():
        override = settings.data_dir / "net" / f"{name}.txt"
        table.add_row(
            name,
            ", ".join(entry.labels),
            entry.date,
            entry.licence,
            "refreshed copy" if override.is_file() else "bundled",
        )
    out.print(table)


@data_app.command("refresh")
def data_refresh(
    name: Annotated[str, typer.Argument(help="List name (see `mailsignal data list`).")],
    file: Annotated[Path, typer.Argument(help="The file you downloaded from the vendor.")],
) -> None:
    """Replace a network list with a newer copy downloaded by hand (validated first)."""
    from ..enrich.refresh import list_names, refresh_list

    if name not in list_names():
        raise InputError(f"unknown list {name!r}; known: {', '.join(list_names())}")
    if not file.is_file():
        raise InputError(f"{file}: no such file")
    result = refresh_list(name, file, common.settings().data_dir)
    out.print(
        f"{name}: {result.count} prefixes ({result.ipv4} IPv4, {result.ipv6} IPv6) from "
        f"{result.read} read ({result.source_format}) -> {result.path}"
    )
    for warning in result.warnings:
        err.print(f"[yellow]warning:[/yellow] {warning}")
    out.print("restart `mailsignal serve` / the ingest worker to use it")
