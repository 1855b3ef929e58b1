"""Label every event human, machine, forward or unknown, with the rules that decided it.

Where things live (imports point down this list):

- `features.py`: the values of an event rules read, built from the enrichers' declared
  facts (`model.FactSpec`) by name; `Derived` values worked out from them;
- `events.py`: `Event`, `Timeline` and `Context`, what checks are given;
- `rule.py`: the `Rule` type, and `combine`, which turns fired rules into a verdict;
- `signals.py`, `patterns.py`: the checks, on one event and on a timeline;
- `rules.py`: the table of every rule, in the order reasons are reported;
- `compiler.py`: the table compiled into a caching plan, and `classify_timeline`.
"""

from __future__ import annotations

from ..errors import ConfigError
from .compiler import classify_timeline
from .events import Context, Event, Timeline
from .features import Derived, Features
from .rule import VERSION, Rule, combine
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
    "Derived",
    "Event",
    "Features",
    "Rule",
    "Timeline",
    "classify_timeline",
    "combine",
    "disabled_rules",
]
