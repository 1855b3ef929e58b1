"""Contacts, leads and accounts as users manage them (issue 11, item 7): the one set of
rules the CLI, the REST API and CSV imports share.

Which fields each kind takes is Dynamics' subset that MailSignal keeps (`FIELDS`);
values are checked against their columns and a parent account against the accounts
(`store.records`), addresses are stored in their one spelling. Every write that creates
a party or changes its address or account makes mail already sent follow
(`store.relink`): a contact added after three emails to its address has them, with
their events, roll-ups and score. Removing a party deletes no mail: its deliveries go to
another party with the address, or stay unresolved.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from ..addresses import normalise_address
from ..engagement import weights_of
from ..errors import InputError, NotFoundError
from ..fetchxml import EntityInfo
from ..model import new_id
from ..settings import Settings
from ..store import parties, records, relink, rescore
from ..store.catalog import CATALOG

# The fields a user sets, per kind (the Web API's writable columns for these tables).
FIELDS: dict[str, tuple[str, ...]] = {
    "contact": ("fullname", "emailaddress1", "followemail", "parentcustomerid"),
    "lead": ("fullname", "emailaddress1", "followemail", "companyname"),
    "account": ("name", "emailaddress1", "followemail"),
}
KINDS = tuple(FIELDS)


def entity(kind: str) -> EntityInfo:
    """The catalog entity of a kind (`contact`, `lead` or `account`)."""
    info = CATALOG.entity(kind) if kind in FIELDS else None
    if info is None:
        raise InputError(f"unknown record type {kind!r}: one of {', '.join(KINDS)}")
    return info


def name_field(kind: str) -> str:
    """The column that names a party of this kind: `name` for accounts, else `fullname`."""
    return "name" if kind == "account" else "fullname"


def clean(kind: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """The values as stored: known fields only, the address in its one spelling (empty
    is none), the parent account as a UUID; InputError names what is wrong."""
    entity(kind)
    out: dict[str, Any] = {}
    for field, value in values.items():
        if field not in FIELDS[kind]:
            raise InputError(
                f"{kind}s have no field {field!r}; they take {', '.join(FIELDS[kind])}"
            )
        if field == "emailaddress1":
            value = normalise_address(value) if value and str(value).strip() else None
        elif field == "followemail":
            if not isinstance(value, bool):
                raise InputError("followemail: true or false")
        elif field == "parentcustomerid":
            value = _account_id(value)
        elif value is not None and not isinstance(value, str):
            raise InputError(f"{field}: text")
        out[field] = value
    return out


def _account_id(value: Any) -> uuid.UUID | None:
    if value is None or isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError as exc:
        raise InputError(f"parentcustomerid: {str(value)[:80]!r} is not an id") from exc


def show(conn: Connection, kind: str, party_id: uuid.UUID) -> dict[str, Any]:
    """Every column of one party; NotFoundError when there is none."""
    row = records.get(conn, entity(kind), party_id)
    if row is None:
        raise NotFoundError(f"no {kind} {party_id}")
    return row


def add(
    conn: Connection,
    kind: str,
    values: Mapping[str, Any],
    settings: Settings,
    *,
    party_id: uuid.UUID | None = None,
) -> uuid.UUID:
    """A new party (with `party_id`, or a new one) that has the mail already sent to its
    address. Refused when it has neither name nor address, or when another of its kind
    already has the address (change that one instead)."""
    found = clean(kind, values)
    if not found.get(name_field(kind)) and not found.get("emailaddress1"):
        raise InputError(f"a {kind} needs a {name_field(kind)} or an emailaddress1")
    address = found.get("emailaddress1")
    if address is not None:
        other = parties.by_address(conn, kind, address)
        if other is not None:
            raise InputError(f"{kind} {other} already has the address {address}")
    party_id = party_id or new_id()
    if records.get(conn, entity(kind), party_id) is not None:
        raise InputError(f"{kind} {party_id} already exists")
    records.create(conn, entity(kind), party_id, found)
    follow(conn, kind, None, found, settings)
    return party_id


def change(
    conn: Connection, kind: str, party_id: uuid.UUID, values: Mapping[str, Any], settings: Settings
) -> bool:
    """Set fields of a party; returns whether any changed. Mail follows a new address."""
    current = show(conn, kind, party_id)
    found = {k: v for k, v in clean(kind, values).items() if current.get(k) != v}
    if not found:
        return False
    address = found.get("emailaddress1")
    if address is not None:
        other = parties.by_address(conn, kind, address)
        if other is not None and other != party_id:
            raise InputError(f"{kind} {other} already has the address {address}")
    records.update_columns(conn, entity(kind), party_id, found)
    follow(conn, kind, current, found, settings)
    return True


def remove(conn: Connection, kind: str, party_id: uuid.UUID, settings: Settings) -> int:
    """Delete a party; returns how many deliveries it held (kept, resolved again)."""
    entity(kind)
    return relink.remove(conn, kind, party_id, weights_of(settings), datetime.now(UTC))


def follow(
    conn: Connection,
    kind: str,
    current: Mapping[str, Any] | None,
    written: Mapping[str, Any],
    settings: Settings,
) -> int:
    """After a party is created (`current` None) or changed: mail to its old and new
    address is resolved again, and the accounts a contact left or joined are rescored.
    Returns how many deliveries changed party."""
    now = datetime.now(UTC)
    weights = weights_of(settings)
    moved = 0
    before = (current or {}).get("emailaddress1")
    if current is None or ("emailaddress1" in written and written["emailaddress1"] != before):
        moved = relink.relink(conn, [before, written.get("emailaddress1")], weights, now)
    parent = "parentcustomerid"
    if kind == "contact" and current is not None and parent in written:
        accounts = _accounts((current.get(parent), written[parent]))
        rescore.rescore(conn, accounts, weights, now)
    return moved


def _accounts(ids: Iterable[uuid.UUID | None]) -> set[parties.Party]:
    return {("account", a) for a in ids if a is not None}
