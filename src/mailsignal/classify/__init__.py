"""Label every event human, machine, forward or unknown, with the rules that decided it."""

from __future__ import annotations

from .base import VERSION, Context, Event, Rule, Timeline, classify_timeline, combine
from .rules import RULE_IDS, RULES

__all__ = [
    "RULES",
    "RULE_IDS",
    "VERSION",
    "Context",
    "Event",
    "Rule",
    "Timeline",
    "classify_timeline",
    "combine",
]
