"""The `mailsignal` command line (Typer + Rich). Every command is in docs/cli.md."""

from __future__ import annotations

import json
import logging
import multiprocessing
import sys
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy import func, select

from . import __version__, console, instrument, outgoing
from .errors import InputError, MailSignalError, NotFoundError
from .mail.cli_mail import import_mail, mailbox_app, sync_replies
from .mail.cli_relay import outbound_app, relay
from .settings import create_secret, load_settings, rotate_secret
from .store import repo
from .store.db import make_engine, migrate
from .store.scores import TABLES

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="MailSignal: email engagement tracking with human/machine labels.",
)
users_app = typer.Typer(no_args_is_help=True, help="Reps and admins (systemuser).")
org_app = typer.Typer(no_args_is_help=True, help="The organization and its tracking switch.")
emails_app = typer.Typer(no_args_is_help=True, help="Track and inspect outgoing emails.")
events_app = typer.Typer(no_args_is_help=True, help="Opens, clicks and replies.")
keys_app = typer.Typer(no_args_is_help=True, help="The token signing keyring.")
data_app = typer.Typer(no_args_is_help=True, help="Bundled IP-range lists used by enrichment.")
import_app = typer.Typer(no_args_is_help=True, help="Bring in history: emails, hits, mail.")
export_app = typer.Typer(no_args_is_help=True, help="Take data out.")
report_app = typer.Typer(no_args_is_help=True, help="Reports.")
views_app = typer.Typer(no_args_is_help=True, help="Saved FetchXML views, shipped and your own.")
app.add_typer(users_app, name="users")
app.add_typer(org_app, name="org")
app.add_typer(emails_app, name="emails")
app.add_typer(events_app, name="events")
app.add_typer(keys_app, name="keys")
app.add_typer(data_app, name="data")
app.add_typer(import_app, name="import")
app.add_typer(export_app, name="export")
app.add_typer(report_app, name="report")
app.add_typer(views_app, name="views")
app.command("relay")(relay)
app.add_typer(mailbox_app, name="mailbox")
app.command("sync-replies")(sync_replies)
import_app.command("mail")(import_mail)
app.add_typer(outbound_app, name="outbound")

out, err = console.out, console.err
_settings, _engine, _signer = console.settings, console.engine, console.signer


@app.command()
def version() -> None:
    """Print the MailSignal version."""
    out.print(__version__)


@app.command()
def init() -> None:
    """Create the data directory, the signing key (0600), the schema and the organization."""
    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    created = create_secret(settings.secret_file)
    engine = make_engine(settings.db_url)
    migrate(engine)
    with engine.begin() as conn:
        org = repo.get_org(conn)
    out.print(f"data directory  {settings.data_dir}")
    out.print(f"signing key     {settings.secret_file} ({'created' if created else 'kept'})")
    out.print(f"database        {engine.url.render_as_string(hide_password=True)} (migrated)")
    out.print(
        f"organization    {org['name']} (tracking "
        f"{'on' if org['isemailmonitoringallowed'] else 'off'})"
    )


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (setting: host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (setting: port).")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes.")] = None,
    ingest: Annotated[bool, typer.Option(help="Also run the ingest worker.")] = True,
) -> None:
    """Serve the tracker, REST API and UI (granian), and ingest hits in the background."""
    from granian import Granian

    settings = _settings()
    engine = _engine(settings)
    migrate(engine)
    _signer(settings)  # fail now, not in every worker, if the key is missing or unsafe
    worker: multiprocessing.process.BaseProcess | None = None
    if ingest:
        worker = multiprocessing.get_context("spawn").Process(
            target=_ingest_forever, name="mailsignal-ingest", daemon=True
        )
        worker.start()
    out.print(
        f"MailSignal {__version__} on http://{host or settings.host}:{port or settings.port}"
        f" (tracking base URL {settings.base_url})"
    )
    try:
        Granian(
            "mailsignal.web.app:create_app",
            factory=True,
            interface="asgi",  # type: ignore[arg-type]
            address=host or settings.host,
            port=port or settings.port,
            workers=workers or settings.workers,
            loop="uvloop",  # type: ignore[arg-type]
            log_level=settings.log_level,  # type: ignore[arg-type]
        ).serve()
    finally:
        if worker is not None:
            worker.terminate()
            worker.join(5)


