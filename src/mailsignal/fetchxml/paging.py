"""Paging cookies: keyset paging across pages (reference/dataverse.md §4 "Paging cookie").

Every non-aggregate, non-distinct query is ordered by its `<order>`s and then by the
primary key of the entity and of each joined link, so each row has a unique sort key.
The cookie is opaque to clients: base64url of a small JSON document holding the page
number it ends, the sort key of that page's last row and a fingerprint of the order.
Sent back with `page+1`, it turns into "rows after this key" instead of an OFFSET, so
deep pages cost the same as the first and rows inserted meanwhile shift nothing.

The Web API wraps it as Dataverse does (`annotation`): `<cookie pagenumber="2"
pagingcookie="%253ccookie page..." istracking="False" />`, whose `pagingcookie` is an
inner `<cookie page="1">...</cookie>` URL-encoded twice. Clients (the Python SDK,
dynamics-web-api's fetchAll) decode it twice and send the inner XML back as
`paging-cookie`, so `decode` takes that inner form as well as the bare token.

Ascending keys sort nulls first and descending nulls last (SQL Server's order, which
Dataverse users see), the same on both backends. A cookie for another page number or
another order falls back to simple (OFFSET) paging, as Dataverse does when no cookie
applies; a cookie that is not ours is an error.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote

from sqlalchemy import and_, false, literal, or_
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import NullType

from ..errors import FetchXmlQueryError
from . import codes


@dataclass(frozen=True)
class SortKey:
    """One ORDER BY key, also selected under `label` so the last row's key can be read."""

    label: str
    expr: ColumnElement[Any]
    kind: str
    descending: bool

    def clause(self) -> Any:
        return self.expr.desc().nulls_last() if self.descending else self.expr.asc().nulls_first()


def fingerprint(entity: str, keys: Sequence[SortKey]) -> str:
    text = entity + "|" + ";".join(f"{k.kind}:{k.descending}:{k.expr}" for k in keys)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _plain(value: object) -> object:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return value


def encode(page: int, values: Sequence[object], fp: str) -> str:
    """The cookie for the page `page` whose last row has sort key `values`."""
    doc = json.dumps({"p": page, "k": [_plain(v) for v in values], "f": fp}, separators=(",", ":"))
    return base64.urlsafe_b64encode(doc.encode()).decode().rstrip("=")


# The inner cookie a client sends back: `<cookie page="1"><token value="..." /></cookie>`.
_INNER = re.compile(
    r'\s*<cookie\s+page="\d+"\s*>\s*<token\s+value="([A-Za-z0-9_-]*)"\s*/>\s*</cookie>\s*'
)


def annotation(token: str) -> str:
    """`@Microsoft.Dynamics.CRM.fetchxmlpagingcookie` for `token` (made by `encode`), in
    Dataverse's form: the next page number and the inner cookie URL-encoded twice."""
    page = _page(_document(token))
    inner = f'<cookie page="{page}"><token value="{token}" /></cookie>'
    twice = quote(quote(inner, safe=""), safe="")
    return f'<cookie pagenumber="{page + 1}" pagingcookie="{twice}" istracking="False" />'


_OUTER = re.compile(
    r'\s*<cookie\s+pagenumber="(\d{1,9})"\s+pagingcookie="([^"]*)"(?:\s+istracking="\w*")?\s*/>\s*'
)


def skiptoken(text: str) -> tuple[int, str]:
    """(page number, inner cookie) of an OData `$skiptoken`: the `annotation` an
    `@odata.nextLink` carries, its `pagingcookie` URL-encoded twice.

    Raises:
        FetchXmlQueryError: the token is not a cookie of ours.
    """
    match = _OUTER.fullmatch(text)
    if match is None or int(match[1]) < 2:
        raise _bad()
    inner = unquote(unquote(match[2]))
    if _page(_document(inner)) != int(match[1]) - 1:
        raise _bad()
    return int(match[1]), inner


def _page(doc: dict[str, Any]) -> int:
    page = doc.get("p")
    if not isinstance(page, int) or isinstance(page, bool) or page < 1:
        raise _bad()
    return page


def _document(cookie: str) -> dict[str, Any]:
    inner = _INNER.fullmatch(cookie)
    text = inner[1] if inner else cookie.strip()
    try:
        doc = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, ValueError):
        raise _bad() from None
    if not isinstance(doc, dict):
        raise _bad()
    return doc


def _bad() -> FetchXmlQueryError:
    return FetchXmlQueryError("The paging cookie is not valid.", error_code=codes.INVALID_ARGUMENT)


def _typed(value: object, kind: str) -> object:
    if value is None:
        return None
    if kind == "string" and isinstance(value, str):
        return value
    if kind == "int" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind == "float" and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind == "bool" and isinstance(value, bool):
        return value
    try:
        if kind == "uuid" and isinstance(value, str):
            return uuid.UUID(value)
        if kind == "datetime" and isinstance(value, str):
            parsed = datetime.fromisoformat(value)
            if parsed.tzinfo is not None:
                return parsed.astimezone(UTC)
    except ValueError:
        pass
    raise _bad()


def decode(cookie: str, keys: Sequence[SortKey], fp: str) -> tuple[int, list[object]] | None:
    """(page, typed key values) from a cookie, the bare token or the inner `<cookie>` a
    Dataverse client sends back; None when it belongs to another order."""
    doc = _document(cookie)
    page = _page(doc)
    if not isinstance(doc.get("k"), list):
        raise _bad()
    if doc.get("f") != fp or len(doc["k"]) != len(keys):
        return None
    return page, [_typed(v, k.kind) for v, k in zip(doc["k"], keys, strict=True)]


def after(keys: Sequence[SortKey], values: Sequence[object]) -> ColumnElement[bool]:
    """Rows strictly after the row whose sort key is `values`, in `keys` order."""
    alternatives: list[ColumnElement[bool]] = []
    equal: list[ColumnElement[bool]] = []
    for key, value in zip(keys, values, strict=True):
        expr = key.expr
        later: ColumnElement[bool]
        same: ColumnElement[bool]
        if value is None:
            later = false() if key.descending else expr.is_not(None)
            same = expr.is_(None)
        else:
            bound = literal(value) if isinstance(expr.type, NullType) else literal(value, expr.type)
            later = or_(expr < bound, expr.is_(None)) if key.descending else expr > bound
            same = expr == bound
        alternatives.append(and_(*equal, later))
        equal.append(same)
    return or_(*alternatives)
