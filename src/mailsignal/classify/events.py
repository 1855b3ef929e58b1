"""What rules look at: one event (`Event`), the recipient's timeline (`Timeline`) and what
is known of the email beyond its events (`Context`).

These are built for every hit and again for every reclassification (ingest rebuilds its
events from stored rows each batch), so they are kept lean: slots, indexes built once per
timeline, and no work done until a rule asks for it.
"""

from __future__ import annotations

import bisect
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from ..model import EventKind, Facts, Verdict
from .features import MISSING, STANDARD_LAYOUT, Features
from .netid import host_key

_NO_HEADERS: dict[str, str] = {}  # a sentinel, never handed out: Event's default is a new {}


@dataclass(frozen=True, slots=True, init=False)
class Event:
    """One hit of one recipient, with its enrichment facts, as rules read it.

    `facts` must not be edited once the event is built: `features` is derived from them
    by the classifier and kept.
    """

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
    _features: Features | None = field(default=None, init=False, repr=False, compare=False)

    def __init__(
        self,
        key: str,
        kind: EventKind,
        at: datetime,
        ip: str,
        user_agent: str,
        method: str,
        facts: Facts,
        link_id: int | None = None,
        honeypot: bool = False,
        headers: dict[str, str] = _NO_HEADERS,
    ) -> None:
        # The dataclass __init__, but each slot set through its own descriptor rather than
        # object.__setattr__ (which looks the name up first): 40% cheaper, and an event is
        # built for every hit and again for every reclassification. Still frozen.
        (
            set_key,
            set_kind,
            set_at,
            set_ip,
            set_user_agent,
            set_method,
            set_facts,
            set_link_id,
            set_honeypot,
            set_headers,
            set_features,
        ) = EVENT_SLOTS
        set_key(self, key)
        set_kind(self, kind)
        set_at(self, at)
        set_ip(self, ip)
        set_user_agent(self, user_agent)
        set_method(self, method)
        set_facts(self, facts)
        set_link_id(self, link_id)
        set_honeypot(self, honeypot)
        set_headers(self, {} if headers is _NO_HEADERS else headers)
        set_features(self, None)

    @property
    def features(self) -> Features:
        """What the rules being run read of this event (`features["net.labels"]`).

        `classify_timeline` sets them, for the facts its rules declare, before the event's
        checks run. Asked for outside a classification, they hold every standard fact.
        """
        features = self._features
        if features is None:
            features = STANDARD_LAYOUT.view(STANDARD_LAYOUT.read(self))
            SET_FEATURES(self, features)
        return features

    def fact(self, name: str) -> Any:
        """One fact by its declared name ("ua.os"), read as declared; the declared default
        when it is missing. For the facts a check reads per event (`Rule.lookups`)."""
        features = self._features
        layout = features.layout if features is not None else STANDARD_LAYOUT
        try:
            namespace, key, default, normalise = layout.split[name]
        except KeyError:
            raise KeyError(f"no enricher declares the fact {name!r}") from None
        # features.read_fact, inlined: checks call this per event, and a frame less matters.
        space = self.facts.get(namespace)
        value = space.get(key, MISSING) if isinstance(space, dict) else MISSING
        if value is MISSING:
            return default
        return value if normalise is None else normalise(value)


EVENT_SLOTS = tuple(Event.__dict__[f.name].__set__ for f in fields(Event))
SET_FEATURES = EVENT_SLOTS[-1]
"""Sets `Event._features` on a frozen event (the classifier does, once per event)."""


@dataclass(frozen=True, slots=True)
class Context:
    """What rules know about the email and recipient beyond the events."""

    sent_at: datetime | None
    link_count: int
    delivery_window_seconds: float = 10.0
    disabled: frozenset[str] = frozenset()
    now: datetime | None = None  # for time-based rules (no click after 7 days)


_at = operator.attrgetter("at")
_honeypot = operator.attrgetter("honeypot")
_kind = operator.attrgetter("kind")


class Timeline:
    """The recipient's events in time order, plus pass-one verdicts once known.

    Indexes are built once per timeline so that timeline rules stay O(log n) per event:
    a delivery forwarded to a list, or hammered by a proxy, can carry thousands of events.
    `clicks` and `addresses` bound what any window can hold, so that burst rules skip the
    window altogether on the many timelines that cannot have a burst.
    """

    __slots__ = (
        "addresses",
        "clicks",
        "events",
        "first_human",
        "first_pass",
        "honeypots",
        "last_human_click",
        "times",
    )

    def __init__(self, events: Sequence[Event], first_pass: Sequence[Verdict] = ()) -> None:
        self.events = events
        # map/filter, not comprehensions: no Python frame per timeline (most hold 1-5).
        self.times = list(map(datetime.timestamp, map(_at, events)))
        self.honeypots = list(filter(_honeypot, events))
        # How many clicks (honeypots too) and distinct addresses (replies too) it holds.
        self.clicks = list(map(_kind, events)).count(EventKind.CLICK)
        self.addresses = len(set(map(host_key, events))) if len(events) > 1 else len(events)
        self.set_first_pass(first_pass)

    def set_first_pass(self, first_pass: Sequence[Verdict]) -> None:
        """Record pass-one verdicts (classify_timeline does, between its two passes)."""
        self.first_pass = first_pass
        self.first_human = self.last_human_click = -1
        if Verdict.HUMAN not in first_pass:  # one C-level scan settles most timelines
            return
        for i, verdict in enumerate(first_pass):
            if verdict is Verdict.HUMAN:
                self.first_human = i
                break
        events = self.events
        for i in range(min(len(events), len(first_pass)) - 1, -1, -1):
            if first_pass[i] is Verdict.HUMAN and events[i].kind is not EventKind.OPEN:
                self.last_human_click = i
                break

    def window(self, at: datetime, seconds: float) -> Sequence[Event]:
        """Events within +-seconds of `at`."""
        t = at.timestamp()
        lo = bisect.bisect_left(self.times, t - seconds)
        hi = bisect.bisect_right(self.times, t + seconds)
        return self.events[lo:hi]

    def around(self, index: int, seconds: float) -> Sequence[Event]:
        """Events within +-seconds of event `index`: `window` without re-reading its time."""
        times = self.times
        t = times[index]
        lo = bisect.bisect_left(times, t - seconds)
        return self.events[lo : bisect.bisect_right(times, t + seconds)]
