"""Engagement arithmetic (pure): what one event adds to its email and to its parties.

The one statement of the rules every counter and score follows, so the ingest path,
reply sync, the sweep, `classify --recompute`, `score --recompute` and `score --explain`
cannot disagree:

- an event of kind K and verdict V feeds the counters `effect(K, V)` names. Raw counters
  (`opencount`, ...) count every event, whoever caused it, as Dynamics does; the
  labelled twins count humans, machines or forwards. A reply labelled machine (an
  auto-reply, a bounce) is stored and labelled but feeds nothing: it is not a reply;
- an email is engaged (`engagementverdict` human) when any event is a person's (human,
  forward, or a reply), machine when it has only other events, none without events;
- a party (contact, lead, account) counts its human opens, clicks and downloads and its
  replies, and scores

      score(T) = sum over events e of  weight(K_e, V_e) * 0.5 ** ((T - t_e) / half_life)

  with human events at full weight, forwards at a fraction, machine and unknown at zero.

Because every term decays by the same factor, a score valid at t0 is moved to t1 by one
multiplication (`decay` of the time between), and adding or taking away one event's part
is one addition (`contribution`): that is what lets ingest update a score from the
events of one batch alone, and what `tests/pipeline/test_tally.py` holds against a full
recompute. For that to be exact an event must not be younger than the moment it is
first scored, so an event's age counts from `effective_time`: its own time, or the time
it was recorded when the event claims a later one (a skewed clock, a reply's Date header
a day ahead).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .model import EventKind, Verdict
from .settings import Settings

SECONDS_PER_DAY = 86400.0

# The email counters, in a fixed order (`Effect.email` indexes into it).
EMAIL_COUNTERS = (
    "opencount",
    "linksclickedcount",
    "attachmentopencount",
    "replycount",
    "humanopencount",
    "humanlinksclickedcount",
    "humanattachmentopencount",
    "machineopencount",
    "machinelinksclickedcount",
    "forwardopencount",
)
# What a party counts (`Effect.party` indexes into it): human events, and replies.
PARTY_COUNTERS = ("humanopencount", "humanclickcount", "replycount", "humandownloadcount")
_RAW = {
    EventKind.OPEN: "opencount",
    EventKind.CLICK: "linksclickedcount",
    EventKind.ATTACHMENT: "attachmentopencount",
    EventKind.REPLY: "replycount",
}
_LABELLED = {
    (EventKind.OPEN, Verdict.HUMAN): "humanopencount",
    (EventKind.CLICK, Verdict.HUMAN): "humanlinksclickedcount",
    (EventKind.ATTACHMENT, Verdict.HUMAN): "humanattachmentopencount",
    (EventKind.OPEN, Verdict.MACHINE): "machineopencount",
    (EventKind.CLICK, Verdict.MACHINE): "machinelinksclickedcount",
    (EventKind.OPEN, Verdict.FORWARD): "forwardopencount",
}
_PARTY_HUMAN = {
    EventKind.OPEN: "humanopencount",
    EventKind.CLICK: "humanclickcount",
    EventKind.ATTACHMENT: "humandownloadcount",
}


def is_reply(kind: EventKind, verdict: Verdict) -> bool:
    """A reply counts unless it is labelled machine (auto-replies, bounces, notices)."""
    return kind is EventKind.REPLY and verdict is not Verdict.MACHINE


@dataclass(frozen=True, slots=True)
class Effect:
    """What one event of a kind and verdict adds (each member a count of 1)."""

    email: tuple[int, ...]  # indexes into EMAIL_COUNTERS
    counted: bool  # feeds the email at all (not an auto-reply)
    engaged: bool  # makes its email `engagementverdict` human
    last_open: bool  # may set `lastopenedtime`
    last_human_open: bool  # may set `lasthumanopenedtime`
    party: int  # index into PARTY_COUNTERS, -1 for none
    party_last: bool  # may set a party's `lasthumanengagementon`


def _effect(kind: EventKind, verdict: Verdict) -> Effect:
    if kind is EventKind.REPLY and verdict is Verdict.MACHINE:
        return Effect((), False, False, False, False, -1, False)
    columns = [_RAW[kind]]
    if (kind, verdict) in _LABELLED:
        columns.append(_LABELLED[(kind, verdict)])
    if is_reply(kind, verdict):
        party = PARTY_COUNTERS.index("replycount")
    elif verdict is Verdict.HUMAN and kind in _PARTY_HUMAN:
        party = PARTY_COUNTERS.index(_PARTY_HUMAN[kind])
    else:
        party = -1
    return Effect(
        email=tuple(EMAIL_COUNTERS.index(c) for c in columns),
        counted=True,
        engaged=verdict in (Verdict.HUMAN, Verdict.FORWARD) or kind is EventKind.REPLY,
        last_open=kind is EventKind.OPEN,
        last_human_open=kind is EventKind.OPEN and verdict is Verdict.HUMAN,
        party=party,
        party_last=party >= 0,
    )


# Every (kind, verdict) worked out once; keys are the stored ints and strings too, so a
# row read from the database needs no enum conversion.
EFFECTS: dict[tuple[Any, Any], Effect] = {}
for _k in EventKind:
    for _v in Verdict:
        EFFECTS[(_k, _v)] = EFFECTS[(int(_k), str(_v))] = _effect(_k, _v)


# --- emails ------------------------------------------------------------------------------


@dataclass(slots=True)
class EmailTally:
    """An email's counters as a sum of its events (`add` with n < 0 takes events away)."""

    counts: list[int] = field(default_factory=lambda: [0] * len(EMAIL_COUNTERS))
    engaged: int = 0  # events that make the email engaged
    last_open: datetime | None = None
    last_human_open: datetime | None = None

    def add(self, kind: Any, verdict: Any, at: datetime | None, n: int = 1) -> None:
        fx = EFFECTS[(kind, verdict)]
        counts = self.counts
        for i in fx.email:
            counts[i] += n
        if fx.engaged:
            self.engaged += n
        if n > 0 and at is not None:
            if fx.last_open and (self.last_open is None or at > self.last_open):
                self.last_open = at
            if fx.last_human_open and (self.last_human_open is None or at > self.last_human_open):
                self.last_human_open = at

    @property
    def raw(self) -> int:
        """Events of any verdict the raw counters hold (opens, clicks, downloads, replies)."""
        return sum(self.counts[:4])

    def verdict(self) -> str:
        """`engagementverdict`: human, machine, or none (no counted event at all)."""
        if self.engaged > 0:
            return "human"
        return "machine" if self.raw else "none"

    def columns(self, noise_open_threshold: int) -> dict[str, Any]:
        """The email's counter columns, its verdict and its noise flag."""
        values: dict[str, Any] = dict(zip(EMAIL_COUNTERS, self.counts, strict=True))
        values["lastopenedtime"] = self.last_open
        values["lasthumanopenedtime"] = self.last_human_open
        values["engagementverdict"] = self.verdict()
        values["noiseflag"] = self.counts[0] > noise_open_threshold
        return values


