"""`mailbox set|show` and `sync-replies`: reps' IMAP mailboxes, read for replies.

Passwords are read from standard input or a hidden prompt, never from argv (which `ps`
and shell history show), and are never printed.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from ..errors import InputError, MailSignalError
from ..keyring import Keyring, load_keyring
from ..mail.imap import connect_imap
from ..pipeline import mailboxes as mb
from ..pipeline.mailsync import Outcome, SyncSummary, sync_all
from ..settings import Settings
from . import common
from .common import err, out

mailbox_app = typer.Typer(no_args_is_help=True, help="Reps' IMAP mailboxes read for replies.")
COLUMNS = (  # summary column -> outcome
    ("replies", Outcome.REPLY),
    ("forwards", Outcome.FORWARD),
    ("auto-replies", Outcome.AUTO_REPLY),
    ("bounces", Outcome.BOUNCE),
    ("notices", Outcome.NOTICE),
    ("unmatched", Outcome.UNMATCHED),
    ("own", Outcome.OWN),
    ("already stored", Outcome.DUPLICATE),
    ("errors", Outcome.ERROR),
)


@mailbox_app.command("set")
def mailbox_set(
    address: Annotated[str, typer.Argument(help="The rep's address (a MailSignal user).")],
    host: Annotated[str, typer.Option(help="IMAP server host name.")],
    port: Annotated[int | None, typer.Option(help="Port; default 993 for tls, else 143.")] = None,
    security: Annotated[str, typer.Option(help="tls, starttls, or none (localhost only).")] = "tls",
    username: Annotated[str | None, typer.Option(help="Login; default the address.")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    folder: Annotated[
        list[str] | None, typer.Option("--folder", help="Folder to read; repeat (default INBOX).")
    ] = None,
) -> None:
    """Set a rep's IMAP mailbox; the password is stored encrypted with the instance key."""
    password: str | None = None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise InputError("--password-stdin given but standard input holds no password")
    elif sys.stdin.isatty():
        typed = typer.prompt(
            "IMAP password (empty keeps the stored one)", default="", hide_input=True
        )
        password = typed or None
    settings = common.settings()
    keyring = load_keyring(settings.secret_file)
    with common.engine(settings).begin() as conn:
        row = mb.set_mailbox(
            conn,
            keyring,
            address,
            host=host,
            port=port,
            security=security,
            username=username,
            password=password,
            folders=folder,
        )
    out.print(
        f"mailbox for {row['address']}: {row['host']}:{row['port']} ({row['security']}) as "
        f"{row['username']}, folders {', '.join(row['folders'])}; password "
        f"{'stored encrypted' if password is not None else 'kept'}"
    )


@mailbox_app.command("show")
def mailbox_show(
    address: Annotated[str | None, typer.Argument(help="One rep; default all.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show mailboxes: server, folders, read cursor, last sync and last error (no secret)."""
    settings = common.settings()
    with common.engine(settings).connect() as conn:
        rows = mb.list_mailboxes(conn, address)
    if as_json:
        out.print_json(json.dumps(rows, default=str))
        return
    table = Table("rep", "server", "login", "password", "folders (uidvalidity/last uid)")
    table.add_column("last sync")
    table.add_column("last error", overflow="fold")
    for r in rows:
        state = r["syncstate"] or {}
        folders = ", ".join(
            f"{f} ({state[f]['uidvalidity']}/{state[f]['lastuid']})" if f in state else f
            for f in r["folders"]
        )
        table.add_row(
            r["address"],
            f"{r['host']}:{r['port']} {r['security']}",
            r["username"],
            r["secret"],
            folders,
            str(r["lastsyncon"] or "never")[:19],
            r["lasterror"] or "",
        )
    out.print(table if rows else "no mailboxes: add one with `mailsignal mailbox set`")


def progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )


def _tracker(bar: Progress) -> Callable[[str, int, int], None]:
    """A progress callback with one bar per mailbox folder."""
    tasks: dict[str, TaskID] = {}

    def advance(what: str, done: int, total: int) -> None:
        if what not in tasks:
            tasks[what] = bar.add_task(what, total=total)
        bar.update(tasks[what], completed=done, total=total)

    return advance


def summary_table(rows: list[tuple[str, SyncSummary]], first: str) -> Table:
    table = Table(first, "read", *(name for name, _o in COLUMNS))
    for name, summary in rows:
        table.add_row(name, str(summary.read), *(str(summary.counts[o]) for _n, o in COLUMNS))
    return table


def report(summary: SyncSummary, label: str = "") -> None:
    for note in summary.notes:
        err.print(f"[yellow]note:[/yellow] {note}")
    for problem in summary.errors:
        err.print(f"[red]error:[/red] {label}{problem}")


def sync_replies(
    follow: Annotated[bool, typer.Option(help="Keep polling (setting imap_poll_seconds).")] = False,
    user: Annotated[str | None, typer.Option(help="Only this rep's mailbox.")] = None,
    full: Annotated[
        bool, typer.Option(help="Read every message again (stores no duplicates).")
    ] = False,
) -> None:
    """Read reps' mailboxes over IMAP and record replies, auto-replies and bounces."""
    settings = common.settings()
    engine = common.engine(settings)
    keyring = load_keyring(settings.secret_file)
    stopped = _sync_once(engine, settings, keyring, user, full)
    if not follow:
        if stopped:
            raise MailSignalError(
                "; ".join(stopped) + ". Messages read before that are stored and will not "
                "be read again; run `mailsignal sync-replies` again to continue."
            )
        return
    try:
        while True:
            for line in stopped:
                err.print(f"[red]error:[/red] {line} (retrying in {settings.imap_poll_seconds:g}s)")
            time.sleep(settings.imap_poll_seconds)
            try:
                stopped = _sync_once(engine, settings, keyring, user, False)
            except OperationalError as exc:  # the database is away: keep polling, like ingest
                stopped = [f"database unavailable ({exc.orig or exc})"]
    except KeyboardInterrupt:
        err.print("stopped; every message read so far is stored")


def _sync_once(
    engine: Engine, settings: Settings, keyring: Keyring, user: str | None, full: bool
) -> list[str]:
    """One pass over the mailboxes; prints the summary and returns why any stopped early."""
    with progress() as bar:
        results = sync_all(
            engine, settings, keyring, connect_imap, address=user, full=full, progress=_tracker(bar)
        )
    if not results:
        out.print("no mailboxes: add one with `mailsignal mailbox set`")
        return []
    out.print(summary_table(results, "mailbox"))
    for address, summary in results:
        report(summary, f"{address}: ")
    return [f"{a}: {s.failed}" for a, s in results if s.failed]
