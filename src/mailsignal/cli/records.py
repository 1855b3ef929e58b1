"""`contacts`, `leads` and `accounts` (add, list, show, set, remove) and `import contacts
|leads|accounts FILE.csv`: the records mail is resolved to (pipeline/parties.py).

A record is named by its id or its address. Adding one, or giving it a new address,
links the mail already sent to that address; removing one deletes no mail.
"""

from __future__ import annotations

import inspect
import json
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ..errors import InputError, NotFoundError
from ..pipeline import parties, partyimport
from ..store import parties as store_parties
from ..store.db import writing
from . import common
from .common import err, out

_Name = Annotated[str | None, typer.Option("--name", help="Full name (an account's name).")]
_Follow = Annotated[
    bool | None,
    typer.Option("--follow/--no-follow", help="Whether mail to it is tracked (followemail)."),
]
_Account = Annotated[
    str | None,
    typer.Option("--account", help="The parent account's id ('none' to clear)."),
]
_Company = Annotated[str | None, typer.Option("--company", help="The company name.")]
_Email = Annotated[str | None, typer.Option("--email", help="Email address ('' for none).")]
_Ref = Annotated[str, typer.Argument(help="The record's id or email address.")]
_SHOWN = ("emailaddress1", "engagementscore", "humanopencount", "humanclickcount", "replycount")


def _values(kind: str, **given: Any) -> dict[str, Any]:
    """The fields the options set (`_trim` shows each kind only the options it takes)."""
    fields = {
        "name": parties.name_field(kind),
        "email": "emailaddress1",
        "follow": "followemail",
        "account": "parentcustomerid",
        "company": "companyname",
    }
    values: dict[str, Any] = {}
    for option, value in given.items():
        if value is None:
            continue
        if option == "account" and value.strip().lower() in ("", "none"):
            value = None
        values[fields[option]] = value
    return values


def _find(conn: Any, kind: str, ref: str) -> uuid.UUID:
    """The record `ref` names: an id, else an address."""
    try:
        return uuid.UUID(ref)
    except ValueError:
        pass
    found = store_parties.by_address(conn, kind, ref.strip().lower())
    if found is None:
        raise NotFoundError(f"no {kind} with id or address {ref!r}")
    return found


