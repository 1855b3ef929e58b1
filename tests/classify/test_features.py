"""Features are built from the declared facts, as declared, and rules must name them.

The reader is generated per layout (features.py says why); these tests pin that it reads
what a one-by-one reading of the declarations gives, whatever shape the stored facts are
in, and that the agent's name in sentences is what it always was.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from mailsignal.classify import RULES, Context, Derived, Event, Rule, classify_timeline
from mailsignal.classify.features import STANDARD_LAYOUT, Layout, Read, layout_for
from mailsignal.classify.signals import AGENT
from mailsignal.enrich import Pipeline
from mailsignal.errors import ConfigError
from mailsignal.model import STANDARD_FACTS, EventKind, FactKind, RawHit, TokenKind, Verdict

PIPE = Pipeline.default()
AT = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
CTX = Context(sent_at=AT, link_count=1)
AGENTS = [
    "Mozilla/5.0",
    "",
    "python-requests/2.32.3",
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
    "x" * 100,
]


def event(facts: Any, ua: str = "Mozilla/5.0", kind: EventKind = EventKind.OPEN) -> Event:
    return Event("k", kind, AT, "104.28.28.10", ua, "GET", facts)


def enriched(ua: str, ip: str = "104.28.28.10") -> dict[str, Any]:
    return PIPE.enrich(RawHit("h", AT, TokenKind.OPEN, 1, None, ip, ua, "GET"))


def shapes(ua: str) -> list[Any]:
    """The stored facts of one hit, whole and in every damaged form a row can take."""
    facts = enriched(ua)
    return [
        facts,
        {},
        {"ua": {"error": "KeyError: 'x'"}, "net": facts["net"]},
        {"ua": facts["ua"], "net": {**facts["net"], "labels": None, "owner": ["unhashed"]}},
        {"ua": {k: v for k, v in facts["ua"].items() if k not in ("family", "category")}},
        {"ua": None, "net": []},
        {"ua": {**facts["ua"], "empty": 0, "bare_mozilla": "yes", "category": 7}},
    ]


def declared(facts: Any, name: str) -> Any:
    """One fact read by hand, as its declaration says."""
    spec = STANDARD_FACTS[name]
    namespace, _, key = name.partition(".")
    space = facts.get(namespace)
    if not isinstance(space, dict) or key not in space:
        return spec.default
    kinds: dict[FactKind, Callable[[Any], Any]] = {
        FactKind.BOOL: bool,
        FactKind.STR: str,
        FactKind.LABELS: lambda v: frozenset(v or ()),
        FactKind.ANY: lambda v: v,
    }
    return kinds[spec.kind](space[key])


@pytest.mark.parametrize("layout", [STANDARD_LAYOUT, layout_for(STANDARD_FACTS, {AGENT})])
@pytest.mark.parametrize("ua", AGENTS)
def test_the_reader_reads_each_fact_as_declared(layout: Layout, ua: str) -> None:
    for facts in shapes(ua):
        ev = event(facts, ua)
        key = layout.read(ev)
        features = layout.view(key)
        assert type(features) is layout.features and features.key is key
        assert list(features) == list(layout.names)
        for name in layout.names:
            if name in ("kind", "method", "honeypot"):
                assert features[name] == getattr(ev, name)
            elif name != "agent":
                assert features[name] == declared(facts, name), (name, facts)


@pytest.mark.parametrize("ua", AGENTS)
def test_the_agent_is_named_as_it_always_was(ua: str) -> None:
    for facts in shapes(ua):
        ev = event(facts, ua)
        space = facts.get("ua")
        family = space.get("family") if isinstance(space, dict) else None
        before = str(family or ua[:60] or "(none)")  # the hand-written reader's formula
        layout = layout_for(STANDARD_FACTS, {AGENT})
        assert layout.view(layout.read(ev))["agent"] == before


def test_the_reader_is_one_itemgetter_per_namespace_and_holds_no_names() -> None:
    layout = layout_for(STANDARD_FACTS, [r for rule in RULES for r in rule.facts])
    assert layout.names == (
        *("kind", "method", "honeypot", "ua.family", "ua.category", "ua.bare_mozilla"),
        *("ua.empty", "ua.outdated_chrome", "net.labels", "net.owner", "agent"),
    )
    assert layout.source.count("(facts[ns") == 2
    # Declared names reach the generated source as values, never as code.
    assert not any(name in layout.source for name in ("category", "labels", "agent"))


def test_features_are_read_by_name_and_cannot_be_changed() -> None:
    features = event(enriched("Mozilla/5.0")).features  # outside a classification
    assert features.layout is STANDARD_LAYOUT
    assert features["net.labels"] == {"apple-private-relay"}
    assert features["ua.bare_mozilla"] is True
    with pytest.raises(KeyError, match=r"'agent' is not in these features \(kind, method"):
        features["agent"]
    assert "'ua.category': 'prefetcher'" in repr(features)
    # Shared by every event with the same values: a change would leak into their verdicts.
    with pytest.raises(TypeError, match="read only"):
        features["ua.empty"] = True
    with pytest.raises(TypeError, match="read only"):
        features.update({"ua.empty": True})
    assert hash(features.key) == hash(STANDARD_LAYOUT.read(event(enriched("Mozilla/5.0"))))


def test_events_with_the_same_key_share_one_features() -> None:
    first, second = event(enriched("Mozilla/5.0")), event(enriched("Mozilla/5.0"))
    classify_timeline([first, second], CTX, RULES)
    assert first.features is second.features


def test_the_same_reads_share_one_layout_so_events_keep_their_features() -> None:
    reads: set[Read] = {"ua.category", AGENT}
    assert layout_for(STANDARD_FACTS, reads) is layout_for(dict(STANDARD_FACTS), set(reads))
    ev = event(enriched("Mozilla/5.0"))
    classify_timeline([ev], CTX, RULES)
    kept = ev.features
    classify_timeline([ev], CTX, RULES, PIPE.facts)  # another registry object, alike
    assert ev.features is kept


def test_event_fact_reads_one_fact_as_declared() -> None:
    ev = event({"ua": {"os": "iOS", "empty": 1}})
    assert (ev.fact("ua.os"), ev.fact("ua.empty"), ev.fact("net.labels")) == ("iOS", True, set())
    with pytest.raises(KeyError, match=r"no enricher declares the fact 'ua\.colour'"):
        ev.fact("ua.colour")


def _rule(**reads: Any) -> Rule:
    return Rule("x.reads", Verdict.MACHINE, -1.0, "d", "s", lambda f: None, **reads)


@pytest.mark.parametrize(
    ("reads", "undeclared"),
    [
        ({"facts": ("ua.category", "geo.asn")}, "'geo.asn'"),
        ({"facts": ("category",)}, "'category'"),  # a fact is named with its namespace
        ({"facts": (Derived("x", ("ua.colour",), lambda ev, c: c, "d"),)}, "'ua.colour'"),
        ({"reads": "event", "lookups": ("net.asn",)}, "'net.asn'"),
    ],
)
def test_a_rule_reading_an_undeclared_fact_is_refused(reads: Any, undeclared: str) -> None:
    rule = _rule(**reads)
    ev = event(enriched("Mozilla/5.0"))
    with pytest.raises(ConfigError, match=f"rule x.reads reads {undeclared}, which no enricher"):
        classify_timeline([ev], CTX, (*RULES, rule))
    # Switched off, it is not run, so it need not be satisfied (its enricher may be absent).
    off = Context(sent_at=AT, link_count=1, disabled=frozenset({"x.reads"}))
    assert classify_timeline([ev], off, (*RULES, rule)) == classify_timeline([ev], CTX, RULES)


def test_derived_values_must_not_pass_for_facts_or_clash() -> None:
    with pytest.raises(ValueError, match="plain name"):
        Derived("ua.agent", ("ua.family",), lambda ev, f: f, "dotted")
    with pytest.raises(ValueError, match="plain name"):
        Derived("kind", (), lambda ev: 1, "an event field")
    twin = Derived("agent", ("ua.family",), lambda ev, f: "?", "another agent")
    with pytest.raises(ValueError, match="two different derived values are named 'agent'"):
        layout_for(STANDARD_FACTS, {AGENT, twin})
