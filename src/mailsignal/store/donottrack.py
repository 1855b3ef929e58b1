"""Recipients who stopped tracking (issue 13): the do-not-track list, the stop-tracking
form's used nonces, and the count of hits answered but not stored.

The list holds a keyed hash of each normalised address (tokens.Signer.address_hash),
never the address: callers hash, this module stores and compares hashes. Whether a
batch of hits may be stored is one statement (`screen`): the parties with the batch's
addresses (their `followemail`, contact before lead before account, as outgoing mail
resolves a recipient) and the list entries with their hashes, in one UNION ALL.

    add / remove / listed            the list
    set_follow                       `followemail` of every contact and lead with an address
    screen                           {address: reason} of a batch's do-not-track addresses
                                     (and, under the consent basis, those without consent)
    use_nonce                        spend a form nonce once
    count_dropped / dropped          hits not stored, per UTC day and reason
    delete_tracked_events            an address's opens, clicks and downloads (their emails)
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    String,
    delete,
    false,
    func,
    literal,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from .bulk import in_ids
from .consent import open_consents_query
from .schema import (
    account,
    contact,
    donottrack,
    droppedhits,
    emaildelivery,
    interactionforemail,
    lead,
    stoptrackingnonce,
)

SOURCES = ("link", "api", "cli")
# The reasons a hit is dropped: the same ids as an untracked copy's reasons (instrument.decide).
PARTY_SAYS_NO = "recipient.do_not_track"
LISTED = "recipient.opted_out"
ORG_OFF = "org.monitoring_disabled"
NO_CONSENT = "recipient.no_consent"  # the consent basis, and no open consent (store/consent)
BASIS_OFF = "org.basis_off"  # the tracking basis `off`
_RANK = {"contact": 0, "lead": 1, "account": 2}
TRACKED_KINDS = (0, 1, 2)  # open, click, download: what tracking recorded (not replies)


def _module(conn: Connection) -> Any:
    return postgresql if conn.dialect.name == "postgresql" else sqlite


def add(conn: Connection, address_hash: str, source: str, at: datetime) -> bool:
    """Put a hash on the list; False when it was there already (its first entry stays)."""
    if source not in SOURCES:
        raise ValueError(f"unknown do-not-track source {source!r}")
    stmt = _module(conn).insert(donottrack).on_conflict_do_nothing(index_elements=["addresshash"])
    values = {"addresshash": address_hash, "createdon": at, "source": source}
    # RETURNING, not rowcount: psycopg counts a row ON CONFLICT DO NOTHING skipped.
    return (
        conn.execute(stmt.values(**values).returning(donottrack.c.addresshash)).first() is not None
    )


def remove(conn: Connection, address_hash: str) -> bool:
    """Take a hash off the list; False when it was not on it."""
    stmt = delete(donottrack).where(donottrack.c.addresshash == address_hash)
    return bool(conn.execute(stmt).rowcount)


def entry(conn: Connection, address_hash: str) -> dict[str, Any] | None:
    """The list entry (addresshash, createdon, source) of a hash, or None."""
    row = conn.execute(select(donottrack).where(donottrack.c.addresshash == address_hash))
    found = row.mappings().first()
    return dict(found) if found else None


def listed(conn: Connection, hashes: Iterable[str]) -> set[str]:
    """Which of these hashes are on the list (one statement)."""
    wanted = list(set(hashes))
    if not wanted:
        return set()
    rows = conn.execute(
        select(donottrack.c.addresshash).where(in_ids(conn, donottrack.c.addresshash, wanted))
    )
    return {row[0] for row in rows}


def set_follow(conn: Connection, address: str, follow: bool) -> int:
    """Set `followemail` on every contact and lead with this address (any case); how many."""
    changed = 0
    for table in (contact, lead):
        stmt = (
            update(table)
            .where(func.lower(table.c.emailaddress1) == address.lower())
            .values(followemail=follow)
        )
        changed += conn.execute(stmt).rowcount
    return changed


def screen(
    conn: Connection,
    addresses: Iterable[str],
    hashes: Mapping[str, str],
    need_consent: Iterable[str] = (),
) -> dict[str, str]:
    """{address: reason} for the (lower-cased) addresses that are not to be tracked:
    listed (`hashes` maps each one's hash to it), or whose party (contact, else lead,
    else account) says `followemail` false, or, among `need_consent` (the addresses
    under the consent basis), without an open consent. One statement for the batch."""
    wanted = sorted(set(addresses))
    if not wanted:
        return {}
    asking = set(need_consent)
    asked = [h for h, a in hashes.items() if a in asking]
    parts: list[Any] = []
    for kind, table in (("contact", contact), ("lead", lead), ("account", account)):
        lowered = func.lower(table.c.emailaddress1, type_=String(320))
        parts.append(
            select(lowered.label("k"), literal(kind).label("src"), table.c.followemail).where(
                in_ids(conn, lowered, wanted)
            )
        )
    if hashes:
        parts.append(
            select(
                donottrack.c.addresshash.label("k"), literal("list").label("src"), false()
            ).where(in_ids(conn, donottrack.c.addresshash, list(hashes)))
        )
    if asked:
        opened = open_consents_query(conn, asked).subquery()
        parts.append(select(opened.c.addresshash.label("k"), literal("consent"), false()))
    first: dict[str, tuple[int, bool]] = {}
    out: dict[str, str] = {}
    for key, source, follow in conn.execute(union_all(*parts)):
        if source == "consent":
            asking.discard(hashes[key])
            continue
        if source == "list":
            out[hashes[key]] = LISTED
            continue
        rank = _RANK[source]
        if key not in first or rank < first[key][0]:
            first[key] = (rank, bool(follow))
    for address, (_rank, follow) in first.items():
        if not follow and address not in out:
            out[address] = PARTY_SAYS_NO
    for address in asking:  # under consent, and no open consent was found
        out.setdefault(address, NO_CONSENT)
    return out


def use_nonce(conn: Connection, nonce: str, now: datetime, keep: timedelta) -> bool:
    """Spend a form nonce: True the first time, False when it was used before. Nonces
    older than `keep` (the form token's lifetime: their tokens expired) are pruned."""
    conn.execute(delete(stoptrackingnonce).where(stoptrackingnonce.c.usedon < now - keep))
    stmt = _module(conn).insert(stoptrackingnonce).on_conflict_do_nothing(index_elements=["nonce"])
    values = stmt.values(nonce=nonce, usedon=now).returning(stoptrackingnonce.c.nonce)
    return conn.execute(values).first() is not None


def count_dropped(conn: Connection, at: datetime, counts: Mapping[str, int]) -> None:
    """Add to the day's count of hits dropped for each reason."""
    rows = [{"day": f"{at:%Y-%m-%d}", "reason": r, "hits": n} for r, n in counts.items() if n]
    if not rows:
        return
    stmt = _module(conn).insert(droppedhits)
    stmt = stmt.on_conflict_do_update(
        index_elements=["day", "reason"], set_={"hits": droppedhits.c.hits + stmt.excluded.hits}
    )
    conn.execute(stmt, rows)


def dropped(conn: Connection, since: datetime | None = None) -> list[tuple[str, str, int]]:
    """(day, reason, hits) of hits dropped, oldest day first, from `since`'s day on."""
    query = select(droppedhits.c.day, droppedhits.c.reason, droppedhits.c.hits)
    if since is not None:
        query = query.where(droppedhits.c.day >= f"{since:%Y-%m-%d}")
    rows = conn.execute(query.order_by(droppedhits.c.day, droppedhits.c.reason))
    return [(day, reason, int(hits)) for day, reason, hits in rows]


def delivery_address(conn: Connection, delivery_id: int) -> str | None:
    """The address a delivery went to, or None when there is no such delivery."""
    stmt = select(emaildelivery.c.emailaddress).where(emaildelivery.c.deliveryid == delivery_id)
    found = conn.execute(stmt).first()
    return None if found is None else str(found[0])


def delete_tracked_events(conn: Connection, address: str) -> tuple[int, set[uuid.UUID]]:
    """Delete the opens, clicks and downloads of every copy sent to this address (replies
    stay: they are mail, not tracking); (events deleted, the emails they counted for)."""
    d, e = emaildelivery, interactionforemail
    copies = select(d.c.deliveryid).where(d.c.emailaddress == address.lower())
    touched = conn.execute(
        select(e.c.emailactivityid)
        .where(e.c.deliveryid.in_(copies), e.c.interactiontype.in_(TRACKED_KINDS))
        .distinct()
    )
    emails = {row[0] for row in touched}
    result = conn.execute(
        delete(e).where(e.c.deliveryid.in_(copies), e.c.interactiontype.in_(TRACKED_KINDS))
    )
    return int(result.rowcount), emails


def listed_among(
    conn: Connection, addresses: Iterable[str], hash_of: Callable[[str], str]
) -> set[str]:
    """Which of these addresses are on the list, each hashed with `hash_of`."""
    hashes = {hash_of(address): address for address in addresses}
    return {hashes[h] for h in listed(conn, hashes)}