def _app(kind: str) -> typer.Typer:
    """The command group of one kind."""
    app = typer.Typer(no_args_is_help=True, help=f"{kind.capitalize()}s mail is resolved to.")

    @app.command("add")
    def add(
        email: Annotated[str | None, typer.Argument(help="Email address.")] = None,
        name: _Name = None,
        account: _Account = None,
        company: _Company = None,
        follow: _Follow = None,
    ) -> None:
        """Add one; mail already sent to its address is linked to it."""
        values = _values(kind, name=name, email=email, follow=follow, account=account)
        values |= _values(kind, company=company)
        settings = common.settings()
        with writing(common.engine(settings)) as conn:
            party_id = parties.add(conn, kind, values, settings)
            row = parties.show(conn, kind, party_id)
        out.print(
            f"added {kind} {party_id}; {row['emailsfollowedcount']} tracked emails linked, "
            f"score {row['engagementscore']:.2f}"
        )

    @app.command("list")
    def list_(
        search: Annotated[str | None, typer.Option(help="Name or address contains.")] = None,
        limit: Annotated[int, typer.Option(min=1, max=10000, help="At most this many.")] = 50,
        offset: Annotated[int, typer.Option(min=0, help="Skip this many first.")] = 0,
        as_json: Annotated[bool, typer.Option("--json", help="JSON lines.")] = False,
    ) -> None:
        """List them by name."""
        settings = common.settings()
        with common.engine(settings).connect() as conn:
            rows = store_parties.listing(conn, kind, contains=search, limit=limit, offset=offset)
        _, key = store_parties.TABLES[kind]
        name = parties.name_field(kind)
        if as_json:
            for row in rows:
                out.print_json(json.dumps({k: common.cell(v) for k, v in row.items()}))
            return
        table = Table("id", "name", *_SHOWN)
        for row in rows:
            table.add_row(
                str(row[key]), row[name] or "", *(str(common.cell(row[c])) for c in _SHOWN)
            )
        out.print(table)

    @app.command("show")
    def show(ref: _Ref) -> None:
        """Every field of one, with its roll-ups and score."""
        settings = common.settings()
        with common.engine(settings).connect() as conn:
            row = parties.show(conn, kind, _find(conn, kind, ref))
        for column, value in row.items():
            out.print(f"{column}: {common.cell(value)}", markup=False, highlight=False)

    @app.command("set")
    def set_(
        ref: _Ref,
        name: _Name = None,
        email: _Email = None,
        account: _Account = None,
        company: _Company = None,
        follow: _Follow = None,
    ) -> None:
        """Change fields; with a new address, its mail follows."""
        values = _values(kind, name=name, email=email, follow=follow, account=account)
        values |= _values(kind, company=company)
        if not values:
            raise InputError("nothing to set: give --name, --email, --follow/--no-follow...")
        settings = common.settings()
        with writing(common.engine(settings)) as conn:
            party_id = _find(conn, kind, ref)
            changed = parties.change(conn, kind, party_id, values, settings)
        out.print(f"{'updated' if changed else 'unchanged'} {kind} {party_id}")

    @app.command("remove")
    def remove(ref: _Ref) -> None:
        """Delete one. Its mail is kept: linked to another record with the address, or
        left unresolved; an account's contacts lose their account."""
        settings = common.settings()
        with writing(common.engine(settings)) as conn:
            party_id = _find(conn, kind, ref)
            held = parties.remove(conn, kind, party_id, settings)
        out.print(f"removed {kind} {party_id}; its {held} deliveries were kept, not deleted")

    _trim(kind, add)
    _trim(kind, set_)
    return app


def _trim(kind: str, command: Any) -> None:
    """Show a command only the options its kind takes (`--account` is for contacts,
    `--company` for leads): typer reads the signature when the app is built."""
    sig = inspect.signature(command, eval_str=True)
    takes = {"account": "parentcustomerid", "company": "companyname"}
    kept = [
        p
        for p in sig.parameters.values()
        if p.name not in takes or takes[p.name] in parties.FIELDS[kind]
    ]
    command.__signature__ = sig.replace(parameters=kept)


contacts_app = _app("contact")
leads_app = _app("lead")
accounts_app = _app("account")


def _import(kind: str) -> Any:
    def run(
        file: Annotated[Path, typer.Argument(help="CSV with Dynamics column names.")],
    ) -> None:
        settings = common.settings()
        engine = common.engine(settings)
        try:
            with (
                file.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as lines,
                writing(engine) as conn,
            ):
                summary = partyimport.import_rows(conn, kind, lines, settings)
        except OSError as exc:
            raise InputError(f"{file}: cannot read ({exc.strerror})") from exc
        out.print(
            f"{kind}s: {summary.lines} lines, {summary.created} created, "
            f"{summary.updated} updated, {summary.unchanged} unchanged, "
            f"{len(summary.errors)} bad lines"
        )
        if summary.not_kept:
            out.print(f"columns not kept: {', '.join(summary.not_kept)}", markup=False)
        for line in summary.errors[:50]:
            err.print(line, markup=False, highlight=False)
        if len(summary.errors) > 50:
            err.print(f"... and {len(summary.errors) - 50} more bad lines")

    run.__doc__ = (
        f"Import {kind}s from a CSV export (emailaddress1, fullname...): by id or address, "
        "created or updated; bad lines are named and skipped."
    )
    return run


def mount(app: typer.Typer, import_app: typer.Typer) -> None:
    """Put the three groups on `app` and their imports under `import`."""
    app.add_typer(contacts_app, name="contacts")
    app.add_typer(leads_app, name="leads")
    app.add_typer(accounts_app, name="accounts")
    for kind in parties.KINDS:
        import_app.command(f"{kind}s")(_import(kind))
