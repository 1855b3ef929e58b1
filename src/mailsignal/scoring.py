"""The lead score: a decaying sum of trustworthy engagement (pure functions).

    score(T) = sum over events e of  weight(kind_e, verdict_e) * 0.5 ** ((T - t_e) / half_life)

Human events count fully, forwards at a fraction, machine and unknown events not at all,
so a scanner can never move a score. Because every term decays by the same factor, a
stored score is exact at its timestamp and can be moved forward in time by one
multiplication; adding or removing one event's contribution is one addition. That is
what makes an incremental update O(1) and equal to a full recompute (up to float
rounding): `advance(score, t0, t1)` then `+ contribution(event, t1)`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from .model import EventKind, Verdict

SECONDS_PER_DAY = 86400.0


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

    def weight(self, kind: EventKind, verdict: Verdict) -> float:
        if verdict is Verdict.HUMAN:
            return self.base(kind)
        if verdict is Verdict.FORWARD:
            return self.base(kind) * self.forward_fraction
        return 0.0


def decay(weights: Weights, age_seconds: float) -> float:
    """The factor an event of this age keeps; future events (clock skew) count fully."""
    if age_seconds <= 0:
        return 1.0
    return float(0.5 ** (age_seconds / (weights.half_life_days * SECONDS_PER_DAY)))


def contribution(
    weights: Weights, kind: EventKind, verdict: Verdict, at: datetime, asof: datetime
) -> float:
    return weights.weight(kind, verdict) * decay(weights, (asof - at).total_seconds())


def advance(weights: Weights, score: float, since: datetime | None, asof: datetime) -> float:
    """A score valid at `since`, moved to `asof` (decay only)."""
    if since is None or score == 0.0:
        return score
    return score * decay(weights, (asof - since).total_seconds())


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
