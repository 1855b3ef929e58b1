"""Consent to tracking as a service (issue 13): record it (API, CLI, CSV import, the
recipient's own consent page) with its proof and an audit row, and read its history.

A consent is stored under the keyed hash of the normalised address (store/consent.py),
with when it was given, its source, the text agreed to and its language. Withdrawing is
the stop-tracking link's job (pipeline/donottrack.opt_out closes every open consent).
A consent the recipient gives on their consent page (source `link`) is their own latest
choice, so it also takes the address off the do-not-track list; one recorded by an
operator (api, cli, import) does not override a recipient's stop.

`import_csv` takes the columns address,given_at,source,text (optional text_id,
language), checks every line first and records nothing when one is wrong: the error
names each bad line (the header is line 1).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from ..addresses import normalise_address
from ..errors import InputError
from ..store import audit, consent, donottrack
from ..tokens import Signer
from .donottrack import opt_in

COLUMNS = ("address", "given_at", "source", "text")
OPTIONAL = ("text_id", "language")
MAX_ERRORS = 20


@dataclass(frozen=True, slots=True)
class Consent:
    """One consent to record, checked."""

    address: str
    given_at: datetime
    source: str
    text: str
    text_id: str | None = None
    language: str | None = None


def check(
    address: str,
    given_at: datetime | None,
    source: str,
    text: str,
    text_id: str | None = None,
    language: str | None = None,
) -> Consent:
    """A Consent from what a caller gives; InputError naming the field that is wrong."""
    try:
        address = normalise_address(address)
    except InputError as exc:
        raise InputError(f"address: {exc.message}") from exc
    if source not in consent.SOURCES:
        raise InputError(f"source: one of {', '.join(consent.SOURCES)}, not {source!r}")
    if not isinstance(text, str) or not text.strip():
        raise InputError("text: the text the recipient agreed to is required")
    if len(text) > consent.TEXT_MAX or "\x00" in text:
        raise InputError(f"text: at most {consent.TEXT_MAX} characters, no NUL")
    if text_id is not None and not 0 < len(text_id) <= consent.TEXT_ID_MAX:
        raise InputError(f"text_id: 1 to {consent.TEXT_ID_MAX} characters")
    if language is not None and not (0 < len(language) <= 16 and language.isascii()):
        raise InputError("language: a language tag such as en or fr-CA")
    now = datetime.now(UTC)
    if given_at is None:
        given_at = now
    elif given_at.utcoffset() is None:
        raise InputError("given_at: give a time zone offset (for example 2026-11-27T09:00:00Z)")
    elif given_at > now or given_at.year < 1970:
        raise InputError("given_at: not in the future, and not before 1970")
    return Consent(address, given_at, source, text, text_id or None, language or None)


def record(
    conn: Connection, signer: Signer, given: Consent, *, actor: str, now: datetime | None = None
) -> dict[str, Any]:
    """Record one consent (see the module docstring), in the caller's transaction."""
    now = now or datetime.now(UTC)
    digest = signer.address_hash(given.address)
    consent_id = consent.add(
        conn,
        digest,
        given_at=given.given_at,
        source=given.source,
        text=given.text,
        text_id=given.text_id,
        language=given.language,
        now=now,
    )
    lifted = False
    if given.source == "link" and donottrack.entry(conn, digest) is not None:
        lifted, _parties = opt_in(conn, signer, given.address, actor=actor, now=now)
    details: dict[str, Any] = {
        "source": given.source,
        "textid": given.text_id,
        "texthash": consent.text_hash(given.text),
    }
    details |= {"consentid": consent_id, "donottrack_lifted": lifted}
    audit.record(conn, "recipient.consent", actor=actor, subject=digest, details=details, at=now)
    return {"consentid": consent_id, "addresshash": digest, "donottrack_lifted": lifted}


def parse_csv(data: str) -> list[Consent]:
    """The consents of a CSV text (module docstring); InputError naming every bad line."""
    reader = csv.DictReader(io.StringIO(data, newline=""))
    header = [name.strip() for name in reader.fieldnames or []]
    missing = [c for c in COLUMNS if c not in header]
    unknown = [c for c in header if c not in COLUMNS + OPTIONAL]
    if missing or unknown:
        raise InputError(
            f"line 1: the header needs {','.join(COLUMNS)} (optional {','.join(OPTIONAL)}); "
            + (f"missing {', '.join(missing)}" if missing else f"unknown {', '.join(unknown)}")
        )
    reader.fieldnames = header
    found: list[Consent] = []
    errors: list[str] = []
    for row in reader:
        line = reader.line_num
        if None in row or any(v is None for v in row.values()):
            errors.append(f"line {line}: expected {len(header)} columns")
            continue
        try:
            when = _time(row["given_at"].strip())
            found.append(
                check(
                    row["address"],
                    when,
                    row["source"].strip(),
                    row["text"],
                    (row.get("text_id") or "").strip() or None,
                    (row.get("language") or "").strip() or None,
                )
            )
        except InputError as exc:
            errors.append(f"line {line}: {exc.message}")
    if errors:
        more = len(errors) - MAX_ERRORS
        shown = errors[:MAX_ERRORS] + ([f"... and {more} more"] if more > 0 else [])
        raise InputError("; ".join(shown))
    if not found:
        raise InputError("line 2: no consent rows after the header")
    return found


def _time(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"given_at: not an ISO 8601 time: {value[:40]!r}") from None


def import_csv(
    conn: Connection, signer: Signer, data: str, *, actor: str, now: datetime | None = None
) -> int:
    """Record every consent of a CSV text, or none (InputError); how many were recorded."""
    consents = parse_csv(data)
    for given in consents:
        record(conn, signer, given, actor=actor, now=now)
    return len(consents)


def history(conn: Connection, signer: Signer, address: str) -> list[dict[str, Any]]:
    """Every consent row of an address, oldest first, as JSON-ready values."""
    try:
        address = normalise_address(address)
    except InputError as exc:
        raise InputError(f"address: {exc.message}") from exc
    rows = consent.history(conn, signer.address_hash(address))
    out = []
    for row in rows:
        item = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}
        item["current"] = row["withdrawnon"] is None
        out.append(item)
    return out
