"""“My emails” (`GET /emails`): the viewer's sent mail, newest first, with the raw counts
(every request, as Dynamics counts them) and what people did side by side.

Filters are a GET form: `period` (7, 30, 90 days or all), `engaged` (a person engaged),
`noise` (noise-flagged), `unopened` (no person opened it N days or more after it was
sent) and `q` (in the subject or the recipients). `page` counts from 1, 50 a page. A
value the form cannot have produced answers a 400 page. A manager and an admin see whose
mail each row is (the Sender column).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import Connection

from ...fetchxml import Caller
from ...store import panelfeed, users
from . import base

router = APIRouter(include_in_schema=False)
Viewer = Annotated[base.Viewer, Depends(base.viewer)]

PERIODS = {"7": "Last 7 days", "30": "Last 30 days", "90": "Last 90 days", "all": "All time"}
_YES = {"1", "on", "true", "yes"}
_NO = {"", "0", "off", "false", "no"}
MAX_SEARCH = 200
MAX_PAGE = 10_000
MAX_DAYS = 3650


class BadFilter(ValueError):
    """A filter value the form cannot have sent."""


def _flag(name: str, value: str | None) -> bool:
    if value is None or value.lower() in _NO:
        return False
    if value.lower() in _YES:
        return True
    raise BadFilter(f"“{name}” is a checkbox: leave it out or give 1.")


def _whole(name: str, value: str | None, top: int, default: int | None) -> int | None:
    if value is None or value.strip() == "":
        return default
    text = value.strip()
    if not text.isdecimal() or len(text) > 6 or not 1 <= int(text) <= top:
        raise BadFilter(f"“{name}” must be a whole number from 1 to {top}.")
    return int(text)


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def raw_counts(row: dict[str, Any]) -> str:
    """Every request, as Dynamics counts them: "9 opens · 3 clicks · 1 download"."""
    parts = [_plural(row["opencount"], "open", "opens")]
    parts.append(_plural(row["linksclickedcount"], "click", "clicks"))
    if row["attachmentopencount"]:
        parts.append(_plural(row["attachmentopencount"], "download", "downloads"))
    if row["replycount"]:
        parts.append(_plural(row["replycount"], "reply", "replies"))
    return " · ".join(parts)


def by_people(row: dict[str, Any]) -> str:
    """What people did: "1 open by a person · 1 click · 1 reply"; "" for nothing."""
    parts = []
    if row["humanopencount"]:
        parts.append(f"{_plural(row['humanopencount'], 'open', 'opens')} by a person")
    if row["forwardopencount"]:
        parts.append(f"{_plural(row['forwardopencount'], 'open', 'opens')} after a forward")
    if row["humanlinksclickedcount"]:
        parts.append(_plural(row["humanlinksclickedcount"], "click", "clicks"))
    if row["humanattachmentopencount"]:
        parts.append(_plural(row["humanattachmentopencount"], "download", "downloads"))
    if row["replycount"]:
        parts.append(_plural(row["replycount"], "reply", "replies"))
    return " · ".join(parts)


@router.get("/emails", response_class=HTMLResponse)
def emails_page(
    request: Request,
    who: Viewer,
    period: str | None = None,
    engaged: str | None = None,
    noise: str | None = None,
    unopened: str | None = None,
    q: str | None = None,
    page: str | None = None,
    sender: str | None = None,
) -> HTMLResponse:
    """The viewer's sent mail with its counts, filtered and paged; a manager or an admin
    may narrow it to one sender."""
    with base.engine(request).connect() as conn:
        senders = senders_of(conn, who.caller)
    try:
        chosen_sender = (sender or "").strip().lower()
        if chosen_sender and chosen_sender not in senders:
            raise BadFilter("“sender” must be one of the people whose mail you may read.")
        chosen = period or "all"
        if chosen not in PERIODS:
            raise BadFilter("“period” must be 7, 30, 90 or all.")
        want_engaged, want_noise = _flag("engaged", engaged), _flag("noise", noise)
        days = _whole("unopened", unopened, MAX_DAYS, None)
        number = _whole("page", page, MAX_PAGE, 1) or 1
        search = (q or "").strip()
        if len(search) > MAX_SEARCH:
            raise BadFilter(f"Search for at most {MAX_SEARCH} characters.")
    except BadFilter as exc:
        return base.render(
            request, "error.html", who, 400, heading="That filter does not work", message=str(exc)
        )
    now = datetime.now(UTC)
    with base.engine(request).connect() as conn:
        reader = who.caller
        if chosen_sender:  # one of the caller's owners: a narrower rule, never a wider one
            reader = Caller(senders[chosen_sender][0], False, who.caller.time_zone)
        found = panelfeed.sent_mail(
            conn,
            reader,
            since=None if chosen == "all" else now - timedelta(days=int(chosen)),
            engaged=want_engaged,
            noise=want_noise,
            unopened_before=now - timedelta(days=days) if days else None,
            search=search or None,
            page=number,
        )
    rows = [{**r, "raw": raw_counts(r), "people": by_people(r)} for r in found["rows"]]
    query = {
        k: v
        for k, v in (
            ("period", chosen if chosen != "all" else ""),
            ("engaged", "1" if want_engaged else ""),
            ("noise", "1" if want_noise else ""),
            ("unopened", str(days) if days else ""),
            ("q", search),
            ("sender", chosen_sender),
        )
        if v
    }

    def page_url(n: int) -> str:
        return "/emails?" + urlencode({**query, "page": str(n)})

    return base.render(
        request,
        "emails.html",
        who,
        rows=rows,
        periods=PERIODS,
        period=chosen,
        engaged=want_engaged,
        noise=want_noise,
        unopened=days,
        q=search,
        page=number,
        prev_url=page_url(number - 1) if number > 1 else None,
        next_url=page_url(number + 1) if found["more"] else None,
        filtered=bool(query),
        show_sender=who.caller.is_admin or bool(who.caller.team),
        senders=senders,
        sender=chosen_sender,
    )


SENDER_LIMIT = 200  # people offered in the Sender filter


def senders_of(conn: Connection, caller: Caller) -> dict[str, tuple[uuid.UUID, str]]:
    """{address: (user id, name)} of the people whose mail `caller` reads, for the Sender
    filter: a manager's team and themself, an admin's everyone (at most 200); empty for
    a rep, who reads only their own."""
    if caller.is_admin:
        people = users.list_all(conn)[:SENDER_LIMIT]
    elif caller.team:
        people = [u for u in (users.by_id(conn, o) for o in sorted(caller.owners)) if u]
    else:
        return {}
    return {
        str(u["internalemailaddress"]): (u["systemuserid"], str(u["fullname"]))
        for u in sorted(people, key=lambda u: str(u["fullname"]).lower())
    }