def _ingest_forever() -> None:
    from .ingest import Ingestor

    settings = load_settings()
    logging.basicConfig(level=settings.log_level.upper())
    ingestor = Ingestor(make_engine(settings.db_url), settings)
    ingestor.run_forever(threading.Event())


@app.command("ingest")
def ingest_cmd(
    follow: Annotated[bool, typer.Option(help="Keep polling the journal.")] = False,
) -> None:
    """Move journaled hits into the store (once, or continuously with --follow)."""
    from .ingest import Ingestor

    settings = _settings()
    ingestor = Ingestor(_engine(settings), settings)
    if follow:
        ingestor.run_forever(threading.Event())
        return
    out.print(f"ingested {ingestor.drain()} hits")


@app.command()
def demo(
    if_empty: Annotated[
        bool, typer.Option("--if-empty", help="Do nothing when emails already exist.")
    ] = False,
) -> None:
    """Load demo data: a rep, contacts, tracked emails and real-world hits, labelled."""
    from . import demo as demo_data

    settings = _settings()
    engine = _engine(settings)
    if if_empty and demo_data.has_data(engine):
        out.print("demo: emails already exist; nothing loaded")
        return
    count = demo_data.load(engine, settings, _signer(settings))
    out.print(
        f"demo: {count} emails from alice@northwind.test with their opens and clicks; "
        "try `mailsignal emails list`"
    )


# --- users -----------------------------------------------------------------------------


@users_app.command("add")
def users_add(
    address: Annotated[str, typer.Argument(help="The user's email address.")],
    name: Annotated[str, typer.Option(help="Full name.")] = "",
    role: Annotated[str, typer.Option(help="rep or admin.")] = "rep",
    opt_in: Annotated[
        bool, typer.Option("--opt-in/--no-opt-in", help="Personal email-engagement opt-in.")
    ] = False,
    timezone: Annotated[str, typer.Option(help="IANA time zone, e.g. Europe/Berlin.")] = "UTC",
    key: Annotated[bool, typer.Option(help="Also create and print an API key.")] = False,
) -> None:
    """Add a rep or admin (systemuser with usersettings)."""
    _check_zone(timezone)
    settings = _settings()
    with _engine(settings).begin() as conn:
        user_id = repo.add_user(
            conn,
            name or address.split("@")[0],
            address,
            role=role,
            opt_in=opt_in,
            timezone=timezone,
        )
        api_key = repo.create_api_key(conn, user_id, "cli") if key else None
    out.print(f"added {role} {address} ({user_id}), opt-in {'on' if opt_in else 'off'}")
    if api_key:
        out.print(f"API key (shown once): {api_key}")


