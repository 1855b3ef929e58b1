"""What a column can hold, checked the same way on SQLite and PostgreSQL.

SQLite stores a 1,000-character string in a VARCHAR(200), a NUL inside text and an
integer past 2**31 in an INTEGER; PostgreSQL refuses each with a DataError, and neither
driver can encode a lone surrogate. So a value that one backend would keep and the other
refuse (as a 500) is refused here first, on both, as an `InputError` that names the
column: the store's writes call `check` before they execute.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Integer, SmallInteger, String, Table

from ..errors import InputError

# The signed ranges of PostgreSQL's integer types (SQLite's own is the widest of them),
# subclasses before Integer, their base.
_INT_RANGES = (
    (BigInteger, (-(2**63), 2**63 - 1)),
    (SmallInteger, (-(2**15), 2**15 - 1)),
    (Integer, (-(2**31), 2**31 - 1)),
)


@dataclass(frozen=True, slots=True)
class Misfit:
    """Why `value` does not fit `column`: "null" (the column requires a value),
    "length" (over `limit` characters), "nul" (a NUL character), "surrogate" (not Unicode
    text) or "range" (`limit` is the lowest and highest integer the column holds)."""

    column: str
    reason: str
    value: Any
    limit: Any = None

    @property
    def message(self) -> str:
        if self.reason == "null":
            return f"{self.column}: a value is required"
        if self.reason == "length":
            return f"{self.column}: longer than {self.limit} characters"
        if self.reason == "nul":
            return f"{self.column}: contains a NUL character, which cannot be stored"
        if self.reason == "surrogate":
            return f"{self.column}: not Unicode text (it holds a lone surrogate)"
        low, high = self.limit
        return f"{self.column}: {shown(self.value)} is out of range ({low} to {high})"


def shown(number: int) -> str:
    """`number` for a message; past 128 bits by its size, as `str` refuses over 4,300 digits."""
    return str(number) if number.bit_length() <= 128 else f"a {number.bit_length()}-bit number"


@functools.cache
def _kinds(table: Table) -> dict[str, tuple[str, Any, bool]]:
    """{column: (kind, limit, nullable)}: kind "string" (limit: max length or None),
    "int" (limit: (low, high)) or "other"."""
    kinds: dict[str, tuple[str, Any, bool]] = {}
    for column in table.columns:
        kind = column.type
        limit: Any = None
        name = "other"
        if isinstance(kind, String):
            name, limit = "string", kind.length
        else:
            for base, bounds in _INT_RANGES:
                if isinstance(kind, base):
                    name, limit = "int", bounds
                    break
        kinds[column.name] = (name, limit, bool(column.nullable))
    return kinds


def misfit(table: Table, values: dict[str, Any]) -> Misfit | None:
    """The first value of `values` (column name: value) that `table` cannot hold, or None."""
    kinds = _kinds(table)
    for name, value in values.items():
        kind = kinds.get(name)
        if kind is None:
            continue
        if value is None:
            if not kind[2]:
                return Misfit(name, "null", value)
        elif kind[0] == "string" and isinstance(value, str):
            if kind[1] is not None and len(value) > kind[1]:
                return Misfit(name, "length", value, kind[1])
            if "\x00" in value:
                return Misfit(name, "nul", value)
            if not value.isascii():
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:
                    return Misfit(name, "surrogate", value)
        elif kind[0] == "int" and isinstance(value, int) and not isinstance(value, bool):
            low, high = kind[1]
            if not low <= value <= high:
                return Misfit(name, "range", value, kind[1])
    return None


def check(table: Table, *rows: dict[str, Any]) -> None:
    """`InputError` naming the column when a value of `rows` does not fit `table`."""
    for row in rows:
        found = misfit(table, row)
        if found is not None:
            raise InputError(found.message, detail={"field": found.column, "reason": found.reason})
