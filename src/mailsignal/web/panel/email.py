"""`GET /emails/{activityid}`: one email, raw counts beside what people did, and per
recipient a timeline of every event with its label and reasons.

An id that is not a UUID, an email that does not exist and one the viewer may not read
(the row rule of fetchxml/access.py, through store/paneldetail.py) all answer the same
404 page, so a URL says nothing about mail that is not the viewer's.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from ...classify.rules import RULES
from ...model import EventKind
from ...store import aggregate, paneldetail
from . import base, charts

router = APIRouter(include_in_schema=False)
Viewer = Annotated[base.Viewer, Depends(base.viewer)]

# The words a badge carries: colour is never the only signal.
VERDICT_WORDS = {
    "human": "person",
    "machine": "machine",
    "forward": "forward",
    "unknown": "unknown",
}
KIND_WORDS = {
    EventKind.OPEN: "Opened",
    EventKind.CLICK: "Clicked",
    EventKind.ATTACHMENT: "Downloaded",
    EventKind.REPLY: "Replied",
}
RULE_TEXT = {rule.id: rule.description for rule in RULES}
PEOPLE = ("human", "forward")
CHART_DAYS = 60
VENDORS = {
    "digitalocean": "DigitalOcean",
    "ovh": "OVH",
    "ovhcloud": "OVHcloud",
}  # at most this many days in the events-per-day chart


def not_found(request: Request, who: base.Viewer | None, what: str) -> HTMLResponse:
    """The one 404 page: unknown, malformed or not the viewer's look the same."""
    return base.render(
        request,
        "error.html",
        who,
        404,
        heading="Not found",
        message=f"There is no {what} at this address, or it is not one you may see.",
    )


