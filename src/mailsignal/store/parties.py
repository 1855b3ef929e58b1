"""Contacts, leads and accounts: who mail goes to, and what their engagement adds up to.

A recipient is matched to a party by address, whatever its case: the contact first, else
the lead, else the account (Dynamics resolves a recipient the same way). Addresses are
looked up through the `lower(emailaddress1)` indexes (migration 0006), never scanned.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Connection, Table, func, insert, select

from ..addresses import normalise_address
from ..errors import InputError
from ..model import new_id
from .schema import account, contact, lead

# (type code, table, key column), in the order a recipient is matched.
PARTIES: tuple[tuple[str, Table, str], ...] = (
    ("contact", contact, "contactid"),
    ("lead", lead, "leadid"),
    ("account", account, "accountid"),
)
TABLES: dict[str, tuple[Table, str]] = {kind: (table, key) for kind, table, key in PARTIES}
Party = tuple[str, uuid.UUID]  # (type code, id)
Found = tuple[str, uuid.UUID, bool]  # (type code, id, followemail)
_IN_CHUNK = 500


def find(conn: Connection, address: str) -> Found | None:
    """The contact, else lead, else account with this address: (type, id, followemail)."""
    return find_many(conn, [address]).get(address.lower())


def find_many(conn: Connection, addresses: list[str]) -> dict[str, Found]:
    """`find` for many addresses, keyed by the lower-cased address: a few statements,
    not three per address. Where two rows share an address, the first one found wins."""
    found: dict[str, Found] = {}
    for kind, table, key in PARTIES:
        wanted = sorted({a.lower() for a in addresses} - found.keys())
        lowered = func.lower(table.c.emailaddress1)
        for start in range(0, len(wanted), _IN_CHUNK):
            rows = conn.execute(
                select(lowered, table.c[key], table.c.followemail)
                .where(lowered.in_(wanted[start : start + _IN_CHUNK]))
                .order_by(table.c[key])
            )
            for address, party_id, follow in rows:
                if address not in found:
                    found[address] = (kind, party_id, bool(follow))
    return found


def add(
    conn: Connection,
    kind: str,
    name: str | None,
    address: str | None,
    *,
    follow: bool = True,
    parent: uuid.UUID | None = None,
) -> uuid.UUID:
    """A new contact, lead or account; a contact may name its account (`parent`). An
    empty name is stored as null, as Dataverse leaves an unnamed record's."""
    if kind not in TABLES:
        raise InputError(f"unknown party type {kind!r}")
    table, key = TABLES[kind]
    party_id = new_id()
    values: dict[str, Any] = {
        key: party_id,
        "emailaddress1": address and normalise_address(address),
        "followemail": follow,
        "name" if kind == "account" else "fullname": (name or "").strip() or None,
    }
    if parent is not None and kind == "contact":
        values["parentcustomerid"] = parent
    conn.execute(insert(table).values(**values))
    return party_id


def get(conn: Connection, kind: str, party_id: uuid.UUID) -> dict[str, Any] | None:
    """One party row, or None."""
    table, key = TABLES[kind]
    row = conn.execute(select(table).where(table.c[key] == party_id)).mappings().first()
    return dict(row) if row else None


def count(conn: Connection) -> int:
    """How many contacts, leads and accounts there are."""
    return sum(
        int(conn.execute(select(func.count()).select_from(table)).scalar_one())
        for table, _key in TABLES.values()
    )


def listing(
    conn: Connection, kind: str, *, contains: str | None = None, limit: int = 50, offset: int = 0
) -> list[dict[str, Any]]:
    """Parties of one kind, by name then id; `contains` keeps those whose name or address
    holds it, whatever its case."""
    table, key = TABLES[kind]
    name = table.c["name" if kind == "account" else "fullname"]
    query = select(table).order_by(name, table.c[key]).limit(limit).offset(offset)
    if contains:
        query = query.where(
            func.lower(name).contains(contains.lower(), autoescape=True)
            | func.lower(table.c.emailaddress1).contains(contains.lower(), autoescape=True)
        )
    return [dict(row) for row in conn.execute(query).mappings()]


def by_address(conn: Connection, kind: str, address: str) -> uuid.UUID | None:
    """The first party of this kind with this address, whatever its case (indexed)."""
    table, key = TABLES[kind]
    found = conn.execute(
        select(table.c[key])
        .where(func.lower(table.c.emailaddress1) == address.lower())
        .order_by(table.c[key])
        .limit(1)
    ).first()
    return None if found is None else found[0]


def accounts_named(conn: Connection, name: str) -> list[uuid.UUID]:
    """The accounts with this name, whatever its case (how an export names a parent)."""
    rows = conn.execute(
        select(account.c.accountid).where(func.lower(account.c.name) == name.strip().lower())
    )
    return [row[0] for row in rows]
