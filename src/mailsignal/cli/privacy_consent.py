"""`privacy consent`, `privacy consent-import`, `privacy consent-history`: recipients'
consent to tracking under the `consent` tracking basis (issue 13, docs/privacy.md).

    privacy consent ADDRESS --text "..."     record one consent (source cli by default)
    privacy consent-import FILE.csv          address,given_at,source,text[,text_id,language]
    privacy consent-history ADDRESS          every consent row of an address (JSON)

A consent is withdrawn by `privacy optout` or the recipient's stop-tracking link.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from ..errors import InputError
from ..pipeline import consent
from ..store.db import writing
from . import common
from .common import out


def record(
    address: Annotated[str, typer.Argument(help="The recipient's email address.")],
    text: Annotated[str, typer.Option(help="The text the recipient agreed to, word for word.")],
    source: Annotated[
        str, typer.Option(help="How the consent was given: api, cli, import or link.")
    ] = "cli",
    given_at: Annotated[
        str | None,
        typer.Option(help="When it was given (ISO 8601 with offset); default now."),
    ] = None,
    text_id: Annotated[
        str | None, typer.Option(help="Your version id of the text (e.g. newsletter-v3).")
    ] = None,
    language: Annotated[str | None, typer.Option(help="The text's language tag.")] = None,
) -> None:
    """Record that ADDRESS consented to tracking (proof: time, source, text), so copies to
    it are tracked under the consent basis. Kept under a keyed hash of the address."""
    when = None
    if given_at is not None:
        try:
            when = datetime.fromisoformat(given_at.replace("Z", "+00:00"))
        except ValueError:
            raise InputError(f"--given-at: not an ISO 8601 time: {given_at!r}") from None
    given = consent.check(address, when, source, text, text_id, language)
    settings = common.settings()
    engine = common.engine(settings)
    with writing(engine) as conn:
        done = consent.record(conn, common.signer(settings), given, actor="cli")
    out.print(f"consent {done['consentid']} recorded for {given.address}")
    if done["donottrack_lifted"]:
        out.print("taken off the do-not-track list (the recipient's own consent)")


def import_file(
    path: Annotated[Path, typer.Argument(help="CSV: address,given_at,source,text.")],
) -> None:
    """Record the consents of a CSV file (header address,given_at,source,text; optional
    text_id,language); nothing is recorded when a line is wrong, and the error names it."""
    try:
        data = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc
    settings = common.settings()
    engine = common.engine(settings)
    with writing(engine) as conn:
        count = consent.import_csv(conn, common.signer(settings), data, actor="cli")
    out.print(f"{count} consents recorded")


def history(
    address: Annotated[str, typer.Argument(help="The recipient's email address.")],
) -> None:
    """Every consent recorded for ADDRESS, oldest first, withdrawn ones included (JSON)."""
    settings = common.settings()
    engine = common.engine(settings)
    with engine.connect() as conn:
        rows = consent.history(conn, common.signer(settings), address)
    out.print_json(json.dumps(rows))