def parse_id(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def client_text(facts: dict[str, Any]) -> str:
    """The parsed user agent as people say it: "Mobile Safari 18 on iOS (mail client)"."""
    ua = facts.get("ua") or {}
    if ua.get("empty"):
        return "no user agent"
    family = ua.get("family")
    name = f"{family} {ua.get('major') or ''}".strip() if family and family != "Other" else ""
    os_name = ua.get("os") if ua.get("os") not in (None, "Other") else ""
    device = ua.get("device") if ua.get("device") not in (None, "Other", "Spider") else ""
    text = " on ".join(p for p in (name, os_name) if p)
    if device and device not in text:
        text = f"{text}, {device}" if text else device
    if ua.get("bare_mozilla"):
        text = "bare 'Mozilla/5.0'"
    category = ua.get("category")
    if category and category != "unknown":
        kind = str(category).replace("-", " ")
        text = f"{text} ({kind})" if text else kind
    return text


def vendor(owner: str) -> str:
    """A network list's owner id as people write it: "trend-micro" -> "Trend Micro"."""
    return VENDORS.get(owner) or owner.replace("-", " ").title()


def network_text(facts: dict[str, Any]) -> str:
    """Who runs the network the event came from, as far as the bundled lists know."""
    net = facts.get("net") or {}
    if net.get("owner"):
        return vendor(str(net["owner"]))
    if net.get("private"):
        return "a private network"
    labels = sorted(str(label) for label in net.get("labels") or ())
    return ", ".join(labels)


def place_text(row: dict[str, Any]) -> str:
    net = (row.get("facts") or {}).get("net") or {}
    parts = [str(p) for p in (net.get("city"), net.get("country")) if p]
    return ", ".join(parts) or (row.get("interactionlocation") or "")


def what_text(row: dict[str, Any]) -> tuple[str, str]:
    """(the verb, what it acted on): ("Clicked", "pricing (https://...)")."""
    kind = EventKind(row["interactiontype"])
    target = ""
    if kind is EventKind.CLICK:
        url = row.get("linkurl") or row.get("interactedcomponenttext") or ""
        text = row.get("linktext") or ""
        target = f"{text} ({url})" if text and text != url else url
        if row.get("ishoneypot"):
            target = "the invisible honeypot link"
    elif kind is EventKind.ATTACHMENT:
        target = row.get("filename") or row.get("interactedcomponenttext") or "an attachment"
    elif kind is EventKind.REPLY and row.get("interactionrepliedby"):
        target = f"from {row['interactionrepliedby']}"
    return KIND_WORDS[kind], target


def reasons_of(row: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """(the fired reasons as {text, verdict, rule}, the sentences of rules not fired)."""
    stored = row.get("reasons") or {}
    if isinstance(stored, list):  # an older form: a list of fired rules
        stored = {"fired": stored, "not_fired": []}
    fired = [
        {
            "rule": e.get("rule", ""),
            "text": e.get("text") or RULE_TEXT.get(e.get("rule", ""), e.get("rule", "")),
            "verdict": VERDICT_WORDS.get(e.get("verdict", ""), e.get("verdict", "")),
        }
        for e in stored.get("fired", [])
        if isinstance(e, dict)
    ]
    quiet = [RULE_TEXT.get(rule, rule) for rule in stored.get("not_fired", [])]
    return fired, quiet


def present(row: dict[str, Any], sent: datetime | None) -> dict[str, Any]:
    """One event as the timeline shows it."""
    facts = row.get("facts") or {}
    verb, target = what_text(row)
    fired, quiet = reasons_of(row)
    return {
        "at": row["emailinteractiontime"],
        "sent": sent,
        "verb": verb,
        "target": target,
        "verdict": row["verdict"],
        "word": VERDICT_WORDS.get(row["verdict"], row["verdict"]),
        "confidence": round(100 * float(row["confidence"] or 0)),
        "fired": fired,
        "quiet": quiet,
        "client": client_text(facts),
        "agent": row.get("interactionuseragent") or "",
        "network": network_text(facts),
        "place": place_text(row),
        "method": row.get("httpmethod") or "GET",
    }


def _location_key(row: dict[str, Any]) -> str | None:
    """Where an event came from, as a place and network owner; the address when neither
    is known; None for events without a network (replies)."""
    if row["interactiontype"] == int(EventKind.REPLY) or not row.get("ipaddress"):
        return None
    net = (row.get("facts") or {}).get("net") or {}
    place = [str(p) for p in (net.get("country"), net.get("city")) if p]
    owner = network_text(row.get("facts") or {})
    named = ", ".join([*place, owner] if owner else place)
    return named or f"unlisted network {row['ipaddress']}"


def locations(rows: list[dict[str, Any]]) -> str:
    """ "3 locations: 1 of a person (...), 2 of machines (...)": a location is a
    person's when any person (or forward) event came from it."""
    seen: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        key = _location_key(row)
        if key is not None:
            seen[key].add(row["verdict"])
    if not seen:
        return "No locations: no event came over the network."
    people = sorted(k for k, v in seen.items() if v & set(PEOPLE))
    machines = sorted(k for k, v in seen.items() if k not in people and "machine" in v)
    other = sorted(k for k in seen if k not in people and k not in machines)
    parts = []
    for names, one, many in (
        (people, "of a person", "of people"),
        (machines, "of a machine", "of machines"),
        (other, "not labelled", "not labelled"),
    ):
        if names:
            parts.append(f"{len(names)} {one if len(names) == 1 else many} ({'; '.join(names)})")
    return f"{plural(len(seen), 'location')}: " + ", ".join(parts) + "."


def who_summary(rows: list[dict[str, Any]]) -> str:
    """ "1 person, 2 forwarded readers and 3 machines": recipients with a person's event,
    forward locations (each a reader elsewhere), machine networks."""
    persons = {r["emailaddress"] for r in rows if r["verdict"] == "human"}
    forwards = {_location_key(r) or r["emailaddress"] for r in rows if r["verdict"] == "forward"}
    machines = {_location_key(r) or "" for r in rows if r["verdict"] == "machine"}
    if not rows:
        return "No events yet."
    parts = [plural(len(persons), "person", "people")]
    if forwards:
        parts.append(plural(len(forwards), "reader of a forward", "readers of forwards"))
    parts.append(plural(len(machines), "machine"))
    return "Seen by " + ", ".join(parts[:-1]) + " and " + parts[-1] + "."


def per_day(
    rows: list[dict[str, Any]], zone: ZoneInfo, limit: int = CHART_DAYS
) -> list[tuple[date, int, int]]:
    """(day in the viewer's zone, people's events, machines' events), every day from the
    first event's to the last's (at most `limit`, the latest)."""
    counts: dict[date, list[int]] = defaultdict(lambda: [0, 0])
    for row in rows:
        day = row["emailinteractiontime"].astimezone(zone).date()
        if row["verdict"] in PEOPLE:
            counts[day][0] += 1
        elif row["verdict"] == "machine":
            counts[day][1] += 1
    if not counts:
        return []
    first, last = min(counts), max(counts)
    first = max(first, last - timedelta(days=limit - 1))
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    return [(d, counts[d][0], counts[d][1]) if d in counts else (d, 0, 0) for d in days]


def kpis(mail: dict[str, Any], rows: list[dict[str, Any]]) -> list[tuple[str, int, int]]:
    """(what, raw, by people) pairs for the top of the page."""
    replies = sum(1 for r in rows if r["interactiontype"] == int(EventKind.REPLY))
    return [
        ("opens", mail["opencount"], mail["humanopencount"]),
        ("clicks", mail["linksclickedcount"], mail["humanlinksclickedcount"]),
        ("downloads", mail["attachmentopencount"], mail["humanattachmentopencount"]),
        # raw: every reply event, auto-replies too; `replycount` leaves out those labelled
        # machine (engagement.is_reply)
        ("replies", max(replies, mail["replycount"]), mail["replycount"]),
    ]


@router.get("/emails/{activityid}")
def email_page(request: Request, activityid: str, who: Viewer) -> HTMLResponse:
    """The email page (404 for a malformed id, an unknown email or someone else's)."""
    key = parse_id(activityid)
    if key is None:
        return not_found(request, who, "email")
    with base.engine(request).connect() as conn:
        mail = paneldetail.email_for(conn, key, who.caller)
        if mail is None:
            return not_found(request, who, "email")
        recipients = paneldetail.deliveries(conn, key)
        rows = paneldetail.events(conn, key)
        links = paneldetail.link_clicks(conn, key)
        aggregate_opens = aggregate.open_count(conn, key)
    sent = mail["senton"] or mail["createdon"]
    by_delivery: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_delivery[row["deliveryid"]].append(present(row, sent))
    chart = charts.stacked_bars(
        per_day(rows, who.zone),
        title="Events per day, people and machines",
        desc=(
            "One bar per day in your time zone: events by people (the recipient or a reader "
            "of a forward) at the bottom, events by machines on top. Events not labelled "
            "are left out."
        ),
        ident="perday",
    )
    return base.render(
        request,
        "email.html",
        who,
        mail=mail,
        sent=sent,
        kpis=kpis(mail, rows),
        aggregate_opens=aggregate_opens,
        machine_events=sum(1 for r in rows if r["verdict"] == "machine"),
        forward_events=sum(1 for r in rows if r["verdict"] == "forward"),
        who_summary=who_summary(rows),
        locations=locations(rows),
        recipients=[(d, by_delivery.get(d["deliveryid"], [])) for d in recipients],
        truncated=len(rows) >= paneldetail.EVENT_LIMIT,
        event_limit=paneldetail.EVENT_LIMIT,
        links=links,
        chart=chart,
    )
