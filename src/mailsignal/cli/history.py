"""`import emails|hits|mail` and `export events`: history in, events out.

Every import streams, is idempotent and reports bad lines by number without stopping.
"""

from __future__ import annotations

import mailbox as mboxlib
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Annotated, Any

import typer

from ..errors import InputError
from ..pipeline.mailsync import IncomingMessage
from . import common
from .common import err, out
from .mail import progress, report, summary_table

import_app = typer.Typer(
    no_args_is_help=True,
    help="Bring in history (emails, hits, mail) and records (contacts, leads, accounts).",
)
export_app = typer.Typer(no_args_is_help=True, help="Take data out.")


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


def _output(path: Path, mode: str) -> IO[str]:
    """`path` opened for writing text, or the reason it cannot be as a CLI error."""
    try:
        return path.open(mode, encoding="utf-8", newline="")
    except OSError as exc:
        raise InputError(f"--out {path}: cannot write ({exc.strerror})") from exc


@import_app.command("emails")
def import_emails(
    file: Annotated[Path, typer.Argument(help="JSONL: one outgoing email per line.")],
    out_file: Annotated[Path, typer.Option("--out", help="JSONL of each recipient's copy.")] = Path(
        "imported-copies.jsonl"
    ),
) -> None:
    """Import sent emails (JSONL) and write each recipient's instrumented copy to --out."""
    from ..history import import_emails as run

    settings = common.settings()
    engine, signer = common.engine(settings), common.signer(settings)
    bar, task = common.progress_bar(file.stat().st_size if file.is_file() else 0, "emails")
    with common.open_input(file) as lines, _output(out_file, "a") as out_fh, bar:
        try:
            summary = run(
                engine, signer, settings, lines, out_fh, progress=lambda n: bar.advance(task, n)
            )
        except OSError as exc:  # the copies could not be written: history rolled it back
            raise InputError(
                f"--out {out_file}: cannot write ({exc.strerror}); the import stopped at the "
                "email whose copies could not be written, which was not stored"
            ) from exc
    _print_summary(summary, f"emails from {file}")
    out.print(f"copies written to {out_file}")


@import_app.command("hits")
def import_hits(
    file: Annotated[Path, typer.Argument(help="JSONL hits or an nginx/Apache combined log.")],
    fmt: Annotated[str, typer.Option("--format", help="auto, jsonl or combined.")] = "auto",
) -> None:
    """Import hits (JSONL or combined access log); idempotent; bad lines are reported."""
    from ..history import import_hits as run

    settings = common.settings()
    engine, signer = common.engine(settings), common.signer(settings)
    bar, task = common.progress_bar(file.stat().st_size if file.is_file() else 0, "hits")
    with common.open_input(file) as lines, bar:
        summary = run(engine, signer, settings, lines, fmt, progress=lambda n: bar.advance(task, n))
    _print_summary(summary, f"hits from {file}")


def _messages(path: Path, errors: list[str]) -> Iterator[IncomingMessage]:
    """Messages from an .eml file, an mbox file, or a directory of .eml/.mbox files."""
    files = (
        sorted(p for p in path.iterdir() if p.suffix.lower() in (".eml", ".mbox"))
        if path.is_dir()
        else [path]
    )
    for file in files:
        try:
            with file.open("rb") as fh:
                head = fh.read(5)
        except OSError as exc:
            errors.append(f"{file.name}: cannot read ({exc.strerror})")
            continue
        if head == b"From ":  # the mbox separator line: an archive, not one message
            box = mboxlib.mbox(file, create=False)
            try:
                for n, key in enumerate(box.keys(), 1):
                    yield IncomingMessage(box.get_bytes(key), f"{file.name} #{n}")
            finally:
                box.close()
        elif not head.strip():
            errors.append(f"{file.name}: empty file")
        else:
            yield IncomingMessage(file.read_bytes(), file.name)


@import_app.command("mail")
def import_mail(
    path: Annotated[Path, typer.Argument(help="An .eml file, an mbox file, or a directory.")],
) -> None:
    """Import replies from .eml files or mbox archives (matched like sync-replies)."""
    from ..pipeline.mailsync import import_messages

    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    settings = common.settings()
    engine = common.engine(settings)
    errors: list[str] = []
    with progress() as bar:
        task = bar.add_task(f"importing {path.name}", total=None)
        summary = import_messages(
            engine,
            settings,
            _messages(path, errors),
            progress=lambda _w, done, _t: bar.update(task, completed=done),
        )
    summary.errors = errors + summary.errors
    out.print(summary_table([(path.name, summary)], "source"))
    report(summary)


@export_app.command("events")
def export_events(
    fmt: Annotated[str, typer.Option("--format", help="jsonl or csv.")] = "jsonl",
    out_file: Annotated[Path | None, typer.Option("--out", help="File (default stdout).")] = None,
    since: Annotated[datetime | None, typer.Option(help="Only events at or after (UTC).")] = None,
) -> None:
    """Write every event with verdict, confidence, reasons and external id."""
    from ..history import export_events as run

    settings = common.settings()
    when = common.aware(since)
    if out_file is None:
        run(common.engine(settings), sys.stdout, fmt, when)
        return
    with _output(out_file, "w") as fh:
        count = run(common.engine(settings), fh, fmt, when)
    err.print(f"{count} events written to {out_file}")