def _check_zone(name: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InputError(
            f"unknown time zone {name!r} (use an IANA name like Europe/Berlin)"
        ) from exc


@users_app.command("list")
def users_list() -> None:
    """List users with role and opt-in."""
    settings = _settings()
    with _engine(settings).connect() as conn:
        rows = repo.list_users(conn)
    table = Table("address", "name", "role", "opt-in", "id")
    for r in rows:
        table.add_row(
            r["internalemailaddress"],
            r["fullname"],
            r["accessrole"],
            "yes" if r["emailengagementoptin"] else "no",
            str(r["systemuserid"]),
        )
    out.print(table)


@users_app.command("opt-in")
def users_opt_in(
    address: str,
    off: Annotated[bool, typer.Option("--off", help="Opt the user out instead.")] = False,
) -> None:
    """Set a user's personal email-engagement opt-in."""
    settings = _settings()
    with _engine(settings).begin() as conn:
        user = _user(conn, address)
        repo.set_optin(conn, user["systemuserid"], not off)
    out.print(f"{address}: opt-in {'off' if off else 'on'}")


@users_app.command("key")
def users_key(address: str, name: Annotated[str, typer.Option(help="Label.")] = "cli") -> None:
    """Create an API key for a user and print it once (only its hash is stored)."""
    settings = _settings()
    with _engine(settings).begin() as conn:
        key = repo.create_api_key(conn, _user(conn, address)["systemuserid"], name)
    out.print(key)


def _user(conn: Any, address: str) -> dict[str, Any]:
    user = repo.user_by_address(conn, address)
    if user is None:
        raise NotFoundError(f"no user {address}: add them with `mailsignal users add`")
    return user


# --- organization ----------------------------------------------------------------------


@org_app.command("set")
def org_set(
    tracking: Annotated[
        bool | None,
        typer.Option(
            "--tracking/--no-tracking", help="The org-wide switch (isemailmonitoringallowed)."
        ),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Organization name.")] = None,
) -> None:
    """Change the organization's name or its email-tracking switch."""
    settings = _settings()
    with _engine(settings).begin() as conn:
        org = repo.set_org(conn, monitoring=tracking, name=name)
    out.print(f"{org['name']}: tracking {'on' if org['isemailmonitoringallowed'] else 'off'}")


@org_app.command("show")
def org_show() -> None:
    """Show the organization and its tracking switch."""
    settings = _settings()
    with _engine(settings).begin() as conn:
        org = repo.get_org(conn)
    out.print(
        f"{org['name']} ({org['organizationid']}): tracking "
        f"{'on' if org['isemailmonitoringallowed'] else 'off'}"
    )


# --- emails and events -----------------------------------------------------------------


@emails_app.command("instrument")
def emails_instrument(
    file: Annotated[Path, typer.Argument(help="An .eml file (RFC 5322 message).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Where to write each copy.")] = Path(
        "instrumented"
    ),
    sender: Annotated[str | None, typer.Option(help="Default: the From address.")] = None,
    sent_at: Annotated[datetime | None, typer.Option(help="Send time (default now, UTC).")] = None,
) -> None:
    """Track an .eml file: write one instrumented .eml per recipient into --out."""
    if not file.is_file():
        raise InputError(f"{file}: no such file")
    msg = instrument.parse_message(file.read_bytes())
    from email.utils import parseaddr

    sender = sender or parseaddr(str(msg.get("From", "")))[1]
    if not sender:
        raise InputError(f"{file}: no From address; pass --sender")
    recipients = outgoing.recipients_of(msg)
    if not recipients:
        raise InputError(f"{file}: no To or Cc recipients")
    when = sent_at.replace(tzinfo=sent_at.tzinfo or UTC) if sent_at else None
    settings = _settings()
    with _engine(settings).begin() as conn:
        result = outgoing.track(
            conn,
            _signer(settings),
            settings.base_url,
            msg,
            sender=sender,
            recipients=recipients,
            sent_at=when,
            honeypot=settings.honeypot,
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    table = Table("recipient", "tracked", "why not", "file")
    for copy in result.copies:
        path = out_dir / f"{result.activity_id}-{copy.delivery_id}.eml"
        path.write_bytes(copy.message.as_bytes())
        table.add_row(
            copy.recipient,
            "yes" if copy.decision.tracked else "no",
            ", ".join(copy.decision.reasons),
            str(path),
        )
    out.print(f"email {result.activity_id} ({result.message_id})")
    out.print(table)


@emails_app.command("show")
def emails_show(
    activity_id: Annotated[str, typer.Argument(help="The email's activityid.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show an email with its raw and human counters."""
    settings = _settings()
    with _engine(settings).connect() as conn:
        row = repo.get_email(conn, _uuid(activity_id))
        row["deliveries"] = repo.deliveries(conn, _uuid(activity_id))
    if as_json:
        out.print_json(json.dumps(row, default=str))
        return
    table = Table("field", "value", show_header=False)
    for key in (
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
    ):
        table.add_row(key, str(row[key]))
    out.print(table)


@emails_app.command("list")
def emails_list(limit: Annotated[int, typer.Option(help="How many.")] = 20) -> None:
    """List the most recent emails with raw and human counts."""
    settings = _settings()
    with _engine(settings).connect() as conn:
        rows = repo.list_emails(conn, limit=limit)
    table = Table("sent", "subject", "opens raw/human", "clicks raw/human", "verdict")
    table.add_column("activityid", no_wrap=True, min_width=36)
    for r in rows:
        table.add_row(
            str(r["senton"])[:16],
            r["subject"][:40],
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
    settings = _settings()
    with _engine(settings).connect() as conn:
        repo.get_email(conn, _uuid(activity_id))
        rows = repo.list_events(conn, _uuid(activity_id))
    if as_json:
        for r in rows:
            sys.stdout.write(json.dumps(r, default=str) + "\n")
        return
    kinds = {0: "open", 1: "click", 2: "download", 3: "reply"}
    table = Table("time", "kind", "recipient", "verdict", "conf", "reasons", "user agent")
    for r in rows:
        reasons = ", ".join(e["rule"] for e in (r["reasons"] or {}).get("fired", []))
        table.add_row(
            str(r["emailinteractiontime"])[:19],
            kinds.get(r["interactiontype"], "?"),
            r["emailaddress"],
            r["verdict"],
            f"{r['confidence']:.2f}",
            reasons,
            (r["interactionuseragent"] or "")[:40],
        )
    out.print(table)


def _uuid(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError as exc:
        raise InputError(f"not an id: {text!r}") from exc


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Add a new signing key; old keys keep verifying links already sent."""
    kid = rotate_secret(_settings().secret_file)
    out.print(f"new signing key id {kid}; restart the server to sign with it")


@data_app.command("list")
def data_list() -> None:
    """List the network lists: source, date, licence, and whether a refreshed copy is used."""
    from .enrich.network import read_manifest

    settings = _settings()
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
    from .enrich.refresh import list_names, refresh_list

    if name not in list_names():
        raise InputError(f"unknown list {name!r}; known: {', '.join(list_names())}")
    if not file.is_file():
        raise InputError(f"{file}: no such file")
    result = refresh_list(name, file, _settings().data_dir)
    out.print(
        f"{name}: {result.count} prefixes ({result.ipv4} IPv4, {result.ipv6} IPv6) from "
        f"{result.read} read ({result.source_format}) -> {result.path}"
    )
    for warning in result.warnings:
        err.print(f"[yellow]warning:[/yellow] {warning}")
    out.print("restart `mailsignal serve` / the ingest worker to use it")


def _progress_bar(total: int, label: str) -> Any:
    from rich.progress import BarColumn, Progress, TimeRemainingColumn

    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        "[progress.percentage]{task.percentage:>3.0f}%",
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )
    return bar, bar.add_task(label, total=total)


def _print_summary(summary: Any, what: str) -> None:
    out.print(
        f"{what}: {summary.lines} lines, {summary.imported} imported, "
        f"{summary.duplicates} already there, {summary.skipped} for unknown deliveries, "
        f"{len(summary.errors)} bad lines"
    )
    for line in summary.errors[:50]:
        err.print(f"[yellow]{line}[/yellow]")
    if len(summary.errors) > 50:
        err.print(f"... and {len(summary.errors) - 50} more bad lines")


def _open_input(file: Path) -> Any:
    if not file.is_file():
        raise InputError(f"{file}: no such file")
    return file.open("r", encoding="utf-8", errors="surrogateescape", newline="")


@import_app.command("emails")
def import_emails_cmd(
    file: Annotated[Path, typer.Argument(help="JSONL: one outgoing email per line.")],
    out_file: Annotated[Path, typer.Option("--out", help="JSONL of each recipient's copy.")] = Path(
        "imported-copies.jsonl"
    ),
) -> None:
    """Import sent emails (JSONL) and write each recipient's instrumented copy to --out."""
    from .history import import_emails

    settings = _settings()
    engine, signer = _engine(settings), _signer(settings)
    bar, task = _progress_bar(file.stat().st_size if file.is_file() else 0, "emails")
    with _open_input(file) as lines, out_file.open("a", encoding="utf-8") as out_fh, bar:
        summary = import_emails(
            engine, signer, settings, lines, out_fh, progress=lambda n: bar.advance(task, n)
        )
    _print_summary(summary, f"emails from {file}")
    out.print(f"copies written to {out_file}")


@import_app.command("hits")
def import_hits_cmd(
    file: Annotated[Path, typer.Argument(help="JSONL hits or an nginx/Apache combined log.")],
    fmt: Annotated[str, typer.Option("--format", help="auto, jsonl or combined.")] = "auto",
) -> None:
    """Import hits (JSONL or combined access log); idempotent; bad lines are reported."""
    from .history import import_hits

    settings = _settings()
    engine, signer = _engine(settings), _signer(settings)
    bar, task = _progress_bar(file.stat().st_size if file.is_file() else 0, "hits")
    with _open_input(file) as lines, bar:
        summary = import_hits(
            engine, signer, settings, lines, fmt, progress=lambda n: bar.advance(task, n)
        )
    _print_summary(summary, f"hits from {file}")


@export_app.command("events")
def export_events_cmd(
    fmt: Annotated[str, typer.Option("--format", help="jsonl or csv.")] = "jsonl",
    out_file: Annotated[Path | None, typer.Option("--out", help="File (default stdout).")] = None,
    since: Annotated[datetime | None, typer.Option(help="Only events at or after (UTC).")] = None,
) -> None:
    """Write every event with verdict, confidence, reasons and external id."""
    from .history import export_events

    settings = _settings()
    when = since.replace(tzinfo=since.tzinfo or UTC) if since else None
    if out_file is None:
        export_events(_engine(settings), sys.stdout, fmt, when)
        return
    with out_file.open("w", encoding="utf-8", newline="") as fh:
        count = export_events(_engine(settings), fh, fmt, when)
    err.print(f"{count} events written to {out_file}")


@app.command("classify")
def classify_cmd(
    recompute: Annotated[
        bool, typer.Option("--recompute", help="Rebuild every verdict from raw hits.")
    ] = False,
    sweep_now: Annotated[bool, typer.Option("--sweep", help="Apply time-based rules now.")] = False,
) -> None:
    """Re-run the classifier: everything (--recompute) or the periodic sweep (--sweep)."""
    from .classify import VERSION, disabled_rules
    from .sweep import deliveries_with_events, recompute_all, sweep

    settings = _settings()
    disabled_rules(settings.disabled_rules)
    engine = _engine(settings)
    if recompute == sweep_now:
        raise InputError("give exactly one of --recompute or --sweep")
    if sweep_now:
        out.print(f"sweep: {sweep(engine, settings, datetime.now(UTC))} verdicts changed")
        return
    total = len(deliveries_with_events(engine))
    bar, task = _progress_bar(total, f"classifier {VERSION}")
    with bar:
        changed = recompute_all(engine, settings, progress=lambda n: bar.advance(task, n))
    out.print(
        f"recomputed {total} recipient timelines with classifier {VERSION}: "
        f"{changed} verdicts changed"
    )


@app.command("score")
def score_cmd(
    recompute: Annotated[
        bool, typer.Option("--recompute", help="Recompute every score and roll-up.")
    ] = False,
    explain: Annotated[
        str | None,
        typer.Option("--explain", help="Show a contact/lead/account's score and its top events."),
    ] = None,
) -> None:
    """Lead scores: recompute them all, or explain one (by email address)."""
    from .store.scores import explain as explain_score
    from .store.scores_bulk import recompute_scores_bulk

    settings = _settings()
    engine = _engine(settings)
    if recompute == (explain is not None):
        raise InputError("give exactly one of --recompute or --explain ADDRESS")
    if explain is None:
        with engine.connect() as conn:
            parties = sum(
                conn.execute(select(func.count()).select_from(t)).scalar() or 0
                for t, _k in TABLES.values()
            )
        bar, task = _progress_bar(parties, "scores")
        with bar:
            done = recompute_scores_bulk(engine, settings, progress=lambda n: bar.advance(task, n))
        out.print(f"recomputed {done} scores")
        return
    with engine.connect() as conn:
        party = repo.find_party(conn, explain)
        if party is None:
            raise NotFoundError(f"no contact, lead or account with address {explain}")
        total, top = explain_score(conn, party[0], party[1], settings)
    out.print(
        f"{party[0]} {explain}: score {total:.2f} (half-life "
        f"{settings.score_half_life_days:g} days)"
    )
    table = Table("points", "kind", "verdict", "when")
    for item in top:
        table.add_row(
            f"{item.points:.2f}", item.kind.name.lower(), str(item.verdict), str(item.at)[:19]
        )
    out.print(table)


@report_app.command("noise")
def report_noise(
    days: Annotated[int, typer.Option(help="Look back this many days.")] = 30,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """Emails flagged as scanner noise (raw opens above noise_open_threshold)."""
    from datetime import timedelta

    from .store.reports import noise_report

    settings = _settings()
    with _engine(settings).connect() as conn:
        rows = noise_report(conn, datetime.now(UTC) - timedelta(days=days))
    if as_json:
        for r in rows:
            sys.stdout.write(json.dumps(r, default=str) + "\n")
        return
    table = Table("sent", "sender", "subject", "opens raw", "human", "machine", "top machine rules")
    table.add_column("activityid", no_wrap=True, min_width=36)
    for r in rows:
        table.add_row(
            str(r["senton"])[:16],
            r["sender"],
            r["subject"][:40],
            str(r["opencount"]),
            str(r["humanopencount"]),
            str(r["machineopencount"]),
            ", ".join(r["top_rules"]),
            str(r["activityid"]),
        )
    out.print(table)
    out.print(f"{len(rows)} emails over {settings.noise_open_threshold} raw opens in {days} days")


@views_app.command("list")
def views_list() -> None:
    """List shipped and user views with their ids."""
    from . import views

    table = Table("slug", "name", "entity", "kind")
    table.add_column("savedqueryid", no_wrap=True, min_width=36)
    for v in views.all_views(_settings().data_dir):
        table.add_row(v.slug, v.name, v.entity, "shipped" if v.shipped else "user", str(v.id))
    out.print(table)


@views_app.command("show")
def views_show(name: Annotated[str, typer.Argument(help="Slug, name or id.")]) -> None:
    """Print a view's description and FetchXML."""
    from . import views

    view = views.find(_settings().data_dir, name)
    out.print(f"{view.name} ({view.slug}, {view.id})\n{view.description}\nsource: {view.source}")
    sys.stdout.write(view.fetchxml + "\n")


def _cell(value: Any) -> Any:
    """JSON/CSV form of a result value: ISO 8601 times, string ids, empty for null."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


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
    """Run a saved view and print its rows."""
    import csv

    from . import views
    from .fetchxml import Caller, load_caller

    if fmt not in ("table", "json", "csv"):
        raise InputError(f"unknown format {fmt!r}: use table, json or csv")
    settings = _settings()
    view = views.find(settings.data_dir, name)
    with _engine(settings).connect() as conn:
        if as_user:
            caller = load_caller(conn, _user(conn, as_user)["systemuserid"])
        else:
            caller = Caller(uuid.UUID(int=0), is_admin=True)
        result = views.run(conn, view, caller)
    if fmt == "json":
        for row in result.rows:
            sys.stdout.write(
                json.dumps({k: None if v is None else _cell(v) for k, v in row.items()}) + "\n"
            )
    elif fmt == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(result.columns)
        writer.writerows([[_cell(row[c]) for c in result.columns] for row in result.rows])
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
    from . import views

    if not file.is_file():
        raise InputError(f"{file}: no such file")
    view = views.add(
        _settings().data_dir,
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
    from . import views

    views.remove(_settings().data_dir, slug)
    out.print(f"removed view {slug}")


def main() -> None:
    try:
        app(standalone_mode=True)
    except MailSignalError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        raise SystemExit(2) from None
