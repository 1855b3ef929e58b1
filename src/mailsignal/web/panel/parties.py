"""`GET /contacts/{id}`, `/leads/{id}`, `/accounts/{id}`: a party's lead score with its
explanation (store/rescore.explain, as `mailsignal score --explain` prints it), its
roll-ups, the latest things people did on mail the viewer may read, an account's
contacts, and the score over the last 90 days.

A malformed id, an unknown party and one no mail the viewer may read went to answer the
same 404 page (store/paneldetail.may_see).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from ...engagement import Weights, contribution, effective_time, weights_of
from ...model import EventKind, Verdict
from ...store import paneldetail, rescore
from . import base, charts
from .email import KIND_WORDS, VERDICT_WORDS, not_found, parse_id

router = APIRouter(include_in_schema=False)
Viewer = Annotated[base.Viewer, Depends(base.viewer)]

TITLES = {"contact": "Contact", "lead": "Lead", "account": "Account"}
CHART_SPAN_DAYS = 90
CHART_STEP_DAYS = 3


def score_over_time(
    events: list[tuple[int, str, datetime, datetime]], weights: Weights, now: datetime
) -> list[tuple[datetime, float]]:
    """The score at every CHART_STEP_DAYS over the last CHART_SPAN_DAYS, and now: at each
    moment, the sum over the events up to it of weight x 0.5 ** (age / half-life), the
    formula of engagement.py."""
    moments = [now - timedelta(days=d) for d in range(CHART_SPAN_DAYS, 0, -CHART_STEP_DAYS)] + [now]
    scored = [
        (EventKind(k), Verdict(v), effective_time(at, recorded)) for k, v, at, recorded in events
    ]
    return [
        (
            moment,
            round(
                sum(contribution(weights, k, v, at, moment) for k, v, at in scored if at <= moment),
                2,
            ),
        )
        for moment in moments
    ]


def _explained(
    conn: Any, found: tuple[str, uuid.UUID], who: base.Viewer, weights: Weights, now: datetime
) -> tuple[float, list[dict[str, Any]]]:
    total, top = rescore.explain(conn, found, weights, now)
    where = paneldetail.events_by_hit(conn, [t.key for t in top], who.caller)
    rows = [
        {
            "points": t.points,
            "weight": weights.weight(t.kind, t.verdict),
            "kept": round(100 * t.points / weights.weight(t.kind, t.verdict))
            if weights.weight(t.kind, t.verdict)
            else 0,
            "verb": KIND_WORDS[t.kind],
            "verdict": str(t.verdict),
            "word": VERDICT_WORDS.get(str(t.verdict), str(t.verdict)),
            "at": t.at,
            "mail": where.get(t.key),
        }
        for t in top
    ]
    return total, rows


def party_page(request: Request, who: base.Viewer, kind: str, raw_id: str) -> HTMLResponse:
    what = kind
    key = parse_id(raw_id)
    if key is None:
        return not_found(request, who, what)
    settings = request.app.state.settings
    weights, now = weights_of(settings), datetime.now(UTC)
    with base.engine(request).connect() as conn:
        row = paneldetail.party(conn, kind, key)
        if row is None or not paneldetail.may_see(conn, (kind, key), who.caller):
            return not_found(request, who, what)
        total, top = _explained(conn, (kind, key), who, weights, now)
        recent = paneldetail.recent_engagement(conn, (kind, key), who.caller)
        events = paneldetail.scored_events(conn, (kind, key))
        contacts = paneldetail.account_contacts(conn, key) if kind == "account" else []
        parent = None
        if kind == "contact" and row.get("parentcustomerid"):
            parent = paneldetail.party(conn, "account", row["parentcustomerid"])
    points = score_over_time(events, weights, now)
    truncated = len(events) >= paneldetail.SCORE_EVENT_LIMIT
    chart = charts.line(
        [(at.astimezone(who.zone), value) for at, value in points],
        title="Lead score over the last 90 days",
        desc=(
            f"The score every {CHART_STEP_DAYS} days over the last {CHART_SPAN_DAYS} days and "
            "today, computed from the stored events of people with the same weights and "
            f"half-life ({weights.half_life_days:g} days) as the score itself: each event counts "
            "from its own time on, halving every half-life."
            + (" Only the latest events were read." if truncated else "")
        ),
        ident="score",
        value_name="Score",
        empty="No events of people yet, so the score has always been 0.",
    )
    return base.render(
        request,
        "party.html",
        who,
        kind=kind,
        title=TITLES[kind],
        party=row,
        parent=parent,
        score=total,
        top=top,
        weights=weights,
        recent=recent,
        contacts=contacts,
        chart=chart if any(v for _at, v in points) else charts.line([], empty=chart_empty()),
        kinds=KIND_WORDS,
        words=VERDICT_WORDS,
    )


def chart_empty() -> str:
    return "No events of people in the last 90 days, so there is no score to chart."


@router.get("/contacts/{party_id}")
def contact_page(request: Request, party_id: str, who: Viewer) -> HTMLResponse:
    """A contact's page."""
    return party_page(request, who, "contact", party_id)


@router.get("/leads/{party_id}")
def lead_page(request: Request, party_id: str, who: Viewer) -> HTMLResponse:
    """A lead's page."""
    return party_page(request, who, "lead", party_id)


@router.get("/accounts/{party_id}")
def account_page(request: Request, party_id: str, who: Viewer) -> HTMLResponse:
    """An account's page, with its contacts."""
    return party_page(request, who, "account", party_id)
