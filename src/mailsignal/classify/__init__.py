"""Label every event human, machine, forward or unknown, with the rules that decided it."""

from __future__ import annotations

from ..errors import ConfigError
from .base import VERSION, Context, Event, Rule, Timeline, classify_timeline, combine
from .rules import RULE_IDS, RULES, WEIGHTS


def disabled_rules(ids: list[str]) -> frozenset[str]:
    """Validate the `disabled_rules` setting: an unknown id is a typo that would silently
    leave a rule on, so it is an error."""
    unknown = sorted(set(ids) - RULE_IDS)
    if unknown:
        raise ConfigError(f"disabled_rules names unknown rule(s): {', '.join(unknown)}")
    return frozenset(ids)


__all__ = [
    "RULES",
    "RULE_IDS",
    "VERSION",
    "WEIGHTS",
    "Context",
    "Event",
    "Rule",
    "Timeline",
    "classify_timeline",
    "combine",
    "disabled_rules",
]
