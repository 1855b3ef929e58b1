"""`emails` (track an .eml, show and list emails) and `events` (every event of an email)."""

from __future__ import annotations

import json
import re
import sys
from datetime import datetime
from email.utils import parseaddr
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .. import instrument, outgoing
from ..errors import InputError
from ..store import emails as store_emails
from ..store import events as store_events
from . import common
from .common import out

emails_app = typer.Typer(no_args_is_help=True, help="Track and inspect outgoing emails.")
events_app = typer.Typer(no_args_is_help=True, help="Opens, clicks and replies.")

SHOWN = (
    "activityid",
    "subject",
    "sender",
    "torecipients",
    "senton",
    "opencount",
    "humanopencount",
    "machineopencount",
    "forwardopencount",
    "linksclickedcount",
    "humanlinksclickedcount",
    "attachmentopencount",
    "replycount",
    "lastopenedtime",
    "lasthumanopenedtime",
    "engagementverdict",
    "noiseflag",
)
KINDS = {0: "open", 1: "click", 2: "download", 3: "reply"}
_UNSAFE = re.compile(r"[^A-Za-z0-9@._+-]")


@emails_app.command("instrument")
def emails_instrument(
    file: Annotated[Path, typer.Argument(help="An .eml file (RFC 5322 message).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Where to write each copy.")] = Path(
        "instrumented"
    ),
    sender: Annotated[str | None, typer.Option(help="Default: the From address.")] = None,
    sent_at: Annotated[datetime | None, typer.Option(help="Send time (default now, UTC).")] = None,
) -> None:
    """Track an .eml file: write each recipient's copy into --out as
    <activityid>-<address>.eml. The same Message-ID from the same sender again is the
    same email."""
    if not file.is_file():
        raise InputError(f"{file}: no such file")
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise InputError(f"{file}: cannot read ({exc.strerror})") from exc
    msg = instrument.parse_message(raw)
    sender = sender or parseaddr(str(msg.get("From", "")))[1]
    if not sender:
        raise InputError(f"{file}: no From address; pass --sender")
    recipients = outgoing.recipients_of(msg)
    if not recipients:
        raise InputError(f"{file}: no To or Cc recipients")
    # Before anything is stored: an email recorded without its copies could not be sent.
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--out {out_dir}: cannot create the folder ({exc.strerror})") from exc
    settings = common.settings()
    service = outgoing.Outgoing.from_settings(settings, common.signer(settings))
    written: list[Path] = []
    table = Table("recipient", "tracked", "why not", "file")
    # The copies are written inside the transaction: if one cannot be, none is kept and
    # the email is not recorded.
    with common.engine(settings).begin() as conn:
        result = service.track(
            conn, msg, sender=sender, recipients=recipients, sent_at=common.aware(sent_at)
        )
        try:
            names = _copy_names(result.activity_id, [c.recipient for c in result.copies])
            for copy, name in zip(result.copies, names, strict=True):
                path = out_dir / name
                written.append(path)
                path.write_bytes(copy.as_bytes("\r\n"))
                table.add_row(
                    copy.recipient,
                    "yes" if copy.decision.tracked else "no",
                    ", ".join(copy.decision.reasons),
                    str(path),
                )
        except OSError as exc:
            for path in written:
                path.unlink(missing_ok=True)
            raise InputError(
                f"--out {out_dir}: cannot write {written[-1].name} ({exc.strerror}); "
                "nothing was recorded"
            ) from exc
    again = " - recorded before: the same email, its copies again" if result.replayed else ""
    out.print(f"email {result.activity_id} ({result.message_id}){again}")
    out.print(table)


def _copy_names(activity_id: object, recipients: list[str]) -> list[str]:
    """A file name per copy that says whose it is: the email's id (so copies of other
    emails in the same folder stay apart) and the recipient's address with anything
    but letters, digits and ``@._+-`` made ``_`` (no path separators, no dot files);
    a name two addresses share gets a counter."""
    names: list[str] = []
    taken: set[str] = set()
    for recipient in recipients:
        stem = f"{activity_id}-{_UNSAFE.sub('_', recipient)[:200]}"
        name, n = f"{stem}.eml", 1
        while name.lower() in taken:  # case-insensitive file systems
            n += 1
            name = f"{stem}-{n}.eml"
        taken.add(name.lower())
        names.append(name)
    return names


@emails_app.command("show")
def emails_show(
    activity_id: Annotated[str, typer.Argument(help="The email's activityid.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show an email with its raw and human counters."""
    settings = common.settings()
    key = common.parse_uuid(activity_id)
    with common.engine(settings).connect() as conn:
        row = store_emails.get(conn, key)
        row["deliveries"] = store_emails.deliveries(conn, key)
    if as_json:
        out.print_json(json.dumps(row, default=str))
        return
    table = Table("field", "value", show_header=False)
    for name in SHOWN:
        table.add_row(name, str(row[name]))
    out.print(table)


@emails_app.command("list")
def emails_list(
    limit: Annotated[int, typer.Option(min=1, max=10000, help="How many.")] = 20,
) -> None:
    """List the most recent emails with raw and human counts."""
    settings = common.settings()
    with common.engine(settings).connect() as conn:
        rows = store_emails.list_recent(conn, limit=limit)
    table = Table("sent", "subject", "opens raw/human", "clicks raw/human", "verdict")
    table.add_column("activityid", no_wrap=True, min_width=36)
    for r in rows:
        table.add_row(
            str(r["senton"])[:16],
            (r["subject"] or "")[:40],
            f"{r['opencount']}/{r['humanopencount']}",
            f"{r['linksclickedcount']}/{r['humanlinksclickedcount']}",
            r["engagementverdict"],
            str(r["activityid"]),
        )
    out.print(table)


@events_app.command("list")
def events_list(
    activity_id: Annotated[str, typer.Argument(help="The email's activityid.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """List every event of an email with verdict, confidence and reasons."""
    settings = common.settings()
    key = common.parse_uuid(activity_id)
    with common.engine(settings).connect() as conn:
        store_emails.get(conn, key)
        rows = store_events.of_email(conn, key)
    if as_json:
        for r in rows:
            sys.stdout.write(json.dumps(r, default=str) + "\n")
        return
    table = Table("time", "kind", "recipient", "verdict", "conf", "reasons", "user agent")
    for r in rows:
        reasons = ", ".join(e["rule"] for e in (r["reasons"] or {}).get("fired", []))
        table.add_row(
            str(r["emailinteractiontime"])[:19],
            KINDS.get(r["interactiontype"], "?"),
            r["emailaddress"],
            r["verdict"],
            f"{r['confidence']:.2f}",
            reasons,
            (r["interactionuseragent"] or "")[:40],
        )
    out.print(table)
