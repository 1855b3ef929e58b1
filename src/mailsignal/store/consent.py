"""Recipients' consents to tracking (issue 13): the proof of consent the `consent`
tracking basis asks for (basis.py, docs/privacy.md).

Each consent is a row under the keyed hash of the normalised address (callers hash with
tokens.Signer.address_hash, as for the do-not-track list): when it was given, how
(SOURCES), the text agreed to (in full, with its sha256 and the operator's version id)
and its language. Rows are only appended: `withdraw` fills `withdrawnon` of the open
rows, and consenting again adds a row, so the history stays as it happened.

    add                  record a consent
    withdraw             close every open consent of a hash
    consented            which of these hashes have a consent now (one statement)
    history              every row of a hash, oldest first
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from .bulk import in_ids
from .schema import consentrecord

SOURCES = ("api", "cli", "import", "link")
TEXT_MAX = 4000
TEXT_ID_MAX = 80


def add(
    conn: Connection,
    address_hash: str,
    *,
    given_at: datetime,
    source: str,
    text: str,
    text_id: str | None = None,
    language: str | None = None,
    now: datetime,
) -> int:
    """Append a consent row; its id. ValueError for an unknown source or empty text."""
    if source not in SOURCES:
        raise ValueError(f"unknown consent source {source!r}: one of {', '.join(SOURCES)}")
    if not text.strip():
        raise ValueError("the consent text is empty")
    values = {
        "addresshash": address_hash,
        "givenon": given_at,
        "source": source,
        "textid": text_id,
        "texthash": text_hash(text),
        "consenttext": text,
        "language": language,
        "recordedon": now,
    }
    stmt = insert(consentrecord).values(**values).returning(consentrecord.c.consentid)
    return int(conn.execute(stmt).scalar_one())


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def withdraw(conn: Connection, address_hash: str, at: datetime, source: str) -> int:
    """Close every open consent of a hash at `at`; how many were open."""
    stmt = (
        update(consentrecord)
        .where(consentrecord.c.addresshash == address_hash, consentrecord.c.withdrawnon.is_(None))
        .values(withdrawnon=at, withdrawnsource=source)
    )
    return int(conn.execute(stmt).rowcount)


def consented(conn: Connection, hashes: Iterable[str]) -> set[str]:
    """Which of these hashes have a consent that is not withdrawn (one statement)."""
    wanted = sorted(set(hashes))
    if not wanted:
        return set()
    stmt = (
        select(consentrecord.c.addresshash)
        .where(
            in_ids(conn, consentrecord.c.addresshash, wanted),
            consentrecord.c.withdrawnon.is_(None),
        )
        .distinct()
    )
    return {row[0] for row in conn.execute(stmt)}


def consented_among(
    conn: Connection, addresses: Iterable[str], hash_of: Callable[[str], str]
) -> set[str]:
    """Which of these addresses have an open consent, each hashed with `hash_of`."""
    hashes = {hash_of(address): address for address in addresses}
    return {hashes[h] for h in consented(conn, hashes)}


def open_consents_query(conn: Connection, hashes: list[str]) -> Any:
    """The select of the hashes among `hashes` with an open consent (for a UNION)."""
    return select(consentrecord.c.addresshash).where(
        in_ids(conn, consentrecord.c.addresshash, hashes), consentrecord.c.withdrawnon.is_(None)
    )


def history(conn: Connection, address_hash: str) -> list[dict[str, Any]]:
    """Every consent row of a hash, oldest first (the proof of consent)."""
    stmt = (
        select(consentrecord)
        .where(consentrecord.c.addresshash == address_hash)
        .order_by(consentrecord.c.givenon, consentrecord.c.consentid)
    )
    return [dict(row) for row in conn.execute(stmt).mappings()]
