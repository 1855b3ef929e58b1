"""`views`: saved FetchXML views, shipped and your own: list, show, run, add, remove."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..errors import InputError
from . import common
from .common import out

views_app = typer.Typer(no_args_is_help=True, help="Saved FetchXML views, shipped and your own.")


@views_app.command("list")
def views_list() -> None:
    """List shipped and user views with their ids."""
    from .. import views

    table = Table("slug", "name", "entity", "kind")
    table.add_column("savedqueryid", no_wrap=True, min_width=36)
    for v in views.all_views(common.settings().data_dir):
        table.add_row(v.slug, v.name, v.entity, "shipped" if v.shipped else "user", str(v.id))
    out.print(table)


@views_app.command("show")
def views_show(name: Annotated[str, typer.Argument(help="Slug, name or id.")]) -> None:
    """Print a view's description and FetchXML."""
    from .. import views

    view = views.find(common.settings().data_dir, name)
    out.print(f"{view.name} ({view.slug}, {view.id})\n{view.description}\nsource: {view.source}")
    sys.stdout.write(view.fetchxml + "\n")


@views_app.command("run")
def views_run(
    name: Annotated[str, typer.Argument(help="Slug, name or id (see `views list`).")],
    fmt: Annotated[str, typer.Option("--format", help="table, json or csv.")] = "table",
    as_user: Annotated[
        str | None,
        typer.Option(
            "--as", help="Run as this user (their rows and time zone); default: as admin."
        ),
    ] = None,
) -> None:
    """Run a saved view and print its rows (stopped after query_timeout_seconds)."""
    import csv

    from .. import views
    from ..fetchxml import Caller
    from ..store.bounds import QueryBound
    from ..store.fetch import load_caller

    if fmt not in ("table", "json", "csv"):
        raise InputError(f"unknown format {fmt!r}: use table, json or csv")
    settings = common.settings()
    view = views.find(settings.data_dir, name)
    with common.engine(settings).connect() as conn:
        if as_user:
            caller = load_caller(conn, common.require_user(conn, as_user)["systemuserid"])
        else:
            caller = Caller(uuid.UUID(int=0), is_admin=True)
        result = views.run(conn, view, caller, bound=QueryBound(settings.query_timeout_seconds))
    if fmt == "json":
        for row in result.rows:
            sys.stdout.write(
                json.dumps({k: None if v is None else common.cell(v) for k, v in row.items()})
                + "\n"
            )
    elif fmt == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(result.columns)
        writer.writerows([[common.cell(row[c]) for c in result.columns] for row in result.rows])
    else:
        table = Table(*result.columns, title=view.name)
        for row in result.rows:
            table.add_row(*("" if row[c] is None else str(row[c]) for c in result.columns))
        out.print(table)
        out.print(
            f"{len(result.rows)} rows" + (" (more: add paging)" if result.more_records else "")
        )


@views_app.command("add")
def views_add(
    slug: Annotated[str, typer.Argument(help="Short id: lower-case letters, digits, dashes.")],
    file: Annotated[Path, typer.Argument(help="A file holding one <fetch> query.")],
    name: Annotated[str, typer.Option(help="Display name.")] = "",
    description: Annotated[str, typer.Option(help="One sentence.")] = "",
    replace: Annotated[bool, typer.Option("--replace", help="Overwrite your view.")] = False,
) -> None:
    """Add your own FetchXML view (validated by the engine first)."""
    from .. import views

    if not file.is_file():
        raise InputError(f"{file}: no such file")
    view = views.add(
        common.settings().data_dir,
        slug,
        file.read_text("utf-8"),
        name=name,
        description=description,
        replace=replace,
    )
    out.print(f"added view {view.slug} ({view.id}) on {view.entity}")


@views_app.command("remove")
def views_remove(slug: Annotated[str, typer.Argument(help="Your view's slug.")]) -> None:
    """Remove one of your views (shipped views stay)."""
    from .. import views

    views.remove(common.settings().data_dir, slug)
    out.print(f"removed view {slug}")
