"""The classifier's vocabulary: timeline events, rules, and how evidence combines.

Evidence is additive in log-odds (a naive-Bayes reading of independent signals): each
rule that fires adds a signed weight to a per-kind prior; the sign decides human or
machine, the size decides confidence. That keeps every verdict explainable as "these
rules fired with these weights" and lets a user switch a rule off without retuning
the others. Rules run in two passes: pass one reads only the event's own facts; pass
two reads the recipient's timeline together with pass-one verdicts (a later human
click corroborates an open; a honeypot hit condemns the burst around it).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..model import Classification, EventKind, Evidence, Facts, Verdict

VERSION = "2026.11.3"

# Before any evidence: a click is more often a person than a pixel fetch is, because
# pixels are fetched by every proxy and prefetcher on delivery.
PRIOR = {EventKind.OPEN: 0.4, EventKind.CLICK: 0.8, EventKind.ATTACHMENT: 0.8, EventKind.REPLY: 3.0}
# Below this margin the evidence is too balanced to call.
UNKNOWN_MARGIN = 0.25


@dataclass(frozen=True, slots=True)
class Event:
    """One hit of one recipient, with its enrichment facts, as rules read it."""

    key: str
    kind: EventKind
    at: datetime
    ip: str
    user_agent: str
    method: str
    facts: Facts
    link_id: int | None = None
    honeypot: bool = False
    headers: dict[str, str] = field(default_factory=dict)

    def fact(self, namespace: str, name: str, default: Any = None) -> Any:
        return self.facts.get(namespace, {}).get(name, default)

    def labels(self) -> frozenset[str]:
        return frozenset(self.fact("net", "labels", ()) or ())


@dataclass(frozen=True, slots=True)
class Context:
    """What rules know about the email and recipient beyond the events."""

    sent_at: datetime | None
    link_count: int
    delivery_window_seconds: float = 10.0
    disabled: frozenset[str] = frozenset()
    now: datetime | None = None  # for time-based rules (no click after 7 days)


class Timeline:
    """The recipient's events in time order, plus pass-one verdicts once known.

    Indexes are built once per timeline so that timeline rules stay O(log n) per event:
    a delivery forwarded to a list, or hammered by a proxy, can carry thousands of events.
    """

    def __init__(self, events: Sequence[Event], first_pass: Sequence[Verdict] = ()) -> None:
        self.events = events
        self.first_pass = first_pass
        self.times = [e.at.timestamp() for e in events]
        self.honeypots = [e for e in events if e.honeypot]
        self.first_human = next((i for i, v in enumerate(first_pass) if v is Verdict.HUMAN), -1)
        self.last_human_click = max(
            (
                i
                for i, e in enumerate(events)
                if e.kind is not EventKind.OPEN
                and i < len(first_pass)
                and first_pass[i] is Verdict.HUMAN
            ),
            default=-1,
        )

    def window(self, at: datetime, seconds: float) -> Sequence[Event]:
        """Events within +-seconds of `at`."""
        t = at.timestamp()
        lo = bisect.bisect_left(self.times, t - seconds)
        hi = bisect.bisect_right(self.times, t + seconds)
        return self.events[lo:hi]


Check = Callable[[Event, int, "Timeline", "Context"], str | None]
"""A rule's test: returns the sentence explaining why it fired, or None."""


@dataclass(frozen=True, slots=True)
class Rule:
    """A stable id, the label it argues for and its weight (log-odds), a one-line
    description, where the signal is documented, and the check itself."""

    id: str
    verdict: Verdict
    weight: float
    description: str
    source: str
    check: Check
    kinds: frozenset[EventKind] = frozenset(EventKind)
    timeline: bool = False  # True: runs in pass two, after every event's pass one


def combine(kind: EventKind, fired: Sequence[Evidence]) -> tuple[Verdict, float]:
    logit = PRIOR[kind] + sum(e.weight for e in fired)
    confidence = round(1.0 / (1.0 + math.exp(-abs(logit))), 3)
    if abs(logit) < UNKNOWN_MARGIN:
        return Verdict.UNKNOWN, confidence
    if logit < 0:
        return Verdict.MACHINE, confidence
    forward = any(e.verdict is Verdict.FORWARD and e.weight > 0 for e in fired)
    return (Verdict.FORWARD if forward else Verdict.HUMAN), confidence


def _run(
    rules: Sequence[Rule], event: Event, index: int, timeline: Timeline, ctx: Context
) -> tuple[list[Evidence], list[str]]:
    fired: list[Evidence] = []
    not_fired: list[str] = []
    for rule in rules:
        if rule.id in ctx.disabled or event.kind not in rule.kinds:
            continue
        sentence = rule.check(event, index, timeline, ctx)
        if sentence is None:
            not_fired.append(rule.id)
        else:
            fired.append(Evidence(rule.id, rule.verdict, rule.weight, sentence))
    return fired, not_fired


def classify_timeline(
    events: Sequence[Event], ctx: Context, rules: Sequence[Rule]
) -> list[Classification]:
    """Classify every event of one recipient's timeline (events sorted by time)."""
    own = [r for r in rules if not r.timeline]
    linked = [r for r in rules if r.timeline]
    bare = Timeline(events)
    first: list[tuple[list[Evidence], list[str]]] = [
        _run(own, ev, i, bare, ctx) for i, ev in enumerate(events)
    ]
    verdicts = [combine(ev.kind, fired)[0] for ev, (fired, _nf) in zip(events, first, strict=True)]
    full = Timeline(events, verdicts)
    out: list[Classification] = []
    for i, ev in enumerate(events):
        fired, not_fired = first[i]
        more, more_not = _run(linked, ev, i, full, ctx)
        all_fired = tuple(fired + more)
        verdict, confidence = combine(ev.kind, all_fired)
        out.append(
            Classification(verdict, confidence, all_fired, tuple(not_fired + more_not), VERSION)
        )
    return out
