"""Mail already sent follows addresses: resolution by address, both ways (issue 11, item 8).

At send time a recipient is matched to a party by address (`parties.find_many`); mail
to an address no party has stays unresolved, as in Dynamics. When a contact, lead or
account is later created, changes its address or is removed, the deliveries to the
addresses involved are resolved again with one rule: a delivery whose party still has
its address keeps it (mail is not taken from one party for another); any other (no
party yet, or a party that moved to another address or is gone) goes to whichever
party `parties.find_many` gives its address now, or to none. The email's regarding
record follows when it named the old party or nothing.

The parties that gained or lost deliveries (and the accounts of those contacts) then
have their score and roll-ups rebuilt from all their events (`rescore.rescore`, the
same rules as ingest), so a contact created after the mail was sent ends exactly as if
it had existed then. An email's own counters do not depend on who its recipients are,
so they stay. A delivery keeps the tracking decision made when it was sent.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, bindparam, delete, func, select, update

from ..engagement import Weights
from ..errors import NotFoundError
from .bulk import executemany, in_ids
from .parties import TABLES, Found, Party, add, find_many
from .rescore import rescore
from .schema import contact, email, emaildelivery
from .sent import storable


def relink(
    conn: Connection, addresses: Iterable[str | None], weights: Weights, now: datetime
) -> int:
    """Resolve the deliveries to these addresses again and rescore the parties that
    gained or lost one; returns how many deliveries changed party."""
    wanted = sorted({a.strip().lower() for a in addresses if a and a.strip()})
    if not wanted:
        return 0
    rows = conn.execute(deliveries_to(conn, wanted)).all()
    holders = _addresses_of(conn, {(k, p) for *_x, k, p in rows if p is not None})
    found = find_many(conn, wanted)
    moves: list[tuple[int, uuid.UUID, Party | None, Party | None]] = []
    for delivery, activity, address, kind, party in rows:
        old: Party | None = (kind, party) if party is not None else None
        if old is not None and holders.get(old) == address.lower():
            continue
        hit = found.get(address.lower())
        new: Party | None = (hit[0], hit[1]) if hit else None
        if new != old:
            moves.append((delivery, activity, old, new))
    if not moves:
        return 0
    _move(conn, moves)
    touched = {p for _d, _a, old, new in moves for p in (old, new) if p is not None}
    rescore(conn, touched | accounts_of(conn, touched), weights, now)
    return len(moves)


def deliveries_to(conn: Connection, addresses: list[str]) -> Select[Any]:
    """The deliveries to these (lower-cased) addresses and who holds each: an index
    search (ix_emaildelivery_emailaddress, migration 0007), as stored addresses are
    lower-cased."""
    d = emaildelivery
    return select(
        d.c.deliveryid,
        d.c.emailactivityid,
        d.c.emailaddress,
        d.c.recipientobjecttypecode,
        d.c.recipientobjectid,
    ).where(in_ids(conn, d.c.emailaddress, addresses))


def _addresses_of(conn: Connection, found: set[Party]) -> dict[Party, str]:
    """The lower-cased address of each of these parties that exists and has one."""
    out: dict[Party, str] = {}
    for kind, (table, key) in TABLES.items():
        ids = [p for k, p in found if k == kind]
        if ids:
            for party, address in conn.execute(
                select(table.c[key], func.lower(table.c.emailaddress1)).where(
                    in_ids(conn, table.c[key], ids)
                )
            ):
                if address:
                    out[(kind, party)] = address
    return out


def _move(conn: Connection, moves: list[tuple[int, uuid.UUID, Party | None, Party | None]]) -> None:
    """Give each delivery its new party, and its email the new regarding record where
    the email was about the old one or about nothing."""
    d = emaildelivery
    executemany(
        conn,
        update(d)
        .where(d.c.deliveryid == bindparam("b_id"))
        .values(
            recipientobjecttypecode=bindparam("b_kind"), recipientobjectid=bindparam("b_party")
        ),
        [
            {"b_id": delivery, "b_kind": new and new[0], "b_party": new and new[1]}
            for delivery, _a, _old, new in moves
        ],
    )
    for _delivery, activity, old, new in moves:
        about: ColumnElement[bool] = email.c.regardingobjectid.is_(None)
        if old is not None:
            about = about | (email.c.regardingobjectid == old[1])
        conn.execute(
            update(email)
            .where(email.c.activityid == activity, about)
            .values(regardingobjecttypecode=new and new[0], regardingobjectid=new and new[1])
        )


def accounts_of(conn: Connection, found: set[Party]) -> set[Party]:
    """The accounts these contacts belong to (an account's score counts its contacts')."""
    ids = [p for k, p in found if k == "contact"]
    if not ids:
        return set()
    rows = conn.execute(
        select(contact.c.parentcustomerid).where(
            in_ids(conn, contact.c.contactid, ids), contact.c.parentcustomerid.is_not(None)
        )
    )
    return {("account", parent) for (parent,) in rows}


def remove(
    conn: Connection, kind: str, party_id: uuid.UUID, weights: Weights, now: datetime
) -> int:
    """Delete a party. Its deliveries are not deleted: they go to another party with the
    same address, or stay unresolved; an account's contacts lose their parent; emails
    about it are about nothing. Returns how many deliveries it held."""
    table, key = TABLES[kind]
    if conn.execute(select(table.c[key]).where(table.c[key] == party_id)).first() is None:
        raise NotFoundError(f"no {kind} {party_id}")
    d = emaildelivery
    mine = (d.c.recipientobjecttypecode == kind) & (d.c.recipientobjectid == party_id)
    addresses = list(conn.execute(select(d.c.emailaddress).where(mine).distinct()).scalars())
    held = int(conn.execute(select(func.count()).select_from(d).where(mine)).scalar_one())
    parents = accounts_of(conn, {(kind, party_id)})
    if kind == "account":
        conn.execute(
            update(contact)
            .where(contact.c.parentcustomerid == party_id)
            .values(parentcustomerid=None)
        )
    conn.execute(
        update(email)
        .where(email.c.regardingobjectid == party_id)
        .values(regardingobjectid=None, regardingobjecttypecode=None)
    )
    conn.execute(delete(table).where(table.c[key] == party_id))
    relink(conn, addresses, weights, now)
    rescore(conn, parents, weights, now)
    return held


def add_missing(
    conn: Connection,
    addresses: list[str],
    found: dict[str, Found],
    names: Mapping[str, str],
    weights: Weights,
) -> dict[str, Found]:
    """A contact for each of these (normalised) recipients that `found` lacks, named by
    `names` (its display name in the message, `addresses.names_in`), else by its address
    (setting `auto_create_contacts`); earlier mail to its address follows."""
    made: dict[str, Found] = {}
    for address in addresses:
        if address not in found and address not in made:
            name = storable(names.get(address, ""))[:200] or address
            made[address] = ("contact", add(conn, "contact", name, address), True)
    relink(conn, list(made), weights, datetime.now(UTC))
    return made
