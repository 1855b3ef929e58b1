"""What every command module shares: the consoles, opening the store, small parsers.

One place, so every command words the same problem the same way: errors are
`MailSignalError`s, which `main.main` prints as one `error:` line and exit status 2.
"""

from __future__ import annotations

import sys
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from sqlalchemy import Engine

from ..errors import InputError, MailSignalError, NotFoundError
from ..keyring import load_keyring
from ..settings import Settings, load_settings
from ..store.db import is_initialised, make_engine
from ..tokens import Signer

# Wide enough for ids when piped (Rich would otherwise assume 80 columns and fold them).
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, soft_wrap=True)  # one line per error, even when piped


def settings() -> Settings:
    return load_settings()


def engine(settings: Settings) -> Engine:
    """The store's engine; refuses an uninitialised database with the command to run."""
    eng = make_engine(settings.db_url)
    if not is_initialised(eng):
        raise MailSignalError("the database is not initialised: run `mailsignal init` first")
    return eng


def signer(settings: Settings) -> Signer:
    keys, current = load_keyring(settings.secret_file)
    return Signer(keys, current)


def parse_uuid(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError as exc:
        raise InputError(f"not an id: {text!r}") from exc


def check_zone(name: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InputError(
            f"unknown time zone {name!r} (use an IANA name like Europe/Berlin)"
        ) from exc


def require_user(conn: Any, address: str) -> dict[str, Any]:
    from ..store import users

    user = users.by_address(conn, address)
    if user is None:
        raise NotFoundError(f"no user {address}: add them with `mailsignal users add`")
    return user


def progress_bar(total: int, label: str) -> Any:
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


def open_input(file: Path) -> Any:
    if not file.is_file():
        raise InputError(f"{file}: no such file")
    return file.open("r", encoding="utf-8", errors="surrogateescape", newline="")


def aware(when: datetime | None) -> datetime | None:
    """A time given on the command line; UTC when it names no zone."""
    from datetime import UTC

    return when.replace(tzinfo=when.tzinfo or UTC) if when else None


def cell(value: Any) -> Any:
    """JSON/CSV form of a result value: ISO 8601 times, string ids, empty for null."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value
