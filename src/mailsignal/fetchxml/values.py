"""Condition values: strings from the XML -> Python values of the column's type.

A value that does not convert is refused with Dataverse's FormatException message
(reference/dataverse.md §2) before any SQL runs, so a wrong-typed value is a 400 and
never a database error. Values are always bound parameters, never SQL text.
"""

from __future__ import annotations

import math
import re
import uuid
from datetime import UTC, date, datetime

from ..errors import FetchXmlQueryError
from . import codes
from .catalog import AttributeInfo

Value = uuid.UUID | str | int | float | bool | datetime

_INT = re.compile(r"\s*[+-]?\d+\s*\Z")
_FLOAT = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*\Z")
_DATE = re.compile(r"\s*(\d{4})-(\d{2})-(\d{2})")


def format_error(
    raw: str, attr: AttributeInfo, reason: str, exception: str = "FormatException"
) -> FetchXmlQueryError:
    """Dataverse's message for a value that will not convert to the attribute's type."""
    return FetchXmlQueryError(
        f"An exception System.{exception} was thrown while trying to convert input value "
        f"'{raw}' to attribute '{attr.entity}.{attr.name}'. Expected type of attribute "
        f"value: {attr.dotnet}. Exception raised: {reason}",
        error_code=codes.INVALID_ARGUMENT,
    )


def to_int(raw: str, attr: AttributeInfo, bits: int = 32) -> int:
    if not _INT.match(raw):
        raise format_error(raw, attr, "Input string was not in a correct format.")
    value = int(raw)
    limit = 1 << (bits - 1)
    if not -limit <= value < limit:
        name = "Int64" if bits == 64 else "Int32"
        raise format_error(
            raw,
            attr,
            f"Value was either too large or too small for an {name}.",
            "OverflowException",
        )
    return value


def to_datetime(raw: str, attr: AttributeInfo) -> datetime:
    """ISO 8601; no offset means UTC (dataverse.md §2), so the instant is exact."""
    text = raw.strip()
    try:
        parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise format_error(
            raw, attr, f"String '{raw}' was not recognized as a valid DateTime."
        ) from None


def to_date(raw: str, attr: AttributeInfo) -> date:
    """The calendar date named by `on` / `on-or-*` values: the date part, as written."""
    match = _DATE.match(raw)
    try:
        if match is None:
            raise ValueError(raw)
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        raise format_error(
            raw, attr, f"String '{raw}' was not recognized as a valid DateTime."
        ) from None


def convert(raw: str, attr: AttributeInfo) -> Value:
    """`raw` as a value of `attr`'s kind, or a FetchXmlQueryError (InvalidArgument)."""
    kind = attr.kind
    if kind == "string":
        return raw
    if kind == "int":
        return to_int(raw, attr, attr.int_bits or 32)
    if kind == "float":
        if not _FLOAT.match(raw) or not math.isfinite(float(raw)):
            raise format_error(raw, attr, "Input string was not in a correct format.")
        return float(raw)
    if kind == "bool":
        text = raw.strip().lower()
        if text not in ("1", "0", "true", "false"):
            raise format_error(raw, attr, f"String '{raw}' was not recognized as a valid Boolean.")
        return text in ("1", "true")
    if kind == "uuid":
        try:
            return uuid.UUID(raw.strip())
        except ValueError:
            raise format_error(
                raw,
                attr,
                "Guid should contain 32 digits with 4 dashes "
                "(xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx).",
            ) from None
    if kind == "datetime":
        return to_datetime(raw, attr)
    raise FetchXmlQueryError(  # json
        f"Attribute '{attr.entity}.{attr.name}' cannot be used in a condition.",
        error_code=codes.INVALID_ARGUMENT,
    )
