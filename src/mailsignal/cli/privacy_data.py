"""`privacy minimise` and `privacy retention`: minimisation and retention of stored data
(issue 13, docs/privacy.md). Registered on the `privacy` sub-app by main.py.

    privacy minimise      cut the addresses of events stored earlier to what ip_storage keeps
    privacy retention     delete what is past its retention now (the worker does it hourly)
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated

import typer

from ..errors import InputError
from ..store import audit
from ..store import minimise as stored_events
from . import common
from .common import out


def minimise(
    batch: Annotated[
        int, typer.Option(help="Events rewritten per transaction.", min=1, max=100_000)
    ] = 2000,
) -> None:
    """Apply ip_storage to events stored before it was set: their addresses are cut to
    what it keeps (full, truncated, none), after the pseudonyms the classifier compares
    are taken from the full address, so no verdict changes. Safe to run again."""
    from ..pipeline.minimise import minimise_stored

    settings = common.settings()
    engine = common.engine(settings)
    with engine.connect() as conn:
        total = stored_events.count(conn)
    bar, task = common.progress_bar(total, f"ip_storage={settings.ip_storage}")
    with bar:
        changed = minimise_stored(
            engine, settings, batch=batch, progress=lambda n: bar.advance(task, n)
        )
    with engine.begin() as conn:
        audit.record(
            conn,
            "privacy.minimise",
            actor="cli",
            details={"ip_storage": settings.ip_storage, "events": changed},
        )
    out.print(f"{changed} of {total} stored events rewritten (ip_storage={settings.ip_storage})")


def retention(
    as_json: Annotated[bool, typer.Option("--json", help="Print the counts as JSON.")] = False,
) -> None:
    """Delete now what is past its retention (event_retention_days, reply_retention_days,
    outbound_retention_days, attachment_retention_days); counters and scores keep their
    values. The ingest worker does the same every hour, a minute of work at a time."""
    from ..pipeline import retention as run_retention

    settings = common.settings()
    engine = common.engine(settings)
    if not any(
        (
            settings.event_retention_days,
            settings.reply_retention_days,
            settings.outbound_retention_days,
            settings.attachment_retention_days,
        )
    ):
        raise InputError("every retention setting is 0 or unset: nothing is ever deleted")
    result = run_retention.run(engine, settings, datetime.now(UTC), actor="cli")
    counts = asdict(result)
    if as_json:
        json.dump(counts, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    out.print(
        f"deleted {result.events} events ({result.replies} replies) of {result.copies} "
        f"recipient copies, {result.outbound_files} set-aside outbound files, the files of "
        f"{result.attachments} attachments ({result.attachment_files} files)"
    )