# --- scores ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Weights:
    """Field guidance: a click is worth 5 opens, a reply 10 (field.md)."""

    open: float = 1.0
    click: float = 5.0
    reply: float = 10.0
    attachment: float = 5.0
    forward_fraction: float = 0.5
    half_life_days: float = 14.0

    def base(self, kind: EventKind) -> float:
        return {
            EventKind.OPEN: self.open,
            EventKind.CLICK: self.click,
            EventKind.REPLY: self.reply,
            EventKind.ATTACHMENT: self.attachment,
        }[kind]

    def weight(self, kind: EventKind | int, verdict: Verdict | str) -> float:
        """Points an event is worth at age zero: machine and unknown events are worth 0."""
        kind, verdict = EventKind(kind), Verdict(verdict)
        if verdict is Verdict.HUMAN:
            return self.base(kind)
        if verdict is Verdict.FORWARD:
            return self.base(kind) * self.forward_fraction
        return 0.0


@functools.lru_cache(maxsize=16)
def points(weights: Weights) -> dict[tuple[Any, Any], float]:
    """`weights.weight` for every (kind, verdict), keyed like EFFECTS (enums, and the
    stored ints and strings): ingest adds thousands of events a batch."""
    return {key: weights.weight(key[0], key[1]) for key in EFFECTS}


def weights_of(settings: Settings) -> Weights:
    return Weights(
        open=settings.score_open,
        click=settings.score_click,
        reply=settings.score_reply,
        attachment=settings.score_attachment,
        forward_fraction=settings.score_forward_fraction,
        half_life_days=settings.score_half_life_days,
    )


def effective_time(at: datetime, recorded: datetime | None) -> datetime:
    """The time an event's age counts from: its own, unless it was recorded earlier than
    it claims to have happened (then the moment it was recorded)."""
    return recorded if recorded is not None and recorded < at else at


def half_power(age_seconds: float | None, half_life_seconds: float) -> float:
    """0.5 ** (age / half-life): the factor an event of this age keeps (an age at or below
    zero counts as zero). SQLite's score aging calls this very function (store/db.py)."""
    if age_seconds is None or age_seconds <= 0:
        return 1.0
    return float(0.5 ** (age_seconds / half_life_seconds))


def decay(weights: Weights, age_seconds: float) -> float:
    """The factor an event of this age keeps under these weights' half-life."""
    return half_power(age_seconds, weights.half_life_days * SECONDS_PER_DAY)


def contribution(
    weights: Weights, kind: EventKind, verdict: Verdict, at: datetime, asof: datetime
) -> float:
    return weights.weight(kind, verdict) * decay(weights, (asof - at).total_seconds())


@dataclass(frozen=True, slots=True)
class Scored:
    """One event's share of a score, for "why is this lead hot?"."""

    key: str
    kind: EventKind
    verdict: Verdict
    at: datetime
    points: float


def score(
    weights: Weights,
    events: Iterable[tuple[str, EventKind, Verdict, datetime]],
    asof: datetime,
    top: int = 5,
) -> tuple[float, list[Scored]]:
    """Full computation: the total and the top contributing events."""
    parts = [
        Scored(key, kind, verdict, at, contribution(weights, kind, verdict, at, asof))
        for key, kind, verdict, at in events
    ]
    total = sum(p.points for p in parts)
    best = sorted((p for p in parts if p.points > 0), key=lambda p: -p.points)[:top]
    return total, best


@dataclass(slots=True)
class PartyTally:
    """A party's score (valid at `asof`) and roll-ups as a sum of its events."""

    asof: datetime
    score: float = 0.0
    counts: list[int] = field(default_factory=lambda: [0] * len(PARTY_COUNTERS))
    last: datetime | None = None
    followed: int = 0

    def add(
        self,
        weights: Weights,
        kind: Any,
        verdict: Any,
        at: datetime,
        scored_at: datetime | None = None,
        n: int = 1,
    ) -> None:
        """Add (n > 0) or take away (n < 0) an event that happened at `at`; its points
        age from `scored_at` (`effective_time`; default `at`)."""
        worth = points(weights)[(kind, verdict)]
        if worth:
            age = (self.asof - (scored_at or at)).total_seconds()
            self.score += n * worth * decay(weights, age)
        fx = EFFECTS[(kind, verdict)]
        if fx.party >= 0:
            self.counts[fx.party] += n
            if n > 0 and fx.party_last and (self.last is None or at > self.last):
                self.last = at
