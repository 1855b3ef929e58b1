"""Contacts, leads and accounts from a CSV file with the column names Dynamics 365 exports
use (issue 11, item 7).

Columns read, by logical name (an Advanced Find or Web API export) or as an Excel
export heads its id column:

- every kind: its id (`contactid`, `leadid`, `accountid`, or `(Do Not Modify) Contact`
  and so on), `emailaddress1`, `followemail` (true/false, yes/no, 1/0);
- contacts and leads: `fullname`, else `firstname` and `lastname` joined;
- accounts: `name`;
- contacts: their account as `parentcustomerid` or `_parentcustomerid_value` (an id, or
  the account's name as an export shows it) or `parentcustomeridname` (a name);
- leads: `companyname`.

Other columns (`jobtitle`, `telephone1`...) are named in the summary as not kept. An empty
cell sets nothing.

Idempotent: a row updates the record with its id, else the one of its kind with its
address, else creates one (with its id when it has one), so importing a file twice
changes nothing the second time. A bad row is named by its line and skipped (its own
savepoint), the rest go on; each write goes through `pipeline.parties`, so mail already
sent to an imported address is linked to it.
"""

from __future__ import annotations

import csv
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from ..errors import InputError
from ..settings import Settings
from ..store import parties as store_parties
from . import parties

_TRUE = {"true", "yes", "1", "y"}
_FALSE = {"false", "no", "0", "n"}


@dataclass
class ImportSummary:
    """What an import did; `errors` name each bad line."""

    lines: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[str] = field(default_factory=list)
    not_kept: list[str] = field(default_factory=list)


def _known(kind: str) -> set[str]:
    """The columns read for this kind (lower-cased)."""
    names = {f"{kind}id", f"(do not modify) {kind}", "emailaddress1", "followemail"}
    if kind == "account":
        return names | {"name"}
    names |= {"fullname", "firstname", "lastname"}
    if kind == "lead":
        return names | {"companyname"}
    return names | {"parentcustomerid", "_parentcustomerid_value", "parentcustomeridname"}


def _flag(text: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise InputError(f"followemail: {text[:20]!r} is not true or false")


def _parent(conn: Connection, row: dict[str, str]) -> uuid.UUID | None:
    """The account a contact row names, by id or by name (exports show either)."""
    for column in ("parentcustomerid", "_parentcustomerid_value", "parentcustomeridname"):
        text = row.get(column, "").strip()
        if not text:
            continue
        try:
            return uuid.UUID(text)
        except ValueError:
            pass
        found = store_parties.accounts_named(conn, text)
        if len(found) != 1:
            many = "several accounts are" if found else "no account is"
            raise InputError(f"{column}: {many} named {text[:80]!r}")
        return found[0]
    return None


def values_of(conn: Connection, kind: str, row: dict[str, str]) -> dict[str, Any]:
    """The fields a row sets (its non-empty cells, typed)."""
    values: dict[str, Any] = {}
    name = parties.name_field(kind)
    full = row.get(name, "").strip() or " ".join(
        p for p in (row.get("firstname", "").strip(), row.get("lastname", "").strip()) if p
    )
    if full:
        values[name] = full
    for column in ("emailaddress1", "companyname"):
        if row.get(column, "").strip() and column in parties.FIELDS[kind]:
            values[column] = row[column].strip()
    if row.get("followemail", "").strip():
        values["followemail"] = _flag(row["followemail"])
    if kind == "contact":
        parent = _parent(conn, row)
        if parent is not None:
            values["parentcustomerid"] = parent
    return values


def _id_of(kind: str, row: dict[str, str]) -> uuid.UUID | None:
    for column in (f"{kind}id", f"(do not modify) {kind}"):
        text = row.get(column, "").strip()
        if text:
            try:
                return uuid.UUID(text)
            except ValueError as exc:
                raise InputError(f"{column}: {text[:80]!r} is not an id") from exc
    return None


def _one(conn: Connection, kind: str, row: dict[str, str], settings: Settings) -> str:
    """Write one row; returns "created", "updated" or "unchanged"."""
    values = values_of(conn, kind, row)
    party_id = _id_of(kind, row)
    existing = None
    if party_id is not None and store_parties.get(conn, kind, party_id) is not None:
        existing = party_id
    elif values.get("emailaddress1"):
        address = values["emailaddress1"]
        existing = store_parties.by_address(conn, kind, address.strip().lower())
    if existing is None:
        parties.add(conn, kind, values, settings, party_id=party_id)
        return "created"
    return "updated" if parties.change(conn, kind, existing, values, settings) else "unchanged"


def import_rows(
    conn: Connection, kind: str, lines: Iterable[str], settings: Settings
) -> ImportSummary:
    """Import CSV text (header first) into `kind`'s table in the caller's transaction."""
    parties.entity(kind)
    summary = ImportSummary()
    reader = csv.DictReader(iter(lines))
    header = [(h or "").lstrip("\ufeff").strip() for h in reader.fieldnames or []]
    reader.fieldnames = [h.lower() for h in header]
    known = _known(kind)
    summary.not_kept = [h for h in header if h and h.lower() not in known]
    if not any(h.lower() in known for h in header):
        raise InputError(
            f"no column a {kind} import reads: give emailaddress1 or {parties.name_field(kind)}"
        )
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:  # a NUL byte, an unclosed quote: the rest cannot be read
            summary.errors.append(f"line {reader.line_num}: not CSV ({exc}); stopped here")
            break
        summary.lines += 1
        cells = {k: v for k, v in row.items() if isinstance(k, str) and isinstance(v, str)}
        try:
            with conn.begin_nested():
                outcome = _one(conn, kind, cells, settings)
        except InputError as exc:
            summary.errors.append(f"line {reader.line_num}: {exc.message}")
            continue
        setattr(summary, outcome, getattr(summary, outcome) + 1)
    return summary
