"""What a rule is, and how the evidence of the rules that fire becomes a verdict.

Evidence is additive in log-odds (a naive-Bayes reading of independent signals): each
rule that fires adds a signed weight to a per-kind prior; the sign decides human or
machine, the size decides confidence. That keeps every verdict explainable as "these
rules fired with these weights" and lets a user switch a rule off without retuning
the others. Rules run in two passes: pass one reads only the event's own facts; pass
two reads the recipient's timeline together with pass-one verdicts (a later human
click corroborates an open; a honeypot hit condemns the burst around it).

A rule says what it reads, in two ways, and that is what makes classifying cheap and
enrichers pluggable: `reads` says what its check is given (the event's Features only, or
the event and its timeline), `facts` names the facts it reads by their declared names
(checked against the enrichers' declarations before anything runs; the compiler builds
Features from them). The compiler (compiler.py) runs the table.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from ..model import EventKind, Evidence, Verdict
from .events import Context, Event, Timeline
from .features import Derived, Features, Read

VERSION = "2026.11.3"
"""The classifier's version, stored with every verdict: bump it when a verdict can change."""

# Before any evidence: a click is more often a person than a pixel fetch is, because
# pixels are fetched by every proxy and prefetcher on delivery.
PRIOR = {EventKind.OPEN: 0.4, EventKind.CLICK: 0.8, EventKind.ATTACHMENT: 0.8, EventKind.REPLY: 3.0}
# Below this margin the evidence is too balanced to call.
UNKNOWN_MARGIN = 0.25

FactCheck = Callable[[Features], str | None]
"""A `reads="facts"` rule's test: the sentence explaining why it fired, or None."""
Check = Callable[[Event, int, Timeline, Context], str | None]
"""An `"event"` or `"timeline"` rule's test: the sentence explaining why it fired, or None."""
When = Callable[[Features], bool]
"""A `Rule.when`: whether an event with these features could make the rule fire."""
Reads = Literal["facts", "event", "timeline"]


@dataclass(frozen=True, slots=True)
class Rule:
    """A stable id, the label it argues for and its weight (log-odds), a one-line
    description, where the signal is documented, and the check itself.

    `reads` says what the check is given: "facts", the event's `Features` only (pass
    one; its answer is reused for every event with the same features); "event", the
    event, its index, the timeline and the context (pass one: for rules that read the
    time; the features of later events are not read yet); "timeline", the same in pass
    two, with the pass-one verdicts and every event's features.

    `facts` names what the check and `when` read of Features (`features["net.labels"]`;
    `event.features[...]` in an event or timeline check): declared facts, derived values
    and the event's own fields (kind, method, honeypot, always there, so naming them is
    optional). `lookups` names the facts an "event" or "timeline" check reads one event at
    a time with `event.fact(name)`: values that vary from event to event (a version, a
    country), which would split the caches if they were Features.

    `when`, for an "event" or "timeline" rule, is part of the rule: it fires only for
    events whose `Features` pass `when` (an old Chrome, a cloud network), and its check is
    not even called for the others, which saves a call per event where most fail it.
    """

    id: str
    verdict: Verdict
    weight: float
    description: str
    source: str
    check: FactCheck | Check
    kinds: frozenset[EventKind] = frozenset(EventKind)
    reads: Reads = "facts"
    when: When | None = None
    facts: tuple[Read, ...] = ()
    lookups: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.reads not in ("facts", "event", "timeline"):
            raise ValueError(f"rule {self.id}: reads={self.reads!r}")
        if self.when is not None and self.reads == "facts":
            raise ValueError(f"rule {self.id}: `when` is for event and timeline rules")
        # Tuples, not lists or a bare string: the table is data, compared and hashed.
        if type(self.facts) is not tuple or not all(
            isinstance(f, str | Derived) for f in self.facts
        ):
            raise ValueError(f"rule {self.id}: facts must be a tuple of names or Derived")
        if type(self.lookups) is not tuple or not all(isinstance(f, str) for f in self.lookups):
            raise ValueError(f"rule {self.id}: lookups must be a tuple of fact names")
        if self.lookups and self.reads == "facts":
            raise ValueError(f"rule {self.id}: `lookups` are for event and timeline rules")

    @property
    def timeline(self) -> bool:
        """True: runs in pass two, after every event's pass one."""
        return self.reads == "timeline"


def combine(kind: EventKind, fired: Sequence[Evidence]) -> tuple[Verdict, float]:
    logit = PRIOR[kind] + sum(e.weight for e in fired)
    confidence = round(1.0 / (1.0 + math.exp(-abs(logit))), 3)
    if abs(logit) < UNKNOWN_MARGIN:
        return Verdict.UNKNOWN, confidence
    if logit < 0:
        return Verdict.MACHINE, confidence
    forward = any(e.verdict is Verdict.FORWARD and e.weight > 0 for e in fired)
    return (Verdict.FORWARD if forward else Verdict.HUMAN), confidence
