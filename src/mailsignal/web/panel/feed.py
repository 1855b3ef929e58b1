"""The rep's first page: what people did across the mail they read, newest first (`GET /`).

Opens, clicks (with the link), downloads (with the file), replies, and opens by someone
the mail was forwarded to, each with who, which email, when (the viewer's zone) and how
long after delivery. Machine events are not listed; the page says how many it left out
in the same period. Tabs: `all`, `hottest` (contacts, leads and accounts by lead score,
with their last engagement by a person) and `email` (opens and clicks only). Older items
through the `before` cursor (`<microseconds since 1970>.<event id>`).

`GET /feed/items` answers the list alone (`_feed_items.html`), which static/panel.js
fetches every few seconds, so a person's click appears without a reload.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from ...model import EventKind, Verdict
from ...store import panelfeed
from . import base

router = APIRouter(include_in_schema=False)
Viewer = Annotated[base.Viewer, Depends(base.viewer)]

TABS = {"all": "All activity", "hottest": "Highest lead scores", "email": "Email opens and clicks"}
_CURSOR = re.compile(r"^(-?\d{1,18})\.([0-9a-f]{32})$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ACTION = {
    EventKind.OPEN: "opened",
    EventKind.CLICK: "clicked a link in",
    EventKind.ATTACHMENT: "downloaded an attachment of",
    EventKind.REPLY: "replied to",
}
PARTY_PATHS = {"contact": "/contacts", "lead": "/leads", "account": "/accounts"}


class BadInput(ValueError):
    """A query value the page cannot take: answered with a 400 page."""


def encode_cursor(at: datetime, key: uuid.UUID) -> str:
    micros = (at - _EPOCH) // timedelta(microseconds=1)
    return f"{micros}.{key.hex}"


def decode_cursor(value: str) -> tuple[datetime, uuid.UUID]:
    found = _CURSOR.match(value)
    if found is None:
        raise BadInput("“before” is not a position in the feed; start again from the newest")
    try:
        at = _EPOCH + timedelta(microseconds=int(found[1]))
    except OverflowError as exc:
        raise BadInput("“before” is out of range; start again from the newest") from exc
    return at, uuid.UUID(found[2])


def _tab(value: str | None) -> str:
    tab = value or "all"
    if tab not in TABS:
        raise BadInput(f"There is no tab called “{tab[:40]}”. Choose all, hottest or email.")
    return tab


def _item(row: dict[str, Any]) -> dict[str, Any]:
    """A feed row as the template shows it."""
    kind = EventKind(row["kind"])
    forward = row["verdict"] == Verdict.FORWARD.value
    delivered = row["senton"] or row["deliveredon"]
    detail = None
    if kind is EventKind.CLICK:
        detail = row["linkurl"] or row["component"]
    elif kind is EventKind.ATTACHMENT:
        detail = row["filename"] or row["component"]
    party = None
    if row["partyid"] is not None and row["partykind"] in PARTY_PATHS:
        party = {
            "href": f"{PARTY_PATHS[row['partykind']]}/{row['partyid']}",
            "name": row["partyname"] or row["address"],
            "kind": row["partykind"],
        }
    return {
        **row,
        "action": _ACTION[kind],
        "forward": forward,
        "badge": "forward" if forward else "person",
        "detail": detail,
        "linktext": (row["linktext"] or "").strip() if kind is EventKind.CLICK else "",
        "delivered": delivered,
        "party": party,
        "replier": row["repliedby"] if kind is EventKind.REPLY else None,
    }


def _context(
    request: Request, who: base.Viewer, tab_q: str | None, before_q: str | None
) -> dict[str, Any]:
    tab = _tab(tab_q)
    before = decode_cursor(before_q) if before_q else None
    context: dict[str, Any] = {"tab": tab, "tabs": TABS, "before": before_q or ""}
    with base.engine(request).connect() as conn:
        if tab == "hottest":
            context["parties"] = [
                {**p, "href": f"{PARTY_PATHS[p['kind']]}/{p['id']}"}
                for p in panelfeed.hottest(conn, who.caller)
            ]
            context.update(items=[], machine=0, unlabelled=0, next=None, start=None, end=None)
            return context
        found = panelfeed.feed(conn, who.caller, tab=tab, before=before)
    context.update(
        items=[_item(r) for r in found["items"]],
        machine=found["machine"],
        unlabelled=found["unlabelled"],
        next=encode_cursor(*found["next"]) if found["next"] else None,
        start=found["start"],
        end=found["end"],
    )
    return context


def _bad(request: Request, who: base.Viewer, exc: BadInput) -> HTMLResponse:
    return base.render(
        request, "error.html", who, 400, heading="That page does not exist", message=str(exc)
    )


def _page(
    request: Request, who: base.Viewer, template: str, tab: str | None, before: str | None
) -> HTMLResponse:
    try:
        context = _context(request, who, tab, before)
    except BadInput as exc:
        return _bad(request, who, exc)
    return base.render(request, template, who, **context)


@router.get("/", response_class=HTMLResponse)
def feed_page(
    request: Request, who: Viewer, tab: str | None = None, before: str | None = None
) -> HTMLResponse:
    """The activity feed."""
    return _page(request, who, "feed.html", tab, before)


@router.get("/feed/items", response_class=HTMLResponse)
def feed_items(
    request: Request, who: Viewer, tab: str | None = None, before: str | None = None
) -> HTMLResponse:
    """The feed's list alone, for the live refresh."""
    return _page(request, who, "_feed_items.html", tab, before)
